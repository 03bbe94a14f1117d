//! The chunk splitter: frames in, "start a new chunk here" out. Pure; no files, no clocks.

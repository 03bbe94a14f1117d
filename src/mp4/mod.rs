//! MP4 sample tables and the faststart writer; boxes are encoded with `mp4-atom`.

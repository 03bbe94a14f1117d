//! rtmp-recorder: records live RTMP streams into time-based chunks, remuxes each chunk into a
//! faststart MP4 and uploads it. See `docs/ARCHITECTURE.md` for how the stages fit together.

pub mod amf0;
pub mod batch;
pub mod byte_range;
pub mod chunk;
pub mod cli;
pub mod clip;
pub mod disk;
pub mod duration;
pub mod exit;
pub mod flv;
pub mod http;
pub mod ingest;
pub mod log_safe;
pub mod logging;
pub mod manifest;
pub mod mp4;
pub mod naming;
pub mod node;
pub mod observe;
pub mod pressure;
pub mod prometheus;
pub mod publish;
pub mod publish_token;
pub mod remux;
pub mod rtmp;
pub mod run;
pub mod shutdown;
pub mod size;
pub mod spool;
pub mod status;
pub mod systemd;
pub mod tls_identity;
pub mod token_command;
pub mod url_path;
pub mod utc;

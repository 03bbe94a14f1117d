//! The integration tests: one crate, so the support in `support/` exists once. Each file below is
//! one concern (the README's tests table names them); run one with
//! `cargo test --release --test tests FILE::`.

mod support;

mod appliance_nspawn;
mod clip;
mod core_purity;
mod disk_full;
mod event_hooks;
mod hand_copied;
mod hostile_peers;
mod http_browser;
mod http_endpoints;
mod ingest_aligned;
mod ingest_ffmpeg;
mod ingest_gstreamer;
mod ingest_harness;
mod ingest_hostile;
mod ingest_reconnect;
mod ingest_rtmps;
mod ingest_shutdown;
mod ingest_streams;
mod ingest_systemd;
mod nix_flake;
mod packaging;
mod publish_auth;
mod publish_dir;
mod publish_moto;
mod publish_s3s;
mod remux_av_sync;
mod remux_browser;
mod remux_crash;
mod remux_packets;
mod remux_stage;
mod rtmp_chunks;
mod rtmp_deadlines;
mod rtmp_hostile;
mod rtmp_session;
mod rtmp_session_ffmpeg;
mod run_end_to_end;
mod run_fails_as_one;
mod run_two_nodes;
mod stage_start;
mod status_command;
mod systemd_units;

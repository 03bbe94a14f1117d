//! Logging: to the journal with structured fields when stderr is connected to it (systemd sets
//! `$JOURNAL_STREAM`), else readable lines on stderr. Structured fields are passed with `log`'s
//! key-values: `log::info!(stream = label, chunk = name; "chunk finished")` becomes `STREAM=`,
//! `CHUNK=` in the journal, so `journalctl -u rtmp-recorder-ingest STREAM=cam1` works.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

/// Installs the logger. Call once, before anything logs.
pub fn init(level: LevelFilter, stage: &'static str) {
    if systemd_journal_logger::connected_to_journal()
        && let Ok(logger) = systemd_journal_logger::JournalLog::new()
    {
        let logger = logger.with_extra_fields(vec![("STAGE", stage)]);
        if logger.install().is_ok() {
            log::set_max_level(level);
            return;
        }
    }
    let _ = log::set_boxed_logger(Box::new(StderrLog { level }));
    log::set_max_level(level);
}

/// Plain lines: `LEVEL message key=value ...`.
struct StderrLog {
    level: LevelFilter,
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Quiet down chatty dependencies below warn unless asked for at trace.
        let target = record.target();
        if !target.starts_with("rtmp_recorder")
            && record.level() > log::Level::Warn
            && self.level < LevelFilter::Trace
        {
            return;
        }
        let mut line = format!("{:<5} {}", record.level(), record.args());
        let mut visitor = KvLine(&mut line);
        let _ = record.key_values().visit(&mut visitor);
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

struct KvLine<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for KvLine<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={}", key.as_str().to_ascii_lowercase(), value);
        Ok(())
    }
}

//! Where events go: a shell command (the event's JSON on stdin, exit 0 = delivered) and an HTTP
//! receiver (POST, 2xx = delivered). One attempt each, bounded by the hook timeout; retrying is
//! the caller's.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;

use crate::http_post::Target;

/// How much of a receiver's answer, or of a command's stderr, is kept for the log.
const KEEP_BYTES: usize = 4 * 1024;

#[derive(Debug, Clone)]
pub enum Sink {
    Command(String),
    Webhook(Target),
}

impl Sink {
    /// The configured sinks, in the order each event is offered to them.
    pub fn configured(args: &super::Sinks) -> Result<Vec<Sink>> {
        let mut sinks = Vec::new();
        if let Some(url) = args.webhook.as_deref().filter(|u| !u.trim().is_empty()) {
            sinks.push(Sink::Webhook(Target::parse("--webhook", url.trim())?));
        }
        if let Some(cmd) = args
            .hook_command
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            sinks.push(Sink::Command(cmd.to_string()));
        }
        Ok(sinks)
    }

    /// The sink's name in marker files and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Command(_) => "command",
            Sink::Webhook(_) => "webhook",
        }
    }

    /// What to tell an operator about this sink.
    pub fn describe(&self) -> String {
        match self {
            Sink::Command(cmd) => format!("--hook-command {cmd:?}"),
            Sink::Webhook(t) => format!("--webhook {}", t.uri()),
        }
    }

    /// One attempt to hand `json` over. `Err` says why it was not delivered.
    pub async fn deliver(
        &self,
        json: &Bytes,
        id: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<()> {
        match self {
            Sink::Webhook(target) => {
                let posted =
                    tokio::time::timeout(timeout, target.post_json(json.clone(), KEEP_BYTES));
                let (status, answer) = posted.await.map_err(|_| {
                    anyhow!("no answer within {}", crate::duration::format(timeout))
                })??;
                if !status.is_success() {
                    bail!(
                        "answered {status}: {}",
                        String::from_utf8_lossy(&answer).trim()
                    );
                }
                Ok(())
            }
            Sink::Command(cmd) => {
                let (cmd, json) = (cmd.clone(), json.clone());
                let (id, kind) = (id.to_string(), kind.to_string());
                tokio::task::spawn_blocking(move || run_command(&cmd, &json, &id, &kind, timeout))
                    .await
                    .context("the hook command's task panicked")?
            }
        }
    }
}

/// How long the command's stderr is still read, for the log, once its group is gone.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// Runs `cmd` with `sh -c`, `json` on stdin and the event's id and kind in its environment.
/// The command runs in its own process group, which is killed when the command exits or
/// outlives `timeout`: a background child it left holding our pipes would otherwise keep us
/// waiting for their end past the timeout (and one would pile up per event). So an attempt
/// takes at most `timeout` plus [`STDERR_GRACE`].
fn run_command(cmd: &str, json: &[u8], id: &str, kind: &str, timeout: Duration) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let deadline = Instant::now() + timeout;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("RTMP_RECORDER_EVENT_ID", id)
        .env("RTMP_RECORDER_EVENT_KIND", kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting /bin/sh -c {cmd:?}"))?;
    let group = Group(child.id() as libc::pid_t);
    // Both pipes are served from threads that are never joined: a command that does not read
    // stdin must not block us, one that exits before reading all of it is its business (EPIPE
    // ignored), and both threads end once the group is gone.
    let mut stdin = child.stdin.take().context("the command's stdin")?;
    let input = json.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().context("the command's stderr")?;
    let (kept_tx, kept_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = KEEP_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        let _ = kept_tx.send(kept);
    });
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the hook command")? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            group.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(group);
    let said = kept_rx.recv_timeout(STDERR_GRACE).unwrap_or_default();
    let said = String::from_utf8_lossy(&said);
    let said = match said.trim() {
        "" => String::new(),
        text => format!("; it said: {text}"),
    };
    match status {
        None => bail!(
            "did not finish within {} (killed){said}",
            crate::duration::format(timeout)
        ),
        Some(s) if s.success() => Ok(()),
        Some(s) => bail!("exited with {s}{said}"),
    }
}

/// A hook command's process group, killed when dropped, on every way out of [`run_command`].
struct Group(libc::pid_t);

impl Group {
    fn kill(&self) {
        // SAFETY: kill(2) on the group we made; no memory is involved. The shell that leads it
        // may be reaped already: its id stays the group's while any member lives, and is not
        // handed out again before the pid space wraps, far longer than this takes.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_gets_the_event_and_is_judged_by_its_exit_status() {
        let got = tempfile::NamedTempFile::new().unwrap();
        let out = got.path().display();
        let cmd = format!("cat > {out}; echo \"$RTMP_RECORDER_EVENT_ID\" >> {out}");
        run_command(
            &cmd,
            b"{\"a\":1}",
            "x:1",
            "chunk.recorded",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(got.path()).unwrap(),
            "{\"a\":1}x:1\n"
        );
        let e = run_command(
            "echo nope >&2; exit 3",
            b"",
            "x",
            "k",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(format!("{e}").contains("nope"), "{e}");
        let started = Instant::now();
        let e =
            run_command("sleep 30 & wait", b"", "x", "k", Duration::from_millis(200)).unwrap_err();
        assert!(format!("{e}").contains("killed"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A background child holding stderr does not hold the attempt: the command's exit
        // decides, and the child goes with it.
        let started = Instant::now();
        run_command("sleep 30 & exit 0", b"", "x", "k", Duration::from_secs(20)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

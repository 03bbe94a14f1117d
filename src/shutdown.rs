//! One shutdown signal shared by every task of a process: SIGTERM or SIGINT flips it, and every
//! stage loop watches it to finish its current work cleanly (an open chunk is closed and handed on).

use tokio::sync::watch;

/// A cloneable handle that reports when shutdown was requested.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The side that triggers shutdown.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// Triggers `trigger` on the first SIGTERM or SIGINT.
pub fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM: finishing open chunks, then exiting"),
            _ = int.recv() => log::info!("SIGINT: finishing open chunks, then exiting"),
        }
        trigger.trigger();
    });
    Ok(())
}

//! Shutdown and reload signals: SIGTERM and SIGINT cancel one token that every stage holds (scans
//! stop, the server drains, the store flushes); SIGHUP asks for a config reload.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Spawn the signal listener. Returns the shutdown token and a channel that yields on every SIGHUP.
pub fn listen() -> std::io::Result<(CancellationToken, mpsc::Receiver<()>)> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let t = token.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!(signal = "SIGTERM", "shutting down"); break; }
                _ = int.recv() => { tracing::info!(signal = "SIGINT", "shutting down"); break; }
                _ = hup.recv() => {
                    tracing::info!(signal = "SIGHUP", "reloading the configuration");
                    // A reload already pending covers this one too.
                    let _ = reload_tx.try_send(());
                }
            }
        }
        t.cancel();
    });
    Ok((token, reload_rx))
}

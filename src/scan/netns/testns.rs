//! A test helper for work in network namespaces that needs stinger's own [`spawn_in`]: a banner
//! server inside a namespace (or in this one). The namespaces themselves, the privilege check and
//! fresh ids are `stinger_testsupport::netns`.

use super::*;

/// A TCP server that writes `banner` on every connection it accepts (nmap's NULL probe matches
/// an SSH banner at once), until dropped. With an empty banner it holds every connection open
/// and says nothing (nmap's probes then wait out their timeouts).
pub(crate) struct BannerServer {
    pub(crate) port: u16,
    stop: CancellationToken,
}

impl Drop for BannerServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl BannerServer {
    /// Listens on `addr:port` (0: any free port), inside the namespace at `ns` (on its own
    /// thread, see [`spawn_in`]) or, with `None`, in this one; panics when it does not listen
    /// within 10 s.
    pub(crate) async fn start(
        ns: Option<&Path>,
        addr: IpAddr,
        port: u16,
        banner: &'static [u8],
    ) -> BannerServer {
        let stop = CancellationToken::new();
        let (port_tx, port_rx) = oneshot::channel();
        let stopped = stop.clone();
        let serve = move || serve(addr, port, banner, port_tx, stopped);
        let task = match ns {
            Some(ns) => {
                let running = spawn_in(ns, serve);
                tokio::spawn(async move { running.await.map_err(|e| e.to_string()) })
            }
            None => tokio::spawn(async move {
                serve().await;
                Ok(())
            }),
        };
        match tokio::time::timeout(Duration::from_secs(10), port_rx).await {
            Ok(Ok(Ok(port))) => BannerServer { port, stop },
            other => {
                stop.cancel();
                let why = tokio::time::timeout(Duration::from_secs(5), task).await;
                panic!("no banner server on {addr}:{port} in {ns:?}: {other:?}; {why:?}");
            }
        }
    }
}

async fn serve(
    addr: IpAddr,
    port: u16,
    banner: &'static [u8],
    port_tx: oneshot::Sender<io::Result<u16>>,
    stop: CancellationToken,
) {
    use tokio::io::AsyncWriteExt;
    let l = match tokio::net::TcpListener::bind((addr, port)).await {
        Ok(l) => l,
        Err(e) => {
            let _ = port_tx.send(Err(e));
            return;
        }
    };
    let _ = port_tx.send(l.local_addr().map(|a| a.port()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = l.accept() => {
                let Ok((mut s, _)) = r else { continue };
                let stop = stop.clone();
                tokio::spawn(async move {
                    if banner.is_empty() {
                        // Silent: hold the connection, answer nothing.
                        stop.cancelled().await;
                        return;
                    }
                    let _ = s.write_all(banner).await;
                    let _ = s.shutdown().await;
                    // Give the client time to read before the socket closes.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                });
            }
        }
    }
}

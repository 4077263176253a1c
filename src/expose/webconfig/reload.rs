//! Reloading: the config file and the files it names are watched by size and mtime, and read
//! again when they change.

use super::auth::Shared;
use super::config::{load, Loaded};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The files are looked at no more often than this.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Re-reads the config when it or a file it names changes.
pub(super) struct Reloader {
    path: PathBuf,
    referenced: Vec<PathBuf>,
    fingerprint: Vec<Option<(SystemTime, u64)>>,
    last_check: Instant,
}

fn fingerprint(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

impl Reloader {
    pub(super) fn new(path: PathBuf, loaded: &Loaded) -> Reloader {
        let referenced = loaded.referenced.clone();
        let fingerprint = fingerprint(&Self::files(&path, &referenced));
        Reloader {
            path,
            referenced,
            fingerprint,
            last_check: Instant::now(),
        }
    }

    fn files(path: &Path, referenced: &[PathBuf]) -> Vec<PathBuf> {
        std::iter::once(path.to_owned())
            .chain(referenced.iter().cloned())
            .collect()
    }

    pub(super) async fn maybe_reload(&mut self, shared: &Shared) {
        if self.last_check.elapsed() < RELOAD_CHECK_INTERVAL {
            return;
        }
        self.last_check = Instant::now();
        let files = Self::files(&self.path, &self.referenced);
        let path = self.path.clone();
        let old = self.fingerprint.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let now = fingerprint(&files);
            if now == old {
                None
            } else {
                Some((now, load(&path)))
            }
        })
        .await;
        let Ok(Some((now, result))) = checked else {
            return;
        };
        // Remember what we looked at even when it fails, so a broken file is logged once, not
        // every second; the next change is tried again.
        self.fingerprint = now;
        let file = self.path.display().to_string();
        match result {
            Ok(loaded) if loaded.tls.is_some() != shared.current().tls.is_some() => {
                tracing::error!(
                    %file,
                    "web config changed: turning TLS on or off needs a restart; keeping the previous configuration"
                );
            }
            Ok(loaded) => {
                tracing::info!(
                    %file,
                    tls = loaded.tls.is_some(),
                    client_auth = loaded.client_auth.as_str(),
                    basic_auth = !loaded.users.is_empty(),
                    "web config reloaded"
                );
                if loaded.referenced != self.referenced {
                    self.referenced = loaded.referenced.clone();
                    self.fingerprint = fingerprint(&Self::files(&self.path, &self.referenced));
                }
                shared.replace(loaded);
            }
            Err(e) => {
                tracing::error!(
                    %file,
                    error = %e,
                    kind = e.kind(),
                    "web config reload failed; keeping the previous configuration"
                );
            }
        }
    }
}

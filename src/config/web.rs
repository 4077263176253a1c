//! `[web]` and `[storage]`: where the HTTP endpoints listen (and their TLS/auth file), and where
//! the store lives and how long it keeps what.

use super::file::{StorageFile, WebFile};
use super::{parse_listen_address, Problem, StorageConfig, WebConfig};

/// Validate `[web]` (the address, the telemetry path, the web configuration file) and build it.
pub(crate) fn build(f: &WebFile, problems: &mut Vec<Problem>) -> Option<WebConfig> {
    let before = problems.len();
    let listen = match parse_listen_address(&f.listen_address) {
        Ok(a) => Some(a),
        Err(m) => {
            problems.push(Problem {
                key: "web.listen_address".into(),
                message: m,
            });
            None
        }
    };
    let tp = &f.telemetry_path;
    if !tp.starts_with('/') || tp == "/" || tp.starts_with("/api/") || tp.starts_with("/-/") {
        problems.push(Problem {
            key: "web.telemetry_path".into(),
            message: format!("{tp:?} must start with / and not clash with /, /api/ or /-/"),
        });
    }
    if let Some(path) = &f.config_file {
        if let Err(e) = crate::expose::webconfig::validate(path) {
            problems.push(Problem {
                key: "web.config_file".into(),
                message: e.to_string(),
            });
        }
    }
    let listen = listen.filter(|_| problems.len() == before)?;
    Some(WebConfig {
        listen,
        config_file: f.config_file.clone(),
        telemetry_path: f.telemetry_path.clone(),
        max_port_series: f.max_port_series,
        vm_metadata: f.vm_metadata,
        max_device_series: f.max_device_series,
    })
}

/// Validate `[storage]` and build it.
pub(crate) fn build_storage(f: &StorageFile, problems: &mut Vec<Problem>) -> Option<StorageConfig> {
    if f.path.as_os_str().is_empty() {
        problems.push(Problem {
            key: "storage.path".into(),
            message: "must not be empty".into(),
        });
        return None;
    }
    Some(StorageConfig {
        path: f.path.clone(),
        scan_retention: f.scan_retention,
        event_retention: f.event_retention,
    })
}

//! Fault injection in the fake cloud: [`Fault`]s (a delay, an error status, a broken body, a
//! pagination loop, a dropped connection) set and cleared while it serves, used up by the first
//! matching request or kept ([`Fault::sticky`]), and counted when applied.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which fake service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Compute,
    Network,
}

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Wait this long before answering (the answer itself is normal unless another fault applies).
    Delay(Duration),
    /// Answer this status with the service's error body.
    Status(u16),
    /// 200 with a body that is not JSON (the real body cut in half, then garbage).
    InvalidJson,
    /// 200 whose top-level resource key (`servers`, `ports`, `server`, ...) is absent.
    MissingCollection,
    /// 200 whose first item (or the single resource) has no `id`.
    ItemWithoutId,
    /// A `<collection>_links` next link pointing back at the first page (the same URL without
    /// `marker`), even when the page is not full.
    PaginationLoop,
    /// Announce the full `Content-Length`, send half the body, then drop the connection.
    DropMidBody,
}

/// One fault: applies to requests to `service` whose path starts with `path_prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub service: Service,
    pub path_prefix: String,
    pub kind: FaultKind,
    /// Sticky faults stay until [`Faults::clear`]; others are used up by the first matching
    /// request (whatever its outcome).
    pub sticky: bool,
}

impl Fault {
    pub fn once(service: Service, path_prefix: &str, kind: FaultKind) -> Fault {
        Fault {
            service,
            path_prefix: path_prefix.to_string(),
            kind,
            sticky: false,
        }
    }

    pub fn sticky(service: Service, path_prefix: &str, kind: FaultKind) -> Fault {
        Fault {
            sticky: true,
            ..Fault::once(service, path_prefix, kind)
        }
    }
}

/// The shared, runtime-switchable fault list. Every matching fault applies (delays first; then the
/// first status/body fault decides).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    active: Vec<Fault>,
    fired: usize,
}

impl Faults {
    /// Adds a fault.
    pub fn set(&self, fault: Fault) {
        if let Ok(mut s) = self.inner.lock() {
            s.active.push(fault);
        }
    }

    /// Removes every fault.
    pub fn clear(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.active.clear();
        }
    }

    /// How many times a fault was applied so far.
    pub fn fired(&self) -> usize {
        self.inner.lock().map(|s| s.fired).unwrap_or(0)
    }

    /// Faults not used up yet.
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|s| s.active.len()).unwrap_or(0)
    }

    /// The faults that apply to a request (used-up ones removed), counted as fired.
    pub(super) fn take(&self, service: Service, path: &str) -> Vec<FaultKind> {
        let Ok(mut s) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        s.active.retain(|f| {
            if f.service == service && path.starts_with(&f.path_prefix) {
                out.push(f.kind.clone());
                f.sticky
            } else {
                true
            }
        });
        s.fired += out.len();
        out
    }
}

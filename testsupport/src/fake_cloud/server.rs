//! The running fake cloud, [`FakeCloud`]: its configuration ([`FakeConfig`]), the state its
//! handlers share (`Ctx`: the cloud, tokens, faults, counts, the render cache), start-up on a
//! thread and tokio runtime of its own with one listener per service, and what a test asks of it
//! while it runs (addresses, counts, the request log, faults, changes to the cloud).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;

use super::auth::{Identity, TokenCheck};
use super::cloud::Cloud;
use super::faults::{Faults, Service};
use super::http::handle;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub cloud: Cloud,
    pub compute_listen: SocketAddr,
    pub network_listen: SocketAddr,
    pub tokens: TokenCheck,
    /// Nova `[api]max_limit`: the default and the cap of `limit` (1000 in Nova).
    pub max_limit: usize,
    /// Neutron `pagination_max_limit`: `None` = no cap and no default page size (Neutron's default).
    pub neutron_max_limit: Option<usize>,
    /// Neutron's `pagination` extension; off = `limit`/`marker` ignored, everything in one reply.
    pub neutron_pagination: bool,
    /// Neutron's `standard-attr-timestamp` extension; off = not in `/v2.0/extensions`, and
    /// `changed_since` is answered with 400.
    pub neutron_timestamps: bool,
}

impl FakeConfig {
    /// Both services on `ip`, ephemeral ports, Nova max_limit 1000, Neutron uncapped.
    pub fn new(ip: IpAddr, cloud: Cloud, tokens: TokenCheck) -> FakeConfig {
        FakeConfig {
            cloud,
            compute_listen: SocketAddr::new(ip, 0),
            network_listen: SocketAddr::new(ip, 0),
            tokens,
            max_limit: 1000,
            neutron_max_limit: None,
            neutron_pagination: true,
            neutron_timestamps: true,
        }
    }
}

/// What every request handler shares.
pub(super) struct Ctx {
    pub(super) cloud: RwLock<Cloud>,
    pub(super) tokens: TokenCheck,
    pub(super) cache: Mutex<HashMap<String, (Instant, Identity)>>,
    pub(super) seen: Mutex<HashSet<String>>,
    pub(super) expiring: Mutex<HashSet<String>>,
    pub(super) counts: Mutex<Counts>,
    pub(super) faults: Faults,
    pub(super) max_limit: usize,
    pub(super) neutron_max_limit: Option<usize>,
    pub(super) neutron_pagination: bool,
    pub(super) neutron_timestamps: bool,
    pub(super) keystone_calls: Mutex<usize>,
    /// Bumped by every [`FakeCloud::with_cloud`]; invalidates `render_cache`.
    pub(super) generation: std::sync::atomic::AtomicU64,
    pub(super) render_cache: Mutex<RenderCache>,
}

/// (shape bucket, admin, detail, host): what a rendered server depends on.
pub(super) type ShapeKey = (usize, bool, bool, String);

/// Serialized servers per shape, by server index; emptied when the cloud's generation changes.
#[derive(Default)]
pub(super) struct RenderCache {
    pub(super) generation: u64,
    pub(super) variants: HashMap<ShapeKey, Vec<Option<Arc<Vec<u8>>>>>,
}

#[derive(Clone)]
/// One service's handler state.
pub(super) struct Svc {
    pub(super) ctx: Arc<Ctx>,
    pub(super) service: Service,
    pub(super) addr: SocketAddr,
}

/// The running fake: Nova and Neutron on their own listeners, served by a 2-worker tokio runtime on
/// a thread of its own. Dropping it stops both.
pub struct FakeCloud {
    compute_addr: SocketAddr,
    network_addr: SocketAddr,
    ctx: Arc<Ctx>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCloud {
    /// Binds both listeners (errors name the address) and starts serving.
    pub fn start(config: FakeConfig) -> std::io::Result<FakeCloud> {
        let bind = |addr: SocketAddr, what: &str| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("fake {what}: cannot bind {addr}: {e}"))
                })
        };
        let compute = bind(config.compute_listen, "compute")?;
        let network = bind(config.network_listen, "network")?;
        let compute_addr = compute.local_addr()?;
        let network_addr = network.local_addr()?;
        let ctx = Arc::new(Ctx {
            cloud: RwLock::new(config.cloud),
            tokens: config.tokens,
            cache: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
            expiring: Mutex::new(HashSet::new()),
            counts: Mutex::new(Counts::default()),
            faults: Faults::default(),
            max_limit: config.max_limit.max(1),
            neutron_max_limit: config.neutron_max_limit.map(|m| m.max(1)),
            neutron_pagination: config.neutron_pagination,
            neutron_timestamps: config.neutron_timestamps,
            keystone_calls: Mutex::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            render_cache: Mutex::new(RenderCache::default()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-cloud")
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = |service: Service, addr: SocketAddr| {
            Router::new().fallback(handle).with_state(Svc {
                ctx: ctx.clone(),
                service,
                addr,
            })
        };
        let compute_app = app(Service::Compute, compute_addr);
        let network_app = app(Service::Network, network_addr);
        let thread = std::thread::Builder::new()
            .name("fake-cloud".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (c, n) = match (
                        tokio::net::TcpListener::from_std(compute),
                        tokio::net::TcpListener::from_std(network),
                    ) {
                        (Ok(c), Ok(n)) => (c, n),
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::error!(error = %e, "fake cloud: cannot register the listeners");
                            return;
                        }
                    };
                    tokio::select! {
                        r = async { axum::serve(c, compute_app).await } => {
                            if let Err(e) = r { tracing::error!(error = %e, "fake compute stopped"); }
                        }
                        r = async { axum::serve(n, network_app).await } => {
                            if let Err(e) = r { tracing::error!(error = %e, "fake network stopped"); }
                        }
                        _ = stop_rx => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(FakeCloud {
            compute_addr,
            network_addr,
            ctx,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn compute_addr(&self) -> SocketAddr {
        self.compute_addr
    }

    pub fn network_addr(&self) -> SocketAddr {
        self.network_addr
    }

    /// The compute endpoint as a catalog would list it: `http://ip:port/v2.1`.
    pub fn compute_url(&self) -> String {
        format!("http://{}/v2.1", self.compute_addr)
    }

    /// The network endpoint as a catalog would list it: `http://ip:port` (clients add `/v2.0/...`).
    pub fn network_url(&self) -> String {
        format!("http://{}", self.network_addr)
    }

    /// The runtime-switchable faults.
    pub fn faults(&self) -> &Faults {
        &self.ctx.faults
    }

    /// Every token seen so far (and every static one) gets one 401 on its next request; the
    /// Keystone cache is emptied.
    pub fn expire_tokens(&self) {
        let mut all: HashSet<String> = self.ctx.seen.lock().map(|s| s.clone()).unwrap_or_default();
        if let TokenCheck::Static { tokens, .. } = &self.ctx.tokens {
            all.extend(tokens.iter().cloned());
        }
        if let Ok(mut c) = self.ctx.cache.lock() {
            all.extend(c.keys().cloned());
            c.clear();
        }
        if let Ok(mut e) = self.ctx.expiring.lock() {
            e.extend(all);
        }
    }

    /// Requests to this exact path (no query), any service, any outcome.
    pub fn requests_to(&self, path: &str) -> usize {
        self.ctx
            .counts
            .lock()
            .map(|c| c.by_path.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Requests that carried this token.
    pub fn requests_with_token(&self, token: &str) -> usize {
        self.ctx
            .counts
            .lock()
            .map(|c| c.by_token.get(token).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every request so far (the first 100 000), in arrival order.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.ctx
            .counts
            .lock()
            .map(|c| c.log.clone())
            .unwrap_or_default()
    }

    /// Forgets all counts and the log.
    pub fn reset_counts(&self) {
        if let Ok(mut c) = self.ctx.counts.lock() {
            *c = Counts::default();
        }
    }

    /// How often the fake asked Keystone (cache misses).
    pub fn keystone_validations(&self) -> usize {
        self.ctx.keystone_calls.lock().map(|c| *c).unwrap_or(0)
    }

    /// Changes the cloud while serving (add or remove servers, set diagnostics, ...).
    pub fn with_cloud<R>(&self, f: impl FnOnce(&mut Cloud) -> R) -> Option<R> {
        let out = self.ctx.cloud.write().ok().map(|mut c| f(&mut c));
        self.ctx
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        out
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub service: Service,
    pub path: String,
    pub query: String,
    pub had_token: bool,
    /// The `OpenStack-API-Version` or `X-OpenStack-Nova-API-Version` header as sent.
    pub microversion: Option<String>,
    pub status: u16,
}

/// Requests logged at most (counting goes on).
pub(super) const LOG_CAP: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) by_path: HashMap<String, usize>,
    pub(super) by_token: HashMap<String, usize>,
    pub(super) log: Vec<LoggedRequest>,
}

//! One `[[openstack]]` cloud as an inventory source: authenticate, negotiate the compute
//! microversion, list servers (all projects), Neutron's ports, floating IPs, networks and security
//! groups, Keystone's project and user names, then join them ([`join`](super::join)) and fetch each
//! scanned VM's diagnostics. A failed fetch is retried with backoff; the caller keeps the last good
//! inventory when every attempt fails.

use super::api::Error;
use super::changes::{self, Change, ChangeError, CloudState, Feed, PollOptions};
use super::join::{self, CloudInventory, Fetched, JoinOptions};
use super::keystone::{Names, Session, SessionOptions};
use super::nova::{self, Microversion};
use super::settings::OpenStackSource;
use super::types::Diagnostics;
use super::{diagnostics, neutron};
pub use crate::model::DiagnosticsCounts;
use crate::model::UnixSeconds;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What one successful inventory did.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    pub seconds: f64,
    pub microversion: String,
    pub servers: usize,
    /// Whether Keystone let us list every project / user name (else ids stand in).
    pub names_complete: bool,
    pub diagnostics: DiagnosticsCounts,
    /// Failed attempts before this one succeeded.
    pub retries: u32,
    /// What this full inventory found different from the inventory the change polls kept since
    /// the last one (VMs and scanned addresses added, gone or changed): drift the polls missed,
    /// which should be zero. Set by the agent, which holds the polled inventory.
    pub drift: u64,
}

/// One cloud, ready to inventory.
pub struct Source {
    pub config: OpenStackSource,
    session: Arc<Session>,
    /// Between full inventories: the last one's raw lists with every polled change applied.
    incremental: tokio::sync::Mutex<Incremental>,
}

/// The state of the incremental inventory (see [`Source::poll_changes`]).
#[derive(Default)]
struct Incremental {
    /// Whether Neutron filters by change time (asked once per process).
    feed: Feed,
    /// `None` until a full inventory succeeded.
    state: Option<CloudState>,
    /// The compute microversion the last full inventory negotiated.
    microversion: Option<Microversion>,
}

/// What a change poll found: the inventory of the servers the changes touched, and the changes.
#[derive(Debug)]
pub struct Polled {
    /// The touched servers still there, joined, with their targets
    /// ([`CloudState::inventory_of`]); everything else is as it was.
    pub inventory: CloudInventory,
    /// Every server the changes touched: one missing from `inventory` is gone.
    pub touched: BTreeSet<String>,
    pub changes: Vec<Change>,
    pub seconds: f64,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.config.name)
            .field("cloud", &self.config.cloud.name)
            .finish()
    }
}

impl Source {
    /// Builds the HTTP client and session (no request yet).
    pub fn new(config: OpenStackSource) -> Result<Source, Error> {
        let session = Session::new(
            &config.cloud,
            SessionOptions {
                timeout: config.timeout,
                ..SessionOptions::default()
            },
        )?;
        Ok(Source {
            config,
            session: Arc::new(session),
            incremental: tokio::sync::Mutex::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Inventory with retries: `config.retries` more attempts after a failure, 1 s, 2 s, 4 s ...
    /// (at most 30 s) apart. Returns the last error when all fail; `None` if cancelled.
    pub async fn fetch(
        &self,
        first_seen: &BTreeMap<String, UnixSeconds>,
        cancel: &CancellationToken,
    ) -> Option<Result<(CloudInventory, FetchReport), Error>> {
        // The change polls' state is rebuilt from this inventory: free the old one first, so that
        // a large cloud's raw lists are never held twice (no poll runs during a full inventory;
        // until one succeeds, none does).
        self.incremental.lock().await.state = None;
        let mut delay = Duration::from_secs(1);
        let mut attempt = 0;
        loop {
            let result = tokio::select! {
                _ = cancel.cancelled() => return None,
                r = self.fetch_once(first_seen) => r,
            };
            match result {
                Ok((inv, mut report)) => {
                    report.retries = attempt;
                    return Some(Ok((inv, report)));
                }
                Err(e) if attempt < self.config.retries => {
                    attempt += 1;
                    tracing::warn!(
                        source = %self.config.name, error = %e, attempt,
                        retry_in = ?delay, "OpenStack inventory failed; retrying"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// One attempt.
    pub async fn fetch_once(
        &self,
        first_seen: &BTreeMap<String, UnixSeconds>,
    ) -> Result<(CloudInventory, FetchReport), Error> {
        let started = Instant::now();
        let api = &*self.session;
        let c = &self.config;
        tracing::info!(source = %c.name, cloud = %c.cloud.name, "OpenStack inventory starting");
        api.authenticate().await?;
        let wanted = Microversion {
            major: c.compute_microversion.0,
            minor: c.compute_microversion.1,
        };
        let mv = nova::negotiate(api, wanted).await?;
        let nova_opts = nova::ListOptions {
            page_size: c.page_size,
            all_projects: c.all_projects,
            ..nova::ListOptions::default()
        };
        let neutron_opts = neutron::ListOptions {
            page_size: c.page_size,
            ..neutron::ListOptions::default()
        };
        let (servers, net, projects, users) = tokio::join!(
            nova::list_servers(api, mv, &nova_opts),
            neutron::inventory(api, &neutron_opts),
            api.project_names(),
            api.user_names(),
        );
        let (servers, net) = (servers?, net?);
        // Names only decorate: without them ids stand in, and the inventory goes on.
        let names = |r: Result<Names, Error>, what: &str| {
            r.unwrap_or_else(|e| {
                tracing::warn!(source = %c.name, error = %e, "cannot list {what} names; ids stand in for them");
                Names::default()
            })
        };
        let (projects, users) = (names(projects, "project"), names(users, "user"));
        let names_complete = projects.complete && users.complete;
        let fetched = Fetched {
            servers: servers.servers,
            ports: net.ports,
            floating_ips: net.floating_ips,
            networks: net.networks,
            security_groups: net.security_groups,
            project_names: projects.map,
            user_names: users.map,
            neutron_date: net.date,
        };
        let opts = self.join_options();
        let mut report = FetchReport {
            microversion: mv.to_string(),
            servers: fetched.servers.len(),
            names_complete,
            ..FetchReport::default()
        };
        let mut inv = join::join(&opts, &fetched, first_seen, crate::model::now());
        // The raw lists the change polls start from (only when polls are on; else freed now).
        let snapshot = (!c.poll_interval.is_zero()).then_some(fetched);
        if c.diagnostics {
            report.diagnostics = self.diagnostics(&mut inv, mv).await;
        }
        report.seconds = started.elapsed().as_secs_f64();
        {
            let mut inc = self.incremental.lock().await;
            inc.state = snapshot.map(|f| CloudState::new(f, changes::DEFAULT_MARGIN));
            inc.microversion = Some(mv);
        }
        tracing::info!(
            source = %c.name,
            servers = report.servers,
            vms_scanned = inv.vms.iter().filter(|v| v.addresses.iter().any(|a| a.host.is_some())).count(),
            targets = inv.targets.len(),
            microversion = %report.microversion,
            seconds = format!("{:.2}", report.seconds),
            "OpenStack inventory finished"
        );
        Ok((inv, report))
    }

    fn join_options(&self) -> JoinOptions {
        let c = &self.config;
        JoinOptions {
            group: c.name.clone(),
            addresses: c.addresses,
            statuses: c.statuses.clone(),
            namespaces: c.namespaces.is_some(),
            scanner_source: c.scanner_source,
        }
    }

    /// Whether a full inventory left a state to poll changes against.
    pub async fn can_poll(&self) -> bool {
        self.incremental.lock().await.state.is_some()
    }

    /// Ask the cloud what changed since the last poll (or full inventory) and apply it. `Ok(None)`:
    /// nothing changed, or no full inventory succeeded yet. An error that
    /// [`ChangeError::needs_full_inventory`] asks for a full inventory (the state is dropped until
    /// one succeeds); any other is retried at the next poll. VM diagnostics are not fetched: they
    /// come with full inventories. The VMs are first seen now: the caller carries over the times
    /// (and diagnostics) of those it knew.
    pub async fn poll_changes(&self) -> Result<Option<Polled>, ChangeError> {
        let started = Instant::now();
        let c = &self.config;
        let mut inc = self.incremental.lock().await;
        let Incremental {
            feed,
            state,
            microversion,
        } = &mut *inc;
        let (Some(current), Some(mv)) = (state.as_mut(), *microversion) else {
            return Ok(None);
        };
        let api = &*self.session;
        api.authenticate().await.map_err(ChangeError::Api)?;
        let opts = PollOptions {
            cloud: c.name.clone(),
            page_size: c.page_size,
            max_pages: 10_000,
            all_projects: c.all_projects,
        };
        let result = match changes::poll(api, feed, mv, current.cursor, &opts).await {
            Ok(polled) => changes::diff(current, polled, &c.statuses),
            Err(e) => Err(e),
        };
        let mut delta = match result {
            Ok(d) => d,
            Err(e) => {
                if e.needs_full_inventory() {
                    *state = None;
                }
                return Err(e);
            }
        };
        let found = std::mem::take(&mut delta.changes);
        let unchanged = delta.is_empty();
        let touched = current.touched(&delta);
        changes::apply(current, delta);
        if unchanged {
            return Ok(None);
        }
        // First seen now: the caller carries the times of the VMs it knew.
        let inventory = current.inventory_of(
            &touched,
            &self.join_options(),
            &BTreeMap::new(),
            crate::model::now(),
        );
        Ok(Some(Polled {
            inventory,
            touched,
            changes: found,
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    /// Diagnostics of every VM in a scanned status, a few at a time. Failures are per VM: counted
    /// and noted on the VM, never fatal.
    async fn diagnostics(&self, inv: &mut CloudInventory, mv: Microversion) -> DiagnosticsCounts {
        let mut counts = DiagnosticsCounts::default();
        let ids: Vec<(usize, String)> = inv
            .vms
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                self.config
                    .statuses
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&v.status))
            })
            .map(|(i, v)| (i, v.id.clone()))
            .collect();
        // At most `diagnostics_concurrency` requests (and tasks) at a time: a task per VM up front
        // would hold ten thousand futures for a large cloud.
        let limit = self.config.diagnostics_concurrency.max(1);
        let mut pending = ids.into_iter();
        let mut tasks: JoinSet<(usize, Result<Diagnostics, Error>)> = JoinSet::new();
        let mut spawn_next = |tasks: &mut JoinSet<_>| {
            if let Some((i, id)) = pending.next() {
                let session = self.session.clone();
                tasks.spawn(async move { (i, diagnostics::diagnostics(&*session, mv, &id).await) });
            }
        };
        for _ in 0..limit {
            spawn_next(&mut tasks);
        }
        while let Some(joined) = tasks.join_next().await {
            spawn_next(&mut tasks);
            let Ok((i, result)) = joined else {
                counts.failed += 1;
                continue;
            };
            let Some(vm) = inv.vms.get_mut(i).and_then(Arc::get_mut) else {
                continue;
            };
            match result {
                Ok(d) => {
                    counts.ok += 1;
                    vm.diagnostics = Some(Box::new(d));
                }
                Err(e) => {
                    match e.status() {
                        Some(403) => counts.forbidden += 1,
                        Some(409) => counts.conflict += 1,
                        Some(501) => counts.not_implemented += 1,
                        _ => counts.failed += 1,
                    }
                    tracing::debug!(vm = %vm.id, error = %e, "no diagnostics");
                    vm.diagnostics_error = Some(e.to_string());
                }
            }
        }
        counts
    }
}

// === impl inventory::Source ===

/// A cloud's report, as every source's: what the view shows of the source's health.
impl From<FetchReport> for crate::inventory::Report {
    fn from(r: FetchReport) -> Self {
        crate::inventory::Report {
            seconds: r.seconds,
            servers: r.servers,
            names_complete: r.names_complete,
            diagnostics: r.diagnostics,
            drift: r.drift,
        }
    }
}

/// The cloud as an inventory source: a live one (its health watched, its VMs recorded), whose
/// addresses an API named, with change polls when `poll_interval` is set. Every method delegates to
/// the ones above.
impl crate::inventory::Source for Source {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &'static str {
        "OpenStack"
    }

    fn origin(&self) -> crate::inventory::scope::Origin {
        crate::inventory::scope::Origin::Api
    }

    fn inventory<'a>(
        &'a self,
        first_seen: &'a BTreeMap<String, UnixSeconds>,
        cancel: &'a CancellationToken,
    ) -> crate::inventory::Fetching<'a> {
        Box::pin(async move {
            let result = self.fetch(first_seen, cancel).await?;
            Some(
                result
                    .map(|(inv, report)| (inv, report.into()))
                    .map_err(crate::inventory::Error::from),
            )
        })
    }

    /// Targets probed from a namespace are probed from its file under `namespaces` (default
    /// `/run/netns`).
    fn units(
        &self,
        targets: &[(Option<String>, crate::model::Target)],
    ) -> Vec<crate::inventory::Unit> {
        let dir = self
            .config
            .namespaces
            .as_deref()
            .unwrap_or(std::path::Path::new("/run/netns"));
        crate::inventory::Unit::by_namespace(
            &self.config.name,
            self.origin(),
            dir,
            &self.config.ports,
            targets,
        )
    }

    fn live(&self) -> bool {
        true
    }

    fn poll_interval(&self) -> Option<Duration> {
        let every = self.config.poll_interval;
        (!every.is_zero()).then_some(every)
    }

    fn poll_changes(&self) -> crate::inventory::BoxFuture<'_, Result<Option<Polled>, ChangeError>> {
        // The inherent method above (a type's own methods come first in a path).
        Box::pin(Source::poll_changes(self))
    }
}

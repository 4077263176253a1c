//! The inventory seam. Every inventory source — the CIDR target groups of the configuration, each
//! `[[openstack]]` cloud — is a [`Source`]: it takes an [`Inventory`] (the VMs it knows of and the
//! addresses to scan, each with the network namespace its probes run from) and cuts those
//! addresses into scan [`Unit`]s with its ports. The agent holds its sources as
//! `Arc<dyn Source>`, built by one registry (`app::inventory::sources`): adding a source is one file
//! implementing this trait plus its line there.
//!
//! Not here: what the agent does with an inventory (VM records, appeared/gone events, health in
//! the view, the last good copy a failed fetch falls back on): that is `app::inventory`.

use super::openstack::changes::ChangeError;
use super::openstack::source::Polled;
use super::scope::Origin;
use super::Error;
use crate::model::{DiagnosticsCounts, Target, UnixSeconds, Vm};
use crate::ports::PortList;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One source's inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Each VM in its own shared allocation, as the agent's view keeps it (unique until published,
    /// so a cloud's diagnostics step can still fill it in). Its [`Vm::cloud`] is the source's name.
    /// Empty for sources without VMs (the CIDR groups).
    pub vms: Vec<Arc<Vm>>,
    /// The addresses to scan, each with the namespace its probes run from (`None`: the agent's own).
    pub targets: Vec<(Option<String>, Target)>,
}

/// What a successful inventory says about itself: the source's health in the view
/// (`stinger_inventory_*{source}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// How long it took.
    pub seconds: f64,
    /// VMs the source listed (before any status filter).
    pub servers: usize,
    /// Whether every project and user could be named (else ids stand in).
    pub names_complete: bool,
    pub diagnostics: DiagnosticsCounts,
    /// What this inventory found different from what the change polls kept since the last one:
    /// set by the agent, which holds the polled inventory.
    pub drift: u64,
}

/// Addresses of one target group scanned together: from the agent's own network namespace, or all
/// from one other namespace (a Neutron network's `qdhcp-`, on a network node).
#[derive(Debug, Clone)]
pub struct Unit {
    pub group: String,
    /// The namespace file (`/run/netns/qdhcp-<id>`); `None`: the agent's own namespace.
    pub namespace: Option<PathBuf>,
    pub targets: Vec<Target>,
    pub ports: PortList,
    /// Where its addresses come from: which `[scope]` rules apply to them.
    pub origin: Origin,
}

impl Unit {
    /// `targets` as units of `group`: those of the agent's own namespace first, then one unit per
    /// namespace (a name of a file under `dir`), all on `ports`.
    pub(crate) fn by_namespace(
        group: &str,
        origin: Origin,
        dir: &Path,
        ports: &PortList,
        targets: &[(Option<String>, Target)],
    ) -> Vec<Unit> {
        let mut by_ns: BTreeMap<Option<&str>, Vec<Target>> = BTreeMap::new();
        for (ns, t) in targets {
            by_ns.entry(ns.as_deref()).or_default().push(t.clone());
        }
        by_ns
            .into_iter()
            .map(|(ns, targets)| Unit {
                group: group.to_owned(),
                namespace: ns.map(|n| dir.join(n)),
                targets,
                ports: ports.clone(),
                origin,
            })
            .collect()
    }
}

/// A boxed future borrowing the source (the crate does without `async-trait`).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An inventory under way: `None` when cancelled, else the inventory and its report or why it
/// could not be taken.
pub(crate) type Fetching<'a> = BoxFuture<'a, Option<Result<(Inventory, Report), Error>>>;

/// Somewhere the agent learns what to scan.
///
/// The required methods are what every source has. The others default to "not supported": a
/// static list of the configuration (the CIDR groups) has no health to watch and no changes to
/// poll; a cloud overrides them.
pub(crate) trait Source: Send + Sync {
    /// The source's name: the target group of what it names (`[[group]] name`,
    /// `[[openstack]] name`), unique among the sources.
    fn name(&self) -> &str;

    /// What kind of source it is, for people: `OpenStack`, `CIDR`. Log lines about it start so
    /// ("OpenStack inventory failed; …").
    fn kind(&self) -> &'static str;

    /// Where its addresses come from, for `[scope]`: the operator's own lists, or an API's answer.
    fn origin(&self) -> Origin;

    /// Take a full inventory. `first_seen` holds when each VM the agent already knows of this
    /// source was first seen (ids not in it are new). `None`: cancelled (a source without I/O never
    /// is).
    fn inventory<'a>(
        &'a self,
        first_seen: &'a BTreeMap<String, UnixSeconds>,
        cancel: &'a CancellationToken,
    ) -> Fetching<'a>;

    /// The scan units of (part of) an inventory's targets, with the source's ports and namespaces.
    fn units(&self, targets: &[(Option<String>, Target)]) -> Vec<Unit>;

    /// Whether the source is a live inventory (a cloud's API), watched as one: its health in the
    /// view and `/metrics`, its VMs recorded (appeared/gone events), only this shard's part of it
    /// kept, and its last good inventory scanned while a fetch fails. Not supported (the default):
    /// a static list, taken afresh for every pass (targeted ones too), whose failure (the
    /// configuration cannot be expanded) fails the pass.
    fn live(&self) -> bool {
        false
    }

    /// How often to ask what changed between full inventories; `None` (the default): never.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    /// What changed since the last poll (or full inventory), applied to the source's own state;
    /// `Ok(None)`: nothing, or no full inventory to poll against yet (always, by default). The
    /// change types are OpenStack's, the only source with change polls so far.
    fn poll_changes(&self) -> BoxFuture<'_, Result<Option<Polled>, ChangeError>> {
        Box::pin(async { Ok(None) })
    }
}

//! Exports `stinger_vm_info`: one info series per VM of the cloud inventories, with its
//! source, name, project, user and Nova status. Series are per VM — never per project or
//! user — so their number follows the inventory.

use super::gauges;
use crate::model::Vm;
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use std::sync::Arc;

/// Encodes `vm_info`.
#[derive(Debug)]
pub(crate) struct Vms {
    pub(super) state: Arc<State>,
}

/// A VM's info labels: names where Keystone gave them, ids otherwise.
fn info(v: &Vm) -> [(&'static str, &str); 7] {
    [
        ("source", v.cloud.as_str()),
        ("vm_id", v.id.as_str()),
        ("name", v.name.as_str()),
        (
            "project",
            v.project_name.as_deref().unwrap_or(v.project_id.as_str()),
        ),
        ("project_id", v.project_id.as_str()),
        ("user", v.user_name.as_deref().unwrap_or(v.user_id.as_str())),
        ("status", v.status.as_str()),
    ]
}

impl Collector for Vms {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        gauges(
            &mut enc,
            "vm_info",
            "One series per VM of the cloud inventories, with its source, name, project and user (names, or ids where Keystone gave none) and Nova status; always 1",
            None,
            view.vms.values().map(|v| (info(v), 1.0)),
        )
    }
}

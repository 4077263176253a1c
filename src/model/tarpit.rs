//! A host that answers every TCP port probed — a tarpit, a SYN proxy, a port forwarder — as the
//! judge records it (`judge::tarpit`) and the store and the API keep it: in place of one port
//! record per answering port, the counts of one pass. Plain data; the thresholds live in the judge.

use super::UnixSeconds;
use serde::{Deserialize, Serialize};

/// "Answers everything": what the last pass saw of a host whose TCP ports nearly all answered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswersEverything {
    /// TCP ports that answered at the last scan (none of them gets a port record).
    pub open: u32,
    /// TCP ports probed at the last scan that answered or timed out (local errors left out).
    pub probed: u32,
    /// When the host started answering everything (the first pass of this spell).
    pub since: UnixSeconds,
}

//! Sharding through the real agents and a real Prometheus: one agent scans a set of CIDR hosts and
//! the VMs of a fake cloud (behind the real Keystone) alone; then three agents
//! (`--shard.count 3`) split the same set, and the union of their hosts
//! and findings is the single agent's, none twice and none missing, each on the shard
//! `stinger::inventory::shard::owner` names. A Prometheus scraping the three with the shipped rules
//! (their `for:` shortened) sums them to the single agent's totals; stopping one agent fires
//! StingerShardCoverageLow naming its shard (and not StingerDown). Growing to four shards moves
//! only the hosts whose owner changed, each to the new shard, and the API of any agent redirects
//! to the owner of a host it does not own.
//!
//! Addresses: CIDR targets 127.0.130.0/27 (listeners on .1 to .24), the cloud's floating IPs
//! 127.0.132.1 to .12 (listeners) and its API on 127.0.132.250, agents and Prometheus on
//! 127.0.131.0/24.

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{http_get, repo, wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use stinger::inventory::shard;
use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};
use stinger_testsupport::promtool;

const PORT: u16 = 20830;
const PROMETHEUS: &str = "127.0.131.1:19330";
const LIMIT: Duration = Duration::from_secs(90);
/// CIDR hosts and cloud VMs (one floating IP each) with a listener.
const CIDR_HOSTS: usize = 24;
const VMS: usize = 12;

fn agent_addr(index: u32) -> String {
    format!("127.0.131.{}:19331", index + 2)
}

/// A fake cloud of [`VMS`] VMs behind the shared Keystone, and the clouds.yaml naming it.
struct TestCloud {
    _fake: FakeCloud,
    clouds_yaml: PathBuf,
    _dir: tempfile::TempDir,
}

fn cloud() -> TestCloud {
    let ks = keystone();
    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let mut cloud = Cloud::empty().unwrap();
    for i in 1..=VMS {
        let vm = ServerSpec::new(
            &format!("5a4d0000-0000-4000-8000-{i:012}"),
            &format!("shard-vm-{i}"),
            &project,
        )
        .fixed("private", format!("127.0.133.{i}").parse().unwrap())
        .floating(format!("127.0.132.{i}").parse().unwrap());
        cloud.add_server(vm).unwrap();
    }
    let fake = FakeCloud::start(FakeConfig::new(
        "127.0.132.250".parse().unwrap(),
        cloud,
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    let region = format!("SHARDS-{}", std::process::id());
    register_region(&region, &fake.compute_url(), &fake.network_url());
    let dir = tempfile::tempdir().unwrap();
    let clouds_yaml = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds_yaml,
        format!(
            "clouds:\n  t:\n    region_name: {region}\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    TestCloud {
        _fake: fake,
        clouds_yaml,
        _dir: dir,
    }
}

/// The config of every agent: the same targets, and peers for `peers` shards.
fn config(dir: &Path, peers: u32) -> PathBuf {
    let peers = if peers == 0 {
        String::new()
    } else {
        let list: Vec<String> = (0..peers)
            .map(|i| format!("\"http://{}\"", agent_addr(i)))
            .collect();
        format!("\n[shard]\npeers = [{}]\n", list.join(", "))
    };
    write_config(
        dir,
        &format!(
            r#"
[schedule]
discovery = "2s"
jitter = "0s"

[[targets]]
name = "lab"
cidrs = ["127.0.130.0/27"]
ports = "{PORT}"

[policy]
expected = []

[scan.udp]
enabled = false

[[openstack]]
name = "cloud"
cloud = "t"
addresses = "floating"
ports = "{PORT}"
retries = 0
timeout = "5s"
{peers}"#
        ),
    )
}

/// Start shard `index` of `count` on its fixed address, with its own store under `dir`.
fn start(cloud: &TestCloud, dir: &Path, index: u32, count: u32, peers: bool) -> Agent {
    let config = config(dir, if peers { count } else { 0 });
    let clouds = cloud.clouds_yaml.display().to_string();
    Agent::start_env(
        &config,
        &[
            &format!("--shard.count={count}"),
            &format!("--shard.index={index}"),
            &format!("--web.listen-address={}", agent_addr(index)),
        ],
        &[("OS_CLIENT_CONFIG_FILE", clouds.as_str())],
    )
}

/// The host ids an agent holds, after a pass that started once every agent was up.
fn hosts(agent: &Agent) -> BTreeSet<String> {
    let v = agent.json("/api/v1/vms?limit=1000");
    v["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_owned))
        .collect()
}

/// (host, kind, key) of every finding an agent holds that is not resolved.
fn findings(agent: &Agent) -> BTreeSet<(String, String, String)> {
    let v = agent.json("/api/v1/findings?limit=1000");
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["state"] != "resolved")
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("host"), s("kind"), s("key"))
        })
        .collect()
}

/// The hosts with a confirmed finding.
fn confirmed(agent: &Agent) -> Option<BTreeSet<String>> {
    Some(
        agent.json("/api/v1/findings?limit=1000")["findings"]
            .as_array()?
            .iter()
            .filter(|f| f["state"] == "confirmed")
            .filter_map(|f| f["host"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Wait until an agent holds exactly `want` hosts, each with its confirmed finding.
fn settle(agent: &Agent, want: &BTreeSet<String>) {
    wait_for(
        &format!("agent {} to hold {} hosts", agent.addr, want.len()),
        LIMIT,
        || (hosts(agent) == *want && confirmed(agent)? == *want).then_some(()),
    );
}

/// A Prometheus scraping `agents` every second with the shipped rules, `for:` shortened to 2s.
struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(agents: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(repo().join("alerts/stinger.rules.yml")).unwrap();
        let mut doc: Value = serde_norway::from_str(&text).unwrap();
        for g in doc["groups"].as_array_mut().unwrap() {
            let g = g.as_object_mut().unwrap();
            g.remove("interval");
            for r in g["rules"].as_array_mut().unwrap() {
                for key in ["for", "keep_firing_for"] {
                    if let Some(f) = r.get_mut(key) {
                        *f = Value::String("2s".into());
                    }
                }
            }
        }
        let rules = dir.path().join("rules.yml");
        std::fs::write(&rules, serde_norway::to_string(&doc).unwrap()).unwrap();
        let targets: Vec<String> = agents.iter().map(|a| format!("'{a}'")).collect();
        let yml = dir.path().join("prometheus.yml");
        std::fs::write(
            &yml,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: stinger\n    static_configs:\n      - targets: [{}]\n",
                rules.display(),
                targets.join(", ")
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", yml.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus is needed (Debian package prometheus)");
        let p = Prometheus { child, _dir: dir };
        wait_for("Prometheus to be ready", Duration::from_secs(30), || {
            let r = std::panic::catch_unwind(|| http_get(PROMETHEUS, "/-/ready", None)).ok()?;
            (r.0 == 200).then_some(())
        });
        p
    }

    fn query(&self, expr: &str) -> Vec<Value> {
        let q = serde_urlencoded::to_string([("query", expr)]).unwrap();
        let (status, _, body) = http_get(PROMETHEUS, &format!("/api/v1/query?{q}"), None);
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(status == 200 && v["status"] == "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of `expr`, once it has one.
    fn value(&self, expr: &str) -> Option<f64> {
        let r = self.query(expr);
        (r.len() == 1).then(|| r[0]["value"][1].as_str()?.parse().ok())?
    }
}

#[test]
fn three_agents_split_the_hosts_and_prometheus_puts_them_together() {
    let _listeners: Vec<Listener> = (1..=CIDR_HOSTS)
        .map(|i| format!("127.0.130.{i}:{PORT}"))
        .chain((1..=VMS).map(|i| format!("127.0.132.{i}:{PORT}")))
        .map(|a| Listener::new(&a))
        .collect();
    let cloud = cloud();

    // One agent, alone: the reference, every CIDR host and every VM's floating address.
    let single_dir = tempfile::tempdir().unwrap();
    let single = start(&cloud, single_dir.path(), 0, 1, false);
    let expected = wait_for("the single agent to hold every host", LIMIT, || {
        let h = hosts(&single);
        (h.len() == CIDR_HOSTS + VMS && confirmed(&single)? == h).then_some(h)
    });
    for i in 1..=CIDR_HOSTS {
        assert!(expected.contains(&format!("127.0.130.{i}")), "{expected:?}");
    }
    let vm_hosts = expected.iter().filter(|h| h.contains('/')).count();
    assert_eq!(vm_hosts, VMS, "cloud hosts are <instance>/<port>/<address>");
    let all_findings = findings(&single);
    assert_eq!(all_findings.len(), expected.len(), "{all_findings:?}");
    drop(single);

    // Three agents, each with its own store.
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut agents: Vec<Option<Agent>> = (0..3)
        .map(|i| Some(start(&cloud, dirs[i as usize].path(), i, 3, true)))
        .collect();
    let owned = |count: u32, index: u32| -> BTreeSet<String> {
        expected
            .iter()
            .filter(|h| shard::owner(h, count) == index)
            .cloned()
            .collect()
    };
    let mut by_shard: BTreeMap<String, u32> = BTreeMap::new();
    let mut union_findings = BTreeSet::new();
    for (i, a) in agents.iter().enumerate() {
        let a = a.as_ref().unwrap();
        let want = owned(3, i as u32);
        assert!(!want.is_empty(), "36 hosts leave no shard of 3 empty");
        settle(a, &want);
        for h in hosts(a) {
            assert!(by_shard.insert(h.clone(), i as u32).is_none(), "{h} twice");
        }
        for f in findings(a) {
            assert!(union_findings.insert(f.clone()), "{f:?} twice");
        }
        let m = a.metrics();
        assert!(
            m.contains(&format!(
                "stinger_shard_info{{index=\"{i}\",count=\"3\"}} 1"
            )),
            "{m}"
        );
    }
    assert_eq!(
        by_shard.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "none missing"
    );
    assert_eq!(
        union_findings, all_findings,
        "the union is the single agent's"
    );

    // Any agent answers for any host: its own, or a redirect to the owner.
    let a0 = agents[0].as_ref().unwrap();
    for (host, owner) in &by_shard {
        let (status, head, _) = http_get(&a0.addr, &format!("/api/v1/vms/{host}"), None);
        if *owner == 0 {
            assert_eq!(status, 200, "{host}");
        } else {
            assert_eq!(status, 307, "{host}");
            let want = format!("location: http://{}/api/v1/vms/{host}", agent_addr(*owner));
            assert!(head.contains(&want), "{head}");
        }
    }

    // Prometheus sums the shards to the single agent's totals, and names a stopped shard.
    let addrs: Vec<String> = (0..4).map(agent_addr).collect();
    let prom = Prometheus::start(&addrs[..3]);
    wait_for("Prometheus to sum the three shards", LIMIT, || {
        let n = prom.value("sum(stinger_state_hosts)")?;
        let vms = prom.value("sum(stinger_inventory_vms)")?;
        let c = prom.value("count(stinger_shard_info{count=\"3\"})")?;
        let f =
            prom.value("sum(stinger_findings{kind=\"unexpected_port\",state=\"confirmed\"})")?;
        let cov = prom.query("stinger:shard_coverage:ratio == 1").len();
        let total = expected.len() as f64;
        (n == total && vms == VMS as f64 && c == 3.0 && f == total && cov == 3).then_some(())
    });
    assert!(prom
        .query("ALERTS{alertname=~\"StingerShardCoverageLow|StingerDown\"}")
        .is_empty());
    agents[1].take().unwrap().stop();
    let alert = wait_for("StingerShardCoverageLow for shard 1", LIMIT, || {
        prom.query("ALERTS{alertname=\"StingerShardCoverageLow\",alertstate=\"firing\"}")
            .into_iter()
            .next()
    });
    assert_eq!(alert["metric"]["index"], "1", "{alert}");
    assert_eq!(alert["metric"]["count"], "3", "{alert}");
    assert_eq!(
        alert["metric"]["instance"],
        Value::String(agent_addr(1)),
        "{alert}"
    );
    let alerts = prom.query("ALERTS{alertname=~\"StingerShardCoverageLow|StingerDown\"}");
    assert_eq!(
        alerts.len(),
        1,
        "one alert for one stopped shard: {alerts:?}"
    );
    drop(prom);

    // Four shards: the three restart on their stores, a fourth joins.
    for a in agents.iter_mut() {
        if let Some(a) = a.take() {
            a.stop();
        }
    }
    let agents: Vec<Agent> = (0..4)
        .map(|i| start(&cloud, dirs[i as usize].path(), i, 4, true))
        .collect();
    let mut moved = 0;
    for (i, a) in agents.iter().enumerate() {
        let want = owned(4, i as u32);
        settle(a, &want);
        for h in &want {
            let before = by_shard[h];
            if before != i as u32 {
                assert_eq!(
                    i, 3,
                    "{h} moved from shard {before} to {i}, not to the new one"
                );
                moved += 1;
            }
        }
        // Hosts handed over did not leave the inventory: no event says they disappeared.
        let changes = a.json("/api/v1/changes?limit=1000");
        let removed: Vec<&Value> = changes["changes"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|e| e["kind"] == "host_disappeared" || e["kind"] == "port_closed")
                    .collect()
            })
            .unwrap_or_default();
        assert!(removed.is_empty(), "shard {i}: {removed:?}");
    }
    assert_eq!(moved, owned(4, 3).len());
    // The findings of moved hosts were handed over, not resolved: each finding is on one agent.
    let mut ids = BTreeSet::new();
    for a in &agents {
        let v = a.json("/api/v1/findings?limit=1000");
        for f in v["findings"].as_array().expect("findings") {
            assert_ne!(f["state"], "resolved", "{f}");
            assert!(ids.insert(f["id"].to_string()), "{f} on two agents");
        }
    }
    assert_eq!(ids.len(), expected.len());
    assert!(
        moved > 0 && moved < expected.len(),
        "{moved} of {} moved",
        expected.len()
    );
}

/// The sharding examples are what they claim: Prometheus configurations promtool accepts (with
/// the shipped rules), and a StatefulSet whose pods get the shard index from their hostname.
#[test]
fn sharding_examples_are_valid() {
    let dir = repo().join("examples/sharding");
    for name in ["prometheus.yml", "federation.yml", "remote-write.yml"] {
        promtool::run(&dir, &["check", "config", name]).unwrap();
    }
    let text = std::fs::read_to_string(dir.join("statefulset.yaml")).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let set = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    let args = set["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("hostname"), "{args}");
    assert!(args.contains("--shard.count"), "{args}");
    // Its configuration loads, as the pod stinger-1 would run it.
    let config = docs
        .iter()
        .find_map(|d| d["data"]["stinger.toml"].as_str())
        .expect("the ConfigMap's stinger.toml");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("stinger.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stinger"))
        .arg("check-config")
        .arg(format!("--config.file={}", path.display()))
        .args(["--shard.count=3", "--shard.index=hostname"])
        .env("HOSTNAME", "stinger-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! nmap batches a SIGKILLed agent leaves running are killed by the next agent on the same store
//! (found by the marker in their environment), and nothing else is.

use crate::util::{wait_for, write_config, Agent};
use std::path::Path;
use std::time::Duration;

/// Pids of processes whose environment names `store` as their agent's.
fn marked(store: &Path) -> Vec<u32> {
    let want = format!("STINGER_AGENT_STORE={}", store.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let env = std::fs::read(e.path().join("environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|v| v == want.as_bytes())
                .then_some(pid)
        })
        .collect()
}

#[test]
fn nmap_left_running_by_a_killed_agent_is_killed_at_the_next_start() {
    // A service that accepts and never says a word: nmap -sV waits on it through its probes.
    let listener = std::net::TcpListener::bind("127.0.91.7:18870").unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in listener.incoming().take(200) {
            match c {
                Ok(c) => conns.push(c),
                Err(_) => break,
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n\
         [[targets]]\nname = \"lab\"\ncidrs = [\"127.0.91.7/32\"]\nports = \"18870\"\n\
         [scan.udp]\nenabled = false\n\
         [scan.nmap]\nenabled = true\nbatch_timeout = \"120s\"\nversion_intensity = 9\n",
    );
    let store = std::fs::canonicalize(dir.path()).unwrap().join("data");
    let agent = Agent::start(&config);
    let orphans = wait_for("nmap to start", Duration::from_secs(60), || {
        let pids = marked(&store);
        (!pids.is_empty()).then_some(pids)
    });
    agent.kill();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        orphans
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists()),
        "nmap outlives the SIGKILLed agent (what this test is about)"
    );
    let agent = Agent::start(&config);
    wait_for("the orphans to be killed", Duration::from_secs(20), || {
        orphans
            .iter()
            .all(|p| {
                // Gone, or a zombie its (dead) parent's reaper has not collected yet.
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .map_or(true, |s| s.contains(") Z "))
            })
            .then_some(())
    });
    assert!(
        agent
            .log()
            .contains("killed nmap processes left running by a killed agent"),
        "{}",
        agent.log()
    );
    drop(agent);
    drop(held);
}

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
    // A real nmap dies of SIGPIPE at its next write once its agent is gone, so when that comes is
    // a race; this stand-in answers --version like nmap and then waits silently, as nmap does
    // through a slow service scan, so the orphan outlives its agent for sure.
    let _open = crate::util::Listener::new("127.0.91.7:18870");
    let dir = tempfile::tempdir().unwrap();
    let nmap = dir.path().join("nmap");
    std::fs::write(
        &nmap,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Nmap version 7.93 ( https://nmap.org )'; exit 0; fi\nexec sleep 300\n",
    )
    .unwrap();
    std::fs::set_permissions(&nmap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n\
             [[targets]]\nname = \"lab\"\ncidrs = [\"127.0.91.7/32\"]\nports = \"18870\"\n\
             [scan.udp]\nenabled = false\n\
             [scan.nmap]\nenabled = true\npath = \"{}\"\nbatch_timeout = \"120s\"\n",
            nmap.display()
        ),
    );
    let store = std::fs::canonicalize(dir.path()).unwrap().join("data");
    // Another agent's nmap (another store) is none of ours.
    let mut other = std::process::Command::new(&nmap)
        .arg("-sV")
        .env("STINGER_AGENT_STORE", "/var/lib/another-stinger")
        .spawn()
        .unwrap();
    let agent = Agent::start(&config);
    let orphans = wait_for("nmap to start", Duration::from_secs(60), || {
        let pids = marked(&store);
        (!pids.is_empty()).then_some(pids)
    });
    agent.kill();
    std::thread::sleep(Duration::from_millis(500));
    let alive = |p: &u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "))
    };
    assert!(
        orphans.iter().any(alive),
        "nmap outlives the SIGKILLed agent (what this test is about)"
    );
    let agent = Agent::start(&config);
    wait_for("the orphans to be killed", Duration::from_secs(20), || {
        // Gone, or a zombie its (dead) parent's reaper has not collected yet.
        (!orphans.iter().any(alive)).then_some(())
    });
    assert!(
        agent
            .log()
            .contains("killed nmap processes left running by a killed agent"),
        "{}",
        agent.log()
    );
    agent.stop();
    assert!(
        other.try_wait().unwrap().is_none(),
        "another agent's nmap was killed"
    );
    let _ = other.kill();
    let _ = other.wait();
}

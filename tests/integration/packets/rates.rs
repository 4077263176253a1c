//! Rates by packet counting: `max_rate` and `max_host_rate` hold for TCP, UDP and nmap against
//! filtered hosts (see the parent module).

use super::*;

/// Counter samples over a run: (when, counters).
type Samples = Vec<(Instant, BTreeMap<String, u64>)>;

/// `scan_once` while sampling the namespace's counters every 50 ms.
fn scan_sampled(ns: &TestNs, config: &Path) -> (Ran, Samples) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut samples = Samples::new();
            let limit = Instant::now() + SCAN_LIMIT;
            while !done.load(Ordering::Relaxed) && Instant::now() < limit {
                let before = Instant::now();
                let c = counters(ns, false);
                // The counters were read somewhere in between; the midpoint is within a few ms.
                samples.push((before + before.elapsed() / 2, c));
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        let ran = scan_once(ns, config, &[]);
        done.store(true, Ordering::Relaxed);
        let mut samples = sampler.join().expect("the sampler panicked");
        samples.push((Instant::now(), counters(ns, false)));
        (ran, samples)
    })
}

/// A counter's steady rate: packets per second between the samples where it passed 10% and 90%
/// of its final count (start-up and the tail left out).
#[derive(Debug)]
struct Rate {
    per_second: f64,
    seconds: f64,
    total: u64,
}

fn steady(samples: &Samples, name: &str) -> Rate {
    let series: Vec<(Instant, u64)> = samples
        .iter()
        .map(|(t, c)| (*t, c.get(name).copied().unwrap_or(0)))
        .collect();
    let total = series.last().map_or(0, |s| s.1);
    let first = series.iter().find(|s| s.1 * 10 >= total);
    let last = series.iter().rev().find(|s| s.1 * 10 <= total * 9);
    let (Some(a), Some(b)) = (first, last) else {
        panic!("{name}: no samples ({total} packets)");
    };
    let seconds = b.0.saturating_duration_since(a.0).as_secs_f64();
    assert!(
        seconds >= 1.0,
        "{name}: {total} packets, steady for only {seconds:.2} s; too few to measure a rate"
    );
    Rate {
        per_second: (b.1 - a.1) as f64 / seconds,
        seconds,
        total,
    }
}

/// Asserts each named counter's steady rate is within 10% of `want` per second.
fn assert_rates(samples: &Samples, ran: &Ran, want: f64, names: &[&str]) {
    let final_counts = &samples.last().expect("samples").1;
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for name in names {
        let r = steady(samples, name);
        report.push(format!(
            "{name}: {:.1}/s over {:.2} s ({} packets)",
            r.per_second, r.seconds, r.total
        ));
        if (r.per_second - want).abs() > want * 0.1 {
            wrong.push(format!("{name}: {:.1}/s", r.per_second));
        }
    }
    eprintln!(
        "want {want}/s; {}; counters {final_counts:?}",
        report.join("; ")
    );
    assert!(
        wrong.is_empty(),
        "not within 10% of {want}/s: {wrong:?}\n{}\ncounters: {final_counts:?}\nstderr:\n{}",
        report.join("\n"),
        ran.stderr
    );
}

/// Holds `n` listening sockets on `ip` from `first` inside `ns` (never accepted: the kernel
/// completes the handshakes, which is all discovery needs), so the ports are open to stinger.
fn open_ports(ns: &TestNs, ip: &str, first: u16, n: u16) -> Vec<TcpListener> {
    in_ns(ns, || {
        (first..first + n)
            .map(|p| TcpListener::bind((ip, p)).unwrap_or_else(|e| panic!("bind {ip}:{p}: {e}")))
            .collect()
    })
}

/// Counting rules for a rate test: per filtered host, its connects, SYNs and datagrams (then
/// dropped on arrival, so they go unanswered); per nmap host, nmap's connects (then refused, so
/// nmap finds closed what discovery found open and runs no service probes).
fn rate_rules(ns: &TestNs, filtered: &[&str], nmap_hosts: &[&str]) {
    let output = |name: String, spec: String| rule(ns, false, "OUTPUT", &name, &spec);
    for (i, h) in filtered.iter().enumerate() {
        let connects = first_syn(&format!("connects{i}"));
        output(
            format!("tcp connects {h}"),
            format!("-d {h} -p tcp {connects}"),
        );
        output(format!("tcp syns {h}"), format!("-d {h} -p tcp --syn"));
        output(format!("udp {h}"), format!("-d {h} -p udp"));
        rule(
            ns,
            false,
            "INPUT",
            &format!("filtered {h}"),
            &format!("-d {h} -j DROP"),
        );
    }
    for (i, h) in nmap_hosts.iter().enumerate() {
        let nmap = format!("-d {h} -p tcp -m owner --uid-owner {NMAP_UID}");
        let connects = first_syn(&format!("nmap{i}"));
        output(format!("nmap connects {h}"), format!("{nmap} {connects}"));
        let refused = format!("{nmap} -j REJECT --reject-with tcp-reset");
        output(format!("nmap refused {h}"), refused);
    }
}

/// The checks every rate run shares: it succeeded, with the open host's ports found.
fn assert_ran(ran: &Ran, open_host: &str) {
    let doc = ran.json();
    assert_eq!(
        ran.code,
        Some(1),
        "the open host's ports are unexpected, and no stage may fail: {doc}\n{}",
        ran.stderr
    );
    assert!(
        doc["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["address"] == open_host)),
        "{doc}"
    );
}

#[test]
fn max_rate_holds_for_tcp_udp_and_nmap() {
    let Some(ns) = counting_namespace("max_rate_holds_for_tcp_udp_and_nmap") else {
        return;
    };
    const RATE: u64 = 400;
    // To the filtered host, 1000 TCP ports × 2 attempts (5 s at 400/s) and 500 UDP ports × 2
    // datagrams (2.5 s); nmap's 800 connects to the open host (2 s).
    const TCP_PORTS: u16 = 1000;
    const UDP_PORTS: u16 = 500;
    const OPEN_PORTS: u16 = 800;
    let (filtered, open) = ("127.0.98.1", "127.0.98.2");
    let _listeners = open_ports(&ns, open, 30000, OPEN_PORTS);
    rate_rules(&ns, &[filtered], &[open]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[targets]]\nname = \"filtered\"\ncidrs = [\"{filtered}\"]\nports = \"20000-{}\"\n\
             [[targets]]\nname = \"open\"\ncidrs = [\"{open}\"]\nports = \"30000-{}\"\n\
             [scan.tcp]\nmax_rate = {RATE}\ninitial_timeout = \"500ms\"\nretries = 1\n\
             [scan.udp]\nports = \"{}\"\n\
             [scan.nmap]\nenabled = true\npath = \"{}\"\nparallel_batches = 1\nbatch_timeout = \"60s\"\n",
            20000 + TCP_PORTS - 1,
            30000 + OPEN_PORTS - 1,
            udp_ports(40000, UDP_PORTS),
            nmap_as_nobody(dir.path()).display()
        ),
    );
    let (ran, samples) = scan_sampled(&ns, &config);
    assert_ran(&ran, open);
    let last = &samples.last().unwrap().1;
    assert_eq!(
        last[&format!("tcp connects {filtered}")],
        2 * u64::from(TCP_PORTS),
        "each filtered port is tried 1 + retries times: {last:?}"
    );
    assert_eq!(
        last[&format!("udp {filtered}")],
        2 * u64::from(UDP_PORTS),
        "each unanswered DNS probe is sent 1 + retries times: {last:?}"
    );
    assert_rates(
        &samples,
        &ran,
        RATE as f64,
        &[
            &format!("tcp connects {filtered}"),
            &format!("udp {filtered}"),
            &format!("nmap connects {open}"),
        ],
    );
}

#[test]
fn max_host_rate_holds_per_host_for_tcp_udp_and_nmap() {
    let Some(ns) = counting_namespace("max_host_rate_holds_per_host_for_tcp_udp_and_nmap") else {
        return;
    };
    // 50 a second: nmap's --scan-delay 20ms, whose per-probe overhead (about 1 ms) stays well
    // inside the 10%.
    const HOST_RATE: u64 = 50;
    // Per filtered host (both at once), 125 TCP ports × 2 attempts (5 s at 50/s) and 75 UDP
    // ports × 2 datagrams (3 s); nmap on 125 open ports (2.5 s).
    const TCP_PORTS: u16 = 125;
    const UDP_PORTS: u16 = 75;
    const OPEN_PORTS: u16 = 125;
    let (filtered, open) = (["127.0.98.1", "127.0.98.3"], "127.0.98.2");
    let _listeners = open_ports(&ns, open, 30000, OPEN_PORTS);
    rate_rules(&ns, &filtered, &[open]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[targets]]\nname = \"filtered\"\ncidrs = [\"{}\", \"{}\"]\nports = \"20000-{}\"\n\
             [[targets]]\nname = \"open\"\ncidrs = [\"{open}\"]\nports = \"30000-{}\"\n\
             [scan.tcp]\nmax_host_rate = {HOST_RATE}\ninitial_timeout = \"500ms\"\nretries = 1\n\
             [scan.udp]\nports = \"{}\"\n\
             [scan.nmap]\nenabled = true\npath = \"{}\"\nbatch_timeout = \"60s\"\n",
            filtered[0],
            filtered[1],
            20000 + TCP_PORTS - 1,
            30000 + OPEN_PORTS - 1,
            udp_ports(40000, UDP_PORTS),
            nmap_as_nobody(dir.path()).display()
        ),
    );
    let (ran, samples) = scan_sampled(&ns, &config);
    assert_ran(&ran, open);
    let mut names = Vec::new();
    for h in filtered {
        names.push(format!("tcp connects {h}"));
        names.push(format!("udp {h}"));
    }
    names.push(format!("nmap connects {open}"));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_rates(&samples, &ran, HOST_RATE as f64, &names);
}

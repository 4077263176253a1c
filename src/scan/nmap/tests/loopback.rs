//! Real nmap on loopback: service identification (a real sshd, a fake HTTP server), per-job
//! port filtering, UDP and OS detection.

use super::*;

struct Sshd(std::process::Child);
impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn installed_openssh_version() -> String {
    let out = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = text
        .split("OpenSSH_")
        .nth(1)
        .unwrap_or_else(|| panic!("ssh -V: {text}"));
    v.split([' ', ',']).next().unwrap().to_string()
}

async fn start_sshd(dir: &Path, addr: &str) -> (Sshd, u16) {
    let port = stinger_testsupport::net::free_port(addr);
    let key = dir.join("host_ed25519");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress {addr}\nHostKey {}\nPidFile none\nUsePAM no\n\
             StrictModes no\nAuthorizedKeysFile none\n",
            key.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = std::process::Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&cfg)
        .arg("-h")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sshd = Sshd(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect((ip(addr), port))
            .await
            .is_ok()
        {
            return (sshd, port);
        }
        if let Ok(Some(st)) = sshd.0.try_wait() {
            panic!("sshd exited: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sshd did not listen on {addr}:{port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifies_ssh_and_http() {
    if !Path::new("/usr/sbin/sshd").exists() {
        println!("SKIPPED identifies_ssh_and_http: /usr/sbin/sshd is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sshd, ssh_port) = start_sshd(dir.path(), "127.0.70.2").await;
    let http_port = serve(
        "127.0.70.1",
        0,
        // nmap 7.93 has no generic HTTP match: an unknown Server header stays "unknown".
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        true,
    )
    .await;
    let s = settings();
    let caps = probe_nmap(&s).await.unwrap();
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let jobs = [
        job("127.0.70.1", &[http_port]),
        job("127.0.70.2", &[ssh_port]),
    ];
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(&jobs, &s, &caps, progress.clone(), CancellationToken::new()),
    )
    .await
    .unwrap();
    println!(
        "identifies_ssh_and_http: nmap took {:.1?}",
        started.elapsed()
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(hosts.len(), 2, "{hosts:#?}");

    let http = &hosts[0];
    assert_eq!(http.address, ip("127.0.70.1"));
    assert_eq!(http.tcp.len(), 1);
    let svc = port(&http.tcp, http_port).service.clone().unwrap();
    assert_eq!(svc.name.as_deref(), Some("http"), "{svc:?}");
    assert_eq!(svc.product.as_deref(), Some("nginx"), "{svc:?}");
    assert_eq!(svc.version.as_deref(), Some("1.22.1"), "{svc:?}");

    let ssh = &hosts[1];
    assert_eq!(ssh.address, ip("127.0.70.2"));
    let p = port(&ssh.tcp, ssh_port);
    assert_eq!(p.state, nmap_xml::PortState::Open);
    let svc = p.service.clone().unwrap();
    assert_eq!(svc.name.as_deref(), Some("ssh"), "{svc:?}");
    assert!(
        svc.product.as_deref().unwrap_or("").contains("OpenSSH"),
        "{svc:?}"
    );
    let want = installed_openssh_version();
    assert!(
        svc.version.as_deref().unwrap_or("").starts_with(&want),
        "{svc:?} vs {want}"
    );
    assert!(
        svc.cpes
            .iter()
            .any(|c| c.starts_with("cpe:/a:openbsd:openssh:")),
        "{svc:?}"
    );
    assert!(ssh.udp.is_empty() && ssh.os.is_empty());

    assert_eq!(progress.batches_total.load(Ordering::Relaxed), 1);
    assert_eq!(progress.batches_done.load(Ordering::Relaxed), 1);
    assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 0);
    assert_eq!(progress.percent(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_filtered_to_each_jobs_ports() {
    // B's port is open on A too, but A's job did not ask for it.
    let p2 = serve("127.0.70.4", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    serve("127.0.70.3", p2, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    let p1 = serve("127.0.70.3", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    let jobs = [job("127.0.70.3", &[p1]), job("127.0.70.4", &[p2])];
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(
            &jobs,
            &settings(),
            &caps(true),
            Arc::new(Progress::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(hosts.len(), 2);
    let ports = |h: &HostServices| h.tcp.iter().map(|p| p.port).collect::<Vec<_>>();
    assert_eq!(ports(&hosts[0]), vec![p1]);
    assert_eq!(ports(&hosts[1]), vec![p2]);
    assert_eq!(
        hosts[0].tcp[0]
            .service
            .as_ref()
            .and_then(|s| s.name.as_deref()),
        Some("ssh")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_and_os_run_only_with_raw_sockets() {
    let s = Settings {
        udp_ports: vec![9],
        os_detection: true,
        version_intensity: 0,
        ..settings()
    };
    let real = probe_nmap(&s).await.unwrap();
    if !real.privileged {
        println!("SKIPPED udp_and_os_run_only_with_raw_sockets: no root/CAP_NET_RAW");
        return;
    }
    let tcp = serve("127.0.70.11", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    let jobs = [job("127.0.70.11", &[tcp])];
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(
            &jobs,
            &s,
            &real,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    // Nothing listens on UDP 9: the kernel answers ICMP port unreachable.
    let udp = port(&hosts[0].udp, 9);
    assert_eq!(udp.state, nmap_xml::PortState::Closed);
    assert_eq!(udp.protocol, Protocol::Udp);
    assert_eq!(hosts[0].tcp.len(), 1);

    // The same settings without privileges: TCP only, no UDP, no OS.
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(
            &jobs,
            &s,
            &caps(false),
            Arc::new(Progress::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(hosts[0].udp.is_empty() && hosts[0].os.is_empty());
    assert_eq!(hosts[0].tcp.len(), 1);
}

//! Self-test of the fake Nova + Neutron (`stinger_testsupport::fake_cloud`), driven over plain HTTP
//! with a tiny `TcpStream` client: paging, microversions, tokens (static and Keystone), faults,
//! diagnostics, the sample-based cloud and the 10 000-server cloud. Binds only 127.0.80.1–127.0.80.30.
//!
//! This module holds the HTTP client and the shared helpers; the tests are in the topic modules.

use serde_json::Value;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};

mod clouds;
mod faults;
mod neutron;
mod nova;
mod tokens;

const ADMIN: &str = "tok-admin";

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 80, last))
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body ended as the headers announced.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// GET an absolute `http://host:port/path?query` URL with HTTP/1.1 and `Connection: close`.
fn get_url(url: &str, headers: &[(&str, &str)]) -> Resp {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = authority.parse().expect("host:port");
    assert!(addr.ip().is_loopback(), "test traffic stays on loopback");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    for _ in 0..1_000_000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let mut resp = Resp {
        status,
        headers,
        body,
        complete: true,
    };
    if let Some(len) = resp
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        resp.complete = resp.body.len() == len;
    }
    assert!(
        resp.header("transfer-encoding").is_none(),
        "the fake answers with Content-Length"
    );
    resp
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    get_url(&format!("http://{addr}{path}"), headers)
}

fn admin_get(addr: SocketAddr, path: &str) -> Resp {
    get(addr, path, &[("X-Auth-Token", ADMIN)])
}

fn next_link(body: &Value, key: &str) -> Option<String> {
    body.get(format!("{key}_links"))?
        .as_array()?
        .iter()
        .find(|l| l["rel"] == "next")
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {body}"))
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// Follow next links from `first`, at most `max_pages`; returns the page sizes and all ids.
fn walk(
    first: &str,
    key: &str,
    headers: &[(&str, &str)],
    max_pages: usize,
) -> (Vec<usize>, Vec<String>) {
    let mut url = first.to_string();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    for _ in 0..max_pages {
        let r = get_url(&url, headers);
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        let page = ids(&body, key);
        sizes.push(page.len());
        all.extend(page);
        match next_link(&body, key) {
            Some(next) => url = next,
            None => return (sizes, all),
        }
    }
    panic!("pagination from {first} did not end within {max_pages} pages");
}

fn cloud_with(n: usize, project: impl Fn(usize) -> String) -> Cloud {
    let mut cloud = Cloud::empty().unwrap();
    for i in 0..n {
        let spec = ServerSpec::new(&format!("srv-{i:03}"), &format!("vm{i}"), &project(i))
            .fixed("net-a", IpAddr::V4(Ipv4Addr::new(127, 201, 0, i as u8 + 1)));
        cloud.add_server(spec).unwrap();
    }
    cloud
}

fn start(last: u8, cloud: Cloud, tokens: TokenCheck) -> FakeCloud {
    FakeCloud::start(FakeConfig::new(ip(last), cloud, tokens)).unwrap()
}

//! Fake OpenStack Nova + Neutron on loopback, for the inventory benchmark and manual testing. The
//! server itself is `stinger_testsupport::fake_cloud` (shared with the integration tests).
//!
//!     cargo run --release --example fake_cloud -- --servers 10000 --static-token T
//!
//! Prints one line, `FAKE_CLOUD compute=http://IP:PORT/v2.1 network=http://IP:PORT`, then serves
//! until killed. Both services listen on the `--listen` address (compute on its port, network on
//! the next one, or both ephemeral when the port is 0).
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, TokenCheck};

#[derive(Debug, Parser)]
#[command(about = "Fake OpenStack Nova + Neutron serving generated servers on loopback")]
struct Args {
    /// Address for the compute service; the network service takes the next port (both ephemeral
    /// with port 0). Must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Number of generated servers (0 = the upstream samples only).
    #[arg(long, default_value_t = 10_000)]
    servers: usize,
    /// Nova `[api]max_limit` and Neutron `pagination_max_limit`: the default and largest page.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// A token to accept (repeatable); it has the admin role.
    #[arg(long = "static-token")]
    static_tokens: Vec<String>,
    /// Validate tokens against this Keystone instead (identity endpoint with /v3, plain http).
    #[arg(long, conflicts_with = "static_tokens")]
    keystone: Option<String>,
    /// Leave Neutron's `standard-attr-timestamp` extension out (no `updated_at`, and
    /// `changed_since` answered with 400), as a cloud without the timestamp plugin.
    #[arg(long)]
    no_neutron_timestamps: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "fake_cloud: --listen {} is not a loopback address; use 127.x.y.z",
            args.listen
        );
        return ExitCode::from(2);
    }
    let tokens = match (&args.keystone, args.static_tokens.is_empty()) {
        (Some(url), _) => TokenCheck::Keystone { url: url.clone() },
        (None, false) => TokenCheck::Static {
            tokens: args.static_tokens.iter().cloned().collect::<HashSet<_>>(),
            admin: true,
            project_id: None,
        },
        (None, true) => {
            eprintln!("fake_cloud: give --static-token TOKEN (repeatable) or --keystone URL");
            return ExitCode::from(2);
        }
    };
    let cloud = if args.servers == 0 {
        Cloud::from_samples()
    } else {
        Cloud::generated(args.servers)
    };
    let cloud = match cloud {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fake_cloud: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = FakeConfig::new(args.listen.ip(), cloud, tokens);
    config.compute_listen = args.listen;
    if args.listen.port() != 0 {
        config.network_listen =
            SocketAddr::new(args.listen.ip(), args.listen.port().saturating_add(1));
    }
    config.max_limit = args.page_size.max(1);
    config.neutron_max_limit = Some(args.page_size.max(1));
    config.neutron_timestamps = !args.no_neutron_timestamps;
    let fake = match FakeCloud::start(config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake_cloud: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "FAKE_CLOUD compute={} network={}",
        fake.compute_url(),
        fake.network_url()
    );
    let _ = out.flush();
    loop {
        std::thread::park();
    }
}

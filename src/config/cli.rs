//! Command-line flags (clap), named after the exporter conventions (`--web.listen-address`) and the
//! config keys they override. Turned into [`super::Overrides`]; nothing here touches the file.

use super::Overrides;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Stinger watches a cloud's attack surface and turns it into Prometheus metrics and alerts.
///
/// With no subcommand it runs the agent: it scans its targets on a schedule, judges every open port
/// against the port policy, remembers the results in RocksDB and serves /metrics and a JSON API.
#[derive(Debug, Parser)]
#[command(name = "stinger", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Without one, stinger runs on its embedded default: this machine's
    /// loopback address, nmap's top 1000 TCP ports, 22/80/443 expected.
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,

    /// Address to serve /metrics and the API on (IP:PORT or :PORT) [config: web.listen_address;
    /// default 0.0.0.0:7864].
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        global = true,
        help_heading = "Web"
    )]
    pub listen_address: Option<String>,

    /// exporter-toolkit web configuration (YAML): TLS and bcrypt basic auth, re-read when it changes
    /// [config: web.config_file].
    #[arg(
        long = "web.config.file",
        value_name = "FILE",
        global = true,
        help_heading = "Web"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose metrics [config: web.telemetry_path; default /metrics].
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        global = true,
        help_heading = "Web"
    )]
    pub telemetry_path: Option<String>,

    /// Directory of the RocksDB store [config: storage.path; default ./stinger-data].
    #[arg(
        long = "storage.path",
        value_name = "DIR",
        global = true,
        help_heading = "Store"
    )]
    pub storage_path: Option<PathBuf>,

    /// Most TCP connects in flight [config: scan.tcp.concurrency; default 5000].
    #[arg(
        long = "scan.tcp.concurrency",
        value_name = "NUM",
        global = true,
        help_heading = "Scan"
    )]
    pub concurrency: Option<usize>,

    /// Most probes per second over all hosts, 0 for no limit [config: scan.tcp.max_rate].
    #[arg(
        long = "scan.tcp.max-rate",
        value_name = "NUM",
        global = true,
        help_heading = "Scan"
    )]
    pub max_rate: Option<u64>,

    /// Extra attempts for probes that got no answer [config: scan.tcp.retries; default 1].
    #[arg(
        long = "scan.tcp.retries",
        value_name = "NUM",
        global = true,
        help_heading = "Scan"
    )]
    pub retries: Option<u32>,

    /// How many agents share the inventory; each scans only its shard [config: shard.count;
    /// default 1].
    #[arg(
        long = "shard.count",
        value_name = "NUM",
        global = true,
        help_heading = "Inventory"
    )]
    pub shard_count: Option<u32>,

    /// This agent's shard, from 0, or `hostname` for the hostname's trailing ordinal (`stinger-2`:
    /// 2, as a StatefulSet names its pods) [config: shard.index; default 0].
    #[arg(
        long = "shard.index",
        value_name = "NUM|hostname",
        global = true,
        help_heading = "Inventory"
    )]
    pub shard_index: Option<String>,

    /// Log level.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", global = true,
          value_parser = ["debug", "info", "warn", "error"], help_heading = "Logging")]
    pub log_level: String,

    /// Log format.
    #[arg(
        long = "log.format",
        value_name = "FORMAT",
        default_value = "logfmt",
        global = true,
        value_enum,
        help_heading = "Logging"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default).
    Run,
    /// Validate the configuration, print the effective configuration, and exit (64 when invalid).
    CheckConfig,
    /// Scan once, print the findings and exit: 0 when every open port is expected, 1 when some are
    /// not, 2 on error. Stateless: it neither reads nor writes the store (safe beside a running agent).
    Scan(ScanArgs),
    /// Write the man page or a shell completion script generated from these flags (for packagers;
    /// `packaging/build-deb.sh` runs it).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

/// What `stinger generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// The man page, `stinger.1`.
    Man {
        /// Directory to write into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The completion script for SHELL (`stinger.bash`, `_stinger`, `stinger.fish`, …).
    Completions {
        shell: clap_complete::Shell,
        /// Directory to write into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

impl Generate {
    /// Writes the file into its directory and returns its path.
    pub fn write(&self) -> std::io::Result<PathBuf> {
        use clap::CommandFactory;
        let cmd = Cli::command();
        match self {
            Generate::Man { out } => {
                let path = out.join("stinger.1");
                let mut buf = Vec::new();
                clap_mangen::Man::new(cmd).render(&mut buf)?;
                std::fs::write(&path, buf)?;
                Ok(path)
            }
            Generate::Completions { shell, out } => {
                clap_complete::generate_to(*shell, &mut without_hidden(cmd), "stinger", out)
            }
        }
    }
}

/// The command without its hidden subcommands (`generate`), which clap_complete would offer too:
/// the same name, version, flags and visible subcommands, which is all a completion script uses.
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let mut pruned = clap::Command::new("stinger")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true);
    if let Some(about) = cmd.get_about() {
        pruned = pruned.about(about.clone());
    }
    pruned
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// One pass, then exit (the only mode of `scan`; accepted for clarity in cron lines).
    #[arg(long)]
    pub once: bool,

    /// Scan these addresses or CIDRs instead of the configured target groups (repeatable).
    #[arg(long = "target", value_name = "CIDR")]
    pub targets: Vec<String>,

    /// Leave these addresses or CIDRs out of --target (repeatable).
    #[arg(long = "exclude", value_name = "CIDR")]
    pub exclude: Vec<String>,

    /// TCP ports to probe, e.g. `top1000`, `1-65535`, `22,80,8000-8100` (replaces every group's list).
    #[arg(long = "ports", value_name = "SPEC")]
    pub ports: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Cli {
    /// The config overrides these flags ask for.
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides {
            listen_address: self.listen_address.clone(),
            web_config_file: self.web_config_file.clone(),
            telemetry_path: self.telemetry_path.clone(),
            storage_path: self.storage_path.clone(),
            concurrency: self.concurrency,
            max_rate: self.max_rate,
            retries: self.retries,
            shard_count: self.shard_count,
            shard_index: self.shard_index.clone(),
            ..Default::default()
        };
        if let Some(Command::Scan(s)) = &self.command {
            o.targets = s.targets.clone();
            o.exclude = s.exclude.clone();
            o.ports = s.ports.clone();
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exporter_style_flags_parse() {
        let c = Cli::try_parse_from([
            "stinger",
            "--web.listen-address=:9000",
            "--web.telemetry-path",
            "/m",
            "scan",
            "--once",
            "--target",
            "127.0.0.1",
            "--ports",
            "22",
            "--output",
            "json",
        ])
        .unwrap();
        let o = c.overrides();
        assert_eq!(o.listen_address.as_deref(), Some(":9000"));
        assert_eq!(o.telemetry_path.as_deref(), Some("/m"));
        assert_eq!(o.targets, ["127.0.0.1"]);
        assert!(matches!(
            c.command,
            Some(Command::Scan(ScanArgs {
                output: Output::Json,
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["stinger", "--log.level", "loud"]).is_err());
        let o = Cli::try_parse_from(["stinger", "--shard.count=3", "--shard.index", "hostname"])
            .unwrap()
            .overrides();
        assert_eq!(o.shard_count, Some(3));
        assert_eq!(o.shard_index.as_deref(), Some("hostname"));
    }

    #[test]
    fn generated_man_page_and_completions_leave_out_generate() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        let mut written = vec![Generate::Man { out: out.clone() }.write().unwrap()];
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let what = Generate::Completions {
                shell,
                out: out.clone(),
            };
            written.push(what.write().unwrap());
        }
        for path in written {
            let text = std::fs::read_to_string(&path).unwrap();
            // Words without a '-', which the man page escapes as '\-'.
            for word in ["config.file", "web.listen", "scan.tcp.concurrency", "check"] {
                assert!(text.contains(word), "{} lacks {word}", path.display());
            }
            assert!(
                !text.contains("generate"),
                "{} offers generate",
                path.display()
            );
        }
    }
}

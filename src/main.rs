//! The `stinger` binary: parse flags, set up logging, load and validate the configuration (exit 64 on
//! a bad one, before anything binds or opens the store), then run the agent, `check-config` or
//! `scan --once`. Errors print as a chain that says what to do.

use clap::Parser;
use std::process::ExitCode;
use stinger::app;
use stinger::config::cli::{Cli, Command, Generate};
use stinger::config::{self, Config};

/// EX_USAGE: the configuration or flags are wrong.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    if let Some(Command::Generate { what }) = &cli.command {
        return generate(what);
    }
    stinger::telemetry::init(&cli.log_level, cli.log_format);
    let overrides = cli.overrides();
    let is_scan = matches!(cli.command, Some(Command::Scan(_)));
    let config = match config::load(cli.config_file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stinger: {e}");
            return ExitCode::from(if is_scan { 2 } else { EXIT_CONFIG });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stinger: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::CheckConfig) => check_config(&config),
        Some(Command::Scan(args)) => runtime.block_on(scan_once(&config, args.output)),
        Some(Command::Generate { what }) => generate(&what),
        None | Some(Command::Run) => {
            match runtime.block_on(run_agent(config, cli.config_file.clone(), overrides)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("stinger: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The agent with this process' signals (SIGTERM/SIGINT stop it, SIGHUP reloads) on the
/// configured listen address, bound before the store opens so a busy port fails at once.
async fn run_agent(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    overrides: config::Overrides,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let (shutdown, reload) =
        stinger::shutdown::listen().context("cannot install signal handlers")?;
    let listener = stinger::expose::bind(config.web.listen).await?;
    app::run(config, config_path, overrides, listener, shutdown, reload).await
}

/// `stinger generate`: the man page or a completion script, from the flags alone (no configuration
/// is read).
fn generate(what: &Generate) -> ExitCode {
    match what.write() {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stinger: cannot write the generated file: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: &Config) -> ExitCode {
    eprintln!("stinger: configuration from {} is valid", config.source);
    for line in config.policy.summary(stinger::model::now()) {
        eprintln!("stinger: {line}");
    }
    print!("{}", config.to_toml());
    ExitCode::SUCCESS
}

async fn scan_once(config: &Config, output: config::cli::Output) -> ExitCode {
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c.cancel();
        }
    });
    let report = app::once::scan_once(config, cancel).await;
    print!("{}", report.render(output));
    for e in &report.pass.run.errors {
        eprintln!("stinger: {e}");
    }
    ExitCode::from(app::once::exit_code(&report))
}

/// Gives glibc's malloc one arena. glibc gives a multi-threaded program up to eight arenas per
/// core, and memory freed into one arena does not serve another thread's allocations, so the same
/// work takes more RSS the more threads run it: `benches/openstack.sh` (10 000 VMs, with
/// diagnostics) peaked at 107 MB with 8 tokio workers and glibc's arenas, 87 MB with two arenas;
/// `benches/detect.sh` (10 000 VMs with change polls) at 105.6 MB with two arenas and 93.2 with
/// one. The agent's threads mostly wait on sockets: one arena costs discovery no measurable speed
/// (`benches/discovery.sh`, see benches/README.md). `MALLOC_ARENA_MAX` or an `arena_max` in
/// `GLIBC_TUNABLES` in the environment win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.contains("arena_max") {
        return;
    }
    // SAFETY: mallopt only sets a parameter of the allocator; it runs first thing in main, before
    // any other thread exists, and its failure (0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

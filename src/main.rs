//! The `gatehouse` command: `serve`, `check-config`, `healthcheck`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A front door for private container registries.
#[derive(Parser)]
#[command(name = "gatehouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (embedded, or in front of an upstream).
    Serve {
        /// The TOML config file; environment variables override it.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets elided); exit non-zero when it is invalid.
    CheckConfig {
        /// The TOML config file; environment variables override it.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the running gatehouse is ready (asks `/readyz` on the metrics listener): a docker
    /// HEALTHCHECK.
    Healthcheck {
        /// The TOML config file; environment variables override it.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = gatehouse::config::load(config.as_deref())?;
            init_logging(config.log.json);
            gatehouse::server::run(config).context("cannot start")?;
            Ok(())
        }
        Command::CheckConfig { config } => {
            let (file, warnings) = gatehouse::config::load_schema(config.as_deref())?;
            print!("{}", gatehouse::config::render(&file));
            let validated = gatehouse::config::validate(file)?;
            for w in warnings.iter().chain(&validated.warnings) {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Healthcheck { config } => {
            let config = gatehouse::config::load(config.as_deref())?;
            let m = config
                .metrics
                .context("the metrics listener is disabled (metrics.listen is empty)")?;
            let mut addr = m.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let status = probe(addr).with_context(|| format!("GET http://{addr}/readyz"))?;
            anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "not ready: {status}");
            Ok(())
        }
    }
}

/// One plain HTTP/1.1 GET of `/readyz`; returns the status line and body.
fn probe(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.lines().next().unwrap_or("").to_string();
    let body = out
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(format!("{status} {body}"))
}

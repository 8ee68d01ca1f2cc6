//! The `gatehouse` command: `serve`, `check-config`.

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
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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
    }
}

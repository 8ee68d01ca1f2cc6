//! The `gatehouse` command: `serve`, `check-config`, `passwd`, `healthcheck`, `gc`, `fsck`, `du`.

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
    /// Serve the registry (embedded, or in front of an upstream). SIGHUP reloads the config file; SIGTERM
    /// drains and exits.
    Serve {
        /// The TOML config file; environment variables override it.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Take the listening sockets over from a running gatehouse instead of binding them: start this,
        /// then send the old process SIGQUIT (see the README's "Upgrading without downtime").
        #[arg(long)]
        upgrade: bool,
    },
    /// Print the effective configuration (secrets elided); exit non-zero when it is invalid.
    CheckConfig {
        /// The TOML config file; environment variables override it.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage users in the htpasswd file (a running gatehouse picks changes up within a second).
    Passwd {
        #[command(subcommand)]
        action: PasswdAction,
        /// The htpasswd file (default: auth.htpasswd from the config).
        #[arg(long, global = true)]
        file: Option<PathBuf>,
        /// The TOML config file that names the htpasswd file.
        #[arg(long, short, global = true, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the running gatehouse is ready (asks `/readyz` on the metrics listener): a docker
    /// HEALTHCHECK.
    Healthcheck {
        /// The TOML config file; environment variables override it.
        #[arg(long, short, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Delete blobs no manifest references (offline: stop the server first), as distribution's
    /// garbage-collect.
    Gc(gatehouse::gc::cli::GcArgs),
    /// Verify every blob's digest, find dangling links, broken manifests and orphaned uploads; with
    /// --repair, remove them.
    Fsck(gatehouse::gc::cli::FsckArgs),
    /// Storage used per repository (read only).
    Du(gatehouse::gc::cli::DuArgs),
}

#[derive(Subcommand)]
enum PasswdAction {
    /// Add a user, or change its password.
    Add {
        /// The user name.
        name: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// bcrypt cost (4-31).
        #[arg(long, default_value_t = gatehouse::passwd::DEFAULT_COST)]
        cost: u32,
        /// Rewrite the file in place instead of replacing it (for a file bind-mounted on its own).
        #[arg(long)]
        in_place: bool,
    },
    /// Remove a user.
    Remove {
        /// The user name.
        name: String,
        /// Rewrite the file in place instead of replacing it (for a file bind-mounted on its own).
        #[arg(long)]
        in_place: bool,
    },
    /// List the users gatehouse would accept.
    List,
    /// Check a password (exit 0 when it is right).
    Verify {
        /// The user name.
        name: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn read_password(from_stdin: bool, confirm: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let prompt = |p: &str| {
            rpassword::prompt_password(p).map_err(|e| {
                anyhow::anyhow!(
                    "no terminal to prompt for the password on ({e}): use --password-stdin and pipe \
                     it in, e.g. printf '%s\\n' \"$PASSWORD\" | gatehouse passwd add NAME --password-stdin"
                )
            })
        };
        let first = prompt("Password: ")?;
        if confirm && prompt("Again: ")? != first {
            anyhow::bail!("the passwords differ");
        }
        first
    };
    gatehouse::passwd::check_password(&password)?;
    Ok(password)
}

fn passwd(
    action: PasswdAction,
    file: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    use gatehouse::passwd;
    let file = match file {
        Some(f) => f,
        None => gatehouse::config::load(config.as_deref())?.auth.htpasswd,
    };
    match action {
        PasswdAction::Add {
            name,
            password_stdin,
            cost,
            in_place,
        } => {
            passwd::check_name(&name)?;
            anyhow::ensure!((4..=31).contains(&cost), "--cost must be 4 to 31");
            let password = read_password(password_stdin, true)?;
            let existed = passwd::add(&file, &name, &password, cost, in_place)?;
            let what = if existed {
                "changed the password of"
            } else {
                "added"
            };
            eprintln!("{}: {what} {name}", file.display());
        }
        PasswdAction::Remove { name, in_place } => {
            passwd::remove(&file, &name, in_place)?;
            eprintln!("{}: removed {name}", file.display());
        }
        PasswdAction::List => {
            let (names, warnings) = passwd::list(&file)?;
            for n in names {
                println!("{n}");
            }
            for w in warnings {
                eprintln!("warning: {}: {w}", file.display());
            }
        }
        PasswdAction::Verify {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin, false)?;
            anyhow::ensure!(
                passwd::verify(&file, &name, &password)?,
                "{}: wrong password for {name}",
                file.display()
            );
            eprintln!("{}: password ok for {name}", file.display());
        }
    }
    Ok(())
}

/// Logs go to stderr through a writer thread, so a request never waits on a terminal or a pipe; the
/// returned guard flushes what is queued when it is dropped. The queue blocks rather than drops when full:
/// no access-log line is ever lost. The level filter comes validated from the config (`log.level`,
/// `GATEHOUSE_LOG`); messages on [`gatehouse::config::NOTICE_TARGET`] (the one-time password of a generated
/// htpasswd file) are shown whatever it says.
/// The log filter for `filter`, with the notice target always let through.
fn env_filter(filter: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let notice = format!("{}=info", gatehouse::config::NOTICE_TARGET)
        .parse()
        .expect("the notice directive parses");
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|f| f.add_directive(notice))
        .map_err(|e| e.to_string())
}

/// Sets up logging; returns the guard that flushes on exit and the setter a config reload uses to change
/// the filter.
fn init_logging(
    log: &gatehouse::config::LogConfig,
) -> (
    tracing_appender::non_blocking::WorkerGuard,
    gatehouse::live::LogFilter,
) {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let filter =
        env_filter(&log.filter).unwrap_or_else(|_| env_filter("info").expect("info parses"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    macro_rules! setter {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |f: &str| handle.reload(env_filter(f)?).map_err(|e| e.to_string()))
                as gatehouse::live::LogFilter
        }};
    }
    let set = if log.json {
        let b = builder.json();
        setter!(b)
    } else {
        let b = builder.with_ansi(false);
        setter!(b)
    };
    (guard, set)
}

/// Flushes the non-blocking log writer when dropped (unless the drain already did).
struct FlushOnDrop(
    std::sync::Arc<std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>>>,
);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.0.lock() {
            guard.take();
        }
    }
}

/// The error and its causes, each once: a cause whose text the message already holds is not repeated.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn main() -> ExitCode {
    // clap would say "a value is required for --config" without naming the variable.
    if std::env::var_os("GATEHOUSE_CONFIG").is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
        eprintln!(
            "gatehouse: environment variable GATEHOUSE_CONFIG: is empty: {}",
            gatehouse::config::env::CONFIG_EMPTY
        );
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            config: path,
            upgrade,
        } => {
            let config = gatehouse::config::load(path.as_deref())?;
            let (flush, log_filter) = init_logging(&config.log);
            // The log is flushed when `serve` returns, or by the drain just before it exits the process.
            let flush = std::sync::Arc::new(std::sync::Mutex::new(Some(flush)));
            let _flush_on_return = FlushOnDrop(flush.clone());
            let options = gatehouse::server::RunOptions {
                config_path: path,
                log_filter: Some(log_filter),
                upgrade,
                on_exit: Some(Box::new(move || {
                    drop(flush.lock().ok().and_then(|mut f| f.take()))
                })),
            };
            gatehouse::server::run(config, options).context("cannot start")?;
            Ok(())
        }
        Command::CheckConfig { config } => {
            let loaded = gatehouse::config::load_schema(config.as_deref())?;
            print!("{}", gatehouse::config::render(&loaded.file));
            let validated = gatehouse::config::validate_loaded(loaded)?;
            for w in &validated.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        Command::Passwd {
            action,
            file,
            config,
        } => passwd(action, file, config),
        Command::Gc(args) => gatehouse::gc::cli::gc(args),
        Command::Fsck(args) => gatehouse::gc::cli::fsck(args),
        Command::Du(args) => gatehouse::gc::cli::du(args),
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

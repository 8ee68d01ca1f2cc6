//! The running configuration, replaceable while serving: SIGHUP reloads the config file and swaps in what can
//! change without new listeners (auth settings, CORS, extra headers, access rules, guard, trusted proxies,
//! access log, log level).
//!
//! Each request takes one snapshot ([`LiveConfig::snapshot`]) when it starts and decides with it to the end, so
//! a reload never mixes two configurations in one request. A new config that does not load or validate, or an
//! htpasswd file that the new auth settings cannot open, leaves the running one in force and says why. A change
//! that needs new listeners or a new backend (listen addresses, storage, upstream, threads, timeouts, metrics
//! listener, log format) is named in a warning and waits for the next restart.

use crate::auth::{AuthMode, Authenticator};
use crate::config::Config;
use crate::cors::Cors;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;

/// One consistent configuration: what a request reads from start to end.
pub struct Live {
    /// The validated config.
    pub config: Arc<Config>,
    /// CORS built from `config.cors`.
    pub cors: Cors,
    /// The authenticator, `None` when auth is off.
    pub auth: Option<Arc<Authenticator>>,
}

impl Live {
    /// Builds the snapshot of `config` with its authenticator.
    pub fn new(config: Arc<Config>, auth: Option<Arc<Authenticator>>) -> Live {
        Live {
            cors: Cors::new(&config.cors),
            config,
            auth,
        }
    }
}

/// Sets the log filter of the running process (the logging set-up in `main` provides it).
pub type LogFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The current [`Live`], swapped whole on reload.
pub struct LiveConfig {
    current: ArcSwap<Live>,
    /// Woken when the authenticator was replaced (the htpasswd watch follows it).
    pub auth_replaced: Notify,
    path: Option<PathBuf>,
    log_filter: Option<LogFilter>,
}

/// Why a reload left the running configuration in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file or the environment does not make a valid config.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The new auth settings cannot be put in force (the htpasswd file they name does not load).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The new log filter is not one.
    #[error("log filter {filter:?}: {problem}")]
    LogFilter {
        /// The filter.
        filter: String,
        /// Why.
        problem: String,
    },
}

/// What a reload did: the sections it applied and those that wait for a restart.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Sections now in force.
    pub applied: Vec<&'static str>,
    /// Sections that changed but need a restart.
    pub need_restart: Vec<&'static str>,
    /// The new config's warnings (ignored variables, risky values), to be logged again.
    pub warnings: Vec<String>,
}

impl LiveConfig {
    /// Wraps the config gatehouse started with; `path` is the file a reload reads again (with the same
    /// environment on top), `log_filter` changes the running log filter.
    pub fn new(first: Live, path: Option<PathBuf>, log_filter: Option<LogFilter>) -> LiveConfig {
        LiveConfig {
            current: ArcSwap::from_pointee(first),
            auth_replaced: Notify::new(),
            path,
            log_filter,
        }
    }

    /// The configuration in force now.
    pub fn snapshot(&self) -> Arc<Live> {
        self.current.load_full()
    }

    /// The config file a reload reads.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Loads the config again and swaps in what may change while serving; on any error the running
    /// configuration stays whole.
    pub fn reload(&self) -> Result<Applied, ReloadError> {
        let new = crate::config::load(self.path.as_deref())?;
        self.apply(new)
    }

    /// Swaps in the reloadable parts of `new` (see the module docs).
    pub fn apply(&self, new: Config) -> Result<Applied, ReloadError> {
        let old = self.snapshot();
        let mut diff = changes(&old.config, &new);
        diff.warnings = new.warnings.clone();
        if diff.applied.is_empty() {
            return Ok(diff);
        }
        // Whatever cannot change keeps its running value, so the swapped config describes what is in force.
        let mut new = new;
        keep_fixed(&old.config, &mut new);
        // The realm is read per request; anything else of auth or the guard needs a new authenticator.
        let auth_changed = authenticator_settings(&old.config) != authenticator_settings(&new);
        let auth = if !auth_changed {
            old.auth.clone()
        } else {
            match new.auth.mode {
                AuthMode::None => None,
                AuthMode::Htpasswd => Some(Arc::new(Authenticator::open(
                    &new.auth,
                    new.guard.as_ref(),
                )?)),
            }
        };
        if new.log.filter != old.config.log.filter {
            if let Some(set) = &self.log_filter {
                set(&new.log.filter).map_err(|problem| ReloadError::LogFilter {
                    filter: new.log.filter.clone(),
                    problem,
                })?;
            }
        }
        self.current.store(Arc::new(Live::new(Arc::new(new), auth)));
        if auth_changed {
            self.auth_replaced.notify_waiters();
        }
        Ok(diff)
    }
}

/// What an authenticator is built from: auth settings but the realm, and the guard.
fn authenticator_settings(c: &Config) -> String {
    let mut auth = c.auth.clone();
    auth.realm.clear();
    format!("{auth:?}{:?}", c.guard)
}

/// Copies the settings that need new listeners or a new backend from the running config into `new`.
fn keep_fixed(old: &Config, new: &mut Config) {
    new.listen = old.listen;
    new.threads = old.threads;
    new.grace_period_seconds = old.grace_period_seconds;
    new.timeouts = old.timeouts;
    new.storage = old.storage.clone();
    new.backend = old.backend.clone();
    new.metrics = old.metrics.clone();
    new.log.json = old.log.json;
    new.tls = old.tls.clone();
    new.gc = old.gc.clone();
    new.ui = old.ui.clone();
}

/// Which sections differ between `old` and `new`, split into those a reload applies and those that wait for
/// a restart. Compared by their debug form (secrets there are elided or hashed; only section names are logged).
pub fn changes(old: &Config, new: &Config) -> Applied {
    fn differ<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let mut out = Applied::default();
    let reloadable: [(&'static str, bool); 8] = [
        ("auth", differ(&old.auth, &new.auth)),
        ("cors", differ(&old.cors, &new.cors)),
        ("headers", differ(&old.headers, &new.headers)),
        ("access rules", differ(&old.policy, &new.policy)),
        ("guard", differ(&old.guard, &new.guard)),
        (
            "trusted_proxies",
            differ(&old.trusted_proxies, &new.trusted_proxies),
        ),
        ("log.filter", old.log.filter != new.log.filter),
        ("log.access_log", old.log.access_log != new.log.access_log),
    ];
    let metrics = |c: &Config| c.metrics.as_ref().map(|m| (m.listen, m.basic_auth.clone()));
    let fixed: [(&'static str, bool); 11] = [
        ("gc", differ(&old.gc, &new.gc)),
        ("ui", differ(&old.ui, &new.ui)),
        ("tls", differ(&old.tls, &new.tls)),
        ("server.listen", old.listen != new.listen),
        ("server.threads", old.threads != new.threads),
        (
            "server.grace_period_seconds",
            old.grace_period_seconds != new.grace_period_seconds,
        ),
        ("server timeouts", differ(&old.timeouts, &new.timeouts)),
        ("storage", differ(&old.storage, &new.storage)),
        ("backend", differ(&old.backend, &new.backend)),
        ("metrics", metrics(old) != metrics(new)),
        ("log.json", old.log.json != new.log.json),
    ];
    out.applied = reloadable
        .into_iter()
        .filter(|(_, d)| *d)
        .map(|(n, _)| n)
        .collect();
    out.need_restart = fixed
        .into_iter()
        .filter(|(_, d)| *d)
        .map(|(n, _)| n)
        .collect();
    out
}

#[cfg(test)]
mod tests;

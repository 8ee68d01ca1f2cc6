//! Helpers for the credentials, access and observability tests (`reload`, `access`, `guard`, `passwd_cli`,
//! `metrics`): a gatehouse started from hand-written TOML in front of an upstream, with its htpasswd file in
//! a directory the test owns, its metrics listener on a free port and JSON logs; bcrypt lines made in-process;
//! polling against a deadline; a Prometheus text-format parser; the JSON access log; clients bound to another
//! loopback source address; and the `gatehouse` CLI run with stdin.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use super::gatehouse::{bin, Gatehouse};
use super::net;
use super::process::scrub_env;

/// A TOML string literal for `s`.
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a JSON string is a TOML basic string")
}

/// One `user:$2y$cost$...` htpasswd line made with the `bcrypt` crate (fast at cost 4).
pub fn bcrypt_line(user: &str, pass: &str, cost: u32) -> String {
    let parts = bcrypt::hash_with_result(pass, cost).expect("bcrypt hash");
    format!("{user}:{}", parts.format_for_version(bcrypt::Version::TwoY))
}

/// The text of an htpasswd file of `lines`.
pub fn file_text(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// What a test's gatehouse is made of; see [`Front::start`].
#[derive(Clone, Debug)]
pub struct FrontConfig {
    /// The upstream registry's URL.
    pub upstream: String,
    /// The htpasswd file (the test owns its directory).
    pub htpasswd: PathBuf,
    /// The realm of the challenge.
    pub realm: String,
    /// Extra lines inside `[server]` (such as `trusted_proxies = [...]`).
    pub server_extra: String,
    /// Extra lines inside `[auth]` (such as `cache_ttl_seconds = 0`).
    pub auth_extra: String,
    /// Extra lines inside `[metrics]` (such as `username = ...`).
    pub metrics_extra: String,
    /// Whole tables appended at the end (`[access]`, `[guard]`, ...).
    pub tables: String,
    /// Whether the log is JSON (else text).
    pub json_log: bool,
}

impl FrontConfig {
    /// A gatehouse in front of `upstream` with htpasswd auth from `htpasswd` and JSON logs.
    pub fn new(upstream: &str, htpasswd: &Path) -> FrontConfig {
        FrontConfig {
            upstream: upstream.to_string(),
            htpasswd: htpasswd.to_path_buf(),
            realm: "Front Realm".to_string(),
            server_extra: String::new(),
            auth_extra: String::new(),
            metrics_extra: String::new(),
            tables: String::new(),
            json_log: true,
        }
    }

    /// Appends whole TOML tables.
    pub fn tables(mut self, toml: &str) -> FrontConfig {
        self.tables.push_str(toml);
        self.tables.push('\n');
        self
    }

    /// Adds lines to `[server]`.
    pub fn server(mut self, toml: &str) -> FrontConfig {
        self.server_extra.push_str(toml);
        self.server_extra.push('\n');
        self
    }

    /// Adds lines to `[auth]`.
    pub fn auth(mut self, toml: &str) -> FrontConfig {
        self.auth_extra.push_str(toml);
        self.auth_extra.push('\n');
        self
    }

    /// Adds lines to `[metrics]`.
    pub fn metrics(mut self, toml: &str) -> FrontConfig {
        self.metrics_extra.push_str(toml);
        self.metrics_extra.push('\n');
        self
    }

    /// Turns the brute-force guard off (tests that fail logins on purpose from 127.0.0.1).
    pub fn no_guard(self) -> FrontConfig {
        self.tables("[guard]\nenabled = false\n")
    }

    /// The config file's text for a gatehouse on `port` with its metrics listener on `metrics_port`.
    pub fn to_toml(&self, port: u16, metrics_port: u16) -> String {
        format!(
            "[server]\nlisten = {listen}\nthreads = 2\n{server}\n\
             [auth]\nmode = \"htpasswd\"\nrealm = {realm}\nhtpasswd = {file}\n{auth}\n\
             [upstream]\nurl = {upstream}\n\n\
             [metrics]\nlisten = {metrics}\n{metrics_extra}\n\
             [log]\nformat = {format}\naccess_log = true\n\n{tables}",
            listen = toml_str(&format!("127.0.0.1:{port}")),
            server = self.server_extra,
            realm = toml_str(&self.realm),
            file = toml_str(&self.htpasswd.display().to_string()),
            auth = self.auth_extra,
            upstream = toml_str(&self.upstream),
            metrics = toml_str(&format!("127.0.0.1:{metrics_port}")),
            metrics_extra = self.metrics_extra,
            format = toml_str(if self.json_log { "json" } else { "text" }),
            tables = self.tables,
        )
    }
}

/// A running gatehouse with its metrics listener's port.
pub struct Front {
    /// The gatehouse process.
    pub gh: Gatehouse,
    /// The metrics/health listener's port.
    pub metrics_port: u16,
    /// The realm of its challenge.
    pub realm: String,
}

impl Front {
    /// Starts gatehouse with `config` on free ports and waits until both listeners accept.
    pub fn start(config: &FrontConfig) -> Front {
        let port = net::free_port();
        let metrics_port = net::free_port();
        // The env var wins over the file (and over any default the harness sets).
        let addr = format!("127.0.0.1:{metrics_port}");
        let gh = Gatehouse::start_with(
            port,
            &config.to_toml(port, metrics_port),
            &[("GATEHOUSE_METRICS_ADDR", addr.as_str())],
        );
        wait_accepting(metrics_port, Duration::from_secs(10));
        Front {
            gh,
            metrics_port,
            realm: config.realm.clone(),
        }
    }

    /// `http://127.0.0.1:PORT` of the registry listener.
    pub fn url(&self) -> String {
        self.gh.url()
    }

    /// `http://127.0.0.1:PORT` of the metrics listener.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    /// The config file gatehouse was started with.
    pub fn config_path(&self) -> PathBuf {
        self.gh.dir().join("gatehouse.toml")
    }

    /// The whole log (stdout + stderr) so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.gh.dir().join("gatehouse.log")).unwrap_or_default()
    }

    /// The `/metrics` text.
    pub fn scrape(&self) -> String {
        let resp = plain_client(None)
            .get(format!("{}/metrics", self.metrics_url()))
            .send()
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().expect("the metrics text")
    }

    /// The parsed `/metrics` samples.
    pub fn samples(&self) -> Samples {
        Samples::parse(&self.scrape())
    }
}

/// Waits until 127.0.0.1:`port` accepts; panics after `timeout`.
pub fn wait_accepting(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !net::port_accepts(port) {
        assert!(
            Instant::now() < deadline,
            "nothing accepts on port {port} after {timeout:?}"
        );
        sleep(Duration::from_millis(50));
    }
}

/// A reqwest client without proxy or redirects, optionally bound to the source address `from`.
pub fn plain_client(from: Option<IpAddr>) -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .local_address(from)
        .build()
        .expect("building a reqwest client")
}

/// `GET {base}/v2/` as `user:pass` (no credentials when `None`) with `client`; returns the reply.
pub fn get_base(
    client: &Client,
    base: &str,
    creds: Option<(&str, &str)>,
) -> reqwest::blocking::Response {
    let mut rb = client.get(format!("{base}/v2/"));
    if let Some((u, p)) = creds {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send()
        .unwrap_or_else(|e| panic!("GET {base}/v2/ {creds:?}: no reply: {e:?}"))
}

/// Polls `check` every `every` from `since` until it holds, and returns how long after `since` the
/// attempt that saw it started; panics when no attempt started within `limit` saw it.
pub fn within(
    since: Instant,
    limit: Duration,
    every: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> Duration {
    loop {
        let started = since.elapsed();
        if check() {
            return started;
        }
        assert!(
            started < limit,
            "{what}: not true {:?} after the change (limit {limit:?})",
            since.elapsed()
        );
        sleep(every);
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The metric name (with `_bucket`, `_sum`, `_count` suffixes as written).
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Clone, Debug)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    /// Parses the text format (no escapes beyond `\"` and `\\` in label values are expected).
    pub fn parse(text: &str) -> Samples {
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("metrics line without a value: {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("metrics value not a number: {line:?}")),
            };
            let (name, labels) = match head.split_once('{') {
                None => (head.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unterminated labels: {line:?}"));
                    (name.to_string(), parse_labels(body, line))
                }
            };
            out.push(Sample {
                name,
                labels,
                value,
            });
        }
        Samples(out)
    }

    /// The sum of the samples named `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples named `name` whose labels include all of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.name == name)
    }
}

fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The access-log lines (JSON, target `gatehouse::access`) in `log`, as their `fields` objects.
pub fn access_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "gatehouse::access")
        .map(|v| v["fields"].clone())
        .collect()
}

/// Runs the real `gatehouse ARGS` with `stdin` fed to it and the registry env vars scrubbed.
pub fn gatehouse_cli(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting gatehouse {args:?}: {e}"));
    {
        let mut input = child.stdin.take().expect("piped stdin");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .expect("writing gatehouse's stdin");
        }
    }
    child.wait_with_output().expect("gatehouse's output")
}

/// Panics (with stderr) unless `out` is a success.
pub fn expect_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pseudo-random bytes (xorshift), incompressible enough that gzip does not shrink them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A seed that differs between runs and between calls (so skopeo's blob cache never turns a push into a mount).
pub fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    nanos ^ (u64::from(std::process::id()) << 32) ^ N.fetch_add(0x9e37_79b9, Ordering::Relaxed)
}

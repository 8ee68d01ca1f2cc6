//! A small HTTP layer over reqwest's blocking client: requests described in one chain
//! (`Http::req("GET", "/v2/").creds(u, p).origin(o).send()`) and replies read whole into a [`Reply`]
//! whose assertions print the full exchange when they fail.

use std::fmt;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;

/// A blocking client that never uses a proxy, never follows redirects and gives up after `timeout`
/// (`None`: never); it keeps connections alive between requests.
pub fn client(timeout: Option<Duration>) -> Client {
    builder(timeout).build().expect("building a reqwest client")
}

fn builder(timeout: Option<Duration>) -> reqwest::blocking::ClientBuilder {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
}

/// A base URL (`http://127.0.0.1:PORT`) and a client to talk to it.
pub struct Http {
    client: Client,
    base: String,
}

impl Http {
    /// A client for the server at `base`, with a 60 s timeout per request.
    pub fn new(base: &str) -> Http {
        Http {
            client: client(Some(Duration::from_secs(60))),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// A client for the server at `base` that opens a new connection for every request.
    pub fn fresh(base: &str) -> Http {
        let client = builder(Some(Duration::from_secs(60)))
            .pool_max_idle_per_host(0)
            .build()
            .expect("building a reqwest client");
        Http {
            client,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// A client for the server at `base` whose connections come from the loopback address `source`
    /// (127.0.0.0/8), so that per-address limits such as failed-login throttling see another client.
    pub fn from_source(base: &str, source: [u8; 4]) -> Http {
        assert_eq!(source[0], 127, "a source address must be on loopback");
        let client = builder(Some(Duration::from_secs(60)))
            .local_address(std::net::IpAddr::from(source))
            .build()
            .expect("building a reqwest client");
        Http {
            client,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// Starts a request with `method` on `path` (a path under the base, or an absolute URL).
    pub fn req(&self, method: &str, path: &str) -> Req {
        let url = if path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let method = Method::from_bytes(method.as_bytes()).expect("a valid HTTP method");
        Req {
            what: format!("{method} {url}"),
            rb: self.client.request(method, url),
        }
    }
}

/// A request being built.
pub struct Req {
    rb: RequestBuilder,
    what: String,
}

impl Req {
    /// Adds Basic credentials.
    pub fn creds(mut self, user: &str, pass: &str) -> Req {
        self.what += &format!(" [as {user}]");
        self.rb = self.rb.basic_auth(user, Some(pass));
        self
    }

    /// Adds an `Origin` header, as a browser does on a cross-origin call.
    pub fn origin(mut self, origin: &str) -> Req {
        self.what += &format!(" [Origin {origin}]");
        self.rb = self.rb.header("Origin", origin);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.rb = self.rb.header(name, value);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Req {
        self.rb = self.rb.body(body);
        self
    }

    /// Sends it and reads the whole reply; panics if no HTTP reply came back.
    pub fn send(self) -> Reply {
        let resp = self
            .rb
            .send()
            .unwrap_or_else(|e| panic!("{}: no reply: {e:?}", self.what));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .unwrap_or_else(|e| panic!("{}: reading the body: {e:?}", self.what))
            .to_vec();
        Reply {
            what: self.what,
            status,
            headers,
            body,
        }
    }
}

/// A reply read whole, with the request it answers.
pub struct Reply {
    /// `METHOD URL [annotations]` of the request.
    pub what: String,
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} -> {}", self.what, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "  {name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
        }
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(1500)]);
        write!(f, "  body: {body}")
    }
}

impl Reply {
    /// Panics (printing the exchange) unless the status is `status`.
    pub fn expect(&self, status: u16) -> &Reply {
        assert_eq!(self.status, status, "unexpected status:\n{self:?}");
        self
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// All comma-separated items of all `name` header lines, trimmed and lower-cased.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Panics unless header `name` lists `token` (case-insensitively).
    pub fn expect_token(&self, name: &str, token: &str) -> &Reply {
        let tokens = self.tokens(name);
        assert!(
            tokens.contains(&token.to_ascii_lowercase()),
            "header {name} does not list {token:?}:\n{self:?}"
        );
        self
    }

    /// The body parsed as JSON; panics when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}):\n{self:?}"))
    }

    /// `errors[0].code` of a distribution-style error body.
    pub fn error_code(&self) -> String {
        let json = self.json();
        json["errors"][0]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no errors[0].code in the body:\n{self:?}"))
            .to_string()
    }

    /// Panics unless the status is `status` and the body is a distribution-style error with `code`.
    pub fn expect_error(&self, status: u16, code: &str) -> &Reply {
        self.expect(status);
        assert_eq!(self.error_code(), code, "unexpected error code:\n{self:?}");
        self
    }

    /// Panics unless `Docker-Distribution-API-Version: registry/2.0` is present.
    pub fn expect_api_version(&self) -> &Reply {
        assert_eq!(
            self.header("Docker-Distribution-API-Version").as_deref(),
            Some("registry/2.0"),
            "missing Docker-Distribution-API-Version:\n{self:?}"
        );
        self
    }

    /// Panics unless the reply echoes `origin` in `Access-Control-Allow-Origin` and says `Vary: Origin`.
    pub fn expect_cors(&self, origin: &str) -> &Reply {
        assert_eq!(
            self.header("Access-Control-Allow-Origin").as_deref(),
            Some(origin),
            "Access-Control-Allow-Origin does not echo {origin}:\n{self:?}"
        );
        self.expect_token("Vary", "Origin")
    }

    /// Panics if the reply carries `Access-Control-Allow-Origin`.
    pub fn expect_no_cors(&self) -> &Reply {
        assert!(
            self.headers.get("Access-Control-Allow-Origin").is_none(),
            "unexpected CORS headers:\n{self:?}"
        );
        self
    }

    /// Panics unless this is distribution's 401: Basic challenge for `realm`, API version, UNAUTHORIZED body.
    pub fn expect_unauthorized(&self, realm: &str) -> &Reply {
        self.expect_error(401, "UNAUTHORIZED").expect_api_version();
        assert_eq!(
            self.header("WWW-Authenticate").as_deref(),
            Some(format!("Basic realm=\"{realm}\"").as_str()),
            "wrong WWW-Authenticate challenge:\n{self:?}"
        );
        self
    }
}

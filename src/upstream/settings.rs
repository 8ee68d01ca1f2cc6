//! The validated upstream settings. `config` fills [`UpstreamConfig`] from `[upstream]` (and the
//! `GATEHOUSE_UPSTREAM_*` variables) through [`UpstreamConfig::new`]. Credentials written into the URL
//! (`http://user:password@host`) are taken out of it and turned into the upstream `Authorization`, so the URL
//! that is kept, logged and shown never holds a secret; [`redact_url`] elides them from text for messages.

use crate::settings::Invalid;
use http::HeaderValue;
use std::time::Duration;

/// Validated upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The URL without credentials (for messages and logs).
    pub url: String,
    /// `host:port` to connect to.
    pub address: String,
    /// Whether to speak TLS.
    pub tls: bool,
    /// The host name (SNI and `Host`).
    pub host: String,
    /// A ready `Authorization` header for the upstream, when credentials are configured (marked sensitive,
    /// so `Debug` does not show it).
    pub authorization: Option<HeaderValue>,
    /// TCP (+TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Read/write stall timeout.
    pub io_timeout: Duration,
    /// Whether to verify the upstream certificate.
    pub tls_verify: bool,
}

/// The raw `[upstream]` values [`UpstreamConfig::new`] validates.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamInput<'a> {
    /// `http[s]://[user:password@]host[:port]`.
    pub url: &'a str,
    /// The user gatehouse sends upstream (empty: none, or the URL's).
    pub username: &'a str,
    /// Its password.
    pub password: &'a str,
    /// Seconds to wait for a connection (at least 1 is used).
    pub connect_timeout_seconds: u64,
    /// Seconds a read or write may stall (at least 1 is used).
    pub io_timeout_seconds: u64,
    /// Whether to verify the upstream certificate.
    pub tls_verify: bool,
}

impl UpstreamConfig {
    /// Parses and checks the upstream settings; every message shows the URL with its password elided.
    pub fn new(input: UpstreamInput<'_>) -> Result<UpstreamConfig, Invalid> {
        let shown = redact_url(input.url);
        let mut url = url::Url::parse(input.url)
            .map_err(|e| Invalid::new("url", format!("`{shown}`: {e}")))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Invalid::new(
                    "url",
                    format!("scheme `{other}` is not http or https"),
                ))
            }
        };
        if url.path() != "/" && !url.path().is_empty() {
            return Err(Invalid::new(
                "url",
                "must not have a path: the registry API lives at /v2/ of the upstream",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Invalid::new("url", "must not have a query or a fragment"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Invalid::new("url", "has no host"))?
            .to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let (user, password) = credentials(&url, input)?;
        // Nothing below may keep the URL's credentials.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let authorization = match user {
            None => None,
            Some(user) => Some(basic(&user, &password)?),
        };
        let bracketed = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Ok(UpstreamConfig {
            url: url.as_str().trim_end_matches('/').to_string(),
            address: format!("{bracketed}:{port}"),
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            authorization,
            connect_timeout: Duration::from_secs(input.connect_timeout_seconds.max(1)),
            io_timeout: Duration::from_secs(input.io_timeout_seconds.max(1)),
            tls_verify: input.tls_verify,
        })
    }
}

/// The upstream user and password: from `username`/`password`, or from the URL, never both.
fn credentials(
    url: &url::Url,
    input: UpstreamInput<'_>,
) -> Result<(Option<String>, String), Invalid> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| Invalid::new("url", "its credentials are not UTF-8"))
    };
    let in_url = !url.username().is_empty() || url.password().is_some();
    if in_url {
        if !input.username.is_empty() || !input.password.is_empty() {
            return Err(Invalid::new(
                "url",
                "has credentials, and username/password are set too: give them once",
            ));
        }
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(Invalid::new("url", "has a password but no user"));
        }
        return Ok((Some(user), decode(url.password().unwrap_or(""))?));
    }
    if input.username.is_empty() {
        if !input.password.is_empty() {
            return Err(Invalid::new("username", "is empty but a password is set"));
        }
        return Ok((None, String::new()));
    }
    Ok((Some(input.username.to_string()), input.password.to_string()))
}

fn basic(user: &str, password: &str) -> Result<HeaderValue, Invalid> {
    use base64::Engine;
    if user.contains(':') {
        return Err(Invalid::new("username", "must not contain `:`"));
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| Invalid::new("username", "not usable in a header"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// `text` with any password of a URL's userinfo replaced by `<elided>`. It errs on the safe side: for text
/// that does not parse as a URL, everything between the first `:` after the scheme and the last `@` goes.
pub fn redact_url(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_string();
    };
    let start = text.find("://").map(|i| i + 3).unwrap_or(0);
    match text[start..at].find(':') {
        Some(colon) => format!("{}<elided>{}", &text[..start + colon + 1], &text[at..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> UpstreamInput<'_> {
        UpstreamInput {
            url,
            username: "",
            password: "",
            connect_timeout_seconds: 5,
            io_timeout_seconds: 300,
            tls_verify: true,
        }
    }

    #[test]
    fn userinfo_in_the_url_becomes_the_authorization_and_leaves_the_url() {
        let c = UpstreamConfig::new(input("http://svc:PASSWORD@reg.example:5001/")).unwrap();
        assert_eq!(c.url, "http://reg.example:5001");
        assert_eq!(c.address, "reg.example:5001");
        // base64("svc:PASSWORD")
        assert_eq!(c.authorization.as_ref().unwrap(), "Basic c3ZjOlBBU1NXT1JE");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("PASSWORD") && !debug.contains("c3ZjOlBBU1NXT1JE"),
            "{debug}"
        );
        // Percent-encoded credentials are decoded: "p@ss" as p%40ss.
        let c = UpstreamConfig::new(input("https://u:p%40ss@reg.example")).unwrap();
        assert_eq!(c.authorization.unwrap(), "Basic dTpwQHNz");
    }

    #[test]
    fn credentials_are_given_once() {
        let mut twice = input("http://u:p@reg.example");
        twice.username = "other";
        assert_eq!(UpstreamConfig::new(twice).unwrap_err().field, "url");
        let mut orphan = input("http://reg.example");
        orphan.password = "p";
        assert_eq!(UpstreamConfig::new(orphan).unwrap_err().field, "username");
        assert_eq!(
            UpstreamConfig::new(input("http://:p@reg.example"))
                .unwrap_err()
                .field,
            "url"
        );
    }

    #[test]
    fn bad_url_messages_never_show_the_password() {
        for url in [
            "http://u:PASSWORD@",
            "http://u:PASS/WORD@host",
            "ftp://u:PASSWORD@host",
            "http://u:PASSWORD@host/sub",
            "u:PASSWORD@host",
            "http://u:PASSWORD@host:notaport",
        ] {
            let e = UpstreamConfig::new(input(url)).unwrap_err();
            assert_eq!(e.field, "url", "{url}");
            assert!(!e.to_string().contains("WORD"), "{url}: {e}");
        }
    }

    #[test]
    fn redaction_forms() {
        for (text, shown) in [
            ("http://svc:pw@host", "http://svc:<elided>@host"),
            ("http://svc@host", "http://svc@host"),
            ("http://host:5000", "http://host:5000"),
            ("svc:pw@host", "svc:<elided>@host"),
            ("http://u:a@b@host", "http://u:<elided>@host"),
            ("", ""),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
        }
    }
}

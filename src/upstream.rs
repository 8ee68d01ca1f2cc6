//! The upstream backend: where requests go when gatehouse fronts another v2 registry, and what changes on the
//! way (every credential the door consumes out, upstream credentials and `X-Forwarded-*` in, upstream `Location`s rewritten to
//! the address the client used). Bodies stream through pingora in both directions; nothing is buffered here.

pub mod settings;
pub use settings::UpstreamConfig;

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::upstreams::peer::HttpPeer;

/// The peer to connect to, with timeouts that suit multi-GB layers (a stall fails, a long transfer does not).
pub fn peer(config: &UpstreamConfig) -> Box<HttpPeer> {
    let mut peer = HttpPeer::new(config.address.as_str(), config.tls, config.host.clone());
    let o = &mut peer.options;
    o.connection_timeout = Some(config.connect_timeout);
    o.total_connection_timeout = Some(config.connect_timeout * 2);
    o.read_timeout = Some(config.io_timeout);
    o.write_timeout = Some(config.io_timeout);
    o.idle_timeout = Some(std::time::Duration::from_secs(60));
    o.verify_cert = config.tls_verify;
    o.verify_hostname = config.tls_verify;
    Box::new(peer)
}

/// How the client reached gatehouse: scheme and host, for `X-Forwarded-*` and `Location` rewriting.
#[derive(Debug, Clone, Default)]
pub struct ClientView {
    /// `http` or `https` (from a fronting proxy's `X-Forwarded-Proto`, else `http`).
    pub proto: String,
    /// The `Host` the client used (or a fronting proxy's `X-Forwarded-Host`).
    pub host: Option<String>,
    /// The TCP peer's address (appended to `X-Forwarded-For`).
    pub addr: Option<String>,
    /// The client's address: the peer, or the client behind a trusted proxy.
    pub ip: Option<std::net::IpAddr>,
}

/// Rewrites the request for the upstream: drops the client's credentials, sets the upstream's, adds
/// `X-Forwarded-For/Proto/Host`.
pub fn prepare_request(req: &mut RequestHeader, config: &UpstreamConfig, client: &ClientView) {
    strip_door_credentials(req);
    if let Some(auth) = &config.authorization {
        let _ = req.insert_header(http::header::AUTHORIZATION, auth.clone());
    }
    if let Some(addr) = &client.addr {
        let xff = match req
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prev) if !prev.is_empty() => format!("{prev}, {addr}"),
            _ => addr.clone(),
        };
        let _ = req.insert_header("X-Forwarded-For", xff);
    }
    let _ = req.insert_header("X-Forwarded-Proto", client.proto.as_str());
    if let Some(host) = &client.host {
        let _ = req.insert_header("X-Forwarded-Host", host.as_str());
    }
    let _ = req.insert_header(http::header::HOST, host_header(config));
}

/// Removes every credential the door itself consumes, so that none reaches the upstream (its logs, a
/// third-party registry, a plain-HTTP hop): Basic `Authorization` and `Proxy-Authorization`, the UI's
/// session cookie and CSRF token (together a replayable login), and `Forwarded`, which distribution prefers
/// to the `X-Forwarded-*` gatehouse sets and would build `Location`s from.
fn strip_door_credentials(req: &mut RequestHeader) {
    use crate::ui::session::{COOKIE, CSRF_HEADER};
    req.remove_header(&http::header::AUTHORIZATION);
    req.remove_header(&http::header::PROXY_AUTHORIZATION);
    req.remove_header(CSRF_HEADER);
    req.remove_header("forwarded");
    let kept: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| pair.split_once('=').map_or(pair.trim(), |(n, _)| n.trim()) != COOKIE)
        .map(str::to_string)
        .collect();
    req.remove_header(&http::header::COOKIE);
    if !kept.is_empty() {
        let _ = req.insert_header(http::header::COOKIE, kept.join("; "));
    }
}

/// The `Host` the upstream expects: its host name alone on the default ports, else `host:port`.
fn host_header(config: &UpstreamConfig) -> String {
    if config.address.ends_with(":80") || config.address.ends_with(":443") {
        config.host.clone()
    } else {
        config.address.clone()
    }
}

/// Repository names asked for per upstream catalog page (distribution's most, `catalog.maxentries`).
const CATALOG_PAGE: usize = 1000;
/// The most repository names collected from an upstream to filter its catalog.
pub const MAX_CATALOG_NAMES: usize = 1_000_000;
/// The largest upstream catalog page body read.
const MAX_CATALOG_PAGE_BODY: usize = 16 * 1024 * 1024;

/// Every repository of the upstream, sorted, read page by page (identity encoding, following `Link`), so the
/// door can filter the catalog by the caller's rules before paging it itself. The error says what went wrong.
pub async fn catalog(config: &UpstreamConfig) -> Result<Vec<String>, String> {
    use pingora::connectors::http::Connector;
    let connector = Connector::new(None);
    let peer = peer(config);
    let mut names: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = crate::query::Page {
            n: Some(CATALOG_PAGE),
            last: last.clone(),
        };
        let path = format!("/v2/_catalog?{}", page.to_query());
        let mut req =
            RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
        let fail = |e: Box<pingora::Error>| format!("upstream catalog: {e}");
        req.insert_header(http::header::HOST, host_header(config))
            .map_err(fail)?;
        req.insert_header(http::header::ACCEPT_ENCODING, "identity")
            .map_err(fail)?;
        req.insert_header(http::header::ACCEPT, "application/json")
            .map_err(fail)?;
        if let Some(auth) = &config.authorization {
            req.insert_header(http::header::AUTHORIZATION, auth.clone())
                .map_err(fail)?;
        }
        let (mut session, _) = connector.get_http_session(&*peer).await.map_err(fail)?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(fail)?;
        session.finish_request_body().await.map_err(fail)?;
        session.read_response_header().await.map_err(fail)?;
        let resp = session
            .response_header()
            .ok_or("upstream catalog: no response")?;
        if resp.status != http::StatusCode::OK {
            return Err(format!("upstream catalog answered {}", resp.status));
        }
        if let Some(enc) = resp.headers.get(http::header::CONTENT_ENCODING) {
            if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
                return Err("upstream catalog came encoded although identity was asked for".into());
            }
        }
        let more = resp.headers.get(http::header::LINK).is_some();
        let mut body = Vec::new();
        while let Some(chunk) = session.read_response_body().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_CATALOG_PAGE_BODY {
                return Err("upstream catalog page too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        connector.release_http_session(session, &*peer, None).await;
        #[derive(serde::Deserialize)]
        struct CatalogPage {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let batch: CatalogPage = serde_json::from_slice(&body)
            .map_err(|e| format!("upstream catalog is not the expected JSON: {e}"))?;
        let next = batch.repositories.last().cloned();
        names.extend(batch.repositories);
        if names.len() > MAX_CATALOG_NAMES {
            return Err(format!(
                "upstream catalog has more than {MAX_CATALOG_NAMES} repositories"
            ));
        }
        match next {
            // A page whose last name does not move forward would loop forever.
            Some(next) if more && last.as_ref().is_none_or(|l| next > *l) => last = Some(next),
            _ => break,
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Rewrites a `Location` that points at the upstream to the address the client used.
pub fn rewrite_location(resp: &mut ResponseHeader, config: &UpstreamConfig, client: &ClientView) {
    let Some(location) = resp
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let Some(host) = &client.host else {
        return;
    };
    let scheme = if config.tls { "https" } else { "http" };
    let mut origins = vec![format!("{scheme}://{}", config.address)];
    if config.address.ends_with(":80") || config.address.ends_with(":443") {
        origins.push(format!("{scheme}://{}", config.host));
    }
    for origin in origins {
        if let Some(rest) = location.strip_prefix(&origin) {
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                let rewritten = format!("{}://{}{}", client.proto, host, rest);
                let _ = resp.insert_header(http::header::LOCATION, rewritten);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> UpstreamConfig {
        UpstreamConfig {
            url: "http://127.0.0.1:5001".into(),
            address: "127.0.0.1:5001".into(),
            tls: false,
            host: "127.0.0.1".into(),
            authorization: None,
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            tls_verify: true,
        }
    }

    fn client() -> ClientView {
        ClientView {
            proto: "https".into(),
            host: Some("registry.example.com".into()),
            addr: Some("203.0.113.9".into()),
            ip: None,
        }
    }

    #[test]
    fn location_pointing_upstream_is_rewritten() {
        let mut resp = ResponseHeader::build(202, None).unwrap();
        resp.insert_header(
            "Location",
            "http://127.0.0.1:5001/v2/a/blobs/uploads/u?_state=x",
        )
        .unwrap();
        rewrite_location(&mut resp, &config(), &client());
        assert_eq!(
            resp.headers["location"],
            "https://registry.example.com/v2/a/blobs/uploads/u?_state=x"
        );
    }

    #[test]
    fn other_locations_are_left_alone() {
        for loc in [
            "/v2/a/blobs/uploads/u",
            "http://127.0.0.1:50011/x",
            "https://elsewhere/x",
        ] {
            let mut resp = ResponseHeader::build(202, None).unwrap();
            resp.insert_header("Location", loc).unwrap();
            rewrite_location(&mut resp, &config(), &client());
            assert_eq!(resp.headers["location"], loc);
        }
    }

    #[test]
    fn credentials_are_swapped_and_forwarding_added() {
        let mut req = RequestHeader::build("GET", b"/v2/", None).unwrap();
        req.insert_header("Authorization", "Basic dXNlcjpwYXNz")
            .unwrap();
        req.insert_header("X-Forwarded-For", "198.51.100.1")
            .unwrap();
        let mut c = config();
        prepare_request(&mut req, &c, &client());
        assert!(req.headers.get("authorization").is_none());
        assert_eq!(req.headers["x-forwarded-for"], "198.51.100.1, 203.0.113.9");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
        assert_eq!(req.headers["host"], "127.0.0.1:5001");
        c.authorization = Some(http::HeaderValue::from_static("Basic dTpw"));
        prepare_request(&mut req, &c, &client());
        assert_eq!(req.headers["authorization"], "Basic dTpw");
    }

    /// The leak this pins: the UI's session cookie and CSRF token (a complete, replayable login on
    /// gatehouse) went to the upstream on every call the UI made through `/v2/`; and `Forwarded`, which
    /// distribution prefers to `X-Forwarded-*`, let a client pick the host of the upstream's `Location`s.
    #[test]
    fn no_credential_the_door_consumes_reaches_the_upstream() {
        let cases = [
            (
                vec!["gatehouse_session=abc; theme=dark"],
                Some("theme=dark"),
            ),
            (
                vec!["theme=dark", "gatehouse_session=abc"],
                Some("theme=dark"),
            ),
            (vec!["a=1; gatehouse_session=abc; b=2"], Some("a=1; b=2")),
            (vec!["gatehouse_session=abc"], None),
            (vec!["gatehouse_session"], None),
            (vec!["xgatehouse_session=1"], Some("xgatehouse_session=1")),
        ];
        for (cookies, want) in cases {
            let mut req = RequestHeader::build("DELETE", b"/v2/a/manifests/x", None).unwrap();
            for c in &cookies {
                req.append_header("Cookie", *c).unwrap();
            }
            req.insert_header("X-CSRF-Token", "t0k3n").unwrap();
            req.insert_header("Proxy-Authorization", "Basic eDp5")
                .unwrap();
            req.insert_header("Forwarded", "host=evil.example;proto=https")
                .unwrap();
            prepare_request(&mut req, &config(), &client());
            let got: Vec<&str> = req
                .headers
                .get_all("cookie")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{cookies:?}");
            for gone in ["x-csrf-token", "proxy-authorization", "forwarded"] {
                assert!(req.headers.get(gone).is_none(), "{gone} forwarded");
            }
        }
    }
}

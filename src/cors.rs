//! CORS: preflights from allowed origins are answered at the door (204, no auth, never forwarded), and every
//! response to an allowed origin carries the CORS headers, 401s included, so a browser page can see the challenge.

pub mod settings;
pub use settings::CorsConfig;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// The configured CORS policy, with header values prepared once.
#[derive(Debug, Clone)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    allow_credentials: bool,
    max_age: HeaderValue,
}

fn join(list: &[String]) -> Option<HeaderValue> {
    if list.is_empty() {
        return None;
    }
    HeaderValue::from_str(&list.join(", ")).ok()
}

impl Cors {
    /// Prepares the policy from validated config.
    pub fn new(config: &CorsConfig) -> Cors {
        Cors {
            any_origin: config.allow_origins.iter().any(|o| o == "*"),
            origins: config.allow_origins.clone(),
            allow_methods: join(&config.allow_methods),
            allow_headers: join(&config.allow_headers),
            expose_headers: join(&config.expose_headers),
            allow_credentials: config.allow_credentials,
            max_age: HeaderValue::from(config.max_age_seconds),
        }
    }

    /// The request's `Origin` when it is allowed (the value to echo back), else `None`.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(http::header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        if self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(text)) {
            Some(origin.clone())
        } else {
            None
        }
    }

    /// Whether a request is a CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(http::header::ORIGIN)
            && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Headers of every response to an allowed origin.
    pub fn response_headers(&self, origin: &HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
        use http::header::*;
        let mut out = vec![
            (ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
            (VARY, HeaderValue::from_static("Origin")),
        ];
        if self.allow_credentials {
            out.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if let Some(v) = &self.expose_headers {
            out.push((ACCESS_CONTROL_EXPOSE_HEADERS, v.clone()));
        }
        out
    }

    /// Extra headers of a preflight answer to an allowed origin.
    pub fn preflight_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        use http::header::*;
        let mut out = Vec::new();
        if let Some(v) = &self.allow_methods {
            out.push((ACCESS_CONTROL_ALLOW_METHODS, v.clone()));
        }
        if let Some(v) = &self.allow_headers {
            out.push((ACCESS_CONTROL_ALLOW_HEADERS, v.clone()));
        }
        out.push((ACCESS_CONTROL_MAX_AGE, self.max_age.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> Cors {
        Cors::new(&CorsConfig {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "DELETE".into()],
            allow_headers: vec!["Authorization".into(), "Accept".into()],
            expose_headers: vec!["Docker-Content-Digest".into()],
            allow_credentials: true,
            max_age_seconds: 600,
        })
    }

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn only_a_listed_origin_is_echoed() {
        let c = cors(&["http://ui.example"]);
        assert_eq!(
            c.allowed_origin(&with_origin("http://ui.example")).unwrap(),
            "http://ui.example"
        );
        assert!(c
            .allowed_origin(&with_origin("http://evil.example"))
            .is_none());
        assert!(c
            .allowed_origin(&with_origin("http://ui.example.evil"))
            .is_none());
        assert!(c.allowed_origin(&HeaderMap::new()).is_none());
    }

    #[test]
    fn star_echoes_the_caller() {
        let c = cors(&["*"]);
        assert_eq!(
            c.allowed_origin(&with_origin("http://a.example")).unwrap(),
            "http://a.example"
        );
    }

    #[test]
    fn preflight_needs_origin_and_request_method() {
        let mut h = with_origin("http://ui.example");
        assert!(!Cors::is_preflight(&Method::OPTIONS, &h));
        h.insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        assert!(Cors::is_preflight(&Method::OPTIONS, &h));
        assert!(!Cors::is_preflight(&Method::GET, &h));
    }

    #[test]
    fn response_headers_vary_and_expose() {
        let c = cors(&["http://ui.example"]);
        let h = c.response_headers(&HeaderValue::from_static("http://ui.example"));
        assert!(h
            .iter()
            .any(|(n, v)| n == http::header::VARY && v == "Origin"));
        assert!(h
            .iter()
            .any(|(n, v)| n == http::header::ACCESS_CONTROL_EXPOSE_HEADERS
                && v == "Docker-Content-Digest"));
    }
}

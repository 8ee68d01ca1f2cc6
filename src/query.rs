//! Query strings, decoded once and strictly, as Go's `url.ParseQuery` reads them (distribution is written in Go):
//! pairs split on `&`, keys and values percent-decoded with `+` as a space, the first value of a key wins.
//!
//! Where Go would silently drop a pair (a `;` in it, a malformed escape), gatehouse refuses the request with 400,
//! so no two readers of one query ever disagree about what it says. What gatehouse forwards upstream for the
//! routes it interprets is rebuilt from the parsed values by [`encode`], never passed through.

use crate::errcode::{ApiError, Code};
use http::StatusCode;
use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters escaped in a query key or value (everything but unreserved characters).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The longest query string accepted on a route whose parameters gatehouse reads.
pub const MAX_QUERY_LEN: usize = 8 * 1024;

/// A decoded query: its pairs in order, duplicates kept (lookups take the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn invalid(why: &str) -> ApiError {
    ApiError::new(Code::Unsupported)
        .message(format!("malformed query string: {why}"))
        .with_status(StatusCode::BAD_REQUEST)
}

/// Decodes one key or value: `+` is a space, `%XX` a byte; a stray `%` or non-UTF-8 result is an error.
fn decode(s: &str) -> Result<String, ApiError> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(invalid("a '%' that is not followed by two hex digits"));
        }
    }
    let plus = s.replace('+', " ");
    percent_decode(plus.as_bytes())
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| invalid("a value that is not UTF-8"))
}

impl Query {
    /// Parses a raw query (without the `?`); `None` is an empty query.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_LEN {
            return Err(invalid("too long"));
        }
        let mut pairs = Vec::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            if piece.contains(';') {
                return Err(invalid("';' is not a separator"));
            }
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair whose key is not in `keys`, in order.
    pub fn without(&self, keys: &[&str]) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// Whether `key` appears at all.
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }
}

/// Encodes pairs as a canonical query string (`a=1&b=x%2Fy`), empty when there are none.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, COMPONENT),
                utf8_percent_encode(v, COMPONENT)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The `n` and `last` parameters of a paginated list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// At most this many entries (all when absent).
    pub n: Option<usize>,
    /// Only entries after this one.
    pub last: Option<String>,
}

impl Page {
    /// Reads `n` and `last`; a malformed `n` is a 400.
    pub fn from_query(q: &Query) -> Result<Page, ApiError> {
        let n = match q.get("n") {
            None | Some("") => None,
            Some(s) => Some(s.parse::<usize>().map_err(|_| {
                ApiError::new(Code::Unsupported)
                    .message("n must be a non-negative integer")
                    .with_status(StatusCode::BAD_REQUEST)
            })?),
        };
        let last = q.get("last").filter(|l| !l.is_empty()).map(str::to_string);
        Ok(Page { n, last })
    }

    /// The canonical query for this page (`n=..&last=..`), as forwarded upstream.
    pub fn to_query(&self) -> String {
        let n = self.n.map(|n| n.to_string());
        let mut pairs = Vec::new();
        if let Some(n) = &n {
            pairs.push(("n", n.as_str()));
        }
        if let Some(last) = &self.last {
            pairs.push(("last", last.as_str()));
        }
        encode(pairs)
    }

    /// Applies the page to a sorted list: the entries to send, and whether more remain after them.
    pub fn apply(&self, sorted: Vec<String>) -> (Vec<String>, bool) {
        let mut items: Vec<String> = match &self.last {
            Some(last) => sorted
                .into_iter()
                .filter(|s| s.as_str() > last.as_str())
                .collect(),
            None => sorted,
        };
        match self.n {
            Some(n) if items.len() > n => {
                items.truncate(n);
                (items, n > 0)
            }
            _ => (items, false),
        }
    }

    /// The `Link` header pointing at the next page of `path`, after `last`.
    pub fn next_link(&self, path: &str, last: &str) -> (http::HeaderName, http::HeaderValue) {
        let n = self.n.unwrap_or(0).to_string();
        let value = format!(
            "<{path}?{}>; rel=\"next\"",
            encode([("n", n.as_str()), ("last", last)])
        );
        (
            http::header::LINK,
            http::HeaderValue::from_str(&value).expect("an encoded query is a header value"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decoding_is_gos_with_the_first_value_winning() {
        let q = Query::parse(Some("digest=sha256%3Aabc&n=2&n=3&last=a%2Fb&x&fr%6Fm=t+e")).unwrap();
        assert_eq!(q.get("digest"), Some("sha256:abc"));
        assert_eq!(q.get("n"), Some("2"));
        assert_eq!(q.get("last"), Some("a/b"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("from"), Some("t e"), "keys are decoded too");
        assert_eq!(q.get("y"), None);
        assert_eq!(Query::parse(None).unwrap(), Query::default());
        assert_eq!(Query::parse(Some("&&")).unwrap(), Query::default());
    }

    #[test]
    fn queries_two_readers_could_disagree_about_are_refused() {
        for bad in ["mount=x;from=y", "a=%zz", "a=%4", "a=%", "%=1", "a=%ff%fe"] {
            let e = Query::parse(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(Query::parse(Some(&"a".repeat(MAX_QUERY_LEN + 1))).is_err());
    }

    #[test]
    fn pages() {
        let all = || ["a", "b", "c", "d"].map(String::from).to_vec();
        let p = |q: &str| Page::from_query(&Query::parse(Some(q)).unwrap()).unwrap();
        assert_eq!(p("").apply(all()), (all(), false));
        assert_eq!(p("n=2").apply(all()), (vec!["a".into(), "b".into()], true));
        assert_eq!(
            p("n=2&last=b").apply(all()),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(p("n=0").apply(all()), (vec![], false));
        assert_eq!(p("last=d").apply(all()), (vec![], false));
        assert_eq!(p("n=4").apply(all()), (all(), false));
        for bad in ["n=-1", "n=x", "n=1.5"] {
            let q = Query::parse(Some(bad)).unwrap();
            assert_eq!(
                Page::from_query(&q).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        let (name, value) = p("n=2").next_link("/v2/_catalog", "team/app");
        assert_eq!(name, http::header::LINK);
        assert_eq!(value, "</v2/_catalog?n=2&last=team%2Fapp>; rel=\"next\"");
        assert_eq!(p("last=a%2Fb&n=3").to_query(), "n=3&last=a%2Fb");
        assert_eq!(p("").to_query(), "");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsing_any_query_never_panics(raw in "\\PC{0,64}") {
            let _ = Query::parse(Some(&raw));
        }

        #[test]
        fn encoded_pairs_decode_to_themselves(
            pairs in proptest::collection::vec(("[a-zA-Z%+;&= /:]{1,8}", "\\PC{0,12}"), 0..5)
        ) {
            let raw = encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let q = Query::parse(Some(&raw)).unwrap();
            for (k, v) in &pairs {
                let first = pairs.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v).unwrap();
                prop_assert_eq!(q.get(k), Some(first.as_str()));
                let _ = v;
            }
        }
    }
}

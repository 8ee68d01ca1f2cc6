//! What the handlers share: storage errors mapped to wire errors, query parsing, pagination and reply building.

use super::{Reply, ReplyBody};
use crate::errcode::{ApiError, Code};
use crate::names::Name;
use crate::storage::StorageError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

/// `Docker-Content-Digest`.
pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`.
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `OCI-Subject`.
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Filters-Applied`.
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
/// `Range` (sent on upload replies).
pub(crate) const RANGE: HeaderName = http::header::RANGE;

/// Characters escaped in a query value of a `Link` header (everything but unreserved characters).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Maps a storage error to what the client sees; internal failures are logged and reported as UNKNOWN.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::Driver(_) | StorageError::Corrupt { .. } => {
                tracing::error!(error = %e, "storage failure");
                ApiError::new(Code::Unknown).message("storage failure")
            }
            StorageError::Body(err) => ApiError::new(Code::BlobUploadInvalid)
                .message(format!("reading the request body failed: {err}")),
            StorageError::BlobUnknown { digest, .. } => {
                ApiError::new(Code::BlobUnknown).detail(json!({ "digest": digest.to_string() }))
            }
            StorageError::UploadUnknown { .. } => ApiError::new(Code::BlobUploadUnknown),
            StorageError::RangeMismatch { start, offset, .. } => {
                ApiError::new(Code::BlobUploadInvalid)
                    .message(format!("chunk starts at {start}, upload is at {offset}"))
                    .detail(json!({ "offset": offset }))
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            }
            StorageError::ChunkLength {
                declared, received, ..
            } => ApiError::new(Code::BlobUploadInvalid).message(format!(
                "Content-Range declared {declared} bytes, {received} were sent"
            )),
            StorageError::DigestMismatch {
                expected, actual, ..
            } => ApiError::new(Code::DigestInvalid)
                .detail(json!({ "expected": expected.to_string(), "actual": actual.to_string() })),
            StorageError::ManifestUnknown { reference, .. } => {
                ApiError::new(Code::ManifestUnknown).detail(json!({ "reference": reference }))
            }
            StorageError::ManifestInvalid { reason, .. } => {
                ApiError::new(Code::ManifestInvalid).message(format!("manifest invalid: {reason}"))
            }
            StorageError::ManifestTooLarge { max, .. } => ApiError::new(Code::ManifestInvalid)
                .message(format!("manifest larger than {max} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE),
            StorageError::ManifestBlobUnknown { digest, .. } => {
                ApiError::new(Code::ManifestBlobUnknown)
                    .detail(json!({ "digest": digest.to_string() }))
            }
            StorageError::NameUnknown { repo } => {
                ApiError::new(Code::NameUnknown).detail(json!({ "name": repo.as_str() }))
            }
        }
    }
}

/// The first value of `key` in a raw query string, percent-decoded (`+` is a space).
pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The source repository of a cross-repository mount (`?mount=<digest>&from=<name>`), for authorization: the
/// caller must be allowed to pull it, else pass [`query_without_mount`] so the request becomes a plain upload.
pub fn mount_source(query: &str) -> Option<Name> {
    query_param(query, "mount")?;
    Name::parse(&query_param(query, "from")?).ok()
}

/// The query without its `mount` and `from` parameters.
pub fn query_without_mount(query: &str) -> String {
    query
        .split('&')
        .filter(|p| {
            let k = p.split_once('=').map_or(*p, |(k, _)| k);
            !p.is_empty() && k != "mount" && k != "from"
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value from text the registry built (digests, names, numbers, media types); never panics.
pub(crate) fn hv(s: impl AsRef<str>) -> HeaderValue {
    let s = s.as_ref();
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        // Text read back from disk (a tag directory, a stored manifest's mediaType) written by another tool
        // may hold bytes a header cannot: send them percent-encoded rather than fail the request.
        let encoded =
            percent_encoding::utf8_percent_encode(s, percent_encoding::CONTROLS).to_string();
        HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static("invalid"))
    })
}

/// A reply with no body (`Content-Length: 0`).
pub(crate) fn empty(status: StatusCode, mut headers: Vec<(HeaderName, HeaderValue)>) -> Reply {
    headers.push((http::header::CONTENT_LENGTH, HeaderValue::from(0)));
    Reply {
        status,
        headers,
        body: ReplyBody::Empty,
    }
}

/// A reply with an in-memory body of the given content type.
pub(crate) fn bytes(
    status: StatusCode,
    content_type: &str,
    body: Bytes,
    mut headers: Vec<(HeaderName, HeaderValue)>,
) -> Reply {
    headers.push((http::header::CONTENT_TYPE, hv(content_type)));
    headers.push((http::header::CONTENT_LENGTH, HeaderValue::from(body.len())));
    Reply {
        status,
        headers,
        body: ReplyBody::Bytes(body),
    }
}

/// A 200 JSON reply.
pub(crate) fn json_ok(value: &serde_json::Value, headers: Vec<(HeaderName, HeaderValue)>) -> Reply {
    let body = Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"));
    bytes(StatusCode::OK, "application/json", body, headers)
}

/// The `n` and `last` parameters of a paginated list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    /// At most this many entries (all when absent).
    pub n: Option<usize>,
    /// Only entries after this one.
    pub last: Option<String>,
}

impl Page {
    /// Reads `n` and `last` from a query; a malformed `n` is a 400.
    pub(crate) fn from_query(query: &str) -> Result<Page, ApiError> {
        let n = match query_param(query, "n") {
            None => None,
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s.parse::<usize>().map_err(|_| {
                ApiError::new(Code::Unsupported)
                    .message("n must be a non-negative integer")
                    .with_status(StatusCode::BAD_REQUEST)
            })?),
        };
        let last = query_param(query, "last").filter(|l| !l.is_empty());
        Ok(Page { n, last })
    }

    /// Applies the page to a sorted list: the entries to send, and whether more remain after them.
    pub(crate) fn apply(&self, sorted: Vec<String>) -> (Vec<String>, bool) {
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
    pub(crate) fn next_link(&self, path: &str, last: &str) -> (HeaderName, HeaderValue) {
        let n = self.n.unwrap_or(0);
        let last = utf8_percent_encode(last, QUERY_VALUE);
        (
            http::header::LINK,
            hv(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
        )
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn header_values_from_foreign_text_never_panic() {
        assert_eq!(
            hv("application/vnd.oci.image.index.v1+json"),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(hv("bad\nvalue"), "bad%0Avalue");
        // obs-text (bytes >= 0x80) is a valid header value: passed through as is.
        assert_eq!(hv("tâg").as_bytes(), "tâg".as_bytes());
    }

    use super::*;

    #[test]
    fn query_parsing_decodes_and_takes_the_first() {
        let q = "digest=sha256%3Aabc&n=2&n=3&last=a%2Fb&x";
        assert_eq!(query_param(q, "digest").as_deref(), Some("sha256:abc"));
        assert_eq!(query_param(q, "n").as_deref(), Some("2"));
        assert_eq!(query_param(q, "last").as_deref(), Some("a/b"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "y"), None);
        assert_eq!(query_param("", "n"), None);
    }

    #[test]
    fn mount_source_and_strip() {
        let q = "mount=sha256%3Aab&from=team%2Fbase&other=1";
        assert_eq!(mount_source(q).unwrap().as_str(), "team/base");
        assert_eq!(mount_source("from=team/base"), None);
        assert_eq!(mount_source("mount=x&from=Bad..Name"), None);
        assert_eq!(query_without_mount(q), "other=1");
        assert_eq!(query_without_mount("mount=x&from=y"), "");
    }

    #[test]
    fn pages() {
        let all = || ["a", "b", "c", "d"].map(String::from).to_vec();
        let p = |q: &str| Page::from_query(q).unwrap();
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
            assert_eq!(
                Page::from_query(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
        let (name, value) = p("n=2").next_link("/v2/_catalog", "team/app");
        assert_eq!(name, http::header::LINK);
        assert_eq!(value, "</v2/_catalog?n=2&last=team%2Fapp>; rel=\"next\"");
    }
}

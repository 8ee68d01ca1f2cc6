//! What the handlers share: storage errors mapped to wire errors, query parsing, pagination and reply building.

use super::{Reply, ReplyBody};
use crate::errcode::{ApiError, Code};
use crate::storage::StorageError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
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

/// Maps a storage error to what the client sees; internal failures are logged and reported as UNKNOWN.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::Driver(crate::storage::driver::DriverError::Unavailable { .. }) => {
                tracing::error!(error = %e, "storage unavailable");
                ApiError::new(Code::Unavailable).message("storage unavailable")
            }
            StorageError::Driver(_) | StorageError::Corrupt { .. } => {
                tracing::error!(error = %e, "storage failure");
                ApiError::new(Code::Unknown).message("storage failure")
            }
            StorageError::Body(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::new(Code::BlobUploadInvalid)
                    .message(err.to_string())
                    .with_status(StatusCode::REQUEST_TIMEOUT)
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

pub(crate) use crate::query::Page;

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
}

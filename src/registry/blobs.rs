//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`: blobs streamed from the storage driver (with single byte ranges;
//! a redirect when the driver offers one), and the
//! repository's link removed on DELETE.

use super::common::{empty, hv, DOCKER_CONTENT_DIGEST};
use super::{Reply, ReplyBody, Request};
use crate::errcode::{ApiError, Code};
use crate::names::{Digest, Name};
use crate::storage::blobs::LinkKind;
use crate::storage::Store;
use http::{header, HeaderValue, Method, StatusCode};

/// What a `Range` header asks of a blob of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No usable Range header: the whole blob.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A range that lies outside the blob.
    Unsatisfiable,
}

/// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n`; other forms (multiple ranges, other units, garbage) are ignored,
/// as RFC 9110 allows, and the whole blob is sent.
pub(crate) fn parse_range(value: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    match (a.is_empty(), num(a), num(b)) {
        // Suffix: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(len.saturating_sub(n), len - 1)
            }
        }
        (false, Some(start), end) if b.is_empty() || end.is_some() => {
            let end = end.unwrap_or(u64::MAX);
            if end < start {
                RangeAsk::Whole // Syntactically invalid: ignored.
            } else if start >= len {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(start, end.min(len - 1))
            }
        }
        _ => RangeAsk::Whole,
    }
}

/// Serves a blob linked into the repository (HEAD: its headers only).
pub async fn get(
    store: &Store,
    name: &Name,
    digest: &Digest,
    req: &Request<'_>,
) -> Result<Reply, ApiError> {
    let mut headers = vec![
        (DOCKER_CONTENT_DIGEST, hv(digest.to_string())),
        (header::ETAG, hv(format!("\"{digest}\""))),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
    ];
    if req.method == Method::HEAD {
        let len = store
            .stat_blob(name, digest, LinkKind::LayerOrManifest)
            .await?;
        headers.push((header::CONTENT_LENGTH, HeaderValue::from(len)));
        return Ok(Reply {
            status: StatusCode::OK,
            headers,
            body: ReplyBody::Empty,
        });
    }
    let blob = store.find_blob(name, digest).await?;
    if let Some(url) = store.blob_redirect(&blob).await? {
        // Object storage serves the bytes itself (a presigned URL), as distribution's redirect does.
        let mut reply = empty(StatusCode::TEMPORARY_REDIRECT, headers);
        reply.headers.push((header::LOCATION, hv(url)));
        return Ok(reply);
    }
    let len = blob.size;
    let range = req.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, offset, count) = match parse_range(range, len) {
        RangeAsk::Whole => (StatusCode::OK, 0, len),
        RangeAsk::Part(start, end) => {
            headers.push((
                header::CONTENT_RANGE,
                hv(format!("bytes {start}-{end}/{len}")),
            ));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAsk::Unsatisfiable => {
            let mut reply = Reply::from(
                ApiError::new(Code::SizeInvalid)
                    .message("requested range not satisfiable")
                    .detail(serde_json::json!({ "size": len }))
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE),
            );
            reply
                .headers
                .push((header::CONTENT_RANGE, hv(format!("bytes */{len}"))));
            return Ok(reply);
        }
    };
    headers.push((header::CONTENT_LENGTH, HeaderValue::from(count)));
    let stream = store.blob_stream(&blob, offset, count).await?;
    Ok(Reply {
        status,
        headers,
        body: ReplyBody::Stream { stream, len: count },
    })
}

/// Removes the repository's link to the blob (202); the data stays for garbage collection.
pub async fn delete(store: &Store, name: &Name, digest: &Digest) -> Result<Reply, ApiError> {
    if !store.delete_enabled() {
        return Err(ApiError::new(Code::Unsupported).message("deletes are disabled"));
    }
    store.delete_layer_link(name, digest).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        vec![(DOCKER_CONTENT_DIGEST, hv(digest.to_string()))],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAsk::*;

    #[test]
    fn ranges() {
        let table: &[(Option<&str>, u64, RangeAsk)] = &[
            (None, 10, Whole),
            (Some("bytes=0-4"), 10, Part(0, 4)),
            (Some("bytes=5-"), 10, Part(5, 9)),
            (Some("bytes=5-100"), 10, Part(5, 9)),
            (Some("bytes=-3"), 10, Part(7, 9)),
            (Some("bytes=-30"), 10, Part(0, 9)),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-20"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-0"), 0, Unsatisfiable),
            (Some("bytes=4-2"), 10, Whole),
            (Some("bytes=0-1,3-4"), 10, Whole),
            (Some("items=0-1"), 10, Whole),
            (Some("bytes=a-b"), 10, Whole),
            (Some("bytes=+1-2"), 10, Whole),
            (Some("bytes=-"), 10, Whole),
            (Some("bytes=99999999999999999999999-"), 10, Whole),
        ];
        for (value, len, want) in table {
            assert_eq!(parse_range(*value, *len), *want, "{value:?}");
        }
    }
}

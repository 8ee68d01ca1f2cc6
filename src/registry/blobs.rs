//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`: blobs streamed from the storage driver (with single byte ranges;
//! a redirect when the driver offers one), and the
//! repository's link removed on DELETE.

use super::common::{empty, hv, DOCKER_CONTENT_DIGEST};
use super::ranges::{parse_range, RangeAsk};
use super::{Reply, ReplyBody, Request};
use crate::errcode::{ApiError, Code};
use crate::names::{Digest, Name};
use crate::storage::blobs::LinkKind;
use crate::storage::Store;
use http::{header, HeaderValue, Method, StatusCode};

/// Serves a blob linked into the repository (HEAD: its headers only).
pub async fn get(
    store: &Store,
    name: &Name,
    digest: &Digest,
    req: &Request<'_>,
) -> Result<Reply, ApiError> {
    let etag = format!("\"{digest}\"");
    let text = |name: header::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
    // Conditionals as distribution's `http.ServeContent` answers them (found in review: both were ignored). A
    // client holding the blob gets 304, once the blob is known to be linked here (a 304 must not say more
    // than a 200 would); a Range under an If-Range that does not name this blob's ETag is served whole: no
    // Last-Modified is sent, so a date never matches.
    let not_modified =
        text(header::IF_NONE_MATCH).is_some_and(|v| crate::ui::assets::etag_matches(v, &etag));
    let range_applies = text(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let mut headers = vec![
        (DOCKER_CONTENT_DIGEST, hv(digest.to_string())),
        (header::ETAG, hv(etag.clone())),
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
        if not_modified {
            return Ok(empty(StatusCode::NOT_MODIFIED, headers));
        }
        headers.push((header::CONTENT_LENGTH, HeaderValue::from(len)));
        return Ok(Reply {
            status: StatusCode::OK,
            headers,
            body: ReplyBody::Empty,
        });
    }
    let blob = store.find_blob(name, digest).await?;
    if not_modified {
        return Ok(empty(StatusCode::NOT_MODIFIED, headers));
    }
    if let Some(url) = store.blob_redirect(&blob).await? {
        // Object storage serves the bytes itself (a presigned URL), as distribution's redirect does.
        let mut reply = empty(StatusCode::TEMPORARY_REDIRECT, headers);
        reply.headers.push((header::LOCATION, hv(url)));
        return Ok(reply);
    }
    let len = blob.size;
    let range = text(header::RANGE).filter(|_| range_applies);
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

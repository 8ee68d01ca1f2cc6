//! `/v2/<name>/blobs/uploads/`: start (plain, monolithic with `?digest=`, cross-repository mount), PATCH (streamed,
//! or chunked with `Content-Range`), PUT `?digest=` (finish with an optional last chunk), GET (status) and DELETE
//! (cancel). Bodies are written as they arrive and hashed on the way; nothing is held in memory.

use super::common::{empty, hv, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, RANGE};
use super::{Reply, Request, RequestBody};
use crate::errcode::{ApiError, Code};
use crate::names::{Digest, Name};
use crate::route::Mount;
use crate::storage::uploads::UploadWriter;
use crate::storage::{StorageError, Store};
use http::{header, HeaderName, HeaderValue, StatusCode};

/// `Content-Range` of a chunk: `a-b`, also accepted as `bytes=a-b` or `bytes a-b/total`.
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let v = value.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let v = v.split_once('/').map_or(v, |(r, _)| r);
    let (a, b) = v.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
    };
    Some((num(a)?, num(b)?))
}

/// The chunk's first byte and declared length, from `Content-Range`, if the request has one.
fn chunk_range(req: &Request<'_>) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = req.headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || ApiError::new(Code::BlobUploadInvalid).message("malformed Content-Range");
    let (start, end) = value
        .to_str()
        .ok()
        .and_then(parse_content_range)
        .ok_or_else(invalid)?;
    if end < start {
        return Err(ApiError::new(Code::BlobUploadInvalid)
            .message("Content-Range ends before it starts")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
    }
    Ok(Some((start, end - start + 1)))
}

fn upload_location(name: &Name, id: &str) -> (HeaderName, HeaderValue) {
    (
        header::LOCATION,
        hv(format!("/v2/{name}/blobs/uploads/{id}")),
    )
}

/// `Range: 0-<last byte>`; `0-0` for an empty upload, as distribution sends it.
fn range_header(offset: u64) -> (HeaderName, HeaderValue) {
    (RANGE, hv(format!("0-{}", offset.saturating_sub(1))))
}

/// The reply to a session that goes on: Location, Range and the id.
fn in_progress(status: StatusCode, name: &Name, id: &str, offset: u64) -> Reply {
    empty(
        status,
        vec![
            upload_location(name, id),
            range_header(offset),
            (DOCKER_UPLOAD_UUID, hv(id)),
        ],
    )
}

/// The reply to a committed blob: 201 with its Location and digest.
fn created(name: &Name, digest: &Digest) -> Reply {
    empty(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, hv(format!("/v2/{name}/blobs/{digest}"))),
            (DOCKER_CONTENT_DIGEST, hv(digest.to_string())),
        ],
    )
}

/// Copies the whole request body into the session.
async fn pump(
    writer: &mut UploadWriter<'_>,
    body: &mut dyn RequestBody,
) -> Result<(), StorageError> {
    while let Some(chunk) = body.next_chunk().await.map_err(StorageError::Body)? {
        if !chunk.is_empty() {
            writer.write(&chunk).await?;
        }
    }
    Ok(())
}

/// `POST /v2/<name>/blobs/uploads/`: mount, monolithic upload, or a new session.
///
/// `mount` is the mount the Permit allowed (the caller may pull its source); without one, none happens.
pub async fn start(
    store: &Store,
    name: &Name,
    mount: Option<&Mount>,
    digest: Option<&Digest>,
    body: &mut dyn RequestBody,
) -> Result<Reply, ApiError> {
    if let Some(m) = mount {
        // A blob that is not in `from` makes the mount a plain upload, as the spec asks.
        if store.mount_blob(name, &m.from, &m.digest).await?.is_some() {
            return Ok(created(name, &m.digest));
        }
    }
    let id = store.start_upload(name).await?;
    let Some(digest) = digest else {
        return Ok(in_progress(StatusCode::ACCEPTED, name, id.as_str(), 0));
    };
    let result = async {
        let mut writer = store
            .begin_write(name, id.as_str(), None, Some(digest.algorithm()))
            .await?;
        pump(&mut writer, body).await?;
        writer.commit(digest).await
    }
    .await;
    match result {
        Ok(_) => Ok(created(name, digest)),
        Err(e) => {
            // The client never learnt this session's id: nothing should be left of it.
            if let Err(cleanup) = store.cancel_upload(name, id.as_str()).await {
                if !matches!(cleanup, StorageError::UploadUnknown { .. }) {
                    tracing::warn!(error = %cleanup, "removing a failed monolithic upload");
                }
            }
            Err(e.into())
        }
    }
}

/// `PATCH`: appends a chunk (streamed, or at the `Content-Range` offset, which must be the current length).
pub async fn patch(
    store: &Store,
    name: &Name,
    id: &str,
    req: &Request<'_>,
    body: &mut dyn RequestBody,
) -> Result<Reply, ApiError> {
    let range = chunk_range(req)?;
    let mut writer = store
        .begin_write(name, id, range.map(|r| r.0), None)
        .await?;
    pump(&mut writer, body).await?;
    let offset = writer.end_chunk(range.map(|r| r.1)).await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, id, offset))
}

/// `PUT ?digest=`: appends an optional last chunk, verifies and commits.
pub async fn finish(
    store: &Store,
    name: &Name,
    id: &str,
    digest: Option<&Digest>,
    req: &Request<'_>,
    body: &mut dyn RequestBody,
) -> Result<Reply, ApiError> {
    let digest = digest.ok_or_else(|| {
        ApiError::new(Code::DigestInvalid).message("the digest query parameter is required")
    })?;
    let range = chunk_range(req)?;
    let mut writer = store
        .begin_write(name, id, range.map(|r| r.0), Some(digest.algorithm()))
        .await?;
    pump(&mut writer, body).await?;
    writer.end_chunk(range.map(|r| r.1)).await?;
    writer.commit(digest).await?;
    Ok(created(name, digest))
}

/// `GET`: the session's progress, 204 with `Range`.
pub async fn status(store: &Store, name: &Name, id: &str) -> Result<Reply, ApiError> {
    let offset = store.upload_offset(name, id).await?;
    Ok(in_progress(StatusCode::NO_CONTENT, name, id, offset))
}

/// `DELETE`: cancels the session, 204.
pub async fn cancel(store: &Store, name: &Name, id: &str) -> Result<Reply, ApiError> {
    store.cancel_upload(name, id).await?;
    Ok(empty(StatusCode::NO_CONTENT, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-9"), Some((0, 9)));
        assert_eq!(parse_content_range("bytes=10-19"), Some((10, 19)));
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, 19)));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "a-b",
            "1--2",
            "+1-2",
            "1-2-3",
            "99999999999999999999-1",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}

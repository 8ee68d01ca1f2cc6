//! `/v2/<name>/blobs/uploads/`: start (plain, monolithic with `?digest=`, cross-repository mount), PATCH (streamed,
//! or chunked with `Content-Range`), PUT `?digest=` (finish with an optional last chunk), GET (status) and DELETE
//! (cancel). Bodies are written as they arrive and hashed on the way; nothing is held in memory.

use super::common::{empty, hv, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, RANGE};
use super::ranges::{parse_content_range, ChunkRange, ContentRangeError};
use super::{Reply, Request, RequestBody};
use crate::errcode::{ApiError, Code};
use crate::names::{Digest, Name};
use crate::route::Mount;
use crate::storage::uploads::UploadWriter;
use crate::storage::{StorageError, Store};
use http::{header, HeaderName, HeaderValue, StatusCode};

/// The chunk's first byte and declared length, from `Content-Range`, if the request has one.
fn chunk_range(req: &Request<'_>) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = req.headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    match value.to_str().map(parse_content_range) {
        Ok(Ok(ChunkRange { start, len })) => Ok(Some((start, len))),
        Ok(Err(ContentRangeError::Unsatisfiable)) => Err(ApiError::new(Code::BlobUploadInvalid)
            .message("Content-Range is not a satisfiable byte range")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)),
        Ok(Err(ContentRangeError::Malformed)) | Err(_) => {
            Err(ApiError::new(Code::BlobUploadInvalid).message("malformed Content-Range"))
        }
    }
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

/// Copies the whole request body into the session, counting in `taken` the bytes taken from the body.
async fn pump(
    writer: &mut UploadWriter<'_>,
    body: &mut dyn RequestBody,
    taken: &mut u64,
) -> Result<(), StorageError> {
    while let Some(chunk) = body.next_chunk().await.map_err(StorageError::Body)? {
        *taken += chunk.len() as u64;
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
        pump(&mut writer, body, &mut 0).await?;
        writer.commit(digest).await
    }
    .await;
    match result {
        Ok(_) => Ok(created(name, digest)),
        Err(e) => {
            // The client never learnt this session's id: nothing should be left of it.
            forget_failed(store, name, id.as_str()).await;
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
    pump(&mut writer, body, &mut 0).await?;
    let offset = writer.end_chunk(range.map(|r| r.1)).await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, id, offset))
}

/// `PUT ?digest=`: appends an optional last chunk, verifies and commits.
///
/// A PUT that carries a body is a monolithic upload (or its last chunk): when it fails or is refused, the session
/// is removed, so nothing of it stays behind. A PUT without a body that fails for another reason than a digest
/// mismatch (which always removes the session) leaves the session as it was, to be retried.
pub async fn finish(
    store: &Store,
    name: &Name,
    id: &str,
    digest: Option<&Digest>,
    req: &Request<'_>,
    body: &mut dyn RequestBody,
) -> Result<Reply, ApiError> {
    let mut received = 0;
    let result = async {
        let digest = digest.ok_or_else(|| {
            ApiError::new(Code::DigestInvalid).message("the digest query parameter is required")
        })?;
        let range = chunk_range(req)?;
        let mut writer = store
            .begin_write(name, id, range.map(|r| r.0), Some(digest.algorithm()))
            .await?;
        pump(&mut writer, body, &mut received).await?;
        writer.end_chunk(range.map(|r| r.1)).await?;
        writer.commit(digest).await?;
        Ok(created(name, digest))
    }
    .await;
    if result.is_err() && (received > 0 || has_body(req, body).await) {
        forget_failed(store, name, id).await;
    }
    result
}

/// Whether a request refused before its body was read has one: its headers say so (a non-zero Content-Length,
/// or Transfer-Encoding), or a first chunk comes.
async fn has_body(req: &Request<'_>, body: &mut dyn RequestBody) -> bool {
    let declared = req.headers.contains_key(header::TRANSFER_ENCODING)
        || req
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes().iter().any(|&b| b != b'0'));
    declared || matches!(body.next_chunk().await, Ok(Some(c)) if !c.is_empty())
}

/// Removes the session of a failed monolithic upload; a session already gone is fine.
async fn forget_failed(store: &Store, name: &Name, id: &str) {
    if let Err(cleanup) = store.cancel_upload(name, id).await {
        if !matches!(cleanup, StorageError::UploadUnknown { .. }) {
            tracing::warn!(error = %cleanup, repository = %name, "removing a failed monolithic upload");
        }
    }
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

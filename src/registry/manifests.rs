//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`: manifests by tag or digest, served as stored with their
//! own media type; a PUT is size-capped, checked and answered with `OCI-Subject` when it has a subject.

use super::common::{bytes, empty, hv, DOCKER_CONTENT_DIGEST, OCI_SUBJECT};
use super::{Reply, Request, RequestBody};
use crate::errcode::{ApiError, Code};
use crate::names::{Name, Reference};
use crate::storage::manifest::MAX_MANIFEST_BYTES;
use crate::storage::{StorageError, Store};
use bytes::{Bytes, BytesMut};
use http::{header, StatusCode};

/// Serves a manifest (HEAD: same headers, no body).
pub async fn get(store: &Store, name: &Name, reference: &Reference) -> Result<Reply, ApiError> {
    let m = store.get_manifest(name, reference).await?;
    let headers = vec![
        (DOCKER_CONTENT_DIGEST, hv(m.digest.to_string())),
        (header::ETAG, hv(format!("\"{}\"", m.digest))),
    ];
    let content_type = if hv_ok(&m.media_type) {
        m.media_type.as_str()
    } else {
        "application/octet-stream"
    };
    Ok(bytes(StatusCode::OK, content_type, m.body, headers))
}

/// Whether a stored media type can be sent as a header value.
fn hv_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Reads a manifest body, refusing one over the cap without reading further.
async fn read_capped(
    name: &Name,
    req: &Request<'_>,
    body: &mut dyn RequestBody,
) -> Result<Bytes, StorageError> {
    let too_large = || StorageError::ManifestTooLarge {
        repo: name.clone(),
        max: MAX_MANIFEST_BYTES,
    };
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_BYTES) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next_chunk().await.map_err(StorageError::Body)? {
        if (buf.len() + chunk.len()) as u64 > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Stores a manifest: 201 with Location, Docker-Content-Digest and, for a manifest with a subject, OCI-Subject.
pub async fn put(
    store: &Store,
    name: &Name,
    reference: &Reference,
    req: &Request<'_>,
    body: &mut dyn RequestBody,
) -> Result<Reply, ApiError> {
    let data = read_capped(name, req, body).await?;
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let put = store
        .put_manifest(name, reference, data, content_type)
        .await?;
    let mut headers = vec![
        (
            header::LOCATION,
            hv(format!("/v2/{name}/manifests/{}", put.digest)),
        ),
        (DOCKER_CONTENT_DIGEST, hv(put.digest.to_string())),
    ];
    if let Some(subject) = put.subject {
        headers.push((OCI_SUBJECT, hv(subject.to_string())));
    }
    Ok(empty(StatusCode::CREATED, headers))
}

/// Deletes by tag (the tag) or by digest (the manifest and its tags): 202, or 405 when deletes are disabled.
pub async fn delete(store: &Store, name: &Name, reference: &Reference) -> Result<Reply, ApiError> {
    if !store.delete_enabled() {
        return Err(ApiError::new(Code::Unsupported).message("deletes are disabled"));
    }
    store.delete_manifest(name, reference).await?;
    Ok(empty(StatusCode::ACCEPTED, Vec::new()))
}

//! `GET /v2/<name>/referrers/<digest>`: the manifests whose `subject` is the digest, as an OCI image index,
//! optionally filtered by `?artifactType=`. Never a 404: an unknown subject has an empty list.

use super::common::{bytes, hv, OCI_FILTERS_APPLIED};
use super::Reply;
use crate::errcode::ApiError;
use crate::names::{Digest, Name};
use crate::storage::manifest::OCI_INDEX;
use crate::storage::Store;
use http::StatusCode;

/// Lists referrers.
pub async fn get(
    store: &Store,
    name: &Name,
    digest: &Digest,
    filter: Option<&str>,
) -> Result<Reply, ApiError> {
    let manifests = store.referrers(name, digest, filter).await?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut headers = Vec::new();
    if filter.is_some() {
        headers.push((OCI_FILTERS_APPLIED, hv("artifactType")));
    }
    let body = serde_json::to_vec(&index).expect("JSON values serialize");
    Ok(bytes(StatusCode::OK, OCI_INDEX, body.into(), headers))
}

//! Endpoint tests written from the OCI distribution spec v1.1, driven through [`Registry::handle`] with routes
//! parsed by [`crate::route::parse`], on a temporary directory.

use super::*;
use crate::names::{Algorithm, Digest};
use crate::storage::digester::digest_bytes;
use crate::storage::manifest::{OCI_INDEX, OCI_MANIFEST};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

pub(super) struct Chunks(VecDeque<Bytes>);

#[async_trait::async_trait]
impl RequestBody for Chunks {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        Ok(self.0.pop_front())
    }
}

/// A reply read back into memory.
#[derive(Debug)]
pub(super) struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn h(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub(super) struct Harness {
    pub reg: Arc<Registry>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new(delete_enabled: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(StorageConfig {
            root: dir.path().to_path_buf(),
            delete_enabled,
            s3: None,
        })
        .await
        .unwrap();
        Harness {
            reg: Arc::new(reg),
            dir,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[&[u8]],
    ) -> Resp {
        call(&self.reg, method, url, headers, body).await
    }

    /// Pushes a blob monolithically and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = digest_bytes(Algorithm::Sha256, data);
        let r = self
            .call(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                &[data],
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
        d
    }

    /// Pushes an OCI image manifest (config + one layer, optional subject/artifactType) under `reference`.
    pub async fn push_image(
        &self,
        repo: &str,
        reference: &str,
        seed: &str,
        extra: serde_json::Value,
    ) -> (Digest, Resp) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let c = self.push_blob(repo, config.as_bytes()).await;
        let l = self.push_blob(repo, seed.as_bytes()).await;
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.to_string(), "size": seed.len()}],
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        let body = serde_json::to_vec(&m).unwrap();
        let r = self
            .call(
                "PUT",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("content-type", OCI_MANIFEST)],
                &[&body],
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
        (digest_bytes(Algorithm::Sha256, &body), r)
    }
}

pub(super) async fn call(
    reg: &Registry,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[&[u8]],
) -> Resp {
    let mut chunks = Chunks(body.iter().map(|b| Bytes::copy_from_slice(b)).collect());
    call_with_body(reg, method, url, headers, &mut chunks).await
}

/// [`call`] with any request body (one that fails part way, for instance).
pub(super) async fn call_with_body(
    reg: &Registry,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &mut dyn RequestBody,
) -> Resp {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let reply = match crate::route::parse(&method, path, query, &map) {
        Ok(route) => {
            let req = Request {
                route: &route,
                method: &method,
                headers: &map,
            };
            // Auth off: the policy allows everything, mounts included.
            let permit = crate::authz::Policy::default()
                .decide(&route, None, true)
                .expect("an open policy allows everything");
            reg.handle(&permit, &req, body).await
        }
        Err(e) => Reply::from(e),
    };
    let mut out = HeaderMap::new();
    for (k, v) in reply.headers {
        out.append(k, v);
    }
    let body = match reply.body {
        ReplyBody::Empty => Vec::new(),
        ReplyBody::Bytes(b) => b.to_vec(),
        ReplyBody::Stream { mut stream, len } => {
            let mut v = Vec::new();
            while let Some(chunk) = stream.next_chunk().await.unwrap() {
                v.extend_from_slice(&chunk);
            }
            assert_eq!(v.len() as u64, len, "a stream yields exactly its length");
            v
        }
    };
    if !body.is_empty() {
        assert_eq!(
            out.get("content-length").unwrap(),
            &body.len().to_string(),
            "Content-Length matches the body"
        );
    }
    Resp {
        status: reply.status.as_u16(),
        headers: out,
        body,
    }
}

mod compat;
mod content;
mod failed_uploads;
mod hostile;
mod push;

//! URL → [`Route`]: every `/v2/` request is parsed once into a typed operation carrying every parameter it
//! needs (names, references, digests, upload ids, the mount source, pagination, filters) and the [`Action`] it
//! needs permission for.
//!
//! The route drives authorization, metrics labels, access logs, the embedded handlers and the query forwarded
//! upstream alike: nothing downstream of here reads the raw path or query again. Names, tags and digests are
//! validated by the grammar in [`crate::names`]; queries are decoded by [`crate::query`].

use crate::errcode::{ApiError, Code};
use crate::names::{Digest, Name, Reference, UploadId};
use crate::query::{self, Page, Query};
use http::{HeaderMap, Method, StatusCode};
use std::borrow::Cow;

/// What a request needs permission to do on its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// No repository access (the `/v2/` base check and the catalog, which is filtered instead).
    None,
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Write blobs, uploads, manifests.
    Push,
    /// Delete manifests, tags or blobs.
    Delete,
}

/// A cross-repository mount asked for on an upload start: `?mount=<digest>&from=<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The blob to mount.
    pub digest: Digest,
    /// The repository it is mounted from (it needs pull permission there).
    pub from: Name,
}

/// One API operation with its typed parameters; `GET` and `HEAD` share their operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `GET|HEAD /v2/`
    Base,
    /// `GET /v2/_catalog?n=&last=`
    Catalog {
        /// The page asked for.
        page: Page,
    },
    /// `GET /v2/<name>/tags/list?n=&last=`
    Tags {
        /// The repository.
        name: Name,
        /// The page asked for.
        page: Page,
    },
    /// `GET|HEAD /v2/<name>/manifests/<reference>`
    GetManifest {
        /// The repository.
        name: Name,
        /// A tag or a digest.
        reference: Reference,
    },
    /// `PUT /v2/<name>/manifests/<reference>`
    PutManifest {
        /// The repository.
        name: Name,
        /// A tag or a digest.
        reference: Reference,
    },
    /// `DELETE /v2/<name>/manifests/<reference>`
    DeleteManifest {
        /// The repository.
        name: Name,
        /// A tag or a digest.
        reference: Reference,
    },
    /// `GET|HEAD /v2/<name>/blobs/<digest>`
    GetBlob {
        /// The repository.
        name: Name,
        /// The blob.
        digest: Digest,
    },
    /// `DELETE /v2/<name>/blobs/<digest>`
    DeleteBlob {
        /// The repository.
        name: Name,
        /// The blob.
        digest: Digest,
    },
    /// `POST /v2/<name>/blobs/uploads/[?digest=][?mount=&from=]`
    StartUpload {
        /// The repository.
        name: Name,
        /// The mount asked for, when both parameters are valid (else a plain upload starts, as the spec says).
        mount: Option<Mount>,
        /// A monolithic upload's digest.
        digest: Option<Digest>,
    },
    /// `PATCH /v2/<name>/blobs/uploads/<id>`
    PatchUpload {
        /// The repository.
        name: Name,
        /// The session.
        id: UploadId,
    },
    /// `GET /v2/<name>/blobs/uploads/<id>`
    UploadStatus {
        /// The repository.
        name: Name,
        /// The session.
        id: UploadId,
    },
    /// `PUT /v2/<name>/blobs/uploads/<id>?digest=`
    FinishUpload {
        /// The repository.
        name: Name,
        /// The session.
        id: UploadId,
        /// The digest the content must have (`None`: missing, refused by the backend as DIGEST_INVALID).
        digest: Option<Digest>,
        /// The other parameters, decoded: what an upstream put in the session's Location for itself
        /// (distribution's signed `_state`). Forwarded re-encoded; the embedded registry ignores them.
        opaque: Vec<(String, String)>,
    },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`
    CancelUpload {
        /// The repository.
        name: Name,
        /// The session.
        id: UploadId,
    },
    /// `GET /v2/<name>/referrers/<digest>[?artifactType=]`
    Referrers {
        /// The repository.
        name: Name,
        /// The subject.
        digest: Digest,
        /// Only referrers of this artifact type.
        artifact_type: Option<String>,
    },
}

/// A parsed request: its operation and the action it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// What the request does, with its parameters.
    pub op: Op,
    /// What it needs permission for.
    pub action: Action,
}

/// The structural shape of a `/v2/<name>/...` path, before any component is validated.
enum Shape<'a> {
    TagsList(&'a str),
    Manifest(&'a str, Cow<'a, str>),
    Blob(&'a str, Cow<'a, str>),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, Cow<'a, str>),
}

/// Whether a request's body is an HTML form (`application/x-www-form-urlencoded` or `multipart/form-data`).
///
/// Go's `Request.FormValue`, which distribution uses for `mount`, `from` and `digest`, reads such a body as
/// parameters: a form body on an upload would let a client say to the upstream what gatehouse never saw.
fn is_form(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        let b = v.as_bytes();
        let essence = b.split(|&c| c == b';').next().unwrap_or(b).trim_ascii();
        essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
            || essence.eq_ignore_ascii_case(b"multipart/form-data")
    })
}

/// Parses a request's method, raw path (not percent-decoded), raw query and headers into a [`Route`].
pub fn parse(
    method: &Method,
    path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Route, ApiError> {
    let rest = match path.strip_prefix("/v2") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Err(not_found()),
    };
    let m = method.as_str();
    let read = m == "GET" || m == "HEAD";
    let (op, action) = match rest {
        "" | "/" if read => (Op::Base, Action::None),
        "" | "/" => return Err(unsupported(method, "base")),
        "/_catalog" if m == "GET" => {
            let page = Page::from_query(&Query::parse(raw_query)?)?;
            (Op::Catalog { page }, Action::None)
        }
        "/_catalog" => return Err(unsupported(method, "catalog")),
        _ => match shape(rest).ok_or_else(not_found)? {
            Shape::TagsList(name) => {
                let name = Name::parse(name)?;
                if m != "GET" {
                    return Err(unsupported(method, "tags"));
                }
                let page = Page::from_query(&Query::parse(raw_query)?)?;
                (Op::Tags { name, page }, Action::Pull)
            }
            Shape::Manifest(name, reference) => {
                let name = Name::parse(name)?;
                let reference = match Reference::parse(&reference) {
                    Ok(r) => r,
                    // distribution's router never matches such a path: a read of it is a plain "unknown".
                    Err(_) if read => {
                        return Err(ApiError::new(Code::ManifestUnknown)
                            .detail(serde_json::json!({ "name": name.as_str() })))
                    }
                    Err(e) => return Err(e),
                };
                match m {
                    "GET" | "HEAD" => (Op::GetManifest { name, reference }, Action::Pull),
                    "PUT" => (Op::PutManifest { name, reference }, Action::Push),
                    "DELETE" => (Op::DeleteManifest { name, reference }, Action::Delete),
                    _ => return Err(unsupported(method, "manifest")),
                }
            }
            Shape::Blob(name, digest) => {
                let (name, digest) = (Name::parse(name)?, Digest::parse(&digest)?);
                match m {
                    "GET" | "HEAD" => (Op::GetBlob { name, digest }, Action::Pull),
                    "DELETE" => (Op::DeleteBlob { name, digest }, Action::Delete),
                    _ => return Err(unsupported(method, "blob")),
                }
            }
            Shape::Referrers(name, digest) => {
                let (name, digest) = (Name::parse(name)?, Digest::parse(&digest)?);
                if m != "GET" {
                    return Err(unsupported(method, "referrers"));
                }
                let q = Query::parse(raw_query)?;
                let artifact_type = q
                    .get("artifactType")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                let op = Op::Referrers {
                    name,
                    digest,
                    artifact_type,
                };
                (op, Action::Pull)
            }
            Shape::UploadStart(name) => {
                let name = Name::parse(name)?;
                if m != "POST" {
                    return Err(unsupported(method, "upload_start"));
                }
                refuse_form(headers)?;
                let q = Query::parse(raw_query)?;
                let mount = match (q.get("mount"), q.get("from")) {
                    (Some(d), Some(from)) => match (Digest::parse(d), Name::parse(from)) {
                        (Ok(digest), Ok(from)) => Some(Mount { digest, from }),
                        _ => None,
                    },
                    _ => None,
                };
                let digest = q.get("digest").map(Digest::parse).transpose()?;
                (
                    Op::StartUpload {
                        name,
                        mount,
                        digest,
                    },
                    Action::Push,
                )
            }
            Shape::Upload(name, id) => {
                let name = Name::parse(name)?;
                let Some(id) = UploadId::parse(id) else {
                    return Err(ApiError::new(Code::BlobUploadUnknown)
                        .message("invalid upload id")
                        .detail(serde_json::json!({ "name": name.as_str() })));
                };
                let op = match m {
                    "PATCH" => Op::PatchUpload { name, id },
                    "GET" => Op::UploadStatus { name, id },
                    "PUT" => {
                        let q = Query::parse(raw_query)?;
                        let digest = q.get("digest").map(Digest::parse).transpose()?;
                        let opaque = q.without(&["digest"]);
                        Op::FinishUpload {
                            name,
                            id,
                            digest,
                            opaque,
                        }
                    }
                    "DELETE" => Op::CancelUpload { name, id },
                    _ => return Err(unsupported(method, "upload")),
                };
                if matches!(op, Op::PatchUpload { .. } | Op::FinishUpload { .. }) {
                    refuse_form(headers)?;
                }
                (op, Action::Push)
            }
        },
    };
    Ok(Route { op, action })
}

/// An upload carrying a form body is refused: what it says could reach an upstream unread by gatehouse.
fn refuse_form(headers: &HeaderMap) -> Result<(), ApiError> {
    if is_form(headers) {
        return Err(ApiError::new(Code::Unsupported)
            .message("form-encoded upload bodies are not accepted; send application/octet-stream")
            .with_status(StatusCode::BAD_REQUEST));
    }
    Ok(())
}

/// Matches the route suffixes anchored at the end of `rest` (the path after `/v2`, starting with `/`).
///
/// Returns the raw name (without its leading `/`) and the raw trailing parameter; `None` when no route fits,
/// including when there is no name segment at all (`/v2/manifests/latest`).
fn shape(rest: &str) -> Option<Shape<'_>> {
    // The name is everything after the leading '/' of `head`; an absent head means no name segment.
    fn name_of(head: &str) -> Option<&str> {
        head.strip_prefix('/')
    }
    if let Some(head) = rest.strip_suffix("/tags/list") {
        return name_of(head).map(Shape::TagsList);
    }
    if let Some(head) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return name_of(head).map(Shape::UploadStart);
    }
    let (head, last) = rest.rsplit_once('/')?;
    let (head, keyword) = head.rsplit_once('/')?;
    match keyword {
        "manifests" => name_of(head).map(|n| Shape::Manifest(n, decode_reference(last))),
        "blobs" => name_of(head).map(|n| Shape::Blob(n, decode_reference(last))),
        "referrers" => name_of(head).map(|n| Shape::Referrers(n, decode_reference(last))),
        "uploads" => {
            let head = head.strip_suffix("/blobs")?;
            name_of(head).map(|n| Shape::Upload(n, last))
        }
        _ => None,
    }
}

/// A reference or digest segment as distribution's router sees it (Go decodes the path): `%XX` escapes of
/// characters a tag or digest may hold (`sha256%3A…`) are decoded; any other escape stays, so the segment
/// fails to parse. A decoded `/`, `%` or `.`-only segment cannot arise, so nothing escapes its place.
fn decode_reference(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let b = segment.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'+' | b'=' | b'-')
            });
        match decoded {
            Some(c) => {
                out.push(c as char);
                i += 3;
            }
            None => {
                out.push(b[i] as char);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn not_found() -> ApiError {
    ApiError::new(Code::NotFound)
}

fn unsupported(method: &Method, kind: &str) -> ApiError {
    ApiError::new(Code::Unsupported).message(format!("method {method} is not allowed on {kind}"))
}

impl Route {
    /// A fixed, low-cardinality label for metrics and logs (`"manifest"`, `"upload_chunk"`, ...).
    pub fn kind(&self) -> &'static str {
        match &self.op {
            Op::Base => "base",
            Op::Catalog { .. } => "catalog",
            Op::Tags { .. } => "tags",
            Op::GetManifest { .. } | Op::PutManifest { .. } | Op::DeleteManifest { .. } => {
                "manifest"
            }
            Op::GetBlob { .. } | Op::DeleteBlob { .. } => "blob",
            Op::StartUpload { .. } => "upload_start",
            Op::PatchUpload { .. } => "upload_chunk",
            Op::UploadStatus { .. } => "upload_status",
            Op::FinishUpload { .. } => "upload_finish",
            Op::CancelUpload { .. } => "upload_cancel",
            Op::Referrers { .. } => "referrers",
        }
    }

    /// The repository the route addresses, `None` for the base check and the catalog.
    pub fn name(&self) -> Option<&Name> {
        match &self.op {
            Op::Base | Op::Catalog { .. } => None,
            Op::Tags { name, .. }
            | Op::GetManifest { name, .. }
            | Op::PutManifest { name, .. }
            | Op::DeleteManifest { name, .. }
            | Op::GetBlob { name, .. }
            | Op::DeleteBlob { name, .. }
            | Op::StartUpload { name, .. }
            | Op::PatchUpload { name, .. }
            | Op::UploadStatus { name, .. }
            | Op::FinishUpload { name, .. }
            | Op::CancelUpload { name, .. }
            | Op::Referrers { name, .. } => Some(name),
        }
    }

    /// The query to send upstream, rebuilt from the parsed parameters, for the routes whose parameters
    /// gatehouse interprets; `None` for the others, whose query passes unchanged.
    ///
    /// `mount` is the mount the Permit allowed: a mount that was not allowed is never forwarded.
    pub fn upstream_query(&self, mount: Option<&Mount>) -> Option<String> {
        match &self.op {
            Op::Catalog { page } | Op::Tags { page, .. } => Some(page.to_query()),
            Op::StartUpload { digest, .. } => {
                let mut pairs: Vec<(&str, String)> = Vec::new();
                if let Some(m) = mount {
                    pairs.push(("mount", m.digest.to_string()));
                    pairs.push(("from", m.from.to_string()));
                }
                if let Some(d) = digest {
                    pairs.push(("digest", d.to_string()));
                }
                Some(query::encode(pairs.iter().map(|(k, v)| (*k, v.as_str()))))
            }
            Op::FinishUpload { digest, opaque, .. } => {
                let digest = digest.as_ref().map(|d| d.to_string());
                let pairs = opaque
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain(digest.as_deref().map(|d| ("digest", d)));
                Some(query::encode(pairs))
            }
            Op::Referrers { artifact_type, .. } => Some(
                artifact_type
                    .as_deref()
                    .map(|t| query::encode([("artifactType", t)]))
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

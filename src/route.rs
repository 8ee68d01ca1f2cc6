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
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Whether a request's body is an HTML form (`application/x-www-form-urlencoded` or `multipart/form-data`).
///
/// Go's `Request.FormValue`, which distribution uses for `mount`, `from` and `digest`, reads such a body as
/// parameters: a form body on an upload would let a client say to the upstream what gatehouse never saw.
fn is_form(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        let t = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
        let t = t.split(';').next().unwrap_or("").trim().to_string();
        t == "application/x-www-form-urlencoded" || t == "multipart/form-data"
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
                let reference = match Reference::parse(reference) {
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
                let (name, digest) = (Name::parse(name)?, Digest::parse(digest)?);
                match m {
                    "GET" | "HEAD" => (Op::GetBlob { name, digest }, Action::Pull),
                    "DELETE" => (Op::DeleteBlob { name, digest }, Action::Delete),
                    _ => return Err(unsupported(method, "blob")),
                }
            }
            Shape::Referrers(name, digest) => {
                let (name, digest) = (Name::parse(name)?, Digest::parse(digest)?);
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
        "manifests" => name_of(head).map(|n| Shape::Manifest(n, last)),
        "blobs" => name_of(head).map(|n| Shape::Blob(n, last)),
        "referrers" => name_of(head).map(|n| Shape::Referrers(n, last)),
        "uploads" => {
            let head = head.strip_suffix("/blobs")?;
            name_of(head).map(|n| Shape::Upload(n, last))
        }
        _ => None,
    }
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
mod tests {
    use super::*;

    /// Parses a path without query or headers.
    fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        super::parse(method, path, None, &HeaderMap::new())
    }

    const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// What a row expects: `Ok((kind, name, action))` or the error code.
    type Expect = Result<(&'static str, Option<&'static str>, Action), Code>;

    fn ok(kind: &'static str, name: &'static str, action: Action) -> Expect {
        Ok((kind, Some(name), action))
    }

    fn sha512() -> String {
        format!("sha512:{}", "0123456789abcdef".repeat(8))
    }

    #[rustfmt::skip]
    fn table() -> Vec<(&'static str, String, Expect)> {
        use Action::{Delete, Pull, Push};
        use Code::*;
        let name255 = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        let name256 = format!("{}/{}", "a".repeat(127), "b".repeat(128));
        let s = |p: &str| p.to_string();
        vec![
            // Base and catalog.
            ("GET", s("/v2/"), Ok(("base", None, Action::None))),
            ("GET", s("/v2"), Ok(("base", None, Action::None))),
            ("HEAD", s("/v2/"), Ok(("base", None, Action::None))),
            ("POST", s("/v2/"), Err(Unsupported)),
            ("OPTIONS", s("/v2/"), Err(Unsupported)),
            ("GET", s("/v2/_catalog"), Ok(("catalog", None, Action::None))),
            ("HEAD", s("/v2/_catalog"), Err(Unsupported)),
            ("DELETE", s("/v2/_catalog"), Err(Unsupported)),
            // Tags.
            ("GET", s("/v2/team/app/tags/list"), ok("tags", "team/app", Pull)),
            ("PUT", s("/v2/team/app/tags/list"), Err(Unsupported)),
            ("GET", s("/v2/tags/list"), Err(NotFound)),
            ("GET", s("/v2/a/tags/list/"), Err(NotFound)),
            ("GET", s("/v2/a/manifests/tags/list"), ok("tags", "a/manifests", Pull)),
            // Manifests.
            ("GET", s("/v2/app/manifests/latest"), ok("manifest", "app", Pull)),
            ("HEAD", s("/v2/a/b/c/manifests/v1.2.3"), ok("manifest", "a/b/c", Pull)),
            ("PUT", s("/v2/team/app/manifests/latest"), ok("manifest", "team/app", Push)),
            ("DELETE", format!("/v2/app/manifests/{SHA256}"), ok("manifest", "app", Delete)),
            ("GET", format!("/v2/app/manifests/{}", sha512()), ok("manifest", "app", Pull)),
            ("POST", s("/v2/app/manifests/latest"), Err(Unsupported)),
            ("PATCH", s("/v2/app/manifests/latest"), Err(Unsupported)),
            ("OPTIONS", s("/v2/app/manifests/latest"), Err(Unsupported)),
            ("GET", s("/v2/a/manifests/manifests/latest"), ok("manifest", "a/manifests", Pull)),
            ("GET", s("/v2/manifests/manifests/latest"), ok("manifest", "manifests", Pull)),
            ("GET", s("/v2/a/tags/list/manifests/latest"), ok("manifest", "a/tags/list", Pull)),
            ("GET", s("/v2/a/manifests/uploads"), ok("manifest", "a", Pull)),
            ("GET", s("/v2/manifests/latest"), Err(NotFound)),
            ("GET", s("/v2/a/manifests/"), Err(ManifestUnknown)),
            ("PUT", s("/v2/a/manifests/"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/latest/"), Err(NotFound)),
            ("GET", format!("/v2/a/manifests/{}", "t".repeat(128)), ok("manifest", "a", Pull)),
            ("GET", format!("/v2/a/manifests/{}", "t".repeat(129)), Err(ManifestUnknown)),
            ("PUT", format!("/v2/a/manifests/{}", "t".repeat(129)), Err(TagInvalid)),
            ("DELETE", format!("/v2/a/manifests/{}", "t".repeat(129)), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/-latest"), Err(ManifestUnknown)),
            ("HEAD", s("/v2/a/manifests/-latest"), Err(ManifestUnknown)),
            ("PUT", s("/v2/a/manifests/-latest"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/.latest"), Err(ManifestUnknown)),
            ("GET", s("/v2/a/manifests/%2e%2e"), Err(ManifestUnknown)),
            ("PUT", s("/v2/a/manifests/%2e%2e"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/lat%20est"), Err(ManifestUnknown)),
            ("GET", s("/v2/a/manifests/a\0b"), Err(ManifestUnknown)),
            ("GET", s("/v2/a/manifests/sha256:abc"), Err(ManifestUnknown)),
            ("PUT", s("/v2/a/manifests/sha256:abc"), Err(DigestInvalid)),
            ("GET", s("/v2/a/manifests/md5:0123456789abcdef0123456789abcdef"), Err(ManifestUnknown)),
            ("DELETE", s("/v2/a/manifests/md5:0123456789abcdef0123456789abcdef"), Err(DigestInvalid)),
            // Name length limits (the 255-character name itself is checked in `long_name_boundary_keeps_the_name`).
            ("GET", format!("/v2/{name255}/manifests/latest"), Ok(("manifest", None, Pull))),
            ("GET", format!("/v2/{name256}/manifests/latest"), Err(NameInvalid)),
            // Blobs.
            ("GET", format!("/v2/team/app/blobs/{SHA256}"), ok("blob", "team/app", Pull)),
            ("HEAD", format!("/v2/app/blobs/{}", sha512()), ok("blob", "app", Pull)),
            ("DELETE", format!("/v2/app/blobs/{SHA256}"), ok("blob", "app", Delete)),
            ("PUT", format!("/v2/app/blobs/{SHA256}"), Err(Unsupported)),
            ("GET", format!("/v2/blobs/blobs/{SHA256}"), ok("blob", "blobs", Pull)),
            ("GET", format!("/v2/x/blobs/blobs/{SHA256}"), ok("blob", "x/blobs", Pull)),
            ("GET", format!("/v2/blobs/{SHA256}"), Err(NotFound)),
            ("GET", s("/v2/app/blobs/latest"), Err(DigestInvalid)),
            ("GET", format!("/v2/app/blobs/{}", SHA256.to_uppercase()), Err(DigestInvalid)),
            ("GET", format!("/v2/app/blobs/{}", SHA256.replace(':', "%3a")), Err(DigestInvalid)),
            ("GET", format!("/v2/app/blobs/{}", &SHA256[..70]), Err(DigestInvalid)),
            // Uploads.
            ("POST", s("/v2/team/app/blobs/uploads/"), ok("upload_start", "team/app", Push)),
            ("POST", s("/v2/team/app/blobs/uploads"), ok("upload_start", "team/app", Push)),
            ("GET", s("/v2/team/app/blobs/uploads/"), Err(Unsupported)),
            ("POST", s("/v2/blobs/uploads/"), Err(NotFound)),
            ("POST", s("/v2/blobs/blobs/uploads/"), ok("upload_start", "blobs", Push)),
            ("POST", s("/v2/a/blobs/uploads/blobs/uploads"), ok("upload_start", "a/blobs/uploads", Push)),
            ("PATCH", s("/v2/a/blobs/uploads/0f3c-4d2e_x="), ok("upload_chunk", "a", Push)),
            ("GET", s("/v2/a/blobs/uploads/0f3c"), ok("upload_status", "a", Push)),
            ("PUT", s("/v2/a/b/blobs/uploads/0f3c"), ok("upload_finish", "a/b", Push)),
            ("DELETE", s("/v2/a/blobs/uploads/0f3c"), ok("upload_cancel", "a", Push)),
            ("POST", s("/v2/a/blobs/uploads/0f3c"), Err(Unsupported)),
            ("HEAD", s("/v2/a/blobs/uploads/0f3c"), Err(Unsupported)),
            ("PATCH", s("/v2/uploads/blobs/uploads/u1"), ok("upload_chunk", "uploads", Push)),
            ("PATCH", s("/v2/blobs/uploads/u1"), Err(NotFound)),
            ("PATCH", s("/v2/a/blobs/uploads/.."), Err(BlobUploadUnknown)),
            ("PATCH", s("/v2/a/blobs/uploads/a.b"), Err(BlobUploadUnknown)),
            ("PATCH", s("/v2/a/blobs/uploads/%2e%2e"), Err(BlobUploadUnknown)),
            ("PATCH", format!("/v2/a/blobs/uploads/{SHA256}"), Err(BlobUploadUnknown)),
            ("PATCH", format!("/v2/a/blobs/uploads/{}", "u".repeat(128)), ok("upload_chunk", "a", Push)),
            ("PATCH", format!("/v2/a/blobs/uploads/{}", "u".repeat(129)), Err(BlobUploadUnknown)),
            ("PATCH", s("/v2/a/blobs/uploads/caf\u{e9}"), Err(BlobUploadUnknown)),
            ("PATCH", s("/v2/A/blobs/uploads/u1"), Err(NameInvalid)),
            // Referrers.
            ("GET", format!("/v2/a/b/referrers/{SHA256}"), ok("referrers", "a/b", Pull)),
            ("HEAD", format!("/v2/a/referrers/{SHA256}"), Err(Unsupported)),
            ("GET", s("/v2/a/referrers/latest"), Err(DigestInvalid)),
            // Hostile names.
            ("GET", s("/v2/../manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a/../b/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/./a/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a/./tags/list"), Err(NameInvalid)),
            ("GET", s("/v2/%2e%2e/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a%2fb/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a%2Fb/tags/list"), Err(NameInvalid)),
            ("GET", s("/v2//a/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a//b/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a/b//manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2//manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/Team/app/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a\\b/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/..\\..\\etc/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a\0b/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/caf\u{e9}/manifests/latest"), Err(NameInvalid)),
            ("GET", s("/v2/a b/manifests/latest"), Err(NameInvalid)),
            ("GET", format!("/v2/{}/tags/list", "a".repeat(1000)), Err(NameInvalid)),
            ("GET", s("/v2/_catalog/tags/list"), Err(NameInvalid)),
            // Outside the API, or no route.
            ("GET", s("/"), Err(NotFound)),
            ("GET", s(""), Err(NotFound)),
            ("GET", s("/v1/"), Err(NotFound)),
            ("GET", s("/v2x/a/tags/list"), Err(NotFound)),
            ("GET", s("//v2/"), Err(NotFound)),
            ("GET", s("/v2/.."), Err(NotFound)),
            ("GET", s("/v2/a"), Err(NotFound)),
            ("GET", s("/v2/a/b"), Err(NotFound)),
            ("GET", s("/v2/a/tags"), Err(NotFound)),
            ("GET", s("/v2/a/unknown/latest"), Err(NotFound)),
            ("GET", s("/v2/_catalog/"), Err(NotFound)),
        ]
    }

    #[test]
    fn route_table() {
        let rows = table();
        assert!(rows.len() >= 40);
        for (method, path, expect) in rows {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let got = parse(&method, &path);
            let shown = format!("{method} {path:?} -> {got:?}");
            match (expect, got) {
                (Ok((kind, name, action)), Ok(route)) => {
                    assert_eq!(route.kind(), kind, "{shown}");
                    assert_eq!(route.action, action, "{shown}");
                    match name {
                        Some(name) => {
                            assert_eq!(route.name().map(Name::as_str), Some(name), "{shown}")
                        }
                        // `None` means "no repository" for base and catalog, "not checked here" otherwise.
                        None if matches!(route.op, Op::Base | Op::Catalog { .. }) => {
                            assert!(route.name().is_none(), "{shown}")
                        }
                        None => {}
                    }
                }
                (Err(code), Err(err)) => {
                    assert_eq!(err.code, code, "{shown}");
                    assert_eq!(err.status, code.status(), "{shown}");
                }
                (expect, _) => panic!("{shown}, expected {expect:?}"),
            }
        }
    }

    #[test]
    fn long_name_boundary_keeps_the_name() {
        let name = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert_eq!(name.len(), 255);
        let route = parse(&Method::GET, &format!("/v2/{name}/tags/list")).unwrap();
        assert_eq!(route.name().unwrap().as_str(), name);
    }

    #[test]
    fn parameters_are_carried() {
        let route = parse(&Method::PUT, "/v2/a/manifests/v1").unwrap();
        let Op::PutManifest { reference, .. } = route.op else {
            panic!("{route:?}")
        };
        assert!(matches!(&reference, Reference::Tag(t) if t.as_str() == "v1"));

        let route = parse(&Method::GET, &format!("/v2/a/manifests/{SHA256}")).unwrap();
        let Op::GetManifest { reference, .. } = route.op else {
            panic!("{route:?}")
        };
        assert_eq!(reference.to_string(), SHA256);

        let path = format!("/v2/a/blobs/{}", sha512());
        let route = parse(&Method::GET, &path).unwrap();
        let Op::GetBlob { digest, .. } = route.op else {
            panic!("{route:?}")
        };
        assert_eq!(digest.algorithm(), crate::names::Algorithm::Sha512);
        assert_eq!(digest.to_string(), sha512());

        let route = parse(&Method::PATCH, "/v2/a/blobs/uploads/abc-123").unwrap();
        assert_eq!(
            route.op,
            Op::PatchUpload {
                name: Name::parse("a").unwrap(),
                id: UploadId::parse("abc-123").unwrap()
            }
        );
    }

    fn with_query(method: Method, path: &str, query: &str) -> Result<Route, ApiError> {
        super::parse(&method, path, Some(query), &HeaderMap::new())
    }

    #[test]
    fn query_parameters_are_parsed_into_the_route() {
        let q = format!(
            "mount={}&from=team%2Fbase&digest={SHA256}",
            SHA256.replace(':', "%3A")
        );
        let route = with_query(Method::POST, "/v2/a/blobs/uploads/", &q).unwrap();
        let Op::StartUpload { mount, digest, .. } = &route.op else {
            panic!("{route:?}")
        };
        let mount = mount.as_ref().unwrap();
        assert_eq!(mount.from.as_str(), "team/base");
        assert_eq!(mount.digest.to_string(), SHA256);
        assert_eq!(digest.as_ref().unwrap().to_string(), SHA256);

        let route = with_query(Method::GET, "/v2/a/tags/list", "n=2&last=x").unwrap();
        assert_eq!(route.upstream_query(None).as_deref(), Some("n=2&last=x"));
        let route = with_query(
            Method::GET,
            &format!("/v2/a/referrers/{SHA256}"),
            "artifactType=a%2Fb",
        )
        .unwrap();
        assert!(matches!(&route.op, Op::Referrers { artifact_type: Some(t), .. } if t == "a/b"));
        let route = with_query(
            Method::PUT,
            "/v2/a/blobs/uploads/u1",
            &format!("_state=ab%2Bc%3D%3D&digest={SHA256}&digest=sha256:zz"),
        )
        .unwrap();
        // The upstream's own session parameters survive a finish, canonically encoded; the digest is ours.
        assert_eq!(
            route.upstream_query(None),
            Some(format!(
                "_state=ab%2Bc%3D%3D&digest={}",
                SHA256.replace(':', "%3A")
            ))
        );
        // An incomplete or invalid mount is a plain upload, as the spec says.
        for q in [
            "from=team/base",
            "mount=x&from=team/base",
            &format!("mount={SHA256}&from=Bad..Name"),
        ] {
            let route = with_query(Method::POST, "/v2/a/blobs/uploads/", q).unwrap();
            assert!(
                matches!(route.op, Op::StartUpload { mount: None, .. }),
                "{q}"
            );
        }
        // A bad digest on a finish is the client's error, named.
        let e = with_query(Method::PUT, "/v2/a/blobs/uploads/u1", "digest=sha256:zz").unwrap_err();
        assert_eq!(e.code, Code::DigestInvalid);
    }

    /// The mount parameters, however they are spelt, reach the route once; a mount the Permit did not allow
    /// (`upstream_query(None)`) is never in the forwarded query.
    #[test]
    fn mount_in_any_encoding_is_parsed_once_and_never_forwarded_unallowed() {
        let d = SHA256.replace(':', "%3A");
        for q in [
            format!("mount={d}&from=secret/thing"),
            format!("mount={d}&fr%6Fm=secret/thing"),
            format!("m%6Funt={d}&from=secret/thing"),
            format!("m%6funt={d}&FROM=x&from=secret%2Fthing"),
            format!("mount={d}&from=secret/thing&from=bob/x"),
        ] {
            let route = with_query(Method::POST, "/v2/bob/k1/blobs/uploads/", &q).unwrap();
            let Op::StartUpload { mount: Some(m), .. } = &route.op else {
                panic!("{q}: {route:?}")
            };
            assert_eq!(m.from.as_str(), "secret/thing", "{q}");
            assert_eq!(route.upstream_query(None).as_deref(), Some(""), "{q}");
            let allowed = route.upstream_query(Some(m)).unwrap();
            assert_eq!(allowed, format!("mount={d}&from=secret%2Fthing"), "{q}");
        }
        for q in [
            format!("mount={d};from=secret/thing"),
            format!("mount={d}&from=%zz"),
        ] {
            assert!(
                with_query(Method::POST, "/v2/bob/k1/blobs/uploads/", &q).is_err(),
                "{q}"
            );
        }
    }

    #[test]
    fn form_encoded_upload_bodies_are_refused() {
        for ct in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            "multipart/form-data; boundary=x",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_str(ct).unwrap(),
            );
            for (m, p) in [
                (Method::POST, "/v2/bob/k1/blobs/uploads/"),
                (Method::PATCH, "/v2/bob/k1/blobs/uploads/u1"),
                (Method::PUT, "/v2/bob/k1/blobs/uploads/u1"),
            ] {
                let e = super::parse(&m, p, Some("mount=x"), &h).unwrap_err();
                assert_eq!(e.status, StatusCode::BAD_REQUEST, "{m} {p} {ct}");
            }
        }
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        assert!(super::parse(&Method::POST, "/v2/a/blobs/uploads/", None, &h).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// No path, query or method panics the parser, and a parsed route's name is valid again.
        #[test]
        fn parsing_any_request_never_panics(
            path in "/v2(/[a-z0-9._%:-]{0,12}){0,6}/?",
            query in proptest::option::of("[a-z0-9=&%;+:/._-]{0,40}"),
            method in proptest::sample::select(vec!["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]),
        ) {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            if let Ok(route) = super::parse(&method, &path, query.as_deref(), &HeaderMap::new()) {
                if let Some(name) = route.name() {
                    proptest::prop_assert!(Name::parse(name.as_str()).is_ok());
                }
                let _ = route.upstream_query(None);
            }
        }
    }

    #[test]
    fn every_kind_is_reachable() {
        let paths = [
            (Method::GET, "/v2/".to_string()),
            (Method::GET, "/v2/_catalog".to_string()),
            (Method::GET, "/v2/a/tags/list".to_string()),
            (Method::GET, "/v2/a/manifests/x".to_string()),
            (Method::GET, format!("/v2/a/blobs/{SHA256}")),
            (Method::POST, "/v2/a/blobs/uploads/".to_string()),
            (Method::PATCH, "/v2/a/blobs/uploads/u".to_string()),
            (Method::GET, "/v2/a/blobs/uploads/u".to_string()),
            (Method::PUT, "/v2/a/blobs/uploads/u".to_string()),
            (Method::DELETE, "/v2/a/blobs/uploads/u".to_string()),
            (Method::GET, format!("/v2/a/referrers/{SHA256}")),
        ];
        let kinds: Vec<_> = paths
            .iter()
            .map(|(m, p)| parse(m, p).unwrap().kind())
            .collect();
        assert_eq!(
            kinds,
            [
                "base",
                "catalog",
                "tags",
                "manifest",
                "blob",
                "upload_start",
                "upload_chunk",
                "upload_status",
                "upload_finish",
                "upload_cancel",
                "referrers"
            ]
        );
    }
}

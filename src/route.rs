//! URL → [`Route`]: every `/v2/` request is parsed once into a typed route carrying the [`Action`] it needs.
//!
//! The route drives authorization, metrics labels, access logs and the embedded handlers alike.
//! Names, tags and digests are validated by the grammar in [`crate::names`].

use crate::errcode::{ApiError, Code};
use crate::names::{Digest, Name, Reference};
use http::Method;

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

/// The typed target of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `GET|HEAD /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET /v2/<name>/tags/list`
    TagsList { name: Name },
    /// `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`
    Manifest { name: Name, reference: Reference },
    /// `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`
    Blob { name: Name, digest: Digest },
    /// `POST /v2/<name>/blobs/uploads/`
    UploadStart { name: Name },
    /// `PATCH /v2/<name>/blobs/uploads/<uuid>`
    UploadChunk { name: Name, uuid: String },
    /// `GET /v2/<name>/blobs/uploads/<uuid>`
    UploadStatus { name: Name, uuid: String },
    /// `PUT /v2/<name>/blobs/uploads/<uuid>?digest=`
    UploadFinish { name: Name, uuid: String },
    /// `DELETE /v2/<name>/blobs/uploads/<uuid>`
    UploadCancel { name: Name, uuid: String },
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers { name: Name, digest: Digest },
}

/// A parsed request: its target and the action it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// What the request addresses.
    pub target: Target,
    /// What it needs permission for.
    pub action: Action,
}

/// The longest upload session id accepted in a path.
pub const MAX_UPLOAD_ID_LEN: usize = 128;

/// The structural shape of a `/v2/<name>/...` path, before any component is validated.
enum Shape<'a> {
    TagsList(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Parses a request method and raw path (no query string, not percent-decoded) into a [`Route`].
pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
    let rest = match path.strip_prefix("/v2") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Err(not_found()),
    };
    let (target, allowed): (Target, &[(&str, Action)]) = match rest {
        "" | "/" => (
            Target::Base,
            &[("GET", Action::None), ("HEAD", Action::None)],
        ),
        "/_catalog" => (Target::Catalog, &[("GET", Action::None)]),
        _ => match shape(rest).ok_or_else(not_found)? {
            Shape::TagsList(name) => (
                Target::TagsList {
                    name: Name::parse(name)?,
                },
                &[("GET", Action::Pull)],
            ),
            Shape::Manifest(name, reference) => (
                Target::Manifest {
                    name: Name::parse(name)?,
                    reference: Reference::parse(reference)?,
                },
                &[
                    ("GET", Action::Pull),
                    ("HEAD", Action::Pull),
                    ("PUT", Action::Push),
                    ("DELETE", Action::Delete),
                ],
            ),
            Shape::Blob(name, digest) => (
                Target::Blob {
                    name: Name::parse(name)?,
                    digest: Digest::parse(digest)?,
                },
                &[
                    ("GET", Action::Pull),
                    ("HEAD", Action::Pull),
                    ("DELETE", Action::Delete),
                ],
            ),
            Shape::Referrers(name, digest) => (
                Target::Referrers {
                    name: Name::parse(name)?,
                    digest: Digest::parse(digest)?,
                },
                &[("GET", Action::Pull)],
            ),
            Shape::UploadStart(name) => (
                Target::UploadStart {
                    name: Name::parse(name)?,
                },
                &[("POST", Action::Push)],
            ),
            Shape::Upload(name, uuid) => {
                let name = Name::parse(name)?;
                if !valid_upload_id(uuid) {
                    return Err(ApiError::new(Code::BlobUploadUnknown)
                        .message("invalid upload id")
                        .detail(serde_json::json!({ "name": name.as_str() })));
                }
                let uuid = uuid.to_string();
                let target = match method.as_str() {
                    "PATCH" => Target::UploadChunk { name, uuid },
                    "GET" => Target::UploadStatus { name, uuid },
                    "PUT" => Target::UploadFinish { name, uuid },
                    "DELETE" => Target::UploadCancel { name, uuid },
                    _ => return Err(unsupported(method, "upload")),
                };
                return Ok(Route {
                    target,
                    action: Action::Push,
                });
            }
        },
    };
    match allowed.iter().find(|(m, _)| *m == method.as_str()) {
        Some(&(_, action)) => Ok(Route { target, action }),
        None => Err(unsupported(method, kind_of(&target))),
    }
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

/// An upload id: `[A-Za-z0-9_=-]{1,128}`.
fn valid_upload_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_UPLOAD_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'-'))
}

fn not_found() -> ApiError {
    ApiError::new(Code::NotFound)
}

fn unsupported(method: &Method, kind: &str) -> ApiError {
    ApiError::new(Code::Unsupported).message(format!("method {method} is not allowed on {kind}"))
}

fn kind_of(target: &Target) -> &'static str {
    match target {
        Target::Base => "base",
        Target::Catalog => "catalog",
        Target::TagsList { .. } => "tags",
        Target::Manifest { .. } => "manifest",
        Target::Blob { .. } => "blob",
        Target::UploadStart { .. } => "upload_start",
        Target::UploadChunk { .. } => "upload_chunk",
        Target::UploadStatus { .. } => "upload_status",
        Target::UploadFinish { .. } => "upload_finish",
        Target::UploadCancel { .. } => "upload_cancel",
        Target::Referrers { .. } => "referrers",
    }
}

impl Route {
    /// A fixed, low-cardinality label for metrics and logs (`"manifest"`, `"upload_chunk"`, ...).
    pub fn kind(&self) -> &'static str {
        kind_of(&self.target)
    }

    /// The repository the route addresses, `None` for the base check and the catalog.
    pub fn name(&self) -> Option<&Name> {
        match &self.target {
            Target::Base | Target::Catalog => None,
            Target::TagsList { name }
            | Target::Manifest { name, .. }
            | Target::Blob { name, .. }
            | Target::UploadStart { name }
            | Target::UploadChunk { name, .. }
            | Target::UploadStatus { name, .. }
            | Target::UploadFinish { name, .. }
            | Target::UploadCancel { name, .. }
            | Target::Referrers { name, .. } => Some(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("GET", s("/v2/a/manifests/"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/latest/"), Err(NotFound)),
            ("GET", format!("/v2/a/manifests/{}", "t".repeat(128)), ok("manifest", "a", Pull)),
            ("GET", format!("/v2/a/manifests/{}", "t".repeat(129)), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/-latest"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/.latest"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/%2e%2e"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/lat%20est"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/a\0b"), Err(TagInvalid)),
            ("GET", s("/v2/a/manifests/sha256:abc"), Err(DigestInvalid)),
            ("GET", s("/v2/a/manifests/md5:0123456789abcdef0123456789abcdef"), Err(DigestInvalid)),
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
                        None if matches!(route.target, Target::Base | Target::Catalog) => {
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
        let Target::Manifest { reference, .. } = route.target else {
            panic!("{route:?}")
        };
        assert!(matches!(&reference, Reference::Tag(t) if t.as_str() == "v1"));

        let route = parse(&Method::GET, &format!("/v2/a/manifests/{SHA256}")).unwrap();
        let Target::Manifest { reference, .. } = route.target else {
            panic!("{route:?}")
        };
        assert_eq!(reference.to_string(), SHA256);

        let path = format!("/v2/a/blobs/{}", sha512());
        let route = parse(&Method::GET, &path).unwrap();
        let Target::Blob { digest, .. } = route.target else {
            panic!("{route:?}")
        };
        assert_eq!(digest.algorithm(), crate::names::Algorithm::Sha512);
        assert_eq!(digest.to_string(), sha512());

        let route = parse(&Method::PATCH, "/v2/a/blobs/uploads/abc-123").unwrap();
        assert_eq!(
            route.target,
            Target::UploadChunk {
                name: Name::parse("a").unwrap(),
                uuid: "abc-123".to_string()
            }
        );
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

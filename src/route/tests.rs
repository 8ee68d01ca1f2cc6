//! The route table and its parameters, hostile paths and queries included.
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
        // Go decodes the path before distribution's router sees it: an escaped `:` is a digest there too;
        // an escaped `/` or `%` never decodes into the segment.
        ("GET", format!("/v2/app/blobs/{}", SHA256.replace(':', "%3a")), ok("blob", "app", Pull)),
        ("GET", format!("/v2/app/manifests/{}", SHA256.replace(':', "%3A")), ok("manifest", "app", Pull)),
        ("DELETE", format!("/v2/app/manifests/{}", SHA256.replace(':', "%3A")), ok("manifest", "app", Delete)),
        ("GET", format!("/v2/app/referrers/{}", SHA256.replace(':', "%3A")), ok("referrers", "app", Pull)),
        ("GET", format!("/v2/app/blobs/{}", SHA256.replace(':', "%2F")), Err(DigestInvalid)),
        ("GET", format!("/v2/app/blobs/{}", SHA256.replace(':', "%253A")), Err(DigestInvalid)),
        ("PUT", s("/v2/app/manifests/v%2F1"), Err(TagInvalid)),
        ("PUT", s("/v2/app/manifests/%2E%2E"), Err(TagInvalid)),
        ("PUT", s("/v2/app/manifests/v%31"), ok("manifest", "app", Push)),
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

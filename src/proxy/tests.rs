//! Admission is the same door whatever is behind it: the same request gets the same Reply (or the same
//! Permit) from a gatehouse over the embedded registry and one in front of an upstream.

use super::*;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::reply::{Reply, ReplyBody};
use pingora::http::RequestHeader;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn config(dir: &std::path::Path, upstream: bool) -> Arc<Config> {
    let htpasswd = dir.join("htpasswd");
    let hash = bcrypt::hash_with_result("alice-pw", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    std::fs::write(&htpasswd, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
    let upstream = if upstream {
        "[upstream]\nurl = \"http://127.0.0.1:9\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"
[auth]
htpasswd = {htpasswd:?}
[cors]
allow_origins = ["https://ui.example"]
[storage]
root = {root:?}
{upstream}
[[access.rules]]
repositories = ["bob/*"]
principals = ["bob"]
actions = ["pull", "push"]
[[access.rules]]
repositories = ["**"]
principals = ["alice"]
actions = ["pull", "push", "delete"]
"#,
        root = dir.join("data"),
    );
    let file: crate::config::schema::FileConfig = toml::from_str(&text).unwrap();
    Arc::new(crate::config::validate(file).unwrap())
}

async fn door(dir: &std::path::Path, upstream: bool) -> Gatehouse {
    let config = config(dir, upstream);
    let auth = Arc::new(Authenticator::open(&config.auth, config.guard.as_ref()).unwrap());
    let backend = if upstream {
        let crate::config::Backend::Upstream(u) = &config.backend else {
            panic!("upstream config")
        };
        Backend::upstream(u.clone())
    } else {
        let storage = crate::storage::StorageConfig {
            root: config.storage.root.clone(),
            delete_enabled: true,
            s3: None,
        };
        let registry = crate::registry::Registry::open(storage.clone())
            .await
            .unwrap();
        Backend::Embedded(Arc::new(registry))
    };
    let live = LiveConfig::new(Live::new(config, Some(auth)), None, None);
    Gatehouse::new(Arc::new(live), Arc::new(backend))
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A comparable picture of an admission: the refusal's status, headers and body, or what the Permit allowed.
fn picture(r: Result<admit::Admitted, Reply>) -> String {
    match r {
        Ok(a) => format!(
            "admitted {} action={:?} mount={:?}",
            a.route.kind(),
            a.permit.action(),
            a.permit.mount().map(|m| m.from.to_string())
        ),
        Err(reply) => {
            let body = match reply.body {
                ReplyBody::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                ReplyBody::Empty => String::new(),
                _ => "<stream>".into(),
            };
            format!("{} {:?} {body}", reply.status, reply.headers)
        }
    }
}

/// A request: method, path with query, headers.
type Row<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn admission_returns_the_same_reply_for_the_same_input_in_both_backends() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let embedded = door(a.path(), false).await;
    let upstream = door(b.path(), true).await;
    let alice = basic("alice", "alice-pw");
    let bob = basic("bob", "alice-pw");
    let wrong = basic("alice", "nope");
    let rows: Vec<Row> = vec![
        (
            "OPTIONS",
            "/v2/a/manifests/x".into(),
            vec![
                ("origin", "https://ui.example"),
                ("access-control-request-method", "GET"),
            ],
        ),
        ("GET", "/".into(), vec![]),
        ("GET", "/v2x/".into(), vec![]),
        ("GET", "/ui/".into(), vec![("authorization", &alice)]),
        ("GET", "/v2/".into(), vec![]),
        ("GET", "/v2/".into(), vec![("authorization", &wrong)]),
        ("GET", "/v2/".into(), vec![("authorization", &alice)]),
        (
            "GET",
            "/v2/A/tags/list".into(),
            vec![("authorization", &alice)],
        ),
        (
            "GET",
            "/v2/a/manifests/-bad".into(),
            vec![("authorization", &alice)],
        ),
        (
            "PUT",
            "/v2/a/manifests/-bad".into(),
            vec![("authorization", &alice)],
        ),
        (
            "GET",
            "/v2/secret/thing/tags/list".into(),
            vec![("authorization", &bob)],
        ),
        (
            "POST",
            format!("/v2/bob/k1/blobs/uploads/?mount={D}&fr%6Fm=secret/thing"),
            vec![("authorization", &bob)],
        ),
        (
            "POST",
            format!("/v2/bob/k1/blobs/uploads/?mount={D}&from=bob/k2"),
            vec![("authorization", &bob)],
        ),
        (
            "POST",
            format!("/v2/bob/k1/blobs/uploads/?mount={D};from=secret/thing"),
            vec![("authorization", &bob)],
        ),
        (
            "POST",
            "/v2/bob/k1/blobs/uploads/".into(),
            vec![
                ("authorization", &bob),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
        ),
        (
            "GET",
            "/v2/_catalog?n=x".into(),
            vec![("authorization", &alice)],
        ),
        (
            "PATCH",
            "/v2/bob/k1/blobs/uploads/..".into(),
            vec![("authorization", &bob)],
        ),
    ];
    for (method, path, headers) in rows {
        let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (k, v) in &headers {
            req.insert_header(k.to_string(), v.to_string()).unwrap();
        }
        let (mut c1, mut c2) = (embedded.new_ctx(), upstream.new_ctx());
        for (door, ctx) in [(&embedded, &mut c1), (&upstream, &mut c2)] {
            ctx.origin = door.live.snapshot().cors.allowed_origin(&req.headers);
        }
        let one = picture(embedded.admit(&req, &mut c1).await);
        let two = picture(upstream.admit(&req, &mut c2).await);
        assert_eq!(one, two, "{method} {path}");
        assert_eq!(
            (c1.kind, &c1.repository),
            (c2.kind, &c2.repository),
            "{method} {path}"
        );
    }
}

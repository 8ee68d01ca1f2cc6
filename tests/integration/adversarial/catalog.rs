//! Finding 5: in upstream mode the catalog is paged at the door over what the caller may pull. Following
//! every `Link` with `n=1` gives exactly the caller's repositories, and no hidden name appears in any body or
//! header (a `last=` in a `Link` used to name the next hidden repository). A catalog asked for with
//! `Accept-Encoding: gzip` from an upstream that compresses (distribution behind a gzipping nginx) comes
//! back readable (no `Content-Encoding: gzip` over a plain body), and a catalog of thousands of long names
//! still pages correctly.

use std::io::Read;

use flate2::read::GzDecoder;
use percent_encoding::percent_decode_str;
use serde_json::json;

use super::{pass_of, write_users};
use crate::util::embedded::sha256_of;
use crate::util::frontdoor::{Front, FrontConfig};
use crate::util::http::Http;
use crate::util::nginx::GzipProxy;
use crate::util::raw::{self, basic, RawReply};
use crate::util::{oci, temp_dir, Distribution};

/// alice pulls `alice/*`, `shared` and any `*/vis-*`; lead pulls everything.
const ACCESS: &str = r#"
[[access.rules]]
repositories = ["alice/*", "shared", "*/vis-*"]
principals = ["alice"]
actions = ["pull"]

[[access.rules]]
repositories = ["**"]
principals = ["lead"]
actions = ["pull"]
"#;

/// What alice may see in the small catalog, sorted.
const VISIBLE: [&str; 4] = ["alice/a", "alice/b", "alice/c", "shared"];
/// What she may not, each sorting between or around hers; every one contains "hidden".
const HIDDEN: [&str; 5] = [
    "aaa-hidden",
    "alice/deep/hidden",
    "alicf-hidden",
    "b-hidden",
    "zzz-hidden",
];

/// Pushes one tiny manifest (a config blob, no layers) as `repo:v1` straight to distribution, for each
/// repository, from `threads` threads.
fn seed(dist: &Distribution, repos: &[String], threads: usize) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = sha256_of(config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": oci::MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [],
    }))
    .expect("manifest JSON");
    let (first, rest) = repos.split_first().expect("at least one repository");
    super::push_blob(&dist.url(), first, config, None);
    let put_manifest = |http: &Http, repo: &str| {
        http.req("PUT", &format!("/v2/{repo}/manifests/v1"))
            .header("Content-Type", oci::MANIFEST)
            .body(manifest.clone())
            .send()
            .expect(201);
    };
    put_manifest(&Http::new(&dist.url()), first);
    let chunk = rest.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in rest.chunks(chunk) {
            let (put_manifest, config_digest) = (&put_manifest, &config_digest);
            s.spawn(move || {
                let http = Http::new(&dist.url());
                for repo in part {
                    http.req(
                        "POST",
                        &format!("/v2/{repo}/blobs/uploads/?mount={config_digest}&from={first}"),
                    )
                    .send()
                    .expect(201);
                    put_manifest(&http, repo);
                }
            });
        }
    });
}

/// distribution seeded with `repos`, and gatehouse in front of it (through a gzipping nginx when `gzip`).
struct Setup {
    front: Front,
    _nginx: Option<GzipProxy>,
    _dist: Distribution,
    _dir: tempfile::TempDir,
}

fn start(repos: &[String], gzip: bool) -> Setup {
    // Thousands of repositories are tens of thousands of directories: on tmpfs, when there is one.
    let shm = std::path::Path::new("/dev/shm");
    let dist = if shm.is_dir() {
        Distribution::start_in(shm)
    } else {
        Distribution::start()
    };
    let started = std::time::Instant::now();
    seed(&dist, repos, 4);
    eprintln!(
        "seeded {} repositories in {:?}",
        repos.len(),
        started.elapsed()
    );
    let nginx = gzip.then(|| GzipProxy::start(dist.port));
    let upstream = nginx
        .as_ref()
        .map(GzipProxy::url)
        .unwrap_or_else(|| dist.url());
    let dir = temp_dir("adv-catalog");
    let htpasswd = write_users(dir.path());
    let front = Front::start(
        &FrontConfig::new(&upstream, &htpasswd)
            .tables(ACCESS)
            .no_guard(),
    );
    Setup {
        front,
        _nginx: nginx,
        _dist: dist,
        _dir: dir,
    }
}

/// The path and query of a reply's `Link: <...>; rel="next"`, if any.
fn next_link(reply: &RawReply) -> Option<String> {
    let link = reply.header("Link")?;
    let url = &link[link.find('<')? + 1..link.find('>')?];
    Some(match url.strip_prefix("http://") {
        Some(rest) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
        None => url.to_string(),
    })
}

/// The body of `reply` as the client reads it: gunzipped when it says `Content-Encoding: gzip` (and then
/// it must be gzip).
fn decoded_body(reply: &RawReply) -> Vec<u8> {
    let gzip = reply
        .header("Content-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
    if !gzip {
        return reply.body.clone();
    }
    let mut out = Vec::new();
    GzDecoder::new(&reply.body[..])
        .read_to_end(&mut out)
        .unwrap_or_else(|e| {
            panic!("Content-Encoding: gzip over a body that is not gzip ({e}):\n{reply:?}")
        });
    out
}

/// The repositories of one catalog reply (its decoded body must be JSON with a `repositories` list).
fn repositories(reply: &RawReply) -> Vec<String> {
    let body = decoded_body(reply);
    let json: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("the catalog body is not JSON ({e}):\n{reply:?}"));
    json["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("no repositories list:\n{reply:?}"))
        .iter()
        .map(|v| v.as_str().expect("a repository name").to_string())
        .collect()
}

/// GETs `first` as `user` and follows every `Link`; returns each page's reply (at most `max_pages`).
fn follow(
    port: u16,
    user: &str,
    first: &str,
    headers: &[(&str, &str)],
    max_pages: usize,
) -> Vec<RawReply> {
    let auth = basic(user, pass_of(user));
    let mut all_headers = vec![("Authorization", auth.as_str())];
    all_headers.extend_from_slice(headers);
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(target) = next {
        let started = std::time::Instant::now();
        let reply = raw::request(port, "GET", &target, &all_headers, b"");
        eprintln!(
            "GET {}: {} in {:?}",
            &target[..target.len().min(60)],
            reply.status,
            started.elapsed()
        );
        assert_eq!(reply.status, 200, "a catalog page:\n{reply:?}");
        next = next_link(&reply);
        pages.push(reply);
        assert!(
            pages.len() <= max_pages,
            "more than {max_pages} pages: endless paging? last:\n{:?}",
            pages.last()
        );
    }
    pages
}

/// Panics if any page names a hidden repository (containing `marker`) anywhere a client can read, raw or
/// percent-decoded.
fn assert_nothing_hidden(pages: &[RawReply], marker: &str) {
    for page in pages {
        let text = page.all_text();
        let decoded = percent_decode_str(&text).decode_utf8_lossy().into_owned();
        let body = String::from_utf8_lossy(&decoded_body(page)).into_owned();
        for seen in [&text, &decoded, &body] {
            assert!(
                !seen.to_ascii_lowercase().contains(marker),
                "a hidden repository name ({marker}) leaked:\n{page:?}"
            );
        }
    }
}

fn small_catalog() -> Vec<String> {
    VISIBLE
        .iter()
        .chain(HIDDEN.iter())
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn catalog_links_followed_one_by_one_never_name_a_hidden_repository() {
    let s = start(&small_catalog(), false);
    let front = &s.front;
    let port = front.gh.port;
    for first in ["/v2/_catalog?n=1", "/v2/_catalog?n=2", "/v2/_catalog?n=3"] {
        let pages = follow(port, "alice", first, &[], 40);
        let n: usize = first
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        let mut seen = Vec::new();
        for page in &pages {
            let repos = repositories(page);
            assert!(repos.len() <= n, "a page of more than n={n}:\n{page:?}");
            seen.extend(repos);
        }
        eprintln!("{first}: {} pages, {seen:?}", pages.len());
        assert_nothing_hidden(&pages, "hidden");
        assert_eq!(seen, VISIBLE, "alice's catalog paged from {first}");
    }
    // lead sees everything, through the same paging: the rules, not the paging, hide names.
    let pages = follow(port, "lead", "/v2/_catalog?n=1", &[], 40);
    let all: Vec<String> = pages.iter().flat_map(repositories).collect();
    let mut want = small_catalog();
    want.sort();
    assert_eq!(all, want, "lead's catalog paged with n=1");
}

#[test]
fn catalog_asked_for_gzip_is_never_a_plain_body_labelled_gzip() {
    let s = start(&small_catalog(), true);
    let front = &s.front;
    let port = front.gh.port;
    let gzip = [("Accept-Encoding", "gzip")];
    let whole = follow(port, "alice", "/v2/_catalog", &gzip, 40);
    let seen: Vec<String> = whole.iter().flat_map(repositories).collect();
    assert_eq!(seen, VISIBLE, "alice's catalog asked for with gzip");
    assert_nothing_hidden(&whole, "hidden");
    let pages = follow(port, "alice", "/v2/_catalog?n=1", &gzip, 40);
    let seen: Vec<String> = pages.iter().flat_map(repositories).collect();
    assert_eq!(seen, VISIBLE, "alice's catalog paged with gzip");
    assert_nothing_hidden(&pages, "hidden");
}

#[test]
fn catalog_of_three_thousand_long_names_pages_exactly_the_visible_ones() {
    let long: String = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(5);
    let names: Vec<String> = (0..3000)
        .map(|i| {
            let kind = if i % 3 == 0 { "vis" } else { "hid" };
            format!("n{i:04}/{kind}-{long}")
        })
        .collect();
    let s = start(&names, false);
    let front = &s.front;
    let visible: Vec<String> = names
        .iter()
        .filter(|n| n.contains("/vis-"))
        .cloned()
        .collect();
    let port = front.gh.port;
    // 1,000 visible names: 10 pages of 100 (25 allowed, in case the door caps n lower than 1,000).
    for (first, max_pages) in [("/v2/_catalog?n=100", 25), ("/v2/_catalog?n=1000", 25)] {
        let pages = follow(
            port,
            "alice",
            first,
            &[("Accept-Encoding", "gzip")],
            max_pages,
        );
        let n: usize = first
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        for page in &pages {
            assert!(
                repositories(page).len() <= n,
                "a page of more than n={n}:\n{page:?}"
            );
        }
        let seen: Vec<String> = pages.iter().flat_map(repositories).collect();
        assert_nothing_hidden(&pages, "/hid-");
        assert_eq!(
            seen.len(),
            visible.len(),
            "{first}: {} pages, {} names seen",
            pages.len(),
            seen.len()
        );
        assert_eq!(seen, visible, "{first}: the visible names in order");
    }
}

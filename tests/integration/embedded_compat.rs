//! Layout compatibility with distribution 2.8.2 (Debian's `docker-registry`) both ways, on one directory
//! and one server at a time (issue 3): what distribution stored, gatehouse's embedded backend serves with
//! the same digests, tags and catalog; what gatehouse stores (and deletes), distribution serves (or no
//! longer serves). gatehouse is configured here as a registry:2 drop-in, by the `REGISTRY_*` env vars.

use std::collections::BTreeMap;

use crate::util::embedded::{Embedded, Reg, Setup};
use crate::util::oci::{self, Layout};
use crate::util::skopeo::{self, Creds};
use crate::util::{temp_dir, Distribution};

/// What a client sees of a registry: catalog, and per repository its tags with their digests.
#[derive(Debug, PartialEq)]
struct View {
    catalog: Vec<String>,
    tags: BTreeMap<String, BTreeMap<String, String>>,
}

/// Reads the catalog and, for every repository, every tag's digest (by GET with every type accepted).
fn view(reg: &Reg) -> View {
    let catalog = reg.catalog();
    let mut tags = BTreeMap::new();
    for repo in &catalog {
        let mut digests = BTreeMap::new();
        for tag in reg.tags(repo) {
            let reply = reg.get_manifest(repo, &tag);
            reply.expect(200);
            let digest = reply
                .header("Docker-Content-Digest")
                .unwrap_or_else(|| panic!("no Docker-Content-Digest:\n{reply:?}"));
            assert_eq!(oci::sha256_digest(&reply.body), digest, "{repo}:{tag}");
            digests.insert(tag, digest);
        }
        tags.insert(repo.clone(), digests);
    }
    View { catalog, tags }
}

/// Pulls `host/repo:tag` (with `--all`) into a new OCI layout and returns the digest it landed under;
/// every blob of the source layout that the pull fetched must have the same bytes.
fn pull_same(
    host: &str,
    repo: &str,
    tag: &str,
    creds: Creds,
    src: &Layout,
    blobs: &[&str],
) -> String {
    let dir = temp_dir("compat-pull");
    let out = dir.path().join("out");
    skopeo::copy(
        &format!("docker://{host}/{repo}:{tag}"),
        &format!("oci:{}:{tag}", out.display()),
        creds,
        None,
        true,
    );
    let back = Layout::open(&out);
    for blob in blobs {
        assert_eq!(
            back.read_blob(blob),
            src.read_blob(blob),
            "blob {blob} of {repo}:{tag}"
        );
    }
    back.lookup(tag).digest
}

/// Pushes `layout:tag` to `host/repo:tag` (with `--all`).
fn push(layout: &Layout, tag: &str, host: &str, repo: &str, creds: Creds) {
    skopeo::copy(
        &format!("oci:{}:{tag}", layout.dir().display()),
        &format!("docker://{host}/{repo}:{tag}"),
        None,
        creds,
        true,
    );
}

const DROP_IN: Setup = Setup {
    auth: true,
    delete: true,
    by_env: true,
};

/// distribution pushes an image under two tags and an index; gatehouse on the same root serves them with
/// the same digests, tags and catalog, then pushes another repository; distribution serves that too.
#[test]
fn distribution_and_gatehouse_read_each_others_layout() {
    let work = temp_dir("compat");
    let mut dist = Distribution::start();
    let root = dist.root();

    let (app, app_image) = oci::small_image(&work.path().join("app"), "v1", "compat v1");
    let app2 = oci::small_image(&work.path().join("app2"), "v2", "compat v2");
    let (multi, index, images) =
        oci::multiarch_image(&work.path().join("multi"), "latest", "compat multi");
    push(&app, "v1", &dist.host(), "old/app", None);
    push(&app2.0, "v2", &dist.host(), "old/app", None);
    push(&multi, "latest", &dist.host(), "old/multi", None);
    let dist_view = view(&Reg::new(&dist.url(), None));
    assert_eq!(dist_view.catalog, ["old/app", "old/multi"]);
    assert_eq!(dist_view.tags["old/app"]["v1"], app_image.manifest.digest);
    assert_eq!(dist_view.tags["old/app"]["v2"], app2.1.manifest.digest);
    assert_eq!(dist_view.tags["old/multi"]["latest"], index.digest);
    dist.stop();

    // gatehouse, as a drop-in, on distribution's root.
    let gh = Embedded::launch(&root, DROP_IN);
    let (host, creds) = (gh.host(), gh.creds());
    assert_eq!(
        view(&gh.reg()),
        dist_view,
        "gatehouse's view of distribution's data"
    );
    let layer = app_image.layer.digest.as_str();
    assert_eq!(
        pull_same(&host, "old/app", "v1", creds, &app, &[layer]),
        app_image.manifest.digest
    );
    let multi_blobs: Vec<&str> = images.iter().map(|i| i.layer.digest.as_str()).collect();
    assert_eq!(
        pull_same(&host, "old/multi", "latest", creds, &multi, &multi_blobs),
        index.digest
    );

    // gatehouse pushes new repositories (an image and an index).
    let (fresh, fresh_image) = oci::small_image(&work.path().join("fresh"), "v1", "pushed by gh");
    let (fresh_multi, fresh_index, fresh_images) = oci::multiarch_image(
        &work.path().join("fresh-multi"),
        "edge",
        "pushed by gh multi",
    );
    push(&fresh, "v1", &host, "new/app", creds);
    push(&fresh_multi, "edge", &host, "new/multi", creds);
    let gh_view = view(&gh.reg());
    drop(gh);

    // distribution serves everything, old and new, the same way.
    dist.restart();
    let dist_view = view(&Reg::new(&dist.url(), None));
    assert_eq!(
        dist_view, gh_view,
        "distribution's view of gatehouse's data"
    );
    assert_eq!(
        dist_view.catalog,
        ["new/app", "new/multi", "old/app", "old/multi"]
    );
    assert_eq!(dist_view.tags["new/app"]["v1"], fresh_image.manifest.digest);
    assert_eq!(dist_view.tags["new/multi"]["edge"], fresh_index.digest);
    let layer = fresh_image.layer.digest.as_str();
    assert_eq!(
        pull_same(&dist.host(), "new/app", "v1", None, &fresh, &[layer]),
        fresh_image.manifest.digest
    );
    let blobs: Vec<&str> = fresh_images
        .iter()
        .map(|i| i.layer.digest.as_str())
        .collect();
    assert_eq!(
        pull_same(
            &dist.host(),
            "new/multi",
            "edge",
            None,
            &fresh_multi,
            &blobs
        ),
        fresh_index.digest
    );
}

/// A manifest deleted by digest and a tag deleted through gatehouse are gone for distribution too.
#[test]
fn deletes_by_gatehouse_are_seen_by_distribution() {
    let work = temp_dir("compat-delete");
    let mut dist = Distribution::start();
    let root = dist.root();
    let (one, one_image) = oci::small_image(&work.path().join("one"), "one", "delete one");
    let (two, two_image) = oci::small_image(&work.path().join("two"), "two", "delete two");
    let (three, three_image) = oci::small_image(&work.path().join("three"), "three", "keep three");
    for (layout, tag) in [(&one, "one"), (&two, "two"), (&three, "three")] {
        push(layout, tag, &dist.host(), "del/app", None);
    }
    // A second tag on `two`'s manifest, so that deleting the tag `two` alone leaves the manifest.
    push(&two, "two", &dist.host(), "del/other", None);
    dist.stop();

    let gh = Embedded::launch(&root, DROP_IN);
    let host = gh.host();
    let reg = gh.reg();
    // skopeo deletes the manifest `one` by digest.
    skopeo::delete(&format!("docker://{host}/del/app:one"), gh.creds());
    reg.get_manifest("del/app", &one_image.manifest.digest)
        .expect(404);
    // The tag `two` only (OCI 1.1 tag delete): the manifest stays by digest.
    reg.req("DELETE", "/v2/del/app/manifests/two")
        .send()
        .expect(202);
    reg.get_manifest("del/app", "two").expect(404);
    reg.get_manifest("del/app", &two_image.manifest.digest)
        .expect(200);
    let mut tags = reg.tags("del/app");
    tags.sort();
    assert_eq!(tags, ["three"], "tags after the deletes, through gatehouse");
    drop(gh);

    dist.restart();
    let dreg = Reg::new(&dist.url(), None);
    assert_eq!(dreg.tags("del/app"), ["three"], "distribution's tags");
    dreg.get_manifest("del/app", &one_image.manifest.digest)
        .expect(404);
    dreg.get_manifest("del/app", "one").expect(404);
    dreg.get_manifest("del/app", "two").expect(404);
    dreg.get_manifest("del/app", &two_image.manifest.digest)
        .expect(200);
    let three_back = dreg.get_manifest("del/app", "three");
    three_back.expect(200);
    assert_eq!(
        three_back.header("Docker-Content-Digest").as_deref(),
        Some(three_image.manifest.digest.as_str())
    );
    assert_eq!(dreg.tags("del/other"), ["two"]);
}

//! Real clients against the embedded backend (issue 3, "How it is checked"): skopeo pushes and pulls an
//! image and a two-platform index with credentials, inspects, lists tags and deletes; podman (as root, vfs)
//! logs in, pulls, tags, pushes to another repository and pulls back; buildah builds from scratch, pushes,
//! and pushes a manifest list with `--all`; oras (PyPI) pushes an artifact and a second artifact whose
//! `subject` is the first, and the referrers API lists it with `artifactType` filtering.
//!
//! Every client gets its own HOME, XDG dirs, auth file and storage. skopeo's and podman's shared blob-info
//! cache may turn a push into a cross-repository mount: the assertions hold either way.

use std::fs;

use crate::util::embedded::{sha256_of, ClientHome, Embedded};
use crate::util::oci::{self, Layout};
use crate::util::skopeo;
use crate::util::{temp_dir, PASS, USER};

/// skopeo pushes an image (two tags) and a two-platform index with `--all`, inspects them, lists tags,
/// pulls them back with the same digests, and deletes by tag.
#[test]
fn skopeo_image_index_inspect_list_tags_delete() {
    let work = temp_dir("emb-skopeo");
    let gh = Embedded::start(&work.path().join("root"));
    let (host, creds) = (gh.host(), gh.creds());
    let reg = gh.reg();

    let (layout, image) = oci::small_image(&work.path().join("img"), "v1", "skopeo embedded");
    let src = format!("oci:{}:v1", layout.dir().display());
    for tag in ["v1", "v2"] {
        let dst = format!("docker://{host}/team/app:{tag}");
        skopeo::copy(&src, &dst, None, creds, false);
    }
    let (multi, index, images) = oci::multiarch_image(
        &work.path().join("multi"),
        "latest",
        "skopeo embedded multi",
    );
    skopeo::copy(
        &format!("oci:{}:latest", multi.dir().display()),
        &format!("docker://{host}/team/multi:latest"),
        None,
        creds,
        true,
    );

    // Without credentials nothing is readable.
    let anon = skopeo::run(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/team/app:v1"),
    ]);
    assert!(!anon.status.success(), "inspect without credentials worked");

    let app = format!("docker://{host}/team/app:v1");
    let raw = skopeo::inspect_raw(&app, creds);
    assert_eq!(
        sha256_of(&raw),
        image.manifest.digest,
        "inspect --raw bytes"
    );
    let info = skopeo::inspect(&app, creds);
    assert_eq!(
        info["Digest"].as_str(),
        Some(image.manifest.digest.as_str())
    );
    let raw_index = skopeo::inspect_raw(&format!("docker://{host}/team/multi:latest"), creds);
    assert_eq!(sha256_of(&raw_index), index.digest, "index bytes");
    for (img, arch) in images.iter().zip(["amd64", "arm64"]) {
        let reply = reg.get_manifest("team/multi", &img.manifest.digest);
        reply.expect(200);
        assert_eq!(
            reply.header("Content-Type").as_deref(),
            Some(oci::MANIFEST),
            "{arch} manifest type"
        );
        assert_eq!(sha256_of(&reply.body), img.manifest.digest);
    }

    let mut tags = skopeo::list_tags(&format!("docker://{host}/team/app"), creds);
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    assert_eq!(
        skopeo::list_tags(&format!("docker://{host}/team/multi"), creds),
        ["latest"]
    );

    // Pull back: the image and the whole index, same digests and bytes.
    let out = work.path().join("out");
    skopeo::copy(
        &app,
        &format!("oci:{}:v1", out.display()),
        creds,
        None,
        false,
    );
    let back = Layout::open(&out);
    assert_eq!(back.lookup("v1").digest, image.manifest.digest);
    assert_eq!(
        back.read_blob(&image.layer.digest),
        layout.read_blob(&image.layer.digest)
    );
    let out_multi = work.path().join("out-multi");
    skopeo::copy(
        &format!("docker://{host}/team/multi:latest"),
        &format!("oci:{}:latest", out_multi.display()),
        creds,
        None,
        true,
    );
    let back = Layout::open(&out_multi);
    assert_eq!(back.lookup("latest").digest, index.digest);
    for img in &images {
        assert_eq!(
            back.read_blob(&img.layer.digest),
            multi.read_blob(&img.layer.digest)
        );
    }

    // Delete by tag: skopeo resolves the tag and deletes the manifest by digest.
    skopeo::delete(&app, creds);
    reg.get_manifest("team/app", &image.manifest.digest)
        .expect(404);
    skopeo::fails(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("--creds={USER}:{PASS}"),
        &app,
    ]);
    for tag in reg.tags("team/app") {
        reg.get_manifest("team/app", &tag).expect(200);
    }
    // The other repository is untouched.
    reg.get_manifest("team/multi", "latest").expect(200);
}

/// podman (root, vfs, private storage): login, pull what skopeo pushed, tag, push to another repository,
/// remove everything local, pull back; the digests agree with the registry's.
#[test]
fn podman_login_pull_tag_push_pull() {
    let work = temp_dir("emb-podman");
    let gh = Embedded::start(&work.path().join("root"));
    let (host, creds) = (gh.host(), gh.creds());
    let reg = gh.reg();
    let (layout, image) = oci::small_image(&work.path().join("img"), "v1", "podman embedded");
    skopeo::copy(
        &format!("oci:{}:v1", layout.dir().display()),
        &format!("docker://{host}/base/hello:v1"),
        None,
        creds,
        false,
    );

    let home = ClientHome::new(&work.path().join("podman"));
    let podman = |args: &[&str]| home.engine("podman", args);
    podman(&["login", "--tls-verify=false", "-u", USER, "-p", PASS, &host]);
    let auth = fs::read_to_string(home.dir.join("auth.json")).expect("auth.json");
    assert!(
        auth.contains(&host),
        "podman login wrote no auth for {host}: {auth}"
    );

    let src = format!("{host}/base/hello:v1");
    podman(&["pull", "--tls-verify=false", &src]);
    let pulled = podman(&["image", "inspect", "--format", "{{.Id}} {{.Digest}}", &src]);
    let (id, digest) = pulled.trim().split_once(' ').expect("id and digest");
    assert_eq!(
        digest, image.manifest.digest,
        "podman's digest of the pulled image"
    );
    assert_eq!(
        format!("sha256:{id}"),
        image.config.digest,
        "the image id is the config digest"
    );

    let dst = format!("{host}/copies/hello:v2");
    podman(&["tag", &src, &dst]);
    let digestfile = home.dir.join("pushed.digest");
    podman(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        &digestfile.display().to_string(),
        &dst,
    ]);
    let pushed = fs::read_to_string(&digestfile).expect("digest file");
    let served = reg.get_manifest("copies/hello", "v2");
    served.expect(200);
    assert_eq!(
        served.header("Docker-Content-Digest").as_deref(),
        Some(pushed.trim()),
        "the registry's digest of the pushed tag"
    );
    assert_eq!(sha256_of(&served.body), pushed.trim());

    podman(&["rmi", "--all", "--force"]);
    podman(&["pull", "--tls-verify=false", &dst]);
    let back = podman(&["image", "inspect", "--format", "{{.Id}} {{.Digest}}", &dst]);
    let (back_id, back_digest) = back.trim().split_once(' ').expect("id and digest");
    assert_eq!(back_id, id, "the pulled-back image is the same image");
    assert_eq!(back_digest, pushed.trim(), "pulled-back digest");
}

/// buildah: `from scratch`, `copy`, `commit`, `push --creds`; then `manifest create`, `manifest add` twice
/// and `manifest push --all`: the index and every image in it are in the registry.
#[test]
fn buildah_scratch_push_and_manifest_push_all() {
    let work = temp_dir("emb-buildah");
    let gh = Embedded::start(&work.path().join("root"));
    let host = gh.host();
    let reg = gh.reg();
    let creds = format!("{USER}:{PASS}");
    let home = ClientHome::new(&work.path().join("buildah"));
    let buildah = |args: &[&str]| home.engine("buildah", args);

    let mut images = Vec::new();
    for arch in ["amd64", "arm64"] {
        let file = home.dir.join(format!("hello-{arch}.txt"));
        fs::write(&file, format!("hello from buildah for {arch}\n")).expect("writing a file");
        let ctr = buildah(&["from", "--name", &format!("ctr-{arch}"), "scratch"]);
        let ctr = ctr.trim();
        buildah(&["copy", ctr, &file.display().to_string(), "/hello.txt"]);
        buildah(&["config", "--arch", arch, "--os", "linux", ctr]);
        let name = format!("localhost/built-{arch}");
        buildah(&["commit", "-q", ctr, &name]);
        images.push(name);
    }

    let digestfile = home.dir.join("image.digest");
    buildah(&[
        "push",
        "--tls-verify=false",
        "--creds",
        &creds,
        "--digestfile",
        &digestfile.display().to_string(),
        &images[0],
        &format!("docker://{host}/built/hello:v1"),
    ]);
    let pushed = fs::read_to_string(&digestfile).expect("digest file");
    let reply = reg.get_manifest("built/hello", "v1");
    reply.expect(200);
    assert_eq!(sha256_of(&reply.body), pushed.trim(), "pushed image digest");
    let manifest = reply.json();
    let layer = manifest["layers"][0]["digest"].as_str().expect("a layer");
    reg.req("GET", &format!("/v2/built/hello/blobs/{layer}"))
        .send()
        .expect(200);

    buildah(&["manifest", "create", "localhost/built-list"]);
    for image in &images {
        buildah(&[
            "manifest",
            "add",
            "localhost/built-list",
            &format!("containers-storage:{image}"),
        ]);
    }
    let listfile = home.dir.join("list.digest");
    buildah(&[
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "--creds",
        &creds,
        "--digestfile",
        &listfile.display().to_string(),
        "localhost/built-list",
        &format!("docker://{host}/built/multi:latest"),
    ]);
    let list_digest = fs::read_to_string(&listfile).expect("digest file");
    let reply = reg.get_manifest("built/multi", "latest");
    reply.expect(200);
    assert_eq!(sha256_of(&reply.body), list_digest.trim(), "list digest");
    let list = reply.json();
    let entries = list["manifests"].as_array().expect("manifests").clone();
    let mut arches: Vec<String> = entries
        .iter()
        .map(|e| {
            e["platform"]["architecture"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    arches.sort();
    assert_eq!(arches, ["amd64", "arm64"], "platforms of {list}");
    for entry in &entries {
        let digest = entry["digest"].as_str().expect("digest");
        let child = reg.get_manifest("built/multi", digest);
        child.expect(200);
        assert_eq!(sha256_of(&child.body), digest);
        let child = child.json();
        let mut blobs = vec![child["config"]["digest"].clone()];
        blobs.extend(
            child["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .map(|l| l["digest"].clone()),
        );
        for blob in blobs {
            let blob = blob.as_str().expect("digest");
            reg.req("HEAD", &format!("/v2/built/multi/blobs/{blob}"))
                .send()
                .expect(200);
        }
    }
}

/// The Python side of the oras test: logs in, pushes an artifact, then a second one whose subject is the
/// first; prints what it pushed as JSON.
const ORAS_SCRIPT: &str = r#"
import json, sys
import oras.client, oras.oci, requests
host, user, password, config = sys.argv[1:5]
client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
login = client.login(username=user, password=password, hostname=host, config_path=config)
first = client.push(target=f"{host}/arts/demo:v1", files=["artifact.txt:text/plain"],
                    manifest_config=":application/vnd.gatehouse.test.artifact.v1")
digest = first.headers["Docker-Content-Digest"]
got = requests.get(f"http://{host}/v2/arts/demo/manifests/{digest}", auth=(user, password),
                   headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
got.raise_for_status()
subject = oras.oci.Subject(mediaType=got.headers["Content-Type"], digest=digest, size=len(got.content))
second = client.push(target=f"{host}/arts/demo:signature", files=["signature.txt:text/plain"],
                     manifest_config=":application/vnd.gatehouse.test.signature.v1", subject=subject)
print(json.dumps({
    "login": login,
    "first": {"status": first.status_code, "digest": digest},
    "second": {"status": second.status_code, "digest": second.headers.get("Docker-Content-Digest"),
               "oci_subject": second.headers.get("OCI-Subject")},
}))
"#;

/// oras (PyPI): login, push an artifact, push a second artifact with `subject` = the first; the referrers
/// API lists it, and filters by `artifactType` with `OCI-Filters-Applied`.
#[test]
fn oras_artifact_with_subject_then_referrers() {
    let work = temp_dir("emb-oras");
    let gh = Embedded::start(&work.path().join("root"));
    let host = gh.host();
    let reg = gh.reg();
    let home = ClientHome::new(&work.path().join("oras"));
    fs::write(home.dir.join("artifact.txt"), "an artifact\n").expect("artifact");
    fs::write(home.dir.join("signature.txt"), "a signature\n").expect("signature");
    let script = home.dir.join("push.py");
    fs::write(&script, ORAS_SCRIPT).expect("script");
    let config = home.dir.join("home/oras-config.json");
    let out = home.ok(
        "python3",
        "python3 (and `python3 -m pip install oras`)",
        &[
            &script.display().to_string(),
            &host,
            USER,
            PASS,
            &config.display().to_string(),
        ],
    );
    let pushed: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("the oras script printed no JSON ({e}): {out}"));
    assert_eq!(pushed["login"]["Status"], "Login Succeeded", "{pushed}");
    assert_eq!(pushed["first"]["status"], 201, "{pushed}");
    assert_eq!(pushed["second"]["status"], 201, "{pushed}");
    let subject = pushed["first"]["digest"].as_str().expect("first digest");
    let referrer = pushed["second"]["digest"].as_str().expect("second digest");
    assert_eq!(
        pushed["second"]["oci_subject"].as_str(),
        Some(subject),
        "a manifest with a subject gets OCI-Subject back: {pushed}"
    );

    let listed = reg
        .req("GET", &format!("/v2/arts/demo/referrers/{subject}"))
        .send();
    listed.expect(200);
    assert_eq!(
        listed.header("Content-Type").as_deref(),
        Some(oci::INDEX),
        "referrers Content-Type"
    );
    let index = listed.json();
    let entries = index["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 1, "one referrer: {index}");
    let entry = &entries[0];
    assert_eq!(entry["digest"], referrer, "{index}");
    assert_eq!(entry["mediaType"], oci::MANIFEST, "{index}");
    assert_eq!(
        entry["artifactType"], "application/vnd.gatehouse.test.signature.v1",
        "artifactType falls back to the config media type: {index}"
    );
    let referrer_bytes = reg.get_manifest("arts/demo", referrer);
    referrer_bytes.expect(200);
    assert_eq!(entry["size"], referrer_bytes.body.len(), "{index}");

    let filtered = reg
        .req(
            "GET",
            &format!(
                "/v2/arts/demo/referrers/{subject}?artifactType=application/vnd.gatehouse.test.signature.v1"
            ),
        )
        .send();
    filtered.expect(200);
    assert_eq!(
        filtered.header("OCI-Filters-Applied").as_deref(),
        Some("artifactType"),
        "{filtered:?}"
    );
    assert_eq!(
        filtered.json()["manifests"].as_array().map(Vec::len),
        Some(1)
    );
    let other = reg
        .req(
            "GET",
            &format!("/v2/arts/demo/referrers/{subject}?artifactType=application/vnd.other"),
        )
        .send();
    other.expect(200);
    assert_eq!(
        other.header("OCI-Filters-Applied").as_deref(),
        Some("artifactType")
    );
    assert_eq!(
        other.json()["manifests"].as_array().map(Vec::len),
        Some(0),
        "{other:?}"
    );
    // The artifact itself has no referrers of its own and is still pullable.
    let none = reg
        .req("GET", &format!("/v2/arts/demo/referrers/{referrer}"))
        .send();
    none.expect(200);
    assert_eq!(none.json()["manifests"].as_array().map(Vec::len), Some(0));
    reg.get_manifest("arts/demo", "v1").expect(200);
}

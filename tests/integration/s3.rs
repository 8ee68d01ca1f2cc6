//! The embedded registry on S3 (issue 12): gatehouse with `REGISTRY_STORAGE=s3` on a real S3 protocol
//! (`moto_server` on loopback): skopeo push and pull of a multi-arch image, a 64 MiB layer, chunked uploads,
//! cross-repository mounts, referrers and deletes; the bucket's keys in distribution's layout, read and written
//! both ways by distribution 2.8.2's own S3 driver; two gatehouse instances on one bucket sharing upload
//! sessions (state in the bucket, no shared secret); a missing bucket refused at start, naming the setting.

use std::process::Command;
use std::thread;

use serde_json::json;

use crate::util::embedded::{
    location, oci_manifest, patch_chunk, sha256_of, start_upload, with_query, Reg,
};
use crate::util::frontdoor::{fresh_seed, noise};
use crate::util::moto::{DistributionS3, Gate, Moto, ROOT};
use crate::util::oci::{self, Layout};
use crate::util::{gatehouse, net, skopeo, temp_dir, Gatehouse};

/// A gatehouse (no auth, deletes on) storing into `bucket` on `moto`, configured as registry:2 is, with
/// `extra` variables.
pub(crate) fn gatehouse_on(moto: &Moto, bucket: &str, extra: &[(&str, &str)]) -> Gatehouse {
    gatehouse_via(moto, bucket, &moto.endpoint(), extra)
}

/// [`gatehouse_on`] with S3 requests sent to `endpoint`.
pub(crate) fn gatehouse_via(
    moto: &Moto,
    bucket: &str,
    endpoint: &str,
    extra: &[(&str, &str)],
) -> Gatehouse {
    let port = net::free_port();
    let mut env = moto.env_via(bucket, endpoint);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.push(("REGISTRY_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
    env.push(("REGISTRY_AUTH".into(), "none".into()));
    env.push(("REGISTRY_STORAGE_DELETE_ENABLED".into(), "true".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Gatehouse::start_with(port, "[guard]\nenabled = false\n", &env)
}

/// Pushes `layout:tag` to `host/repo:tag` with `--all`.
fn push(layout: &Layout, tag: &str, host: &str, repo: &str) {
    skopeo::copy(
        &format!("oci:{}:{tag}", layout.dir().display()),
        &format!("docker://{host}/{repo}:{tag}"),
        None,
        None,
        true,
    );
}

/// Pulls `host/repo:tag` with `--all` into a fresh layout; returns the digest it landed under and the layout.
fn pull(host: &str, repo: &str, tag: &str) -> (String, Layout, tempfile::TempDir) {
    let dir = temp_dir("s3-pull");
    let out = dir.path().join("out");
    skopeo::copy(
        &format!("docker://{host}/{repo}:{tag}"),
        &format!("oci:{}:{tag}", out.display()),
        None,
        None,
        true,
    );
    let back = Layout::open(&out);
    (back.lookup(tag).digest, back, dir)
}

#[test]
fn s3_skopeo_multiarch_big_layer_chunked_mount_referrers_delete() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-registry");
    let gh = gatehouse_on(&moto, &bucket, &[]);
    let reg = Reg::new(&gh.url(), None);
    let work = temp_dir("s3-push");

    // A multi-arch image, pushed and pulled back with the same digests and bytes.
    let (layout, index, images) = oci::multiarch_image(&work.path().join("src"), "v1", "on s3");
    push(&layout, "v1", &gh.host(), "team/app");
    let (digest, back, _d) = pull(&gh.host(), "team/app", "v1");
    assert_eq!(digest, index.digest);
    for image in &images {
        assert_eq!(
            back.read_blob(&image.layer.digest),
            layout.read_blob(&image.layer.digest)
        );
    }
    // Its keys are distribution's, under the root directory.
    let hex = index.digest.trim_start_matches("sha256:");
    let prefix = format!("{}/docker/registry/v2/", ROOT.trim_start_matches('/'));
    let keys = moto.keys(&bucket, &prefix);
    for want in [
        format!("{prefix}repositories/team/app/_manifests/tags/v1/current/link"),
        format!("{prefix}repositories/team/app/_manifests/revisions/sha256/{hex}/link"),
        format!("{prefix}blobs/sha256/{}/{hex}/data", &hex[..2]),
    ] {
        assert!(keys.contains(&want), "{want} not in {keys:#?}");
    }

    // A 64 MiB layer in one streamed PATCH; a GET is a 307 to a presigned URL that serves it whole and by range.
    let big = noise(64 << 20, fresh_seed());
    let big_digest = sha256_of(&big);
    let loc = start_upload(&reg, "team/big");
    let reply = reg
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .body(big.clone())
        .send();
    reply.expect(202);
    reg.req(
        "PUT",
        &with_query(&location(&reply), &format!("digest={big_digest}")),
    )
    .send()
    .expect(201);
    let got = reg
        .req("GET", &format!("/v2/team/big/blobs/{big_digest}"))
        .send();
    got.expect(307);
    let url = got.header("Location").expect("a Location");
    assert!(
        url.starts_with(&moto.endpoint()) && url.contains("X-Amz-Signature"),
        "{url}"
    );
    let fetched = reqwest::blocking::get(&url).expect("the presigned URL answers");
    assert_eq!(fetched.status().as_u16(), 200);
    assert!(
        fetched.bytes().expect("its body")[..] == big[..],
        "the 64 MiB blob back"
    );
    let part = reqwest::blocking::Client::new()
        .get(&url)
        .header("Range", "bytes=40000000-40000099")
        .send()
        .expect("a ranged GET of the presigned URL");
    assert_eq!(part.status().as_u16(), 206);
    assert!(part.bytes().unwrap()[..] == big[40_000_000..40_000_100]);

    // A chunked upload of 1 MiB chunks (smaller than S3's 5 MiB part).
    let data = noise(3 << 20 | 12_345, fresh_seed());
    let digest = sha256_of(&data);
    let mut loc = start_upload(&reg, "team/chunked");
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        let reply = patch_chunk(&reg, &loc, i << 20, chunk);
        reply.expect(202);
        loc = location(&reply);
    }
    reg.req("PUT", &with_query(&loc, &format!("digest={digest}")))
        .send()
        .expect(201);
    reg.req("HEAD", &format!("/v2/team/chunked/blobs/{digest}"))
        .send()
        .expect(200);

    // A cross-repository mount.
    reg.req(
        "POST",
        &format!("/v2/team/mounted/blobs/uploads/?mount={digest}&from=team/chunked"),
    )
    .send()
    .expect(201);
    reg.req("HEAD", &format!("/v2/team/mounted/blobs/{digest}"))
        .send()
        .expect(200);

    // Referrers: an artifact whose subject is the amd64 manifest.
    let subject = &images[0].manifest;
    let config = reg.push_blob("team/app", b"{}");
    let artifact = oci_manifest(
        (&config, 2),
        &[],
        json!({"artifactType": "application/vnd.gatehouse.test.sig.v1",
               "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size}}),
    );
    reg.put_manifest("team/app", &sha256_of(&artifact), oci::MANIFEST, &artifact)
        .expect(201);
    let referrers = reg
        .req("GET", &format!("/v2/team/app/referrers/{}", subject.digest))
        .send();
    referrers.expect(200);
    let listed = referrers.json()["manifests"].clone();
    assert_eq!(listed[0]["digest"], json!(sha256_of(&artifact)), "{listed}");

    // Deletes: the tag's manifest by digest, then the chunked blob.
    reg.req(
        "DELETE",
        &format!("/v2/team/app/manifests/{}", index.digest),
    )
    .send()
    .expect(202);
    reg.get_manifest("team/app", &index.digest).expect(404);
    reg.req("DELETE", &format!("/v2/team/chunked/blobs/{digest}"))
        .send()
        .expect(202);
    reg.req("HEAD", &format!("/v2/team/chunked/blobs/{digest}"))
        .send()
        .expect(404);
    assert!(reg.catalog().contains(&"team/app".to_string()));
}

#[test]
fn s3_distribution_reads_what_gatehouse_wrote_and_back() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-compat");
    let gh = gatehouse_on(&moto, &bucket, &[]);
    let dist = DistributionS3::start(&moto, &bucket);
    let work = temp_dir("s3-compat");

    let (mine, mine_index, _) = oci::multiarch_image(&work.path().join("gh"), "v1", "by gatehouse");
    push(&mine, "v1", &gh.host(), "from/gatehouse");
    let (theirs, theirs_image) =
        oci::small_image(&work.path().join("dist"), "v2", "by distribution");
    push(&theirs, "v2", &dist.host(), "from/distribution");

    let (d, back, _x) = pull(&dist.host(), "from/gatehouse", "v1");
    assert_eq!(d, mine_index.digest, "distribution reads gatehouse's image");
    let (d, back2, _y) = pull(&gh.host(), "from/distribution", "v2");
    assert_eq!(
        d, theirs_image.manifest.digest,
        "gatehouse reads distribution's image"
    );
    assert_eq!(
        back2.read_blob(&theirs_image.layer.digest),
        theirs.read_blob(&theirs_image.layer.digest)
    );
    drop(back);
    let reg = Reg::new(&gh.url(), None);
    let mut catalog = reg.catalog();
    catalog.sort();
    assert_eq!(catalog, vec!["from/distribution", "from/gatehouse"]);
}

#[test]
fn s3_two_instances_share_upload_sessions_and_images() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-shared");
    let a = gatehouse_on(
        &moto,
        &bucket,
        &[("REGISTRY_STORAGE_REDIRECT_DISABLE", "true")],
    );
    let b = gatehouse_on(&moto, &bucket, &[("GATEHOUSE_GC_DELETE_UNTAGGED", "true")]);
    let (ra, rb) = (Reg::new(&a.url(), None), Reg::new(&b.url(), None));
    // A setting that cannot take effect online on object storage is a warning naming it, on B only.
    let warning =
        "online runs on object storage delete no untagged manifest (GATEHOUSE_GC_DELETE_UNTAGGED";
    assert!(b.log_text().contains(warning), "{}", b.log_tail());
    assert!(!a.log_text().contains(warning), "{}", a.log_tail());

    // One chunked upload, its chunks alternating between the instances, finished on the other one.
    let data = noise(4 << 20, fresh_seed());
    let digest = sha256_of(&data);
    let mut loc = start_upload(&ra, "shared/chunked");
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        let reg = if i % 2 == 0 { &rb } else { &ra };
        let reply = patch_chunk(reg, &loc, i << 20, chunk);
        reply.expect(202);
        loc = location(&reply);
    }
    let status = ra.req("GET", &loc).send();
    status.expect(204);
    assert_eq!(status.header("Range").as_deref(), Some("0-4194303"));
    rb.req("PUT", &with_query(&loc, &format!("digest={digest}")))
        .send()
        .expect(201);
    // Instance A streams (REGISTRY_STORAGE_REDIRECT_DISABLE=true), whole and by range; B redirects.
    let blob = format!("/v2/shared/chunked/blobs/{digest}");
    assert!(ra.req("GET", &blob).send().expect(200).body == data);
    let part = ra
        .req("GET", &blob)
        .header("Range", "bytes=1048570-1048580")
        .send();
    assert!(part.expect(206).body[..] == data[1_048_570..=1_048_580]);
    rb.req("GET", &blob).send().expect(307);

    // Concurrent pushes spread over both, each pulled back from the other.
    let work = temp_dir("s3-two");
    let hosts = [a.host(), b.host()];
    let pushed: Vec<(String, String)> = thread::scope(|s| {
        let jobs: Vec<_> = (0..4)
            .map(|i| {
                let (dir, host) = (work.path().join(format!("img{i}")), hosts[i % 2].clone());
                s.spawn(move || {
                    let (layout, image) =
                        oci::small_image(&dir, "v1", &format!("push {i} {}", fresh_seed()));
                    push(&layout, "v1", &host, &format!("shared/img{i}"));
                    (format!("shared/img{i}"), image.manifest.digest)
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("a push"))
            .collect()
    });
    for (i, (repo, digest)) in pushed.iter().enumerate() {
        let (got, _, _d) = pull(&hosts[(i + 1) % 2], repo, "v1");
        assert_eq!(&got, digest, "{repo} pulled from the other instance");
    }
}

#[test]
fn s3_a_missing_bucket_fails_at_start_naming_the_setting() {
    let moto = Moto::start();
    let work = temp_dir("s3-missing");
    let config = work.path().join("gatehouse.toml");
    std::fs::write(&config, "[guard]\nenabled = false\n").unwrap();
    let mut cmd = Command::new(gatehouse::bin());
    crate::util::process::scrub_env(&mut cmd);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(work.path());
    for (k, v) in moto.env("no-such-bucket") {
        cmd.env(k, v);
    }
    cmd.env(
        "REGISTRY_HTTP_ADDR",
        format!("127.0.0.1:{}", net::free_port()),
    )
    .env("REGISTRY_AUTH", "none")
    .env(
        "GATEHOUSE_METRICS_ADDR",
        format!("127.0.0.1:{}", net::free_port()),
    );
    let out = cmd.output().expect("running gatehouse");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "gatehouse started on a missing bucket:\n{text}"
    );
    assert!(
        text.contains("REGISTRY_STORAGE_S3_BUCKET") && text.contains("no-such-bucket"),
        "{text}"
    );
}

#[test]
fn s3_unreachable_storage_is_a_503_and_the_upload_resumes_when_it_is_back() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-faults");
    let gate = Gate::start(moto.port);
    let gh = gatehouse_via(
        &moto,
        &bucket,
        &gate.endpoint(),
        &[("REGISTRY_STORAGE_REDIRECT_DISABLE", "true")],
    );
    let reg = Reg::new(&gh.url(), None);
    let data = noise(2 << 20, fresh_seed());
    let digest = sha256_of(&data);
    let loc = start_upload(&reg, "faults/app");
    let reply = patch_chunk(&reg, &loc, 0, &data[..1 << 20]);
    reply.expect(202);
    let loc = location(&reply);

    // The store goes away mid-upload: the chunk is refused with 503, nothing partial is anywhere.
    gate.shut();
    patch_chunk(&reg, &loc, 1 << 20, &data[1 << 20..]).expect_error(503, "UNAVAILABLE");
    reg.req("GET", &format!("/v2/faults/app/blobs/{digest}"))
        .send()
        .expect_error(503, "UNAVAILABLE");

    // It comes back: the same gatehouse, no restart; the session is where it was and resumes.
    gate.open();
    let status = reg.req("GET", &loc).send();
    status.expect(204);
    assert_eq!(status.header("Range").as_deref(), Some("0-1048575"));
    let reply = patch_chunk(&reg, &loc, 1 << 20, &data[1 << 20..]);
    reply.expect(202);
    reg.req(
        "PUT",
        &with_query(&location(&reply), &format!("digest={digest}")),
    )
    .send()
    .expect(201);
    assert!(
        reg.req("GET", &format!("/v2/faults/app/blobs/{digest}"))
            .send()
            .expect(200)
            .body
            == data
    );
    let prefix = format!("{}/docker/registry/v2/blobs/", ROOT.trim_start_matches('/'));
    assert_eq!(
        moto.keys(&bucket, &prefix).len(),
        1,
        "one blob, nothing partial"
    );
}

/// `/v2/_catalog?n=&last=` over S3 answers the pages the filesystem catalog answers for the same nested names
/// (n = 1..3, following `Link`), and the other instance on the bucket answers the same pages (no cursor state).
#[test]
fn s3_catalog_pages_match_the_filesystem_catalog() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-catalog");
    let a = gatehouse_on(&moto, &bucket, &[]);
    let b = gatehouse_on(&moto, &bucket, &[]);
    let fs_root = temp_dir("s3-catalog-fs");
    let fs = crate::util::embedded::Embedded::launch(
        fs_root.path(),
        crate::util::embedded::Setup {
            auth: false,
            delete: true,
            by_env: false,
        },
    );
    let (ra, rb, rf) = (Reg::new(&a.url(), None), Reg::new(&b.url(), None), fs.reg());
    let names = [
        "a",
        "a-b",
        "a-b/c",
        "a.b",
        "a/b",
        "a/b/c",
        "a0",
        "team",
        "team/app",
        "team-x/app",
        "z/y/x",
    ];
    for (i, repo) in names.iter().enumerate() {
        ra.push_blob(repo, format!("blob {i}").as_bytes());
        rf.push_blob(repo, format!("blob {i}").as_bytes());
    }
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(ra.catalog(), sorted);
    for n in 1..=3 {
        let first = format!("/v2/_catalog?n={n}");
        let on_fs = crate::util::embedded::pages(&rf, &first, "repositories");
        assert_eq!(on_fs.concat(), sorted, "n={n}");
        assert_eq!(
            crate::util::embedded::pages(&ra, &first, "repositories"),
            on_fs,
            "n={n}"
        );
        // Page 2 asked of the other instance, from the Link the first one sent.
        let mid = format!("/v2/_catalog?n={n}&last=a-b%2Fc");
        assert_eq!(
            crate::util::embedded::pages(&rb, &mid, "repositories"),
            crate::util::embedded::pages(&rf, &mid, "repositories"),
            "n={n}"
        );
    }
}

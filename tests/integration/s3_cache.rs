//! The manifest cache with several instances on one bucket (issue 12): a tag moved or a manifest deleted on one
//! gatehouse shows on another within the tag TTL (`GATEHOUSE_S3_TAG_CACHE_TTL`), at once with a TTL of 0; an
//! instance's own deletes show on it at once; a GET by tag within the TTL needs no storage request at all, a GET
//! by digest always reads the repository's revision link.

use std::thread;
use std::time::Duration;

use crate::s3::{gatehouse_on, gatehouse_via};
use crate::util::embedded::Reg;
use crate::util::http::Reply;
use crate::util::moto::{Gate, Moto};

/// The tag TTL of instance A.
const TTL: Duration = Duration::from_secs(2);

/// The digest a manifest GET answered with (after checking it is a 200).
fn digest_of(reply: Reply) -> String {
    reply.expect(200);
    reply
        .header("Docker-Content-Digest")
        .expect("Docker-Content-Digest")
}

/// Sleeps past the TTL: whatever A cached before this is expired after it, however slow the machine.
fn past_the_ttl() {
    thread::sleep(TTL + Duration::from_millis(200));
}

#[test]
fn s3_a_tag_moved_or_a_manifest_deleted_on_one_instance_shows_on_the_other() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-cache");
    let a = gatehouse_on(&moto, &bucket, &[("GATEHOUSE_S3_TAG_CACHE_TTL", "2s")]);
    let b = gatehouse_on(&moto, &bucket, &[("GATEHOUSE_S3_TAG_CACHE_TTL", "0")]);
    let (ra, rb) = (Reg::new(&a.url(), None), Reg::new(&b.url(), None));
    let repo = "cache/app";

    // Both instances read v1 (and cache its body; A also the tag).
    let (m1, d1) = rb.push_image(repo, "v1", "one");
    assert!(ra.get_manifest(repo, "v1").expect(200).body == m1);
    assert_eq!(digest_of(rb.get_manifest(repo, "v1")), d1);

    // Moved on A: B (TTL 0) sees it at once although it had v1's body cached.
    let (_, d2) = ra.push_image(repo, "v1", "two");
    assert_eq!(digest_of(rb.get_manifest(repo, "v1")), d2);
    assert_eq!(digest_of(ra.get_manifest(repo, "v1")), d2, "A's own write");

    // Moved on B: A answers the new digest once its TTL is over (before that it may still answer d2).
    let (m3, d3) = rb.push_image(repo, "v1", "three");
    past_the_ttl();
    let got = ra.get_manifest(repo, "v1");
    got.expect(200);
    assert_eq!(got.header("Docker-Content-Digest").as_deref(), Some(&*d3));
    assert!(got.body == m3);
    // By digest nothing is stale: the untagged older manifests are still there, on both.
    for r in [&ra, &rb] {
        assert_eq!(digest_of(r.get_manifest(repo, &d1)), d1);
        assert_eq!(digest_of(r.get_manifest(repo, &d2)), d2);
    }

    // Deleted by digest on B (which drops its tags): 404 by digest on both at once, by tag on B at once and
    // on A after its TTL.
    assert_eq!(
        digest_of(ra.get_manifest(repo, "v1")),
        d3,
        "A has it cached"
    );
    rb.req("DELETE", &format!("/v2/{repo}/manifests/{d3}"))
        .send()
        .expect(202);
    for r in [&ra, &rb] {
        r.get_manifest(repo, &d3)
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
    rb.get_manifest(repo, "v1")
        .expect_error(404, "MANIFEST_UNKNOWN");
    past_the_ttl();
    ra.get_manifest(repo, "v1")
        .expect_error(404, "MANIFEST_UNKNOWN");

    // A's own deletes show on A at once, by tag and by digest, even with the tag cached.
    let (_, d4) = ra.push_image(repo, "v4", "four");
    assert_eq!(digest_of(ra.get_manifest(repo, "v4")), d4);
    ra.req("DELETE", &format!("/v2/{repo}/manifests/v4"))
        .send()
        .expect(202);
    ra.get_manifest(repo, "v4")
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(
        digest_of(ra.get_manifest(repo, &d4)),
        d4,
        "only the tag went"
    );
    let (_, d5) = ra.push_image(repo, "v5", "five");
    assert_eq!(digest_of(ra.get_manifest(repo, "v5")), d5);
    ra.req("DELETE", &format!("/v2/{repo}/manifests/{d5}"))
        .send()
        .expect(202);
    for reference in ["v5", d5.as_str()] {
        ra.get_manifest(repo, reference)
            .expect_error(404, "MANIFEST_UNKNOWN");
    }
}

#[test]
fn s3_a_get_by_tag_within_the_ttl_needs_no_storage_request_a_get_by_digest_does() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-cache-hit");
    let gate = Gate::start(moto.port);
    let gh = gatehouse_via(
        &moto,
        &bucket,
        &gate.endpoint(),
        &[("GATEHOUSE_S3_TAG_CACHE_TTL", "60s")],
    );
    let reg = Reg::new(&gh.url(), None);
    let (manifest, digest) = reg.push_image("hit/app", "v1", "cached");
    // The store goes away: the tag and its body are answered from memory, the digest needs its revision link.
    gate.shut();
    let got = reg.get_manifest("hit/app", "v1");
    got.expect(200);
    assert!(got.body == manifest);
    assert_eq!(got.header("Docker-Content-Digest"), Some(digest.clone()));
    reg.get_manifest("hit/app", &digest)
        .expect_error(503, "UNAVAILABLE");
    gate.open();
    assert_eq!(digest_of(reg.get_manifest("hit/app", &digest)), digest);
}

//! Checks of the harness itself, with no gatehouse involved: the tools are installed, the hand-made tar and
//! OCI layouts are what real tools accept, and the skopeo round trips of `push_pull.rs` pass when run
//! straight against distribution (so a failure through gatehouse points at gatehouse, not at the harness).

use std::process::Command;

use crate::push_pull::{multiarch_round_trip, small_image_round_trip};
use crate::util::http::Http;
use crate::util::oci;
use crate::util::process::{require_tool, vm_hwm_kib};
use crate::util::{temp_dir, Distribution};

#[test]
fn harness_tar_layers_are_read_by_gnu_tar() {
    let tar_bin = require_tool("tar", "tar");
    let dir = temp_dir("tar");
    let path = dir.path().join("layer.tar.gz");
    let files: [(&str, &[u8]); 2] = [("hello.txt", b"hello\n"), ("etc/big", &[7u8; 1300])];
    std::fs::write(&path, oci::gzip(&oci::tar(&files))).expect("writing the layer");
    let out = Command::new(tar_bin)
        .arg("-tvzf")
        .arg(&path)
        .output()
        .expect("running tar");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tar rejected the layer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains("hello.txt") && listing.contains("etc/big") && listing.contains("1300"),
        "{listing}"
    );
}

#[test]
fn harness_vm_hwm_is_readable() {
    let kib = vm_hwm_kib(std::process::id());
    assert!(kib > 0, "VmHWM of the test process is {kib} KiB");
}

#[test]
fn harness_distribution_restarts_on_the_same_port() {
    let mut dist = Distribution::start();
    let http = Http::new(&dist.url());
    http.req("GET", "/v2/")
        .send()
        .expect(200)
        .expect_api_version();
    dist.stop();
    dist.restart();
    http.req("GET", "/v2/").send().expect(200);
}

#[test]
fn harness_skopeo_round_trips_straight_to_distribution() {
    let dist = Distribution::start();
    small_image_round_trip(&dist.host(), None, &dist);
    multiarch_round_trip(&dist.host(), None, &dist);
}

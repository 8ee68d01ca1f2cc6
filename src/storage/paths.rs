//! Storage paths, mapped exactly as distribution 2.8's `registry/storage/paths.go` lays them out.
//!
//! Every path is relative to the configured root and uses `/` separators, for example
//! `docker/registry/v2/repositories/team/app/_layers/sha256/<hex>/link`. Inputs are validated types
//! ([`Name`], [`Tag`], [`Digest`], [`UploadId`]), so no path here can leave the root.

pub use crate::names::UploadId;
use crate::names::{Digest, Name, Tag};

/// The prefix every path of distribution's layout starts with.
pub const V2_ROOT: &str = "docker/registry/v2";

/// `<alg>/<hex>`, the digest path components used under `_layers`, `revisions` and tag indexes.
fn digest_dir(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().as_str(), d.hex())
}

/// `docker/registry/v2/repositories`.
pub fn repositories_root() -> String {
    format!("{V2_ROOT}/repositories")
}

/// `docker/registry/v2/blobs`.
pub fn blobs_root() -> String {
    format!("{V2_ROOT}/blobs")
}

/// The repository's directory.
pub fn repo_dir(name: &Name) -> String {
    format!("{V2_ROOT}/repositories/{name}")
}

/// `blobs/<alg>/<first two hex>/<hex>/data`: the content of a blob.
pub fn blob_data(d: &Digest) -> String {
    format!(
        "{V2_ROOT}/blobs/{}/{}/{}/data",
        d.algorithm().as_str(),
        &d.hex()[..2],
        d.hex()
    )
}

/// `blobs/<alg>/<first two hex>/<hex>`: the directory holding a blob's data.
pub fn blob_dir(d: &Digest) -> String {
    format!(
        "{V2_ROOT}/blobs/{}/{}/{}",
        d.algorithm().as_str(),
        &d.hex()[..2],
        d.hex()
    )
}

/// `_layers/<alg>/<hex>/link`: the link that makes a blob visible in a repository.
pub fn layer_link(name: &Name, d: &Digest) -> String {
    format!("{}/_layers/{}/link", repo_dir(name), digest_dir(d))
}

/// `_layers`: the repository's layer link directory.
pub fn layers_dir(name: &Name) -> String {
    format!("{}/_layers", repo_dir(name))
}

/// `_manifests`: the repository's manifest directory.
pub fn manifests_dir(name: &Name) -> String {
    format!("{}/_manifests", repo_dir(name))
}

/// `_manifests/revisions`: the directory of manifest revision links.
pub fn revisions_dir(name: &Name) -> String {
    format!("{}/_manifests/revisions", repo_dir(name))
}

/// `_manifests/revisions/<alg>/<hex>/link`: the link that makes a manifest visible in a repository.
pub fn revision_link(name: &Name, d: &Digest) -> String {
    format!("{}/{}/link", revisions_dir(name), digest_dir(d))
}

/// `_manifests/tags`: the directory of tags.
pub fn tags_dir(name: &Name) -> String {
    format!("{}/_manifests/tags", repo_dir(name))
}

/// `_manifests/tags/<tag>`: one tag's directory (removed whole to untag).
pub fn tag_dir(name: &Name, tag: &Tag) -> String {
    format!("{}/{tag}", tags_dir(name))
}

/// `_manifests/tags/<tag>/current/link`: the manifest a tag points at.
pub fn tag_current_link(name: &Name, tag: &Tag) -> String {
    format!("{}/current/link", tag_dir(name, tag))
}

/// `_manifests/tags/<tag>/index/<alg>/<hex>/link`: the tag's history entry for one manifest.
pub fn tag_index_link(name: &Name, tag: &Tag, d: &Digest) -> String {
    format!("{}/index/{}/link", tag_dir(name, tag), digest_dir(d))
}

/// `_uploads`: the repository's upload sessions.
pub fn uploads_dir(name: &Name) -> String {
    format!("{}/_uploads", repo_dir(name))
}

/// `_uploads/<id>`: one upload session's directory.
pub fn upload_dir(name: &Name, id: &UploadId) -> String {
    format!("{}/{id}", uploads_dir(name))
}

/// `_uploads/<id>/data`: the bytes received so far.
pub fn upload_data(name: &Name, id: &UploadId) -> String {
    format!("{}/data", upload_dir(name, id))
}

/// `_uploads/<id>/hashstates/<alg>/<offset>`: the hash of the first `offset` bytes, as distribution stores it.
pub fn upload_hash_state(
    name: &Name,
    id: &UploadId,
    alg: crate::names::Algorithm,
    offset: u64,
) -> String {
    format!(
        "{}/hashstates/{}/{offset}",
        upload_dir(name, id),
        alg.as_str()
    )
}

/// `_uploads/<id>/startedat`: the session's start time; its presence makes the session known.
pub fn upload_started_at(name: &Name, id: &UploadId) -> String {
    format!("{}/startedat", upload_dir(name, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";

    #[test]
    fn paths_match_distribution_layout() {
        let n = Name::parse("team/app").unwrap();
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        let t = Tag::parse("v1").unwrap();
        let r = "docker/registry/v2/repositories/team/app";
        assert_eq!(
            blob_data(&d),
            format!("docker/registry/v2/blobs/sha256/b5/{HEX}/data")
        );
        assert_eq!(layer_link(&n, &d), format!("{r}/_layers/sha256/{HEX}/link"));
        assert_eq!(
            revision_link(&n, &d),
            format!("{r}/_manifests/revisions/sha256/{HEX}/link")
        );
        assert_eq!(
            tag_current_link(&n, &t),
            format!("{r}/_manifests/tags/v1/current/link")
        );
        assert_eq!(
            tag_index_link(&n, &t, &d),
            format!("{r}/_manifests/tags/v1/index/sha256/{HEX}/link")
        );
        let id = UploadId::parse("0f4c3a52-3f6e-4d1c-9a53-0a4b8c1f2e3d").unwrap();
        assert_eq!(upload_data(&n, &id), format!("{r}/_uploads/{id}/data"));
        assert_eq!(
            upload_started_at(&n, &id),
            format!("{r}/_uploads/{id}/startedat")
        );
    }

    #[test]
    fn upload_ids_have_one_grammar_that_cannot_leave_the_session_directory() {
        for bad in [
            "",
            "..",
            "../../etc",
            "{0f4c3a52-3f6e-4d1c-9a53-0a4b8c1f2e3d}",
            "0f4c3a52-3f6e-4d1c-9a53-0a4b8c1f2e3d/x",
            "a.b",
        ] {
            assert!(UploadId::parse(bad).is_none(), "{bad}");
        }
        // Other spellings of a UUID are other ids: they name another (unknown) session, never this one.
        let canonical = UploadId::parse("0f4c3a52-3f6e-4d1c-9a53-0a4b8c1f2e3d").unwrap();
        for other in [
            "0F4C3A52-3F6E-4D1C-9A53-0A4B8C1F2E3D",
            "0f4c3a523f6e4d1c9a530a4b8c1f2e3d",
        ] {
            assert_ne!(UploadId::parse(other), Some(canonical.clone()), "{other}");
        }
        let fresh = UploadId::new_random();
        assert_eq!(UploadId::parse(fresh.as_str()), Some(fresh));
    }
}

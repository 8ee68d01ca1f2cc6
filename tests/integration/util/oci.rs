//! Small OCI images built without a container engine, as an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/...`) that `skopeo copy oci:DIR:TAG ...` reads: a hand-written tar layer,
//! gzipped already (skopeo would re-gzip an uncompressed layer and change its digest), a config, a manifest,
//! and a multi-arch image index over two platforms.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// OCI media types used here.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A tar archive (ustar) of regular files, each `(path, content)`, mode 0644, owned by root, mtime 0.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in files {
        assert!(
            name.len() < 100,
            "tar(): file name {name:?} too long for this writer"
        );
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{:0width$o}\0", value, width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], 0o644);
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], content.len() as u64);
        octal(&mut header[136..148], 0);
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// `data` gzipped (no file name, mtime 0: the same input always gives the same bytes).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// A content descriptor.
#[derive(Clone, Debug)]
pub struct Desc {
    /// The media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Desc {
    fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// The parts of one single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest.
    pub manifest: Desc,
    /// The config blob.
    pub config: Desc,
    /// The one gzipped layer.
    pub layer: Desc,
}

/// An OCI image layout directory.
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Creates an empty layout at `dir` (created if missing).
    pub fn create(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("creating blobs/sha256");
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("writing oci-layout");
        fs::write(
            dir.join("index.json"),
            r#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .expect("writing index.json");
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Opens an existing layout (for example one skopeo wrote).
    pub fn open(dir: &Path) -> Layout {
        assert!(
            dir.join("index.json").is_file(),
            "{} is not an OCI layout",
            dir.display()
        );
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a blob, returning its descriptor with `media_type`.
    pub fn put_blob(&self, media_type: &str, data: &[u8]) -> Desc {
        let digest = sha256_digest(data);
        let path = self
            .dir
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]);
        fs::write(&path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        Desc {
            media_type: media_type.to_string(),
            digest,
            size: data.len() as u64,
        }
    }

    /// Reads blob `digest`.
    pub fn read_blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let path = self.dir.join("blobs/sha256").join(hex);
        fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Builds a linux/`arch` image with one gzipped layer holding `files`.
    pub fn image(&self, arch: &str, files: &[(&str, &[u8])]) -> Image {
        let layer_tar = tar(files);
        let layer = self.put_blob(LAYER_GZIP, &gzip(&layer_tar));
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer_tar)]},
        });
        let config = self.put_blob(CONFIG, &serde_json::to_vec(&config).expect("config JSON"));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        });
        let manifest = self.put_blob(
            MANIFEST,
            &serde_json::to_vec(&manifest).expect("manifest JSON"),
        );
        Image {
            manifest,
            config,
            layer,
        }
    }

    /// Builds an image index over `manifests`, each with its linux platform `arch`.
    pub fn index(&self, manifests: &[(&Desc, &str)]) -> Desc {
        let entries: Vec<Value> = manifests
            .iter()
            .map(|(desc, arch)| {
                let mut entry = desc.to_json();
                entry["platform"] = json!({"architecture": arch, "os": "linux"});
                entry
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries});
        self.put_blob(INDEX, &serde_json::to_vec(&index).expect("index JSON"))
    }

    /// Names `desc` `tag` in index.json (replacing an entry of the same name).
    pub fn tag(&self, tag: &str, desc: &Desc) {
        let path = self.dir.join("index.json");
        let mut index: Value =
            serde_json::from_slice(&fs::read(&path).expect("reading index.json"))
                .expect("index.json");
        let list = index["manifests"]
            .as_array_mut()
            .expect("index.json manifests");
        list.retain(|m| m["annotations"][REF_NAME] != tag);
        let mut entry = desc.to_json();
        entry["annotations"] = json!({ REF_NAME: tag });
        list.push(entry);
        fs::write(&path, serde_json::to_vec(&index).expect("index.json"))
            .expect("writing index.json");
    }

    /// The descriptor that index.json names `tag`; panics when there is none.
    pub fn lookup(&self, tag: &str) -> Desc {
        let index: Value = serde_json::from_slice(
            &fs::read(self.dir.join("index.json")).expect("reading index.json"),
        )
        .expect("index.json");
        let entry = index["manifests"]
            .as_array()
            .and_then(|list| list.iter().find(|m| m["annotations"][REF_NAME] == tag))
            .unwrap_or_else(|| panic!("no {tag:?} in {}/index.json: {index}", self.dir.display()));
        Desc {
            media_type: entry["mediaType"].as_str().unwrap_or_default().to_string(),
            digest: entry["digest"].as_str().expect("digest").to_string(),
            size: entry["size"].as_u64().expect("size"),
        }
    }
}

/// Builds a small linux/amd64 image tagged `tag` in a new layout at `dir`; `label` makes its content unique.
pub fn small_image(dir: &Path, tag: &str, label: &str) -> (Layout, Image) {
    let layout = Layout::create(dir);
    let hello = format!("hello from gatehouse's tests: {label}\n");
    let image = layout.image(
        "amd64",
        &[
            ("hello.txt", hello.as_bytes()),
            ("etc/label", label.as_bytes()),
        ],
    );
    layout.tag(tag, &image.manifest);
    (layout, image)
}

/// Builds a two-platform (linux/amd64, linux/arm64) image index tagged `tag` in a new layout at `dir`.
pub fn multiarch_image(dir: &Path, tag: &str, label: &str) -> (Layout, Desc, Vec<Image>) {
    let layout = Layout::create(dir);
    let images: Vec<Image> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let text = format!("{label} for {arch}\n");
            layout.image(arch, &[("arch.txt", text.as_bytes())])
        })
        .collect();
    let index = layout.index(&[
        (&images[0].manifest, "amd64"),
        (&images[1].manifest, "arm64"),
    ]);
    layout.tag(tag, &index);
    (layout, index, images)
}

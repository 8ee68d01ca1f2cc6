//! The S3 driver's settings: the `[storage.s3]` section of the file schema, with distribution's names
//! (`region`, `bucket`, `regionendpoint`, `accesskey`, `secretkey`, `rootdirectory`, `forcepathstyle`, `secure`,
//! `chunksize`; env `REGISTRY_STORAGE_S3_*`), and [`S3Section::validate`], which turns it into [`S3Settings`].

use crate::settings::Invalid;
use serde::{Deserialize, Serialize};

/// S3's smallest part of a multipart upload (every part but the last).
pub const MIN_CHUNK: u64 = 5 << 20;
/// distribution's default `chunksize`.
pub const DEFAULT_CHUNK: u64 = 10 << 20;
/// The default `tag_cache_ttl`: one second of staleness across instances buys GETs by tag that skip the store.
pub const DEFAULT_TAG_CACHE_TTL: &str = "1s";
/// The largest `chunksize` accepted (one part is held in memory per upload being written).
pub const MAX_CHUNK: u64 = 256 << 20;

/// `[storage.s3]` as written in the file (its `Debug` elides the secret key).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Section {
    /// The bucket's region (`us-east-1` for most S3-compatible services).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); empty for AWS.
    pub regionendpoint: String,
    /// The access key; empty to take credentials from the AWS environment or instance metadata.
    pub accesskey: String,
    /// The secret key (with `accesskey`).
    pub secretkey: String,
    /// The prefix of every key (`/registry` stores `registry/docker/registry/v2/...`).
    pub rootdirectory: String,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones (`bucket.endpoint/key`).
    pub forcepathstyle: bool,
    /// HTTPS to an endpoint given without a scheme (and whether plain http is allowed at all).
    pub secure: bool,
    /// The multipart part size in bytes (at least 5 MiB): one part per writer is held in memory.
    pub chunksize: u64,
    /// Stream blobs through gatehouse instead of answering a blob GET with a 307 to a presigned URL
    /// (distribution's `storage.redirect.disable`; env `REGISTRY_STORAGE_REDIRECT_DISABLE`).
    pub redirect_disable: bool,
    /// How long a tag's digest is answered from memory without reading the tag's link (a Go duration, at most
    /// 60s; `0` reads it on every GET). A tag moved or deleted on another instance may be answered with its old
    /// digest for this long; this instance's own writes show at once (env `GATEHOUSE_S3_TAG_CACHE_TTL`).
    pub tag_cache_ttl: String,
}

impl Default for S3Section {
    fn default() -> Self {
        S3Section {
            region: String::new(),
            bucket: String::new(),
            regionendpoint: String::new(),
            accesskey: String::new(),
            secretkey: String::new(),
            rootdirectory: String::new(),
            forcepathstyle: false,
            secure: true,
            chunksize: DEFAULT_CHUNK,
            redirect_disable: false,
            tag_cache_ttl: DEFAULT_TAG_CACHE_TTL.to_string(),
        }
    }
}

impl std::fmt::Debug for S3Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Section")
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("regionendpoint", &self.regionendpoint)
            .field("accesskey", &self.accesskey)
            .field(
                "secretkey",
                &if self.secretkey.is_empty() {
                    ""
                } else {
                    "<elided>"
                },
            )
            .field("rootdirectory", &self.rootdirectory)
            .field("forcepathstyle", &self.forcepathstyle)
            .field("secure", &self.secure)
            .field("chunksize", &self.chunksize)
            .field("redirect_disable", &self.redirect_disable)
            .field("tag_cache_ttl", &self.tag_cache_ttl)
            .finish()
    }
}

/// Validated S3 settings (its `Debug` elides the secret key).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The endpoint URL with its scheme, `None` for AWS.
    pub endpoint: Option<String>,
    /// Static credentials, `None` to use the AWS environment or instance metadata.
    pub credentials: Option<(String, String)>,
    /// The key prefix without leading or trailing `/` (empty for the bucket's root).
    pub root: String,
    /// Path-style requests.
    pub path_style: bool,
    /// Whether plain http is allowed.
    pub allow_http: bool,
    /// The part size.
    pub chunk: u64,
    /// Whether blob GETs are answered with a presigned URL (307).
    pub redirect: bool,
    /// How long a tag's digest is trusted without reading it ([`crate::storage::manifest_cache`]).
    pub tag_cache_ttl: std::time::Duration,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("accesskey", &self.credentials.as_ref().map(|c| &c.0))
            .field("root", &self.root)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("chunk", &self.chunk)
            .field("redirect", &self.redirect)
            .field("tag_cache_ttl", &self.tag_cache_ttl)
            .finish()
    }
}

/// Whether a bucket name is one S3 accepts (3-63 of `a-z0-9.-`, starting and ending alphanumeric).
fn bucket_ok(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl S3Section {
    /// Checks the section; the error names the field (`bucket`, `region`, ...).
    pub fn validate(&self) -> Result<S3Settings, Invalid> {
        let bucket = self.bucket.trim();
        if bucket.is_empty() {
            return Err(Invalid::new(
                "bucket",
                "is empty: name the bucket (REGISTRY_STORAGE_S3_BUCKET)",
            ));
        }
        if !bucket_ok(bucket) {
            return Err(Invalid::new(
                "bucket",
                format!("`{bucket}` is not a valid S3 bucket name"),
            ));
        }
        let region = self.region.trim();
        if region.is_empty() {
            return Err(Invalid::new(
                "region",
                "is empty: name the bucket's region (REGISTRY_STORAGE_S3_REGION; us-east-1 for most S3-compatible services)",
            ));
        }
        let endpoint = match self.regionendpoint.trim() {
            "" => None,
            e if e.starts_with("http://") || e.starts_with("https://") => {
                Some(e.trim_end_matches('/').to_string())
            }
            e if e.contains("://") => {
                return Err(Invalid::new(
                    "regionendpoint",
                    format!("`{e}`: only http:// and https:// endpoints"),
                ))
            }
            e => Some(format!(
                "{}://{}",
                if self.secure { "https" } else { "http" },
                e.trim_end_matches('/')
            )),
        };
        if let Some(e) = &endpoint {
            if url::Url::parse(e).map_or(true, |u| u.host_str().is_none()) {
                return Err(Invalid::new(
                    "regionendpoint",
                    format!("`{e}` is not a URL"),
                ));
            }
        }
        let (key, secret) = (self.accesskey.trim(), self.secretkey.trim());
        let credentials = match (key.is_empty(), secret.is_empty()) {
            (true, true) => None,
            (false, false) => Some((key.to_string(), secret.to_string())),
            (true, false) => return Err(Invalid::new(
                "accesskey",
                "is empty while secretkey is set: give both, or neither to use the AWS environment",
            )),
            (false, true) => return Err(Invalid::new(
                "secretkey",
                "is empty while accesskey is set: give both, or neither to use the AWS environment",
            )),
        };
        let root = self.rootdirectory.trim().trim_matches('/').to_string();
        if !root.is_empty() && super::super::check_key(&root).is_err() {
            return Err(Invalid::new(
                "rootdirectory",
                format!("`{root}` is not a usable key prefix"),
            ));
        }
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunksize) {
            return Err(Invalid::new(
                "chunksize",
                format!(
                    "{} is outside {MIN_CHUNK}..={MAX_CHUNK} bytes (S3's smallest part is 5 MiB)",
                    self.chunksize
                ),
            ));
        }
        let tag_cache_ttl = crate::config::values::parse_duration(&self.tag_cache_ttl)
            .map_err(|e| Invalid::new("tag_cache_ttl", e))?;
        if tag_cache_ttl > crate::storage::manifest_cache::MAX_TAG_TTL {
            return Err(Invalid::new(
                "tag_cache_ttl",
                format!(
                    "`{}` is longer than 60s: a tag moved on another instance would be served stale that long",
                    self.tag_cache_ttl.trim()
                ),
            ));
        }
        let allow_http = !self.secure
            || endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
        Ok(S3Settings {
            region: region.to_string(),
            bucket: bucket.to_string(),
            endpoint,
            credentials,
            root,
            path_style: self.forcepathstyle,
            allow_http,
            chunk: self.chunksize,
            redirect: !self.redirect_disable,
            tag_cache_ttl,
        })
    }
}

/// `REGISTRY_STORAGE=<driver>`: `s3` selects this driver (an empty `[storage.s3]` when the file has none),
/// `filesystem` the filesystem driver; any other driver is refused.
pub fn select(s3: &mut Option<S3Section>, value: &str) -> Result<(), String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "s3" => {
            s3.get_or_insert_with(S3Section::default);
            Ok(())
        }
        "filesystem" => {
            *s3 = None;
            Ok(())
        }
        other => Err(format!(
            "the `{other}` storage driver is not implemented: gatehouse stores data on the filesystem \
             (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY) or in S3 (REGISTRY_STORAGE=s3); refusing to start \
             rather than put the data somewhere else"
        )),
    }
}

/// `REGISTRY_STORAGE_REDIRECT_DISABLE`: only the S3 driver redirects, so without it there is nothing to turn off.
pub fn set_redirect_disable(s3: &mut Option<S3Section>, value: &str) -> Result<(), String> {
    let disable = parse_flag(value.trim())?;
    if let Some(s) = s3.as_mut() {
        s.redirect_disable = disable;
    }
    Ok(())
}

fn parse_flag(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

/// Sets one field of `[storage.s3]` from its `REGISTRY_STORAGE_S3_<FIELD>` variable; refused when the S3
/// driver is not selected (the value would not take effect).
pub fn set(s3: &mut Option<S3Section>, field: &str, value: &str) -> Result<(), String> {
    let Some(s) = s3.as_mut() else {
        return Err(
            "the S3 driver is not selected: set REGISTRY_STORAGE=s3 (or a [storage.s3] section)"
                .into(),
        );
    };
    let text = value.trim().to_string();
    let flag = || parse_flag(&text);
    match field {
        "region" => s.region = text,
        "bucket" => s.bucket = text,
        "regionendpoint" => s.regionendpoint = text,
        "accesskey" => s.accesskey = text,
        "secretkey" => s.secretkey = text,
        "rootdirectory" => s.rootdirectory = text,
        "forcepathstyle" => s.forcepathstyle = flag()?,
        "secure" => s.secure = flag()?,
        "tag_cache_ttl" => s.tag_cache_ttl = text,
        "chunksize" => {
            s.chunksize = text
                .parse()
                .map_err(|_| format!("`{text}` is not a number of bytes"))?
        }
        other => return Err(format!("storage.s3.{other} is not a setting")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> S3Section {
        S3Section {
            region: "us-east-1".into(),
            bucket: "reg".into(),
            regionendpoint: "http://127.0.0.1:9000".into(),
            accesskey: "ak".into(),
            secretkey: "sk".into(),
            rootdirectory: "/team/registry/".into(),
            forcepathstyle: true,
            ..S3Section::default()
        }
    }

    #[test]
    fn a_good_section_validates() {
        let s = good().validate().unwrap();
        assert_eq!(s.root, "team/registry");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s.allow_http && s.path_style);
        assert_eq!(s.credentials, Some(("ak".into(), "sk".into())));
        assert!(!format!("{s:?}").contains("sk\""));
        assert!(!format!("{:?}", good()).contains("\"sk\""));
    }

    #[test]
    fn bad_sections_name_the_field() {
        type Spoil = fn(&mut S3Section);
        let table: Vec<(&str, Spoil)> = vec![
            ("bucket", |s| s.bucket.clear()),
            ("bucket", |s| s.bucket = "Has_Upper".into()),
            ("bucket", |s| s.bucket = "a/b".into()),
            ("region", |s| s.region = " ".into()),
            ("regionendpoint", |s| s.regionendpoint = "ftp://x".into()),
            ("regionendpoint", |s| s.regionendpoint = "http://".into()),
            ("accesskey", |s| s.accesskey.clear()),
            ("secretkey", |s| s.secretkey.clear()),
            ("rootdirectory", |s| s.rootdirectory = "a/../b".into()),
            ("rootdirectory", |s| s.rootdirectory = "a//b".into()),
            ("chunksize", |s| s.chunksize = MIN_CHUNK - 1),
            ("chunksize", |s| s.chunksize = MAX_CHUNK + 1),
            ("tag_cache_ttl", |s| s.tag_cache_ttl = "61s".into()),
            ("tag_cache_ttl", |s| s.tag_cache_ttl = "soon".into()),
            ("tag_cache_ttl", |s| s.tag_cache_ttl = "".into()),
            ("tag_cache_ttl", |s| s.tag_cache_ttl = "-1s".into()),
        ];
        for (field, spoil) in table {
            let mut s = good();
            spoil(&mut s);
            let e = s.validate().unwrap_err();
            assert_eq!(e.field, field, "{s:?}: {}", e.problem);
        }
    }

    /// The TOML section takes distribution's names; an unknown one (a typo) is refused, not ignored.
    #[test]
    fn the_toml_section_uses_distributions_names() {
        let s: S3Section = toml::from_str(
            "region = \"us-east-1\"\nbucket = \"reg\"\nregionendpoint = \"http://127.0.0.1:9000\"\n\
             rootdirectory = \"/r\"\nforcepathstyle = true\nsecure = false\nchunksize = 5242880\n\
             redirect_disable = true\ntag_cache_ttl = \"250ms\"\n",
        )
        .unwrap();
        let v = s.validate().unwrap();
        assert_eq!(
            (v.root.as_str(), v.chunk, v.redirect, v.tag_cache_ttl),
            ("r", 5 << 20, false, std::time::Duration::from_millis(250))
        );
        assert_eq!(
            good().validate().unwrap().tag_cache_ttl,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(v.credentials, None);
        assert!(
            toml::from_str::<S3Section>("bucket = \"reg\"\nregion_endpoint = \"x\"\n").is_err()
        );
    }

    #[test]
    fn an_endpoint_without_scheme_follows_secure() {
        let mut s = good();
        s.regionendpoint = "minio.local:9000".into();
        assert_eq!(
            s.validate().unwrap().endpoint.as_deref(),
            Some("https://minio.local:9000")
        );
        s.secure = false;
        let v = s.validate().unwrap();
        assert_eq!(v.endpoint.as_deref(), Some("http://minio.local:9000"));
        assert!(v.allow_http);
        s.regionendpoint.clear();
        s.accesskey.clear();
        s.secretkey.clear();
        s.secure = true;
        let v = s.validate().unwrap();
        assert_eq!(
            (v.endpoint, v.credentials, v.allow_http),
            (None, None, false)
        );
    }
}

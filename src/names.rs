//! The distribution grammar for repository names, tags and digests.
//!
//! Every value here has been validated: a [`Name`] is lower-case path components joined by `/` with no `.`/`..`
//! component and no empty component, so it can be joined into a storage path without escaping the root.

use crate::errcode::{ApiError, Code};
use std::fmt;

/// The longest repository name distribution accepts.
pub const MAX_NAME_LEN: usize = 255;
/// The longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// A validated repository name, such as `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// A validated tag, such as `v1.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// The hash algorithms a digest may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

/// A validated content digest, such as `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The longest upload session id accepted in a path.
pub const MAX_UPLOAD_ID_LEN: usize = 128;

/// An upload session id, the one grammar for paths, routes and storage: `[A-Za-z0-9_=-]{1,128}`.
///
/// gatehouse issues lower-case hyphenated UUIDs (as distribution does); the wider grammar admits the ids other
/// upstream registries issue. No id can hold `/` or `.`, so it is safe as one storage path component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum_lower(b[i]) {
            return false;
        }
    }
    true
}

impl Name {
    /// Parses and validates a repository name.
    pub fn parse(s: &str) -> Result<Name, ApiError> {
        let invalid = |why: &str| {
            ApiError::new(Code::NameInvalid)
                .message(format!("invalid repository name: {why}"))
                .detail(serde_json::json!({ "name": truncate(s, 300) }))
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        if !s.split('/').all(valid_component) {
            return Err(invalid(
                "components must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
            ));
        }
        Ok(Name(s.to_string()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Tag {
    /// Parses and validates a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    pub fn parse(s: &str) -> Result<Tag, ApiError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_TAG_LEN
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Tag(s.to_string()))
        } else {
            Err(ApiError::new(Code::TagInvalid)
                .message("invalid tag")
                .detail(serde_json::json!({ "tag": truncate(s, 200) })))
        }
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Algorithm {
    /// The algorithm's name as written in a digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    /// Parses and validates `algorithm:hex` (sha256 or sha512, lower-case hex of the right length).
    pub fn parse(s: &str) -> Result<Digest, ApiError> {
        let invalid = |why: &str| {
            ApiError::new(Code::DigestInvalid)
                .message(format!("invalid digest: {why}"))
                .detail(serde_json::json!({ "digest": truncate(s, 200) }))
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| invalid("no algorithm"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid("wrong length"));
        }
        if !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(invalid("not lower-case hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// Builds a digest from an algorithm and raw hash bytes.
    pub fn from_hash(algorithm: Algorithm, hash: &[u8]) -> Digest {
        Digest {
            algorithm,
            hex: hex::encode(hash),
        }
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex-encoded hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl Reference {
    /// Parses a manifest reference: a digest when it contains `:`, else a tag.
    pub fn parse(s: &str) -> Result<Reference, ApiError> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl UploadId {
    /// A fresh random (v4 UUID) upload id.
    pub fn new_random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Parses an upload id; `None` when it does not fit the grammar.
    pub fn parse(s: &str) -> Option<UploadId> {
        let ok = !s.is_empty()
            && s.len() <= MAX_UPLOAD_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'-'));
        ok.then(|| UploadId(s.to_string()))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Cuts hostile input down before it is echoed in an error detail.
fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn components() {
        let table: &[(&str, bool)] = &[
            ("a", true),
            ("0", true),
            ("abc123", true),
            ("a.b", true),
            ("a_b", true),
            ("a__b", true),
            ("a-b", true),
            ("a-----b", true),
            ("a.b_c__d-e--f", true),
            ("", false),
            ("a..b", false),
            ("a___b", false),
            ("a.-b", false),
            ("a-.b", false),
            ("a._b", false),
            ("-a", false),
            ("a-", false),
            (".a", false),
            ("a.", false),
            ("_a", false),
            ("a_", false),
            ("A", false),
            ("aB", false),
            (".", false),
            ("..", false),
            ("a b", false),
            ("a%2eb", false),
            ("a\\b", false),
            ("a\0b", false),
            ("caf\u{e9}", false),
            ("a:b", false),
        ];
        for &(c, ok) in table {
            assert_eq!(valid_component(c), ok, "component {c:?}");
            assert_eq!(Name::parse(c).is_ok(), ok, "name {c:?}");
        }
    }

    #[test]
    fn names() {
        let table: &[(&str, bool)] = &[
            ("team/app", true),
            ("a/b/c/d", true),
            ("blobs/manifests", true),
            ("a/", false),
            ("/a", false),
            ("a//b", false),
            ("a/../b", false),
            ("a/./b", false),
            ("..", false),
            ("a/B", false),
            ("a%2fb", false),
        ];
        for &(n, ok) in table {
            assert_eq!(Name::parse(n).is_ok(), ok, "name {n:?}");
        }
        let max = "a".repeat(MAX_NAME_LEN);
        assert_eq!(Name::parse(&max).unwrap().as_str(), max);
        let err = Name::parse(&"a".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert_eq!(err.code, Code::NameInvalid);
        assert_eq!(Name::parse("").unwrap_err().code, Code::NameInvalid);
    }

    #[test]
    fn tags() {
        let table: &[(String, bool)] = &[
            ("latest".into(), true),
            ("v1.2.3".into(), true),
            ("_x".into(), true),
            ("V1-rc_2".into(), true),
            ("t".repeat(MAX_TAG_LEN), true),
            ("t".repeat(MAX_TAG_LEN + 1), false),
            ("".into(), false),
            (".x".into(), false),
            ("-x".into(), false),
            ("a/b".into(), false),
            ("a%2e".into(), false),
            ("a:b".into(), false),
            ("caf\u{e9}".into(), false),
        ];
        for (t, ok) in table {
            let got = Tag::parse(t);
            assert_eq!(got.is_ok(), *ok, "tag {t:?}");
            if let Err(e) = got {
                assert_eq!(e.code, Code::TagInvalid);
            }
        }
    }

    #[test]
    fn digests() {
        let sha512 = format!("sha512:{HEX64}{HEX64}");
        let table: &[(String, bool)] = &[
            (format!("sha256:{HEX64}"), true),
            (sha512.clone(), true),
            (format!("sha256:{}", HEX64.to_uppercase()), false),
            (format!("sha256:{}A", &HEX64[..63]), false),
            (format!("SHA256:{HEX64}"), false),
            (format!("sha256:{}", &HEX64[..63]), false),
            (format!("sha256:{HEX64}0"), false),
            (format!("sha512:{HEX64}"), false),
            (format!("sha256:{HEX64}{HEX64}"), false),
            ("md5:0123456789abcdef0123456789abcdef".into(), false),
            (format!("sha384:{HEX64}"), false),
            (HEX64.into(), false),
            (format!("sha256{HEX64}"), false),
            (format!("sha256::{}", &HEX64[1..]), false),
            (format!("sha256:{}g", &HEX64[..63]), false),
            ("sha256:".into(), false),
            (":".into(), false),
            ("".into(), false),
        ];
        for (d, ok) in table {
            let got = Digest::parse(d);
            assert_eq!(got.is_ok(), *ok, "digest {d:?}");
            match got {
                Ok(digest) => assert_eq!(&digest.to_string(), d),
                Err(e) => assert_eq!(e.code, Code::DigestInvalid),
            }
        }
        let d = Digest::parse(&sha512).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.hex().len(), Algorithm::Sha512.hex_len());
    }

    #[test]
    fn from_hash_round_trips() {
        let d = Digest::from_hash(Algorithm::Sha256, &[0xab; 32]);
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        let digest = format!("sha256:{HEX64}");
        assert!(matches!(
            Reference::parse(&digest),
            Ok(Reference::Digest(_))
        ));
        assert_eq!(Reference::parse(&digest).unwrap().to_string(), digest);
        assert_eq!(
            Reference::parse("a:b").unwrap_err().code,
            Code::DigestInvalid
        );
        assert_eq!(Reference::parse("a/b").unwrap_err().code, Code::TagInvalid);
    }

    #[test]
    fn error_detail_is_truncated() {
        let long = "A".repeat(1000);
        let e = Name::parse(&long).unwrap_err();
        assert_eq!(e.detail.unwrap()["name"].as_str().unwrap().len(), 300);
        assert_eq!(truncate("caf\u{e9}s", 4), "caf\u{e9}");
    }
}

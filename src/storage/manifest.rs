//! Manifest parsing and shape checks for the media types the registry accepts: Docker v2 schema 2, Docker manifest
//! list, OCI image manifest (including artifacts with `artifactType`) and OCI image index.
//!
//! Pure functions over bytes; what the references must resolve to is checked in [`super::manifests`]. A manifest
//! that names a key twice in any object is refused (see [`strict`]).

mod strict;

use crate::names::Digest;
use serde_json::{Map, Value};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The largest manifest accepted, as in distribution: 4 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Whether a manifest is an image (config + layers) or an index of manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Config and layers.
    Image,
    /// A list of child manifests.
    Index,
}

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: String,
    /// The referenced content's digest.
    pub digest: Digest,
    /// The referenced content's size.
    pub size: u64,
    /// Whether the descriptor names external URLs (a foreign layer, not required to be in the registry).
    pub has_urls: bool,
}

/// The parts of a manifest the registry acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The effective media type (from the JSON, else the request's Content-Type, else sniffed).
    pub media_type: String,
    /// Image or index.
    pub kind: Kind,
    /// The config descriptor (images).
    pub config: Option<Descriptor>,
    /// The layers (images).
    pub layers: Vec<Descriptor>,
    /// The child manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 `subject`).
    pub subject: Option<Descriptor>,
    /// The artifact type, when the manifest declares one.
    pub artifact_type: Option<String>,
    /// The manifest's annotations.
    pub annotations: Option<Map<String, Value>>,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        DOCKER_MANIFEST | OCI_MANIFEST => Some(Kind::Image),
        DOCKER_LIST | OCI_INDEX => Some(Kind::Index),
        _ => None,
    }
}

/// The media type of `obj` without a `mediaType` field: an index when it has `manifests`, else an image.
fn sniff(obj: &Map<String, Value>) -> &'static str {
    if obj.contains_key("manifests") {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    }
}

fn descriptor(v: &Value, what: &str) -> Result<Descriptor, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("{what}: not an object"))?;
    let media_type = o
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: mediaType missing"))?
        .to_string();
    let digest = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: digest missing"))?;
    let digest = Digest::parse(digest).map_err(|_| format!("{what}: invalid digest"))?;
    let size = o
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{what}: size missing or negative"))?;
    let has_urls = o
        .get("urls")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    Ok(Descriptor {
        media_type,
        digest,
        size,
        has_urls,
    })
}

fn descriptors(
    obj: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Vec<Descriptor>, String> {
    match obj.get(key) {
        None | Some(Value::Null) if !required => Ok(Vec::new()),
        None | Some(Value::Null) => Err(format!("{key} missing")),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| descriptor(v, &format!("{key}[{i}]")))
            .collect(),
        Some(_) => Err(format!("{key}: not an array")),
    }
}

/// Parses and checks a manifest; `content_type` is the request's Content-Type, used when the JSON has no
/// `mediaType`. The error is a human reason for MANIFEST_INVALID.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let v = strict::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("refused JSON: {e}"),
        _ => format!("not valid JSON: {e}"),
    })?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    match obj.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(1) => return Err("schema 1 manifests are not supported".into()),
        _ => return Err("schemaVersion must be 2".into()),
    }
    let media_type = match obj.get("mediaType") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("mediaType: not a string".into()),
        None => match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
            Some(c) if kind_of(c).is_some() => c.to_string(),
            _ => sniff(obj).to_string(),
        },
    };
    let kind = kind_of(&media_type)
        .ok_or_else(|| format!("unsupported manifest media type {media_type:?}"))?;
    // A body of both shapes would be judged by one (its blob checks) and kept by the other: found in review, an
    // "index" carrying another repository's config and layers was accepted without a link check on them and
    // kept those blobs from every garbage collection.
    let other_shape: &[&str] = match kind {
        Kind::Image => &["manifests"],
        Kind::Index => &["config", "layers"],
    };
    if let Some(key) = other_shape.iter().find(|k| obj.contains_key(**k)) {
        return Err(format!(
            "{media_type} has no `{key}`: a manifest is an image or an index, not both"
        ));
    }
    let (config, layers, manifests) = match kind {
        Kind::Image => {
            let config = obj.get("config").ok_or("config missing")?;
            (
                Some(descriptor(config, "config")?),
                descriptors(obj, "layers", false)?,
                Vec::new(),
            )
        }
        Kind::Index => (None, Vec::new(), descriptors(obj, "manifests", true)?),
    };
    let subject = match obj.get("subject") {
        None | Some(Value::Null) => None,
        Some(s) => Some(descriptor(s, "subject")?),
    };
    let artifact_type = match obj.get("artifactType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("artifactType: not a string".into()),
    };
    let annotations = match obj.get("annotations") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Some(m.clone()),
        Some(_) => return Err("annotations: not a map of strings".into()),
    };
    Ok(Manifest {
        media_type,
        kind,
        config,
        layers,
        manifests,
        subject,
        artifact_type,
        annotations,
    })
}

/// The media type to serve a stored manifest with: its `mediaType`, else what its shape says.
pub fn media_type_of(body: &[u8]) -> String {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return OCI_MANIFEST.to_string();
    };
    if let Some(Value::String(mt)) = obj.get("mediaType") {
        return mt.clone();
    }
    if obj.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return if obj.contains_key("signatures") {
            "application/vnd.docker.distribution.manifest.v1+prettyjws".into()
        } else {
            "application/vnd.docker.distribution.manifest.v1+json".into()
        };
    }
    sniff(&obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";

    fn desc(mt: &str) -> Value {
        serde_json::json!({"mediaType": mt, "digest": D, "size": 3})
    }

    #[test]
    fn accepts_each_media_type() {
        let image = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json"), "layers": [desc("x")],
            "subject": desc(OCI_MANIFEST), "artifactType": "application/example", "annotations": {"a": "b"}});
        let m = parse(&serde_json::to_vec(&image).unwrap(), None).unwrap();
        assert_eq!(m.kind, Kind::Image);
        assert_eq!(m.subject.unwrap().digest.to_string(), D);
        assert_eq!(m.artifact_type.as_deref(), Some("application/example"));
        let docker = serde_json::json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": desc("application/vnd.docker.container.image.v1+json"), "layers": []});
        assert_eq!(
            parse(&serde_json::to_vec(&docker).unwrap(), None)
                .unwrap()
                .media_type,
            DOCKER_MANIFEST
        );
        for mt in [DOCKER_LIST, OCI_INDEX] {
            let idx = serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": [desc(OCI_MANIFEST)]});
            let m = parse(&serde_json::to_vec(&idx).unwrap(), None).unwrap();
            assert_eq!((m.kind, m.manifests.len()), (Kind::Index, 1));
        }
        // No mediaType: Content-Type decides, else the shape.
        let bare = serde_json::json!({"schemaVersion": 2, "manifests": []});
        let body = serde_json::to_vec(&bare).unwrap();
        assert_eq!(
            parse(&body, Some(DOCKER_LIST)).unwrap().media_type,
            DOCKER_LIST
        );
        assert_eq!(parse(&body, None).unwrap().media_type, OCI_INDEX);
        assert_eq!(media_type_of(&body), OCI_INDEX);
    }

    #[test]
    fn rejects_hostile_shapes() {
        let cases: &[&[u8]] = &[
            b"",
            b"null",
            b"[]",
            b"{",
            br#"{"schemaVersion":1,"fsLayers":[]}"#,
            br#"{"schemaVersion":"2"}"#,
            br#"{"schemaVersion":2,"mediaType":"text/plain","config":{}}"#,
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1}}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"md5:00","size":1}}"#,
            br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","size":-1}]}"#,
            br#"{"schemaVersion":2,"manifests":{}}"#,
            br#"{"schemaVersion":2,"manifests":[],"annotations":{"a":1}}"#,
            br#"{"schemaVersion":2,"manifests":[],"mediaType":7}"#,
        ];
        for c in cases {
            assert!(parse(c, None).is_err(), "{}", String::from_utf8_lossy(c));
        }
    }

    /// Reads `body` as serde_json alone would (the last of duplicate keys wins) and parses what that gives.
    fn last_key_wins(body: &str) -> Result<Manifest, String> {
        let v: Value = serde_json::from_str(body).unwrap();
        parse(&serde_json::to_vec(&v).unwrap(), None)
    }

    #[test]
    fn a_manifest_of_both_shapes_is_refused_whatever_names_its_kind() {
        let d = format!(r#"{{"mediaType":"x","digest":"{D}","size":3}}"#);
        let i = format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3}}"#);
        let cases = [
            (
                format!(r#"{{"schemaVersion":2,"manifests":[],"config":{d},"layers":[{d}]}}"#),
                None,
            ),
            (
                format!(r#"{{"schemaVersion":2,"manifests":[],"layers":[{d}]}}"#),
                None,
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{i}],"config":{d}}}"#
                ),
                None,
            ),
            (
                format!(r#"{{"schemaVersion":2,"manifests":[],"config":{d},"layers":[]}}"#),
                Some(OCI_MANIFEST),
            ),
            (
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{d},"layers":[],"manifests":[{i}]}}"#
                ),
                None,
            ),
        ];
        for (body, content_type) in cases {
            let err = parse(body.as_bytes(), content_type).unwrap_err();
            assert!(err.contains("not both"), "{body}: {err}");
        }
    }

    #[test]
    fn manifest_with_duplicate_keys_is_refused() {
        let d = format!(r#"{{"mediaType":"x","digest":"{D}","size":3}}"#);
        let i = format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3}}"#);
        let cases = [
            // Finding 12: an image by its first mediaType, an index by its last.
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","mediaType":"{OCI_INDEX}",
                    "manifests":[{i}]}}"#
            ),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","\u006dediaType":"{OCI_MANIFEST}",
                    "config":{d},"layers":[]}}"#
            ),
            format!(r#"{{"schemaVersion":1,"schemaVersion":2,"config":{d}}}"#),
            format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:00","digest":"{D}","size":3}}}}"#
            ),
            format!(
                r#"{{"schemaVersion":2,"config":{d},"layers":[{d},{{"mediaType":"x","digest":"{D}","size":3,"size":4}}]}}"#
            ),
            format!(
                r#"{{"schemaVersion":2,"config":{d},"subject":{{"mediaType":"x","digest":"{D}","digest":"{D}","size":3}}}}"#
            ),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x","mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3}}]}}"#
            ),
            format!(r#"{{"schemaVersion":2,"config":{d},"config":{d}}}"#),
            format!(r#"{{"schemaVersion":2,"config":{d},"annotations":{{"a":"1","a":"2"}}}}"#),
            format!(r#"{{"schemaVersion":2,"config":{d},"artifactType":"a","artifactType":"b"}}"#),
        ];
        for c in &cases {
            assert!(
                last_key_wins(c).is_ok(),
                "the case is valid read last-key-wins: {c}"
            );
            let e = parse(c.as_bytes(), Some(OCI_MANIFEST)).unwrap_err();
            assert!(e.contains("duplicate key"), "{c}: {e}");
        }
    }

    mod prop {
        use super::super::*;
        use super::D;
        use proptest::prelude::*;
        use proptest::sample::Index;
        use serde_json::json;

        fn desc(mt: &str, size: u64) -> Value {
            json!({"mediaType": mt, "digest": D, "size": size})
        }

        /// Valid manifests of every kind, with optional subject, artifactType and annotations.
        fn manifest() -> impl Strategy<Value = Value> {
            let kind = prop_oneof![
                Just(OCI_MANIFEST),
                Just(DOCKER_MANIFEST),
                Just(OCI_INDEX),
                Just(DOCKER_LIST)
            ];
            (
                kind,
                0..4usize,
                any::<u64>(),
                any::<bool>(),
                proptest::option::of("[a-z/.+]{1,20}"),
                proptest::collection::btree_map("[a-z.]{1,8}", "[ -~]{0,8}", 0..4),
            )
                .prop_map(|(mt, n, size, subject, artifact, annotations)| {
                    let mut m = json!({"schemaVersion": 2, "mediaType": mt});
                    let items: Vec<Value> =
                        (0..n).map(|k| desc("x", size / (k as u64 + 1))).collect();
                    if kind_of(mt) == Some(Kind::Image) {
                        m["config"] = desc("application/vnd.oci.image.config.v1+json", size);
                        m["layers"] = Value::Array(items);
                    } else {
                        m["manifests"] = Value::Array(items);
                    }
                    if subject {
                        m["subject"] = desc(OCI_MANIFEST, size);
                    }
                    if let Some(a) = artifact {
                        m["artifactType"] = Value::String(a);
                    }
                    if !annotations.is_empty() {
                        m["annotations"] = json!(annotations);
                    }
                    m
                })
        }

        /// The number of objects in `v` (pre-order).
        fn objects(v: &Value) -> usize {
            match v {
                Value::Object(o) => 1 + o.values().map(objects).sum::<usize>(),
                Value::Array(a) => a.iter().map(objects).sum(),
                _ => 0,
            }
        }

        /// Writes `v` as JSON text, repeating one key of the `target`-th object (pre-order), with `other` as the
        /// first value when given (else the same value twice).
        fn write_dup(
            v: &Value,
            seen: &mut usize,
            target: usize,
            key: Index,
            other: &Option<Value>,
        ) -> String {
            match v {
                Value::Object(o) => {
                    let here = *seen == target;
                    *seen += 1;
                    let mut parts = Vec::new();
                    let dup = (here && !o.is_empty()).then(|| key.index(o.len()));
                    for (k, (name, val)) in o.iter().enumerate() {
                        let name_json = serde_json::to_string(name).unwrap();
                        if dup == Some(k) {
                            let first = other.as_ref().unwrap_or(val);
                            parts.push(format!("{name_json}:{first}"));
                        }
                        parts.push(format!(
                            "{name_json}:{}",
                            write_dup(val, seen, target, key, other)
                        ));
                    }
                    format!("{{{}}}", parts.join(","))
                }
                Value::Array(a) => {
                    let items: Vec<String> = a
                        .iter()
                        .map(|x| write_dup(x, seen, target, key, other))
                        .collect();
                    format!("[{}]", items.join(","))
                }
                other => other.to_string(),
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn generated_manifests_parse(m in manifest()) {
                let body = serde_json::to_vec(&m).unwrap();
                let parsed = parse(&body, None).unwrap();
                prop_assert_eq!(parsed.media_type.as_str(), m["mediaType"].as_str().unwrap());
                prop_assert_eq!(media_type_of(&body), parsed.media_type);
            }

            #[test]
            fn duplicate_keys_are_always_refused(
                m in manifest(),
                target in any::<Index>(),
                key in any::<Index>(),
                other in proptest::option::of(prop_oneof![
                    Just(json!(OCI_INDEX)), Just(json!(1)), Just(Value::Null), Just(json!({}))
                ]),
            ) {
                let target = target.index(objects(&m));
                let text = write_dup(&m, &mut 0, target, key, &other);
                let e = parse(text.as_bytes(), None).unwrap_err();
                prop_assert!(e.contains("duplicate key"), "{}: {}", text, e);
            }

            #[test]
            fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&body, None);
                let _ = parse(&body, Some(OCI_INDEX));
                let _ = media_type_of(&body);
            }

            #[test]
            fn json_like_text_never_panics(body in r#"[{}\[\]":,0-9a-zA-Z.+\-\\ ]{0,300}"#) {
                let _ = parse(body.as_bytes(), None);
                let _ = media_type_of(body.as_bytes());
            }

            #[test]
            fn mutated_manifests_never_panic(
                m in manifest(),
                edits in proptest::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 1..8),
            ) {
                let mut body = serde_json::to_vec(&m).unwrap();
                for (at, byte, op) in edits {
                    let i = at.index(body.len() + 1);
                    match op {
                        0 if i < body.len() => body[i] = byte,
                        1 if i < body.len() => { body.remove(i); }
                        _ => body.insert(i, byte),
                    }
                }
                if let Ok(parsed) = parse(&body, None) {
                    // Whatever is accepted is a whole manifest of a known kind.
                    prop_assert!(kind_of(&parsed.media_type).is_some());
                }
                let _ = media_type_of(&body);
            }
        }
    }
}

//! Parked appends: an object being appended to chunk by chunk (an upload session's `data`) keeps ONE S3
//! multipart upload open across chunks, and its state lives in the bucket, in one small object beside the key
//! (`<key>.multipart`), so the next chunk may go to any instance.
//!
//! The state object says which multipart upload holds the bytes, its parts (ETag and size, in order) and, after
//! them, the tail: the last bytes, fewer than S3's 5 MiB minimum part, which cannot be a part yet (only the last
//! part of a completed upload may be smaller). The next chunk starts with that tail and sends it again, merged
//! with its own bytes, as parts. A chunk is made part of the session by one conditional PUT of the state object:
//! a chunk that fails half way leaves the state, and so the session's length, as it was. Parts a failed chunk
//! sent are overwritten by the next chunk's (same part numbers) or left out of the completion.
//!
//! Why a state object and not S3's own listing (ListMultipartUploads, ListParts, as distribution does): S3 cannot
//! delete one part, so with the listing as the truth a chunk that fails half way would stay half in the session;
//! a tail shorter than a part needs a home in the bucket anyway; and one GET is cheaper than two listings.
//!
//! The state is current only while the object at the key is unchanged since the first chunk was parked: it
//! records that object's ETag and size (`base`), and a completion or any other write of the key changes them, so a
//! state left behind by an interrupted seal is recognised as stale, never applied twice.

use super::{os_err, Inner};
use crate::storage::driver::DriverError;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

/// The suffix of a state object's key.
pub(crate) const SUFFIX: &str = ".multipart";

/// The first line of a state object.
const MAGIC: &str = "gatehouse-parked 1";

/// S3's most parts in one multipart upload.
const MAX_PARTS: usize = 10_000;

/// The header of a state object: everything but the tail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// The ETag and size of the object at the key when the first chunk was parked (`None`: there was none).
    pub(crate) base: Option<(String, u64)>,
    /// The open multipart upload, once a part was sent.
    pub(crate) upload_id: Option<String>,
    /// Its parts in order (part `i + 1`): ETag and size.
    pub(crate) parts: Vec<(String, u64)>,
}

/// A state object read back.
#[derive(Debug, Clone)]
pub(crate) struct Parked {
    /// What it records.
    pub(crate) header: Header,
    /// The bytes after the parts.
    pub(crate) tail: Bytes,
    /// The state object's own ETag (the next state replaces exactly this one).
    pub(crate) etag: Option<String>,
}

impl Header {
    /// The bytes in parts.
    pub(crate) fn parts_len(&self) -> u64 {
        self.parts.iter().map(|p| p.1).sum()
    }
}

impl Parked {
    /// The appended object's length: its parts and its tail.
    pub(crate) fn len(&self) -> u64 {
        self.header.parts_len() + self.tail.len() as u64
    }
}

/// Whether a token can stand in the line format (no whitespace, not empty, not `-`).
fn token_ok(s: &str) -> bool {
    !s.is_empty() && s != "-" && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Encodes a state object: the header lines, an empty line, the tail.
pub(crate) fn encode(h: &Header, tail: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = format!("{MAGIC}\n");
    match &h.base {
        Some((etag, size)) if token_ok(etag) => out.push_str(&format!("base {etag} {size}\n")),
        Some((etag, _)) => return Err(format!("an ETag unfit for the state: {etag:?}")),
        None => out.push_str("base - 0\n"),
    }
    match &h.upload_id {
        Some(id) if token_ok(id) => out.push_str(&format!("upload {id}\n")),
        Some(id) => return Err(format!("an upload id unfit for the state: {id:?}")),
        None => out.push_str("upload -\n"),
    }
    if h.parts.len() > MAX_PARTS || (h.upload_id.is_none() && !h.parts.is_empty()) {
        return Err(format!("{} parts without a fit upload", h.parts.len()));
    }
    for (etag, size) in &h.parts {
        if !token_ok(etag) {
            return Err(format!("a part ETag unfit for the state: {etag:?}"));
        }
        out.push_str(&format!("part {size} {etag}\n"));
    }
    out.push_str(&format!("tail {}\n\n", tail.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(tail);
    Ok(bytes)
}

/// Decodes a state object; the error says what is wrong with it.
pub(crate) fn decode(body: &Bytes) -> Result<(Header, Bytes), String> {
    let end = body
        .windows(2)
        .take(64 + MAX_PARTS * 160)
        .position(|w| w == b"\n\n")
        .ok_or("no end of header")?;
    let text = std::str::from_utf8(&body[..end]).map_err(|_| "a header that is not UTF-8")?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err("not a parked-append state".into());
    }
    let mut h = Header::default();
    let num = |s: Option<&str>, what: &str| -> Result<u64, String> {
        s.and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("{what}: not a number"))
    };
    let mut tail_len = None;
    for line in lines {
        let mut f = line.split(' ');
        match (f.next(), tail_len) {
            (Some("base"), None) => {
                let etag = f.next().ok_or("base: no ETag")?;
                let size = num(f.next(), "base size")?;
                h.base = (etag != "-").then(|| (etag.to_string(), size));
            }
            (Some("upload"), None) => {
                let id = f.next().filter(|s| !s.is_empty()).ok_or("upload: no id")?;
                h.upload_id = (id != "-").then(|| id.to_string());
            }
            (Some("part"), None) => {
                let size = num(f.next(), "part size")?;
                let etag = f.next().filter(|e| token_ok(e)).ok_or("part: no ETag")?;
                h.parts.push((etag.to_string(), size));
            }
            (Some("tail"), None) => tail_len = Some(num(f.next(), "tail length")?),
            _ => return Err(format!("an unexpected line `{line}`")),
        }
        if f.next().is_some() {
            return Err(format!("a line with too many fields `{line}`"));
        }
    }
    let tail_len = tail_len.ok_or("no tail line")?;
    if h.parts.len() > MAX_PARTS || (h.upload_id.is_none() && !h.parts.is_empty()) {
        return Err("parts without an upload, or too many".into());
    }
    h.parts
        .iter()
        .try_fold(0u64, |a, p| a.checked_add(p.1))
        .ok_or("parts longer than any object")?;
    let tail = body.slice(end + 2..);
    if tail.len() as u64 != tail_len {
        return Err(format!(
            "a tail of {} bytes where {tail_len} were recorded",
            tail.len()
        ));
    }
    Ok((h, tail))
}

/// The state object's location for the object at `loc`.
pub(crate) fn state_loc(loc: &Path) -> Path {
    Path::from(format!("{}{SUFFIX}", loc.as_ref()))
}

/// Reads the state of the object at `loc` (`key` for errors) whose current ETag and size are `now`: `None` when
/// there is none or it is stale (the object changed since, so the state was sealed; the stale state is removed).
pub(crate) async fn load(
    inner: &Inner,
    key: &str,
    loc: &Path,
    now: Option<(Option<&str>, u64)>,
) -> Result<Option<Parked>, DriverError> {
    let at = state_loc(loc);
    let got = match inner.store.get(&at).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(os_err("append", key, e)),
    };
    let etag = got.meta.e_tag.clone();
    let body = got.bytes().await.map_err(|e| os_err("append", key, e))?;
    let (header, tail) = decode(&body).map_err(|e| DriverError::Io {
        op: "append",
        path: format!("{key}{SUFFIX}"),
        source: std::io::Error::other(e),
    })?;
    let current = match (&header.base, now) {
        (None, None) => true,
        (Some((etag, size)), Some((Some(now_etag), now_size))) => {
            etag == now_etag && *size == now_size
        }
        _ => false,
    };
    if !current {
        tracing::info!(key, "a stale parked-append state (sealed since): removed");
        match inner.store.delete(&at).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(os_err("append", key, e)),
        }
        return Ok(None);
    }
    Ok(Some(Parked { header, tail, etag }))
}

/// Replaces the state (the one read as `prev`, or none) with `header` and `tail`; refused when another writer
/// changed it since (a concurrent chunk of the same session on another instance).
pub(crate) async fn store(
    inner: &Inner,
    key: &str,
    loc: &Path,
    prev: Option<&Parked>,
    header: &Header,
    tail: &[u8],
) -> Result<(), DriverError> {
    let body = encode(header, tail).map_err(|e| DriverError::Io {
        op: "append",
        path: key.to_string(),
        source: std::io::Error::other(e),
    })?;
    let mode = match prev {
        None => PutMode::Create,
        Some(p) => PutMode::Update(UpdateVersion {
            e_tag: p.etag.clone(),
            version: None,
        }),
    };
    let opts = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match inner
        .store
        .put_opts(&state_loc(loc), PutPayload::from(body), opts)
        .await
    {
        Ok(_) => Ok(()),
        Err(
            e @ (object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }),
        ) => Err(DriverError::Io {
            op: "append",
            path: key.to_string(),
            source: std::io::Error::other(format!(
                "another chunk of this upload was stored meanwhile: {e}"
            )),
        }),
        Err(e) => Err(os_err("append", key, e)),
    }
}

/// Removes the state of the object at `loc` (after a seal); one already gone is fine.
pub(crate) async fn remove(inner: &Inner, key: &str, loc: &Path) -> Result<(), DriverError> {
    match inner.store.delete(&state_loc(loc)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(os_err("append", key, e)),
    }
}

/// The multipart upload a state object at `at` names, if it can be read (for an abort when it is deleted).
pub(crate) async fn upload_of(inner: &Inner, at: &Path) -> Option<String> {
    let body = inner.store.get(at).await.ok()?.bytes().await.ok()?;
    decode(&body).ok()?.0.upload_id
}

/// Aborts the multipart upload the parked state at `at` names (when the session is deleted); a failure is
/// logged, and the upload purge aborts the upload later.
pub(crate) async fn abort_parked(inner: &Inner, at: &Path) {
    use object_store::multipart::MultipartStore;
    let Some(id) = upload_of(inner, at).await else {
        return;
    };
    let data = Path::from(at.as_ref().strip_suffix(SUFFIX).unwrap_or(at.as_ref()));
    match inner.store.abort_multipart(&data, &id).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => {
            tracing::warn!(error = %e, key = %data, "aborting a deleted upload's multipart upload")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            base: Some(("\"d41d8cd98f00b204e9800998ecf8427e\"".into(), 0)),
            upload_id: Some("a1B2_c3-D4.e5~".into()),
            parts: vec![("\"p1\"".into(), 5 << 20), ("\"p2\"".into(), 10 << 20)],
        }
    }

    #[test]
    fn states_round_trip_with_their_tail() {
        for (h, tail) in [
            (header(), b"tail \n\n bytes".to_vec()),
            (Header::default(), Vec::new()),
            (
                Header {
                    base: None,
                    upload_id: Some("x".into()),
                    parts: Vec::new(),
                },
                vec![0u8; 1000],
            ),
        ] {
            let body = Bytes::from(encode(&h, &tail).unwrap());
            let (back, t) = decode(&body).unwrap();
            assert_eq!(back, h);
            assert_eq!(&t[..], &tail[..]);
        }
        assert_eq!(header().parts_len(), 15 << 20);
    }

    #[test]
    fn unfit_states_are_not_encoded() {
        let mut h = header();
        h.upload_id = Some("has space".into());
        assert!(encode(&h, b"").is_err());
        let mut h = header();
        h.parts[1].0 = "a\nb".into();
        assert!(encode(&h, b"").is_err());
        let mut h = header();
        h.upload_id = None;
        assert!(encode(&h, b"").is_err(), "parts need their upload");
        let mut h = header();
        h.base = Some(("-".into(), 3));
        assert!(encode(&h, b"").is_err());
    }

    #[test]
    fn hostile_states_are_refused() {
        let good = String::from_utf8(encode(&header(), b"abc").unwrap()).unwrap();
        for bad in [
            String::new(),
            "gatehouse-parked 2\nbase - 0\nupload -\ntail 0\n\n".into(),
            "gatehouse-parked 1\nbase - 0\nupload -\n\n".into(),
            "gatehouse-parked 1\nbase - x\nupload -\ntail 0\n\n".into(),
            "gatehouse-parked 1\nbase - 0\nupload -\npart 5 \"e\"\ntail 0\n\n".into(),
            "gatehouse-parked 1\nbase - 0\nupload u\npart 18446744073709551615 a\npart 1 b\ntail 0\n\n"
                .into(),
            "gatehouse-parked 1\nbase - 0\nupload u\npart -1 a\ntail 0\n\n".into(),
            "gatehouse-parked 1\nbase - 0\nupload u extra\ntail 0\n\n".into(),
            "gatehouse-parked 1\nbase - 0\nupload -\ntail 0\npart 5 a\n\n".into(),
            "gatehouse-parked 1\nbase - 0\nupload -\nevil line\ntail 0\n\n".into(),
            good.replace("tail 3", "tail 4"),
            good.replace("tail 3", "tail 2"),
            good.replace("\n\nabc", "abc"),
        ] {
            assert!(decode(&Bytes::from(bad.clone())).is_err(), "{bad:?}");
        }
        let many = format!(
            "gatehouse-parked 1\nbase - 0\nupload u\n{}tail 0\n\n",
            "part 1 a\n".repeat(MAX_PARTS + 1)
        );
        assert!(decode(&Bytes::from(many)).is_err());
        assert!(decode(&Bytes::from(vec![0xffu8; 100])).is_err());
    }

    #[test]
    fn the_state_sits_beside_its_object() {
        let loc = Path::from("root/docker/registry/v2/repositories/a/_uploads/u/data");
        assert_eq!(
            state_loc(&loc).as_ref(),
            "root/docker/registry/v2/repositories/a/_uploads/u/data.multipart"
        );
    }
}

#[cfg(test)]
mod on_moto;

//! Abandoned multipart uploads: S3's ListMultipartUploads (which `object_store` does not offer) under the
//! driver's root, and an abort of each one started before a cutoff. An unfinished multipart upload holds no
//! visible key but its parts are stored (and billed) until it is completed or aborted; a writer that died
//! mid-chunk leaves one behind, and the upload purge removes them ([`crate::storage::driver::Driver::abort_multipart_before`]).

use super::list::{inner_texts, signed_get};
use super::{os_err, Inner};
use crate::storage::driver::DriverError;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::ObjectStore;
use std::time::{Duration, SystemTime};

/// One unfinished multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The object's key in the bucket.
    pub(crate) key: String,
    /// S3's upload id.
    pub(crate) upload_id: String,
    /// When it was started.
    pub(crate) initiated: SystemTime,
}

/// Parses an RFC 3339 UTC time as S3 writes it (`2026-12-01T14:12:50.000Z`); `None` when it is not one.
pub(crate) fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The key and upload-id markers a ListMultipartUploads page continues from.
type Markers = (String, String);

/// Reads one ListMultipartUploads page: the uploads and the markers of the next page (`None`: last page).
pub(crate) fn parse_uploads(xml: &str) -> Result<(Vec<Pending>, Option<Markers>), String> {
    if !xml.contains("<ListMultipartUploadsResult") {
        return Err(format!(
            "not a listing: {}",
            xml.chars().take(200).collect::<String>()
        ));
    }
    let keys = inner_texts(xml, "Upload", "Key");
    let ids = inner_texts(xml, "Upload", "UploadId");
    let times = inner_texts(xml, "Upload", "Initiated");
    if keys.len() != ids.len() || keys.len() != times.len() {
        return Err("an upload without its key, id or start".into());
    }
    let mut out = Vec::new();
    for ((key, upload_id), t) in keys.into_iter().zip(ids).zip(times) {
        let initiated = parse_time(&t).ok_or_else(|| format!("{key}: start `{t}` unreadable"))?;
        out.push(Pending {
            key,
            upload_id,
            initiated,
        });
    }
    let next = if xml.contains("<IsTruncated>true</IsTruncated>") {
        let marker = |tag: &str| {
            let (o, c) = (format!("<{tag}>"), format!("</{tag}>"));
            let start = xml.find(&o)? + o.len();
            Some(xml[start..start + xml[start..].find(&c)?].to_string())
        };
        let key = marker("NextKeyMarker").ok_or("a truncated listing with no NextKeyMarker")?;
        Some((key, marker("NextUploadIdMarker").unwrap_or_default()))
    } else {
        None
    };
    Ok((out, next))
}

/// Every unfinished multipart upload under `loc/`.
pub(crate) async fn list(
    inner: &Inner,
    key: &str,
    loc: &Path,
) -> Result<Vec<Pending>, DriverError> {
    let prefix = format!("{}/", loc.as_ref());
    let mut out = Vec::new();
    let mut markers: Option<Markers> = None;
    loop {
        let mut pairs = vec![("prefix", prefix.clone()), ("uploads", String::new())];
        if let Some((k, id)) = &markers {
            pairs.push(("key-marker", k.clone()));
            if !id.is_empty() {
                pairs.push(("upload-id-marker", id.clone()));
            }
        }
        let body = signed_get(inner, key, pairs).await?;
        let (page, next) = parse_uploads(&body).map_err(|e| DriverError::Io {
            op: "list uploads",
            path: key.to_string(),
            source: std::io::Error::other(e),
        })?;
        out.extend(page);
        match next {
            Some(n) if Some(&n) != markers.as_ref() => markers = Some(n),
            _ => return Ok(out),
        }
    }
}

/// Whether the multipart upload on `key` may belong to a parked session still being written: its state object
/// was written at or after `before` (S3 reports when an upload started, not when it last got a part, and some
/// stores report a fixed start). Such an upload goes with its session when the session is purged.
async fn parked_is_young(inner: &Inner, key: &str, before: SystemTime) -> bool {
    let at = super::parked::state_loc(&Path::from(key));
    match inner.store.head(&at).await {
        Ok(m) => super::to_system(m.last_modified.timestamp_millis()) >= before,
        Err(object_store::Error::NotFound { .. }) => false,
        // Unsure: keep it (the next purge looks again).
        Err(_) => true,
    }
}

/// Aborts the multipart uploads under `loc/` started before `before` (with `dry_run`, only lists them); returns
/// their keys (relative to the bucket).
pub(crate) async fn abort_before(
    inner: &Inner,
    key: &str,
    loc: &Path,
    before: SystemTime,
    dry_run: bool,
) -> Result<Vec<String>, DriverError> {
    let mut aborted = Vec::new();
    for p in list(inner, key, loc).await? {
        if p.initiated >= before || parked_is_young(inner, &p.key, before).await {
            continue;
        }
        if !dry_run {
            let at = Path::from(p.key.as_str());
            match inner.store.abort_multipart(&at, &p.upload_id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_err("abort", &p.key, e)),
            }
        }
        tracing::info!(
            key = p.key,
            upload_id = p.upload_id,
            dry_run,
            "abandoned multipart upload aborted"
        );
        aborted.push(p.key);
    }
    Ok(aborted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_times_are_read_and_garbage_refused() {
        let t = parse_time("2015-08-30T12:36:00.000Z").unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
        );
        assert_eq!(
            parse_time("2024-02-29T00:00:01Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_801))
        );
        for bad in [
            "",
            "2015-08-30",
            "2015-13-01T00:00:00Z",
            "2015-08-30T12:36:00",
            "x-y-zT1:2:3Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn upload_listings_are_read_with_their_markers() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>r/k2</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>\
            <Upload><Key>r/k1</Key><UploadId>id1</UploadId><Initiated>2015-08-30T12:36:00.000Z</Initiated></Upload>\
            <Upload><Key>r/k2</Key><UploadId>id2</UploadId><Initiated>2015-08-30T12:36:01.000Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let (ups, next) = parse_uploads(xml).unwrap();
        assert_eq!(ups.len(), 2);
        assert_eq!(
            (ups[1].key.as_str(), ups[1].upload_id.as_str()),
            ("r/k2", "id2")
        );
        assert_eq!(next, Some(("r/k2".into(), "id2".into())));
        let last = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_uploads(&last).unwrap().1, None);
        assert!(parse_uploads("<Error/>").is_err());
        let bad_time = xml.replace("2015-08-30T12:36:00.000Z", "yesterday");
        assert!(parse_uploads(&bad_time).is_err());
    }
}

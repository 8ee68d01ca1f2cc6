//! One page of the directories under a prefix: S3's ListObjectsV2 with a `/` delimiter, `StartAfter` and
//! `MaxKeys`, which `object_store` does not offer together (its delimited listing reads every page). Signed here
//! with AWS Signature V4, as [`super::copy_part`] is, and sent to the bucket URL `object_store` itself would use.

use super::copy_part::{send_signed, AWS};
use super::Inner;
use crate::storage::driver::{after_dir, DirPage, DriverError};
use object_store::path::Path;
use object_store::signer::Signer;
use percent_encoding::utf8_percent_encode;
use std::time::Duration;

/// S3's largest `max-keys`.
pub(crate) const MAX_KEYS: usize = 1000;

/// The bucket's URL without a trailing `/` (path-style: `http://host/bucket`; virtual-hosted: `https://bucket.host`)
/// and its path for signing.
async fn bucket_url(inner: &Inner, key: &str) -> Result<(url::Url, String), DriverError> {
    let mut url = inner
        .store
        .signed_url(http::Method::GET, &Path::from("x"), Duration::from_secs(60))
        .await
        .map_err(|e| super::os_err("list", key, e))?;
    url.set_query(None);
    let path = url
        .path()
        .strip_suffix('x')
        .unwrap_or(url.path())
        .to_string();
    let path = match path.trim_end_matches('/') {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    url.set_path(&path);
    Ok((url, path))
}

/// Decodes the five XML entities S3 uses.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

/// The texts of every `<tag>` inside each `<block>` of `xml`.
pub(crate) fn inner_texts(xml: &str, block: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{block}>"), format!("</{block}>"));
    let (topen, tclose) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|b| b.split(&close).next())
        .filter_map(|b| {
            let start = b.find(&topen)? + topen.len();
            let end = start + b[start..].find(&tclose)?;
            Some(unescape(&b[start..end]))
        })
        .collect()
}

/// Reads a ListObjectsV2 answer for `prefix` (ending in `/`): the directory names, and the next page's start.
pub(crate) fn parse_page(xml: &str, prefix: &str) -> Result<DirPage, String> {
    if !xml.contains("<ListBucketResult") {
        return Err(format!(
            "not a listing: {}",
            xml.chars().take(200).collect::<String>()
        ));
    }
    let truncated = xml.contains("<IsTruncated>true</IsTruncated>");
    let prefixes = inner_texts(xml, "CommonPrefixes", "Prefix");
    let keys = inner_texts(xml, "Contents", "Key");
    let rel = |s: &String| s.strip_prefix(prefix).map(str::to_string);
    let mut names = Vec::new();
    for p in &prefixes {
        let name = rel(p).ok_or_else(|| format!("{p} is outside {prefix}"))?;
        let name = name.strip_suffix('/').unwrap_or(&name).to_string();
        if !name.is_empty() && !name.contains('/') {
            names.push(name);
        }
    }
    // Where the next page starts: after the last common prefix or key of this one, whichever sorts last.
    let last_dir = prefixes.iter().filter_map(rel).max().map(|d| after_dir(&d));
    let last_key = keys.iter().filter_map(rel).max();
    let next = match (last_dir, last_key) {
        _ if !truncated => None,
        (Some(d), Some(k)) => Some(d.max(k)),
        (d, k) => d.or(k),
    };
    if truncated && next.is_none() {
        return Err("a truncated listing with no entries".into());
    }
    Ok(DirPage { names, next })
}

/// Sends a V4-signed `GET` of the bucket with `pairs` as its query (retried on 5xx, SlowDown and connection
/// errors) and returns the answer's body; `key` names what it is for in errors.
pub(crate) async fn signed_get(
    inner: &Inner,
    key: &str,
    mut pairs: Vec<(&str, String)>,
) -> Result<String, DriverError> {
    let (url, path) = bucket_url(inner, key).await?;
    pairs.sort();
    let enc = |v: &str| utf8_percent_encode(v, AWS).to_string();
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    let query = query.join("&");
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let sent = send_signed(
            inner,
            http::Method::GET,
            &url,
            &path,
            &query,
            Vec::new(),
            "list",
            key,
        );
        let resp = match sent.await? {
            Ok(r) => r,
            Err(e) => {
                last = format!("listing: {e}");
                continue;
            }
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_server_error() || body.contains("<Code>SlowDown</Code>") {
            last = format!("listing: {status}: {body}");
            continue;
        }
        if !status.is_success() {
            return Err(DriverError::Io {
                op: "list",
                path: key.to_string(),
                source: std::io::Error::other(format!("listing: {status}: {body}")),
            });
        }
        return Ok(body);
    }
    Err(DriverError::Unavailable {
        op: "list",
        path: key.to_string(),
        source: std::io::Error::other(last),
    })
}

/// Lists one page of the directories under `dir` (a checked driver key) whose `name/` sorts after `after`.
pub(crate) async fn list_dirs(
    inner: &Inner,
    dir: &str,
    loc: &Path,
    after: &str,
    limit: usize,
) -> Result<DirPage, DriverError> {
    let prefix = format!("{}/", loc.as_ref());
    let mut pairs = vec![
        ("delimiter", "/".to_string()),
        ("list-type", "2".to_string()),
        ("max-keys", limit.clamp(1, MAX_KEYS).to_string()),
        ("prefix", prefix.clone()),
    ];
    if !after.is_empty() {
        pairs.push(("start-after", format!("{prefix}{after}")));
    }
    let body = signed_get(inner, dir, pairs).await?;
    parse_page(&body, &prefix).map_err(|e| DriverError::Io {
        op: "list",
        path: dir.to_string(),
        source: std::io::Error::other(format!("listing: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_pages_are_read_with_their_continuation() {
        let p = "r/docker/registry/v2/repositories/";
        let xml = format!(
            "<ListBucketResult><Prefix>{p}</Prefix><IsTruncated>true</IsTruncated>\
             <Contents><Key>{p}stray</Key></Contents>\
             <CommonPrefixes><Prefix>{p}a-b/</Prefix></CommonPrefixes>\
             <CommonPrefixes><Prefix>{p}a/</Prefix></CommonPrefixes>\
             <CommonPrefixes><Prefix>{p}x&amp;y/</Prefix></CommonPrefixes></ListBucketResult>"
        );
        let page = parse_page(&xml, p).unwrap();
        assert_eq!(page.names, ["a-b", "a", "x&y"]);
        assert_eq!(page.next.as_deref(), Some("x&y0"), "after the last prefix");
        let done = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_page(&done, p).unwrap().next, None);
        // A key that sorts after every prefix is where the next page starts.
        let key_last = xml.replace("stray", "zz");
        assert_eq!(
            parse_page(&key_last, p).unwrap().next.as_deref(),
            Some("zz")
        );
        for bad in [
            "<Error><Code>AccessDenied</Code></Error>".to_string(),
            "<ListBucketResult><CommonPrefixes><Prefix>elsewhere/</Prefix></CommonPrefixes></ListBucketResult>"
                .to_string(),
            "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>".to_string(),
        ] {
            assert!(parse_page(&bad, p).is_err(), "{bad}");
        }
    }
}

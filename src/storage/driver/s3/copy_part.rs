//! S3's UploadPartCopy, which `object_store` does not offer: a part of a multipart upload copied server-side
//! from an existing object (pinned to its ETag), so appending to a large object sends only the new bytes.
//!
//! The request is signed here with AWS Signature V4 (the same credentials `object_store` uses) and sent to the
//! object URL `object_store` itself would use (taken from a presigned URL with its query removed). A rename of an
//! object too large for CopyObject is a multipart upload of such copied parts ([`super::S3Driver::multipart_copy`]).

use super::{os_err, Inner};
use crate::storage::driver::DriverError;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::signer::Signer;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// The largest range one copied part takes (S3 allows 5 GiB).
pub(crate) const MAX_COPY_PART: u64 = 4 << 30;

/// AWS's URI encoding: everything but unreserved characters.
pub(super) const AWS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` for a time.
pub(super) fn amz_dates(t: SystemTime) -> (String, String) {
    let full: String = crate::storage::uploads::rfc3339(t)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    (full[..8].to_string(), full)
}

/// The `Authorization` header of a V4-signed request; `headers` are lower-case names with values, sorted.
#[allow(clippy::too_many_arguments)]
pub(super) fn authorization(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(&str, String)],
    key_id: &str,
    secret: &str,
    region: &str,
    dates: &(String, String),
) -> String {
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let request =
        format!("{method}\n{uri}\n{query}\n{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD");
    let scope = format!("{}/{region}/s3/aws4_request", dates.0);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        dates.1,
        hex::encode(Sha256::digest(request.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), dates.0.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    format!(
        "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={}",
        hex::encode(hmac(&k, to_sign.as_bytes()))
    )
}

/// `host[:port]` of a URL, as signed in the `host` header.
pub(super) fn host_of(url: &url::Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    }
}

/// Sends one V4-signed request without a payload to `url?query` (`path` is the URL path as signed), with the
/// headers every such request carries plus `extra`, under the credentials `object_store` uses. The outer
/// error is the credentials' (not worth retrying); the inner one is the transport's.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_signed(
    inner: &Inner,
    method: http::Method,
    url: &url::Url,
    path: &str,
    query: &str,
    extra: Vec<(&'static str, String)>,
    op: &'static str,
    key: &str,
) -> Result<Result<reqwest::Response, reqwest::Error>, DriverError> {
    let cred = inner
        .store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| os_err(op, key, e))?;
    let dates = amz_dates(SystemTime::now());
    let mut headers: Vec<(&str, String)> = vec![
        ("host", host_of(url)),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".into()),
        ("x-amz-date", dates.1.clone()),
    ];
    headers.extend(extra);
    if let Some(token) = &cred.token {
        headers.push(("x-amz-security-token", token.clone()));
    }
    headers.sort();
    let auth = authorization(
        method.as_str(),
        path,
        query,
        &headers,
        &cred.key_id,
        &cred.secret_key,
        &inner.region,
        &dates,
    );
    let mut req = inner
        .http
        .request(method, format!("{url}?{query}"))
        .header("authorization", auth);
    for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
        req = req.header(*k, v);
    }
    Ok(req.send().await)
}

/// The ETag of a `CopyPartResult` body; `None` for an error body (S3 may answer 200 with one).
fn etag_of(body: &str) -> Option<String> {
    if body.contains("<Error>") {
        return None;
    }
    let start = body.find("<ETag>")? + "<ETag>".len();
    let end = start + body[start..].find("</ETag>")?;
    Some(
        body[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\""),
    )
}

/// Copies `range` of the object at `src` (which must still have `etag`) into part `part` (1-based) of the
/// multipart upload `upload_id` on `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_part(
    inner: &Inner,
    key: &str,
    src: &Path,
    dst: &Path,
    upload_id: &str,
    part: usize,
    etag: Option<&str>,
    range: std::ops::Range<u64>,
) -> Result<PartId, DriverError> {
    let fail = |problem: String| DriverError::Io {
        op: "append",
        path: key.to_string(),
        source: std::io::Error::other(problem),
    };
    let mut url = inner
        .store
        .signed_url(http::Method::PUT, dst, Duration::from_secs(60))
        .await
        .map_err(|e| os_err("append", key, e))?;
    url.set_query(None);
    let query = format!(
        "partNumber={part}&uploadId={}",
        utf8_percent_encode(upload_id, AWS)
    );
    let mut last = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let mut extra = vec![
            (
                "x-amz-copy-source",
                format!("/{}/{}", inner.bucket, src.as_ref()),
            ),
            (
                "x-amz-copy-source-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            ),
        ];
        if let Some(etag) = etag {
            extra.push(("x-amz-copy-source-if-match", etag.to_string()));
        }
        let path = url.path().to_string();
        let sent = send_signed(
            inner,
            http::Method::PUT,
            &url,
            &path,
            &query,
            extra,
            "append",
            key,
        )
        .await?;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                last = format!("copying a part: {e}");
                continue;
            }
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_server_error() || body.contains("<Code>SlowDown</Code>") {
            last = format!("copying a part: {status}: {body}");
            continue;
        }
        if !status.is_success() {
            return Err(fail(format!("copying a part: {status}: {body}")));
        }
        return etag_of(&body)
            .map(|content_id| PartId { content_id })
            .ok_or_else(|| fail(format!("copying a part: {body}")));
    }
    Err(DriverError::Unavailable {
        op: "append",
        path: key.to_string(),
        source: std::io::Error::other(last),
    })
}

impl super::S3Driver {
    /// Copies `size` bytes at `src` to `dst` server-side as parts of one multipart upload on `dst`.
    pub(super) async fn multipart_copy(
        &self,
        from: &str,
        src: &Path,
        dst: &Path,
        size: u64,
        etag: Option<String>,
    ) -> Result<(), DriverError> {
        use object_store::multipart::MultipartStore;
        let store = &self.inner.store;
        let id = store
            .create_multipart(dst)
            .await
            .map_err(|e| os_err("rename", from, e))?;
        let copied = async {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < size {
                let end = size.min(start + MAX_COPY_PART);
                parts.push(
                    copy_part(
                        &self.inner,
                        from,
                        src,
                        dst,
                        &id,
                        parts.len() + 1,
                        etag.as_deref(),
                        start..end,
                    )
                    .await?,
                );
                start = end;
            }
            store
                .complete_multipart(dst, &id, parts)
                .await
                .map_err(|e| os_err("rename", from, e))
        }
        .await;
        if copied.is_err() {
            let _ = store.abort_multipart(dst, &id).await;
        }
        copied.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        assert_eq!(
            hex::encode(hmac(
                &long_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn copy_part_results_are_read_and_errors_refused() {
        let ok = "<CopyPartResult><LastModified>x</LastModified><ETag>&quot;abc&quot;</ETag></CopyPartResult>";
        assert_eq!(etag_of(ok).as_deref(), Some("\"abc\""));
        assert_eq!(etag_of("<Error><Code>InternalError</Code></Error>"), None);
        assert_eq!(etag_of("<CopyPartResult></CopyPartResult>"), None);
    }

    #[test]
    fn amz_dates_are_basic_iso_8601() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        assert_eq!(amz_dates(t), ("20150830".into(), "20150830T123600Z".into()));
    }
}

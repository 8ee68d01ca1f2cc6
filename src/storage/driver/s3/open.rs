//! Building an [`S3Driver`] from validated settings: the `object_store` client with bounded retries and
//! timeouts, the client for the requests `object_store` lacks, and a first listing that proves the bucket and the
//! credentials, or fails naming the setting to fix.

use super::{Inner, S3Driver, S3Settings};
use crate::storage::driver::DriverError;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use std::io;
use std::sync::Arc;
use std::time::Duration;

impl S3Driver {
    /// Builds a driver from validated settings and checks that the bucket answers: a missing bucket or refused
    /// credentials are an error that names the setting.
    pub async fn open(s: &S3Settings) -> Result<S3Driver, DriverError> {
        let mut b = AmazonS3Builder::from_env()
            .with_region(&s.region)
            .with_bucket_name(&s.bucket)
            .with_virtual_hosted_style_request(!s.path_style)
            .with_allow_http(s.allow_http)
            .with_retry(RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120))
                    .with_pool_idle_timeout(Duration::from_secs(60)),
            );
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some((key, secret)) = &s.credentials {
            b = b.with_access_key_id(key).with_secret_access_key(secret);
        }
        let store = b.build().map_err(|e| DriverError::Io {
            op: "configure",
            path: format!("s3://{}", s.bucket),
            source: io::Error::other(e),
        })?;
        let driver = S3Driver {
            inner: Arc::new(Inner {
                store,
                prefix: if s.root.is_empty() {
                    String::new()
                } else {
                    format!("{}/", s.root)
                },
                chunk: s.chunk,
                bucket: s.bucket.clone(),
                region: s.region.clone(),
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(300))
                    .build()
                    .map_err(|e| DriverError::Io {
                        op: "configure",
                        path: format!("s3://{}", s.bucket),
                        source: io::Error::other(e),
                    })?,
                redirect: s.redirect,
            }),
        };
        driver.check_bucket(s).await?;
        Ok(driver)
    }

    /// Lists one key of the root: the bucket exists and the credentials may read it.
    async fn check_bucket(&self, s: &S3Settings) -> Result<(), DriverError> {
        let root = Path::from(self.inner.prefix.trim_end_matches('/'));
        let first = self.inner.store.list(Some(&root)).next().await.transpose();
        match first {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                let hint = if text.contains("NoSuchBucket") || text.contains("404") {
                    format!(
                        "the bucket `{}` does not exist (REGISTRY_STORAGE_S3_BUCKET, storage.s3.bucket)",
                        s.bucket
                    )
                } else if text.contains("InvalidAccessKeyId")
                    || text.contains("SignatureDoesNotMatch")
                    || text.contains("403")
                {
                    "the credentials were refused (REGISTRY_STORAGE_S3_ACCESSKEY, REGISTRY_STORAGE_S3_SECRETKEY, \
                     storage.s3.accesskey/secretkey, or the AWS environment)"
                        .to_string()
                } else {
                    format!(
                        "the bucket `{}` cannot be reached (REGISTRY_STORAGE_S3_REGIONENDPOINT, \
                         storage.s3.regionendpoint)",
                        s.bucket
                    )
                };
                Err(DriverError::Io {
                    op: "open",
                    path: format!("s3://{}/{}", s.bucket, self.inner.prefix),
                    source: io::Error::other(format!("{hint}: {text}")),
                })
            }
        }
    }
}

//! What an S3 answer means for the caller: `object_store` errors as [`DriverError`]s (absent, unavailable after
//! the retries, anything else), and S3's times as `SystemTime`s.

use crate::storage::driver::DriverError;
use std::io;
use std::time::{Duration, SystemTime};

/// Whether an error means the service is down or overloaded (connection failures, timeouts, 5xx and
/// SlowDown after the retries), not that the request was wrong.
fn unavailable(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            if matches!(
                h.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            ) {
                return true;
            }
        }
        source = s.source();
    }
    // object_store's retry error is private and hides its HttpError; what it retries is what is transient.
    let text = e.to_string();
    text.contains("max_retries:")
        || text.contains("error sending request")
        || text.contains("status code: 5")
        || text.contains("SlowDown")
}

/// An `object_store` error as a [`DriverError`] for `op` on `key`.
pub(crate) fn os_err(op: &'static str, key: &str, e: object_store::Error) -> DriverError {
    match e {
        object_store::Error::NotFound { .. } => DriverError::NotFound {
            path: key.to_string(),
        },
        e if unavailable(&e) => DriverError::Unavailable {
            op,
            path: key.to_string(),
            source: io::Error::other(e),
        },
        e => DriverError::Io {
            op,
            path: key.to_string(),
            source: io::Error::other(e),
        },
    }
}

/// An object's modification time (milliseconds since the epoch) as a `SystemTime`.
pub(crate) fn to_system(millis: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

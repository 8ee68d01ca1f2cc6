//! The wire error table: every error a client sees, in distribution's JSON shape
//! `{"errors":[{"code":"NAME_UNKNOWN","message":"...","detail":...}]}`, each code with its HTTP status.
//!
//! Nothing else in gatehouse writes an error body; handlers build an [`ApiError`] and the proxy renders it.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// One error code of the OCI distribution spec (plus distribution's UNAVAILABLE and UNKNOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The blob is not known to the repository.
    BlobUnknown,
    /// The upload is invalid (bad range, bad size, wrong order).
    BlobUploadInvalid,
    /// The upload session is not known.
    BlobUploadUnknown,
    /// The digest is malformed or does not match the content.
    DigestInvalid,
    /// A manifest references a blob the repository does not have.
    ManifestBlobUnknown,
    /// The manifest is malformed or fails verification.
    ManifestInvalid,
    /// The manifest is not known to the repository.
    ManifestUnknown,
    /// The repository name is not valid.
    NameInvalid,
    /// The repository is not known.
    NameUnknown,
    /// The provided length does not match the content.
    SizeInvalid,
    /// The tag is not valid.
    TagInvalid,
    /// Authentication is required.
    Unauthorized,
    /// The caller may not do this.
    Denied,
    /// The operation is not supported (or the method not allowed on this route).
    Unsupported,
    /// The caller sent too many requests (or too many failed logins).
    TooManyRequests,
    /// The backend is unavailable.
    Unavailable,
    /// An unexpected internal error.
    Unknown,
    /// A request path that is not part of the API.
    NotFound,
}

impl Code {
    /// The code's wire name, as the spec spells it.
    pub fn name(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::TagInvalid => "TAG_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unknown => "UNKNOWN",
            Code::NotFound => "NOT_FOUND",
        }
    }

    /// The HTTP status the code is sent with unless an [`ApiError`] overrides it.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown
            | Code::NotFound => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::TagInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The default human message for the code.
    pub fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "blob unknown to registry",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::TagInvalid => "manifest tag did not match URI",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "The operation is unsupported.",
            Code::TooManyRequests => "too many requests",
            Code::Unavailable => "service unavailable",
            Code::Unknown => "unknown error",
            Code::NotFound => "not found",
        }
    }
}

/// A client-visible error: a code, a message, an optional detail and the status it is sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The spec's error code.
    pub code: Code,
    /// The HTTP status (the code's default unless overridden).
    pub status: StatusCode,
    /// A human message.
    pub message: String,
    /// Optional structured detail.
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with the code's default status and message.
    pub fn new(code: Code) -> Self {
        ApiError {
            code,
            status: code.status(),
            message: code.message().to_string(),
            detail: None,
        }
    }

    /// Replaces the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Adds a structured detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Overrides the HTTP status (416 for a bad range, for example).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The JSON body in distribution's shape.
    pub fn body(&self) -> Bytes {
        #[derive(Serialize)]
        struct Item<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a serde_json::Value>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            errors: [Item<'a>; 1],
        }
        let body = Body {
            errors: [Item {
                code: self.code.name(),
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        };
        Bytes::from(serde_json::to_vec(&body).expect("error body serializes"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_distribution_shape() {
        let e = ApiError::new(Code::NameUnknown).detail(serde_json::json!({"name": "a/b"}));
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "NAME_UNKNOWN");
        assert_eq!(v["errors"][0]["detail"]["name"], "a/b");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_spec_code_has_its_status() {
        let table = [
            (Code::BlobUnknown, 404),
            (Code::BlobUploadInvalid, 400),
            (Code::BlobUploadUnknown, 404),
            (Code::DigestInvalid, 400),
            (Code::ManifestBlobUnknown, 400),
            (Code::ManifestInvalid, 400),
            (Code::ManifestUnknown, 404),
            (Code::NameInvalid, 400),
            (Code::NameUnknown, 404),
            (Code::SizeInvalid, 400),
            (Code::Unauthorized, 401),
            (Code::Denied, 403),
            (Code::Unsupported, 405),
            (Code::TooManyRequests, 429),
        ];
        for (code, status) in table {
            assert_eq!(code.status().as_u16(), status, "{}", code.name());
        }
    }
}

//! Basic credentials: the `Authorization: Basic base64(user:password)` header decoded, bounded in size,
//! and the anonymous `Basic Og==` some clients send told apart from a login.

use base64::Engine;
use http::HeaderValue;

/// The longest `Authorization` header gatehouse will decode.
pub const MAX_AUTH_HEADER: usize = 4096;

/// Whether the header is `Basic` with an empty user and password (`Og==`), which skopeo `--no-creds` and
/// other anonymous clients send after a challenge: such a request is anonymous, not a failed login.
pub fn is_empty_basic(header: &HeaderValue) -> bool {
    let b = header.as_bytes();
    b.len() >= 6
        && b[..6].eq_ignore_ascii_case(b"basic ")
        && base64::engine::general_purpose::STANDARD
            .decode(b[6..].trim_ascii())
            .is_ok_and(|d| d == b":")
}

/// Decodes `Basic base64(user:password)`: the user (non-empty UTF-8, up to the first `:`) and the password
/// bytes; `None` for anything else.
pub fn parse_basic(header: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let bytes = header.as_bytes();
    if bytes.len() > MAX_AUTH_HEADER || bytes.len() < 6 {
        return None;
    }
    if !bytes[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let token = std::str::from_utf8(&bytes[6..]).ok()?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    if user.is_empty() {
        return None;
    }
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::outcome::{log_safe_user, MAX_LOGGED_USER};
    use proptest::prelude::*;

    pub(crate) fn basic(s: &str) -> HeaderValue {
        basic_bytes(s.as_bytes())
    }

    /// A Basic `Authorization` value carrying `b` (any bytes), for tests.
    pub(crate) fn basic_bytes(b: &[u8]) -> HeaderValue {
        let t = base64::engine::general_purpose::STANDARD.encode(b);
        HeaderValue::from_str(&format!("Basic {t}")).unwrap()
    }

    #[test]
    fn empty_basic_is_anonymous() {
        assert!(is_empty_basic(&HeaderValue::from_static("Basic Og==")));
        assert!(is_empty_basic(&HeaderValue::from_static("basic  Og==")));
        assert!(!is_empty_basic(&basic("a:")));
        assert!(!is_empty_basic(&basic(":b")));
        assert!(!is_empty_basic(&HeaderValue::from_static("Bearer Og==")));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn basic_header_decoding_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(v) = HeaderValue::from_bytes(&raw) {
                let _ = parse_basic(&v);
                let _ = is_empty_basic(&v);
            }
            let mut prefixed = b"Basic ".to_vec();
            prefixed.extend_from_slice(&raw);
            if let Ok(v) = HeaderValue::from_bytes(&prefixed) {
                let _ = parse_basic(&v);
                let _ = is_empty_basic(&v);
            }
            let _ = parse_basic(&basic_bytes(&raw));
        }

        #[test]
        fn basic_header_round_trips_user_and_password(
            user in "[^:\\x00]{1,64}",
            password in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut plain = user.clone().into_bytes();
            plain.push(b':');
            plain.extend_from_slice(&password);
            let header = basic_bytes(&plain);
            prop_assert_eq!(parse_basic(&header), Some((user.clone(), password.clone())));
            let _ = log_safe_user(&user);
            prop_assert!(log_safe_user(&user).len() <= MAX_LOGGED_USER);
            prop_assert!(!log_safe_user(&user).chars().any(|c| c.is_control() || c == '"' || c == ' '));
        }
    }
}

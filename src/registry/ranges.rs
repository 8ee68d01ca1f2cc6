//! Byte ranges that clients send: the `Content-Range` of an upload chunk and the `Range` of a blob GET.
//!
//! Both are parsed here with checked arithmetic only, so no header value can wrap a length or panic, in any build
//! (issue 9, finding 11: `Content-Range: 0-18446744073709551615` wrapped to "declared 0 bytes").

/// A chunk's place in an upload, from its `Content-Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRange {
    /// The chunk's first byte.
    pub start: u64,
    /// How many bytes the chunk declares (at least 1).
    pub len: u64,
}

/// Why a `Content-Range` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRangeError {
    /// Not a byte range at all (garbage, several ranges, signs, inner whitespace): 400.
    Malformed,
    /// A well-formed range no upload can satisfy (reversed, past `u64`, past its own total): 416.
    Unsatisfiable,
}

/// A run of ASCII digits as a number: `Ok(None)` when it does not fit in `u64`, `Err` when it is not digits.
fn digits(s: &str) -> Result<Option<u64>, ()> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(());
    }
    Ok(s.parse().ok())
}

/// Parses a chunk's `Content-Range`: `a-b`, also accepted as `bytes=a-b` or `bytes a-b/total` (`total` is a
/// number or `*`), with surrounding whitespace allowed.
pub(crate) fn parse_content_range(value: &str) -> Result<ChunkRange, ContentRangeError> {
    use ContentRangeError::*;
    let v = value.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v);
    let (range, total) = match v.split_once('/') {
        Some((r, "*")) => (r, None),
        Some((r, t)) => (r, Some(digits(t).map_err(|_| Malformed)?)),
        None => (v, None),
    };
    let (a, b) = range.split_once('-').ok_or(Malformed)?;
    let (start, end) = (
        digits(a).map_err(|_| Malformed)?,
        digits(b).map_err(|_| Malformed)?,
    );
    let (Some(start), Some(end)) = (start, end) else {
        return Err(Unsatisfiable);
    };
    let len = end
        .checked_sub(start)
        .and_then(|d| d.checked_add(1))
        .ok_or(Unsatisfiable)?;
    match total {
        Some(Some(total)) if end < total => {}
        Some(_) => return Err(Unsatisfiable),
        None => {}
    }
    Ok(ChunkRange { start, len })
}

/// What a `Range` header asks of a blob of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No usable Range header: the whole blob.
    Whole,
    /// Bytes `start..=end`, with `start <= end < len`.
    Part(u64, u64),
    /// A range that lies outside the blob.
    Unsatisfiable,
}

/// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n`; other forms (multiple ranges, other units, garbage) are ignored,
/// as RFC 9110 allows, and the whole blob is sent. A number past `u64` counts as `u64::MAX`: as a first byte it
/// lies past any blob, as a last byte or a suffix length it reaches the blob's end.
pub(crate) fn parse_range(value: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| digits(s).map(|n| n.unwrap_or(u64::MAX));
    let (first, last) = match (a.is_empty(), num(a), num(b)) {
        // Suffix: the last n bytes.
        (true, _, Ok(0)) => return RangeAsk::Unsatisfiable,
        (true, _, Ok(n)) => match len.checked_sub(1) {
            Some(end) => return RangeAsk::Part(len.saturating_sub(n), end),
            None => return RangeAsk::Unsatisfiable,
        },
        (false, Ok(first), Err(())) if b.is_empty() => (first, u64::MAX),
        (false, Ok(first), Ok(last)) => (first, last),
        _ => return RangeAsk::Whole,
    };
    if last < first {
        return RangeAsk::Whole; // Syntactically invalid: ignored.
    }
    if first >= len {
        return RangeAsk::Unsatisfiable;
    }
    // first < len, so len >= 1.
    RangeAsk::Part(first, last.min(len - 1))
}

#[cfg(test)]
mod tests {
    use super::ContentRangeError::{Malformed, Unsatisfiable as Unsat};
    use super::RangeAsk::*;
    use super::*;
    use proptest::prelude::*;

    const MAX: u64 = u64::MAX;

    fn chunk(start: u64, len: u64) -> Result<ChunkRange, ContentRangeError> {
        Ok(ChunkRange { start, len })
    }

    #[test]
    fn content_range_with_u64_max_end_is_unsatisfiable_not_wrapped() {
        assert_eq!(parse_content_range("0-18446744073709551615"), Err(Unsat));
        assert_eq!(
            parse_content_range("bytes 0-18446744073709551615/*"),
            Err(Unsat)
        );
        assert_eq!(parse_content_range("1-18446744073709551615"), chunk(1, MAX));
        assert_eq!(parse_content_range("0-18446744073709551614"), chunk(0, MAX));
    }

    #[test]
    fn content_ranges() {
        let table: &[(&str, Result<ChunkRange, ContentRangeError>)] = &[
            ("0-9", chunk(0, 10)),
            ("bytes=10-19", chunk(10, 10)),
            ("bytes 10-19/*", chunk(10, 10)),
            ("bytes 10-19/20", chunk(10, 10)),
            ("  0-0\t", chunk(0, 1)),
            ("007-008", chunk(7, 2)),
            // Reversed, past u64, past its own total: well-formed, unsatisfiable.
            ("9-3", Err(Unsat)),
            ("1-0", Err(Unsat)),
            ("99999999999999999999-1", Err(Unsat)),
            ("0-99999999999999999999", Err(Unsat)),
            ("18446744073709551616-18446744073709551616", Err(Unsat)),
            ("bytes 10-19/19", Err(Unsat)),
            ("bytes 0-0/0", Err(Unsat)),
            // Not a range.
            ("", Err(Malformed)),
            ("-", Err(Malformed)),
            ("1-", Err(Malformed)),
            ("-1", Err(Malformed)),
            ("-1-5", Err(Malformed)),
            ("a-b", Err(Malformed)),
            ("1--2", Err(Malformed)),
            ("+1-2", Err(Malformed)),
            ("1-+2", Err(Malformed)),
            ("1-2-3", Err(Malformed)),
            ("0 - 9", Err(Malformed)),
            ("0-1,2-3", Err(Malformed)),
            ("bytes=0-1, 2-3", Err(Malformed)),
            ("bytes 0-9/x", Err(Malformed)),
            ("bytes 0-9/", Err(Malformed)),
            ("bytes 0-9/-1", Err(Malformed)),
            ("bytes 0-9/10/11", Err(Malformed)),
            ("items=0-9", Err(Malformed)),
            ("0x0-0x9", Err(Malformed)),
            ("１-２", Err(Malformed)),
        ];
        for (value, want) in table {
            assert_eq!(parse_content_range(value), *want, "{value:?}");
        }
    }

    #[test]
    fn ranges() {
        let table: &[(Option<&str>, u64, RangeAsk)] = &[
            (None, 10, Whole),
            (Some("bytes=0-4"), 10, Part(0, 4)),
            (Some("bytes=5-"), 10, Part(5, 9)),
            (Some("bytes=5-100"), 10, Part(5, 9)),
            (Some("bytes=-3"), 10, Part(7, 9)),
            (Some("bytes=-30"), 10, Part(0, 9)),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-20"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-0"), 0, Unsatisfiable),
            (Some("bytes=4-2"), 10, Whole),
            (Some("bytes=0-1,3-4"), 10, Whole),
            (Some("items=0-1"), 10, Whole),
            (Some("bytes=a-b"), 10, Whole),
            (Some("bytes=+1-2"), 10, Whole),
            (Some("bytes=-"), 10, Whole),
            (Some("bytes=99999999999999999999999-"), 10, Unsatisfiable),
            // Hostile values: u64 bounds, overflow, whitespace, empty blobs.
            (Some("bytes=0-18446744073709551615"), 10, Part(0, 9)),
            (Some("bytes=0-99999999999999999999"), 10, Part(0, 9)),
            (Some("bytes=-18446744073709551615"), 10, Part(0, 9)),
            (Some("bytes=-99999999999999999999"), 10, Part(0, 9)),
            (Some("bytes=18446744073709551615-"), MAX, Unsatisfiable),
            (
                Some("bytes=18446744073709551614-"),
                MAX,
                Part(MAX - 1, MAX - 1),
            ),
            (Some("bytes=-1"), MAX, Part(MAX - 1, MAX - 1)),
            (Some("bytes=0-"), MAX, Part(0, MAX - 1)),
            (Some(" bytes=0-4 "), 10, Part(0, 4)),
            (Some("bytes= 2-4 "), 10, Part(2, 4)),
            (Some("bytes=0 -4"), 10, Whole),
            (Some("bytes=-1-2"), 10, Whole),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=-0"), 0, Unsatisfiable),
            (Some("bytes=x-"), 0, Whole),
            (Some("bytes=5-1"), 0, Whole),
            (Some("bytes=1-2,"), 10, Whole),
            (Some("bytes=１-２"), 10, Whole),
        ];
        for (value, len, want) in table {
            assert_eq!(parse_range(*value, *len), *want, "{value:?} of {len}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn content_range_never_panics(value in "\\PC{0,40}") {
            let _ = parse_content_range(&value);
        }

        #[test]
        fn content_range_like_text_never_panics(value in "[ bytes=0-9/*,+-]{0,40}") {
            if let Ok(r) = parse_content_range(&value) {
                prop_assert!(r.len >= 1);
                prop_assert!(r.start.checked_add(r.len - 1).is_some());
            }
        }

        #[test]
        fn content_range_round_trips(start in any::<u64>(), len in 1..=u64::MAX, form in 0..4u8) {
            let Some(end) = start.checked_add(len - 1) else {
                return Ok(());
            };
            let value = match form {
                0 => format!("{start}-{end}"),
                1 => format!("bytes={start}-{end}"),
                2 => format!("bytes {start}-{end}/*"),
                _ => format!(" {start}-{end} "),
            };
            prop_assert_eq!(parse_content_range(&value), Ok(ChunkRange { start, len }));
        }

        #[test]
        fn content_range_reversed_is_unsatisfiable(a in any::<u64>(), b in any::<u64>()) {
            prop_assume!(b < a);
            prop_assert_eq!(parse_content_range(&format!("{a}-{b}")), Err(Unsat));
        }

        #[test]
        fn range_never_panics(value in "\\PC{0,40}", len in any::<u64>()) {
            let _ = parse_range(Some(&value), len);
            let prefixed = format!("bytes={value}");
            if let Part(s, e) = parse_range(Some(&prefixed), len) {
                prop_assert!(s <= e && e < len);
            }
        }

        #[test]
        fn range_like_text_stays_inside_the_blob(value in "[ 0-9,-]{0,30}", len in prop_oneof![
            Just(0u64), Just(1), 2..100u64, Just(u64::MAX)
        ]) {
            match parse_range(Some(&format!("bytes={value}")), len) {
                Part(s, e) => prop_assert!(s <= e && e < len),
                Unsatisfiable | Whole => {}
            }
        }

        #[test]
        fn range_round_trips(len in 1..=u64::MAX, a in any::<u64>(), b in any::<u64>()) {
            let (start, end) = (a % len, b % len);
            let (start, end) = (start.min(end), start.max(end));
            prop_assert_eq!(parse_range(Some(&format!("bytes={start}-{end}")), len), Part(start, end));
            prop_assert_eq!(parse_range(Some(&format!("bytes={start}-")), len), Part(start, len - 1));
            let n = len - start;
            prop_assert_eq!(parse_range(Some(&format!("bytes=-{n}")), len), Part(start, len - 1));
        }
    }
}

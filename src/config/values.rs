//! Parsers for the values of environment variables, in the forms a registry:2 compose file writes them:
//! booleans, distribution's list form `[a,b]`, and Go-style durations (`90s`, `1h30m`). None of them panics on
//! any input; the property tests below hold them to that, and to round trips where one exists.

use std::time::Duration;

/// Parses a boolean: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case, spaces around ignored).
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        "" => Err("is empty, not true or false".to_string()),
        other => Err(format!("`{other}` is not true or false")),
    }
}

/// Parses distribution's list form `[a,b]` (a YAML flow sequence); a bare value is a list of one. Items are
/// trimmed and may be quoted (`['DENY']`); empty items are dropped, so `[]` is the empty list.
pub fn parse_list(value: &str) -> Vec<String> {
    let v = value.trim();
    let inner = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    inner
        .split(',')
        .map(|s| unquote(s.trim()).to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// The longest duration accepted: about 31 years, far beyond any timeout, and safe to add to an `Instant`.
const MAX_DURATION: Duration = Duration::from_secs(1 << 30);

/// Parses a Go duration as distribution writes them (`300ms`, `90s`, `1h30m`, `1.5h`; units `ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`), or a bare whole number of seconds (`30`). Negative values are refused.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let bad = || format!("`{v}` is not a duration like 30s, 5m or 1h30m");
    if v.is_empty() {
        return Err(bad());
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = v.parse().map_err(|_| bad())?;
        return checked(Duration::from_secs(secs)).ok_or_else(bad);
    }
    let mut total = Duration::ZERO;
    let mut rest = v;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let n: f64 = number.parse().map_err(|_| bad())?;
        let part = Duration::try_from_secs_f64(n * scale).map_err(|_| bad())?;
        total = total.checked_add(part).and_then(checked).ok_or_else(bad)?;
        rest = tail;
    }
    Ok(total)
}

fn checked(d: Duration) -> Option<Duration> {
    (d <= MAX_DURATION).then_some(d)
}

/// Writes whole seconds as [`parse_duration`] reads them back (`1h2m3s`, `0s`).
pub fn format_seconds(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn list_forms() {
        assert_eq!(parse_list("[a, b]"), vec!["a", "b"]);
        assert_eq!(parse_list("['*']"), vec!["*"]);
        assert_eq!(parse_list("single"), vec!["single"]);
        assert_eq!(parse_list("[]"), Vec::<String>::new());
        assert_eq!(parse_list(" [\"x\" , 'y' ,] "), vec!["x", "y"]);
    }

    #[test]
    fn bool_forms() {
        for (v, want) in [
            ("true", Ok(true)),
            (" ON ", Ok(true)),
            ("1", Ok(true)),
            ("no", Ok(false)),
            ("False", Ok(false)),
            ("", Err(())),
            ("maybe", Err(())),
            ("tru", Err(())),
        ] {
            assert_eq!(parse_bool(v).map_err(|_| ()), want, "{v:?}");
        }
    }

    #[test]
    fn duration_forms() {
        for (v, secs) in [
            ("30", 30.0),
            ("30s", 30.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("300ms", 0.3),
            ("168h", 604_800.0),
            ("1m0.5s", 60.5),
        ] {
            assert_eq!(parse_duration(v).unwrap().as_secs_f64(), secs, "{v}");
        }
        for bad in [
            "",
            "s",
            "-1s",
            "1x",
            "1.2.3s",
            ".s",
            "1h-",
            "99999999999999999999h",
            "1e9h",
            " 1 h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn env_value_parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_bool(&s);
            let _ = parse_list(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn duration_like_input_never_panics(s in "[0-9.]{0,25}(ns|us|µs|ms|s|m|h)?([0-9.]{0,25}(ms|s|m|h))?") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn whole_seconds_round_trip(secs in 0u64..(1 << 30)) {
            let text = format_seconds(secs);
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(secs)), "{}", text);
        }

        #[test]
        fn bool_round_trips(b: bool) {
            prop_assert_eq!(parse_bool(&b.to_string()), Ok(b));
        }

        #[test]
        fn list_round_trips(items in proptest::collection::vec("[A-Za-z0-9:/._*-]{1,20}", 0..6)) {
            let text = format!("[{}]", items.join(","));
            prop_assert_eq!(&parse_list(&text), &items);
            let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
            prop_assert_eq!(&parse_list(&format!("[{}]", quoted.join(", "))), &items);
        }
    }
}

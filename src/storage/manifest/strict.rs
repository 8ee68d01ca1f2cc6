//! Strict JSON for manifests: the bytes parsed into a [`serde_json::Value`], refusing any object that names a
//! key twice.
//!
//! serde_json keeps the last of duplicate keys; Go's encoding/json and other readers may keep another one, so a
//! manifest whose `mediaType` says "image" then "index" is read as an index here and as an image elsewhere (issue 9,
//! finding 12). Keys are compared after unescaping (`"a"` and `"\u0061"` are the same key), at every depth.
//! serde_json's recursion limit still bounds the nesting.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON value read with duplicate keys refused.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {:?}",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// Parses `body` as one JSON value, refusing duplicate keys in any object; the error says what and where.
pub(super) fn from_slice(body: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(body).map(|s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_every_depth() {
        let cases: &[&str] = &[
            r#"{"a":1,"a":1}"#,
            r#"{"a":1,"b":2,"a":3}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":{"k":"v","k":"w"}}"#,
            r#"{"x":[{"k":1},{"k":1,"k":2}]}"#,
            r#"[[[{"deep":{"k":null,"k":null}}]]]"#,
        ];
        for c in cases {
            let e = from_slice(c.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("duplicate key"), "{c}: {e}");
            assert!(e.line() > 0, "{c}: the error says where: {e}");
        }
    }

    #[test]
    fn agrees_with_serde_json_without_duplicates() {
        let cases: &[&str] = &[
            "null",
            "true",
            "-1",
            "18446744073709551615",
            "1.5e3",
            r#""s\u00e9""#,
            r#"{"a":{"a":{"a":[1,{"a":2}]}},"b":[],"c":{}}"#,
            r#"[{"k":1},{"k":2}]"#,
        ];
        for c in cases {
            let want: Value = serde_json::from_str(c).unwrap();
            assert_eq!(from_slice(c.as_bytes()).unwrap(), want, "{c}");
        }
    }

    #[test]
    fn nesting_stays_bounded() {
        let deep = "[".repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
        let deep = r#"{"a":"#.repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
    }
}

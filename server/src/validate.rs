//! Input validation shared by every route: ids, ranges and strict JSON.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Longest id the contract allows.
pub const MAX_ID_LEN: usize = 64;
/// Largest stock an event may be created with.
pub const MAX_STOCK: u64 = 10_000_000;
/// Request bodies above this many bytes are refused before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// True when `s` is a contract id: 1..=64 characters of `[A-Za-z0-9_.:-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Checks an id field, naming it in the error.
pub fn id(field: &str, value: &str) -> Result<()> {
    if is_valid_id(value) {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "{field} must be 1..=64 characters of [A-Za-z0-9_.:-]"
        )))
    }
}

/// Checks that `value` lies in `min..=max`, naming the field in the error.
pub fn range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value < min || value > max {
        Err(Error::bad_request(format!(
            "{field} must be between {min} and {max}, got {value}"
        )))
    } else {
        Ok(())
    }
}

/// Parses a JSON body strictly: wrong types, missing fields and unknown
/// fields (the request types deny them) are all 400.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            _ => "invalid request body",
        };
        Error::bad_request(format!("{what}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id_char() -> impl Strategy<Value = char> {
        prop::sample::select(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
                .chars()
                .collect::<Vec<_>>(),
        )
    }

    proptest! {
        #[test]
        fn ids_from_the_alphabet_are_valid(s in prop::collection::vec(id_char(), 1..=64)) {
            let s: String = s.into_iter().collect();
            prop_assert!(is_valid_id(&s));
        }

        #[test]
        fn ids_too_long_are_invalid(s in prop::collection::vec(id_char(), 65..200)) {
            let s: String = s.into_iter().collect();
            prop_assert!(!is_valid_id(&s));
        }

        #[test]
        fn any_char_outside_the_alphabet_makes_an_id_invalid(
            prefix in prop::collection::vec(id_char(), 0..30),
            bad in any::<char>().prop_filter("outside the alphabet", |c| {
                !(c.is_ascii_alphanumeric() || "_.:-".contains(*c))
            }),
            suffix in prop::collection::vec(id_char(), 0..30),
        ) {
            let s: String = prefix.into_iter().chain([bad]).chain(suffix).collect();
            prop_assert!(!is_valid_id(&s));
        }

        #[test]
        fn range_accepts_exactly_the_interval(v in any::<u32>(), lo in 0u32..100, width in 0u32..100) {
            let hi = lo + width;
            prop_assert_eq!(range("q", v, lo, hi).is_ok(), (lo..=hi).contains(&v));
        }

        #[test]
        fn json_never_panics_and_rejects_garbage(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            #[allow(dead_code)]
            struct Q { quantity: u32 }
            if let Ok(q) = json::<Q>(&bytes) {
                // Anything accepted must really be the documented shape.
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(v["quantity"].as_u64(), Some(u64::from(q.quantity)));
            }
        }

        #[test]
        fn a_string_where_a_number_belongs_is_rejected(s in "[a-z0-9]{0,12}") {
            #[derive(serde::Deserialize, Debug)]
            #[allow(dead_code)]
            struct Q { quantity: u32 }
            let body = serde_json::json!({ "quantity": s }).to_string();
            let err = json::<Q>(body.as_bytes()).unwrap_err();
            prop_assert_eq!(err.code(), "BAD_REQUEST");
        }
    }

    #[test]
    fn unknown_fields_and_floats_are_rejected() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            quantity: u32,
        }
        assert!(json::<Q>(br#"{"quantity":1}"#).is_ok());
        assert!(json::<Q>(br#"{"quantity":1.5}"#).is_err());
        assert!(json::<Q>(br#"{"quantity":-1}"#).is_err());
        assert!(json::<Q>(br#"{"quantity":1,"extra":true}"#).is_err());
        assert!(json::<Q>(br#"{}"#).is_err());
        assert!(json::<Q>(b"").is_err());
    }
}

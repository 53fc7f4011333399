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

/// Checks a display name: at most `max_chars` characters and no NUL, which
/// PostgreSQL's text cannot store (it would fail as a backend error, 503,
/// instead of the client's 400).
pub fn name(field: &str, value: &str, max_chars: usize) -> Result<()> {
    range(
        &format!("{field} length"),
        value.chars().count(),
        0,
        max_chars,
    )?;
    if value.contains('\0') {
        return Err(Error::bad_request(format!(
            "{field} must not contain the NUL character"
        )));
    }
    Ok(())
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
/// fields (the request types deny them) are all 400, and so is any body
/// that is not a JSON object (serde would otherwise fill a request struct
/// from an array, field by field in order: `["r-1"]` as a payment).
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(Error::bad_request(
            "invalid request body: the body must be a JSON object",
        ));
    }
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

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Pay {
            reservation_id: String,
        }
        // An array fills the struct positionally unless refused first.
        assert!(serde_json::from_slice::<Pay>(br#"["-"]"#).is_ok());
        for body in [&br#"["-"]"#[..], b" [\"-\"]\r", b"\"x\"", b"1"] {
            let err = json::<Pay>(body).unwrap_err();
            assert!(err.to_string().contains("JSON object"), "{err}");
        }
        assert!(json::<Pay>(br#" {"reservation_id": "r"}"#).is_ok());
    }
    use proptest::prelude::*;

    /// Request bodies that are valid, nearly valid (a wrong type, a number
    /// out of range or a float, an extra field, cut short) or garbage, so
    /// that both the accepting and the refusing branch are exercised.
    fn request_body() -> impl Strategy<Value = Vec<u8>> {
        let valid = any::<u32>().prop_map(|n| format!(r#"{{"quantity":{n}}}"#).into_bytes());
        let near = prop_oneof![
            any::<u64>().prop_map(|n| format!(r#"{{"quantity":{n}}}"#)),
            any::<i32>().prop_map(|n| format!(r#"{{"quantity":{n}}}"#)),
            (0u32..1000).prop_map(|n| format!(r#"{{"quantity":{n}.5}}"#)),
            (0u32..1000).prop_map(|n| format!(r#"{{"quantity":"{n}"}}"#)),
            (0u32..1000).prop_map(|n| format!(r#"{{"quantity":{n},"extra":1}}"#)),
            Just("{}".to_owned()),
            Just("[]".to_owned()),
        ]
        .prop_map(String::into_bytes);
        let cut = (any::<u32>(), 0usize..20).prop_map(|(n, keep)| {
            let body = format!(r#"{{"quantity":{n}}}"#).into_bytes();
            body[..keep.min(body.len())].to_vec()
        });
        let garbage = prop::collection::vec(any::<u8>(), 0..64);
        prop_oneof![valid, near, cut, garbage]
    }

    #[test]
    fn the_body_oracle_sees_both_branches() {
        // A generator that only ever produced refusals would make the
        // property above vacuous: both kinds must come out of it.
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Q {
            quantity: u32,
        }
        let mut runner = TestRunner::deterministic();
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..200 {
            let body = request_body().new_tree(&mut runner).unwrap().current();
            match json::<Q>(&body) {
                Ok(_) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        assert!(
            accepted >= 20 && refused >= 20,
            "{accepted} accepted, {refused} refused"
        );
    }

    /// `(v, lo, hi)` for the range property: v is drawn near the interval
    /// (its edges and one past them), below 250 where the intervals sit,
    /// or anywhere in u32, so that both accepts and refusals occur.
    fn range_case() -> impl Strategy<Value = (u32, u32, u32)> {
        (0u32..100, 0u32..100).prop_flat_map(|(lo, width)| {
            let hi = lo + width;
            let v = prop_oneof![
                Just(lo),
                Just(hi),
                Just(lo.saturating_sub(1)),
                Just(hi + 1),
                lo..=hi,
                0u32..250,
                any::<u32>(),
            ];
            (v, Just(lo), Just(hi))
        })
    }

    #[test]
    fn the_range_generator_sees_both_branches() {
        // A v that always fell outside the interval would make
        // `range_accepts_exactly_the_interval` check only refusals.
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..200 {
            let (v, lo, hi) = range_case().new_tree(&mut runner).unwrap().current();
            match range("q", v, lo, hi) {
                Ok(()) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        assert!(
            accepted >= 20 && refused >= 20,
            "{accepted} accepted, {refused} refused"
        );
    }

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
        fn range_accepts_exactly_the_interval((v, lo, hi) in range_case()) {
            prop_assert_eq!(range("q", v, lo, hi).is_ok(), (lo..=hi).contains(&v));
        }

        #[test]
        fn json_accepts_exactly_the_documented_shape(body in request_body()) {
            #[derive(serde::Deserialize, Debug)]
            #[serde(deny_unknown_fields)]
            struct Q { quantity: u32 }
            // The oracle, written independently of serde's derive: one
            // object with the single key `quantity` holding an integer that
            // fits u32.
            let expected = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let o = v.as_object()?;
                    (o.len() == 1).then_some(())?;
                    let n = o.get("quantity")?.as_u64()?;
                    u32::try_from(n).ok()
                });
            match json::<Q>(&body) {
                Ok(q) => prop_assert_eq!(Some(q.quantity), expected, "accepted {:?}", String::from_utf8_lossy(&body)),
                Err(e) => {
                    prop_assert_eq!(expected, None, "refused {:?}", String::from_utf8_lossy(&body));
                    prop_assert_eq!(e.code(), "BAD_REQUEST");
                }
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

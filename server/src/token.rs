//! Queue tokens: HMAC-SHA256 signed claims any instance can check alone.
//!
//! Format: `base64url(payload) "." base64url(mac)` where payload is
//! `eventId|userId|seq|issuedAt` (ids cannot contain `|`). The MAC covers the
//! encoded payload exactly as sent, and base64 decoding is canonical, so any
//! changed byte of a token fails verification.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::validate::is_valid_id;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted; anything longer is malformed.
const MAX_TOKEN_LEN: usize = 512;

/// What a token says: who entered which event's line, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub event_id: String,
    pub user_id: String,
    /// Entry sequence number in the event's line (0-based): the place.
    pub seq: u64,
    /// Unix seconds at first entry.
    pub issued_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("queue token is malformed")]
    Malformed,
    #[error("queue token signature is invalid")]
    BadSignature,
    #[error("queue token has expired")]
    Expired,
}

/// Signs and verifies tokens. Cloning is cheap: the keyed HMAC state is
/// computed once and cloned per use.
#[derive(Clone)]
pub struct TokenSigner {
    mac: HmacSha256,
    ttl_secs: u64,
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        TokenSigner { mac, ttl_secs }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = format!(
            "{}|{}|{}|{}",
            claims.event_id, claims.user_id, claims.seq, claims.issued_at
        );
        let encoded = URL_SAFE_NO_PAD.encode(payload);
        let mut mac = self.mac.clone();
        mac.update(encoded.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let mut token = encoded;
        token.push('.');
        token.push_str(&sig);
        token
    }

    /// Checks the signature (in constant time) and the age, then parses.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (encoded, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::BadSignature)?;
        let mut mac = self.mac.clone();
        mac.update(encoded.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        // Signed by us, so a parse failure means a bug or a rotated format.
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        let payload = std::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = payload.split('|');
        let (Some(event_id), Some(user_id), Some(seq), Some(iat), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if !is_valid_id(event_id) || !is_valid_id(user_id) {
            return Err(TokenError::Malformed);
        }
        let seq = seq.parse().map_err(|_| TokenError::Malformed)?;
        let issued_at: u64 = iat.parse().map_err(|_| TokenError::Malformed)?;
        if now_unix.saturating_sub(issued_at) > self.ttl_secs {
            return Err(TokenError::Expired);
        }
        Ok(Claims {
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
            seq,
            issued_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            event_id: "concert-1".into(),
            user_id: "user:42".into(),
            seq: 7,
            issued_at: 1_700_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let s = TokenSigner::new(b"secret", 3600);
        let t = s.sign(&claims());
        assert_eq!(s.verify(&t, 1_700_000_100), Ok(claims()));
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let s = TokenSigner::new(b"secret", 3600);
        let t = s.sign(&claims());
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        for i in 0..t.len() {
            for &c in alphabet {
                let mut bytes = t.clone().into_bytes();
                if bytes[i] == c {
                    continue;
                }
                bytes[i] = c;
                let forged = String::from_utf8(bytes).unwrap();
                assert!(
                    s.verify(&forged, 1_700_000_100).is_err(),
                    "byte {i} changed to {} still verified",
                    c as char
                );
            }
        }
    }

    #[test]
    fn another_secret_is_a_bad_signature() {
        let t = TokenSigner::new(b"secret", 3600).sign(&claims());
        let other = TokenSigner::new(b"other", 3600);
        assert_eq!(
            other.verify(&t, 1_700_000_100),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn old_tokens_expire() {
        let s = TokenSigner::new(b"secret", 60);
        let t = s.sign(&claims());
        assert!(s.verify(&t, 1_700_000_060).is_ok());
        assert_eq!(s.verify(&t, 1_700_000_061), Err(TokenError::Expired));
    }

    #[test]
    fn garbage_is_malformed_or_bad_signature() {
        let s = TokenSigner::new(b"secret", 60);
        for t in ["", ".", "abc", "a.b.c", &"x".repeat(600)] {
            assert!(s.verify(t, 0).is_err(), "{t:?}");
        }
    }
}

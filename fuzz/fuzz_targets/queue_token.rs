//! Queue token verification: any string is refused or accepted without a
//! panic; a token the signer made for valid ids round-trips, and any change to it is
//! refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_server::token::{Claims, TokenSigner};
use ticket_server::validate::is_valid_id;

fuzz_target!(|input: (&str, String, String, u64, u8)| {
    let (forged, event_id, user_id, seq, flip) = input;
    let signer = TokenSigner::new(b"fuzz-secret", 86_400);
    let now = 1_800_000_000;
    let _ = signer.verify(forged, now);
    // The server signs only entries whose ids passed the id check.
    if !is_valid_id(&event_id) || !is_valid_id(&user_id) {
        return;
    }

    let claims = Claims {
        event_id,
        user_id,
        seq,
        issued_at: now - 10,
    };
    let token = signer.sign(&claims);
    assert_eq!(signer.verify(&token, now), Ok(claims));
    // One byte changed: refused.
    let mut bytes = token.into_bytes();
    let at = usize::from(flip) % bytes.len();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    if let Ok(changed) = String::from_utf8(bytes) {
        assert!(signer.verify(&changed, now).is_err(), "a changed token was accepted");
    }
});

//! Every endpoint's JSON body through the handler's own parse and checks:
//! never a panic; an accepted body is one the contract allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_server::routes::{check_body, Route};

fuzz_target!(|input: &[u8]| {
    let Some((&which, body)) = input.split_first() else {
        return;
    };
    let routes = [
        Route::CreateEvent,
        Route::Enter,
        Route::Reserve,
        Route::CreateConcert,
        Route::Hold("c1".into()),
        Route::Pay,
        Route::ChargePoints,
        Route::QueueStatus,
    ];
    let route = &routes[usize::from(which) % routes.len()];
    if check_body(route, body).is_ok() {
        // An accepted body is JSON, within the size cap.
        assert!(body.len() <= ticket_server::validate::MAX_BODY_BYTES);
        if !matches!(route, Route::QueueStatus) {
            assert!(serde_json_is_object(body), "accepted a non-object body");
        }
    }
});

/// True when `body` starts, after whitespace, with `{`.
fn serde_json_is_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

//! Every endpoint's JSON body through the handler's own parse and checks:
//! never a panic; an accepted body is one the contract allows. The first
//! byte picks the route; new routes go at the end of the list so the
//! committed seeds keep naming the route they were made for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_server::backend::admission::{AdmissionChange, MAX_RELEASE_RATE_PER_MINUTE};
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
        Route::SetAdmission("e1".into()),
    ];
    let route = &routes[usize::from(which) % routes.len()];
    if check_body(route, body).is_ok() {
        // An accepted body is JSON, within the size cap.
        assert!(body.len() <= ticket_server::validate::MAX_BODY_BYTES);
        if !matches!(route, Route::QueueStatus) {
            assert!(serde_json_is_object(body), "accepted a non-object body");
        }
        if matches!(route, Route::SetAdmission(_)) {
            // The handler applies what `check_body` accepted, so the
            // ranges the contract gives must already hold.
            let change = AdmissionChange::parse(body).expect("accepted once, accepted again");
            if let Some(rate) = change.release_rate_per_minute {
                assert!(rate <= MAX_RELEASE_RATE_PER_MINUTE);
            }
            if let Some(cap) = change.active_capacity {
                assert!((1..=1_000_000).contains(&cap));
            }
        }
    }
});

/// True when `body` starts, after whitespace, with `{`.
fn serde_json_is_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

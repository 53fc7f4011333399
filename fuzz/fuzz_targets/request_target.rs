//! Request targets (path and query): routing, percent-decoding of ids and
//! query values, and the id check. Never a panic; an id the router hands
//! out and the check accepts is a contract id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ticket_server::http::query_param;
use ticket_server::routes::Route;
use ticket_server::validate::is_valid_id;

fuzz_target!(|target: &str| {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if let Some((route, _method)) = Route::resolve(path) {
        let ids: Vec<String> = match route {
            Route::GetEvent(a)
            | Route::GetReservation(a)
            | Route::Schedules(a)
            | Route::Hold(a)
            | Route::SetAdmission(a)
            | Route::EventPage(a)
            | Route::Asset(a) => vec![a],
            Route::Seats(a, b) => vec![a, b],
            _ => vec![],
        };
        for id in ids {
            if is_valid_id(&id) {
                assert!(id.len() <= 64 && !id.contains('/') && !id.contains('%'));
            }
        }
    }
    for name in ["userId", "token"] {
        if let Some(value) = query_param(query, name) {
            let _ = is_valid_id(&value);
        }
    }
});

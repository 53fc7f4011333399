//! What the seat-map scenario records for check 6 to judge: every user,
//! every accepted hold, every payment and every read of the seat map.

use std::collections::BTreeMap;

use super::{Role, SeatSpec};
use crate::client::Call;

/// One hold attempt that the server answered 201.
#[derive(Debug, Clone)]
pub struct HoldOk {
    pub user: String,
    /// Made after the race, on a seat seen AVAILABLE again.
    pub rehold: bool,
    pub seat: u32,
    pub reservation_id: String,
    pub call: Call,
}

impl HoldOk {
    /// The hold `call` made, if the server answered 201 with a reservation.
    pub(crate) fn from_call(user: &str, rehold: bool, seat: u32, call: &Call) -> Option<Self> {
        let id = call
            .reply
            .str_field("reservationId")
            .filter(|_| call.reply.status() == Some(201))?;
        Some(HoldOk {
            user: user.to_owned(),
            rehold,
            seat,
            reservation_id: id.to_owned(),
            call: call.clone(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct PayCall {
    pub user: String,
    pub seat: u32,
    pub reservation_id: String,
    pub key: Option<String>,
    pub call: Call,
    /// Sent on purpose after the hold lapsed.
    pub late: bool,
}

#[derive(Debug, Clone)]
pub struct SeatUser {
    pub user: String,
    /// Holds a lapsed seat again after the race.
    pub rehold: bool,
    pub role: Role,
    pub stuck: Option<String>,
    pub charge: Option<Call>,
    /// Every hold attempt, in order, with its seat.
    pub holds: Vec<(u32, Call)>,
    pub final_balance: Option<Call>,
}

impl SeatUser {
    pub(crate) fn new(user: String, rehold: bool, role: Role) -> Self {
        SeatUser {
            user,
            rehold,
            role,
            stuck: None,
            charge: None,
            holds: Vec::new(),
            final_balance: None,
        }
    }
}

/// One read of the seat map: seat number -> status.
#[derive(Debug, Clone)]
pub struct SeatRead {
    pub invoked: u64,
    pub completed: u64,
    pub status: BTreeMap<u32, String>,
}

#[derive(Debug, Clone)]
pub struct SeatRun {
    pub spec: SeatSpec,
    pub concert_id: String,
    pub users: Vec<SeatUser>,
    pub holds: Vec<HoldOk>,
    pub pays: Vec<PayCall>,
    pub reads: Vec<SeatRead>,
    /// Problems carrying out the scenario (not judgements).
    pub problems: Vec<String>,
    /// Hold attempts answered SEAT_TAKEN.
    pub taken: usize,
}

//! `GET /api/v1/concerts` on the embedded backend: every concert with a
//! schedule that has a seat to hold now, its schedules by date.

use tokio::time::Instant;

use super::{MemorySeats, Schedule};
use crate::concert::{ConcertView, ScheduleView, SeatStatus};

impl MemorySeats {
    pub fn concerts(&self) -> Vec<ConcertView> {
        let now = Instant::now();
        let store = self.lock();
        let mut out: Vec<ConcertView> = store
            .concerts
            .iter()
            .filter_map(|(id, concert)| {
                let mut schedules: Vec<ScheduleView> = concert
                    .schedules
                    .iter()
                    .map(|s| s.view(now))
                    .filter(|s| s.available_seats > 0)
                    .collect();
                schedules.sort_by(|a, b| (&a.date, &a.schedule_id).cmp(&(&b.date, &b.schedule_id)));
                (!schedules.is_empty()).then(|| ConcertView {
                    concert_id: id.clone(),
                    name: concert.name.clone(),
                    schedules,
                })
            })
            .collect();
        out.sort_by(|a, b| a.concert_id.cmp(&b.concert_id));
        out
    }
}

impl Schedule {
    /// The schedule as listed, its AVAILABLE seats counted at `now`.
    pub(super) fn view(&self, now: Instant) -> ScheduleView {
        ScheduleView {
            schedule_id: self.id.clone(),
            date: self.date.clone(),
            available_seats: self
                .seats
                .iter()
                .filter(|seat| seat.status(now) == SeatStatus::Available)
                .count() as u32,
        }
    }
}

//! `GET /api/v1/concerts` on the shared stack: every concert with a
//! schedule that has a seat to hold now (AVAILABLE, or HELD and lapsed),
//! its open schedules by date, in one query.

use super::health::Component;
use super::StackBackend;
use crate::concert::{ConcertView, ScheduleView};
use crate::error::Result;

impl StackBackend {
    pub(super) async fn list_concerts(&self) -> Result<Vec<ConcertView>> {
        self.require(&[Component::Postgres])?;
        let rows = self
            .pg()
            .await?
            .query(
                "SELECT c.concert_id, c.name, s.schedule_id, to_char(s.date, 'YYYY-MM-DD'), o.free
                 FROM concerts c JOIN schedules s USING (concert_id)
                 CROSS JOIN LATERAL (
                     SELECT count(*) AS free FROM seats t
                     WHERE t.concert_id = s.concert_id AND t.schedule_id = s.schedule_id
                       AND (t.status = 'AVAILABLE'
                            OR (t.status = 'HELD' AND t.hold_expires_at <= now()))) o
                 WHERE o.free > 0
                 ORDER BY c.concert_id, s.date, s.schedule_id",
                &[],
            )
            .await?;
        let mut out: Vec<ConcertView> = Vec::new();
        for r in rows {
            let concert_id: String = r.get(0);
            let schedule = ScheduleView {
                schedule_id: r.get(2),
                date: r.get(3),
                available_seats: r.get::<_, i64>(4) as u32,
            };
            match out.last_mut() {
                Some(last) if last.concert_id == concert_id => last.schedules.push(schedule),
                _ => out.push(ConcertView {
                    concert_id,
                    name: r.get(1),
                    schedules: vec![schedule],
                }),
            }
        }
        Ok(out)
    }
}

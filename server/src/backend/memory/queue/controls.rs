//! The operator's admission controls on one embedded event: the
//! console's view and a live change, under the event's lock.

use tokio::time::Instant;

use super::EventCell;
use crate::backend::admission::{per_minute, AdmissionChange, AdmissionView};

impl EventCell {
    /// The console's view of this event.
    pub(in crate::backend::memory) fn admission_view(&self) -> AdmissionView {
        let now = Instant::now();
        let mut st = self.lock();
        self.tick(&mut st, now);
        let recent = st.recent(now);
        AdmissionView {
            event_id: self.spec.event_id.clone(),
            controls: st.controls,
            stock: self.spec.stock,
            remaining: st.remaining,
            sold: st.sold,
            waiting: st.waiting,
            active: st.active,
            admitted: st.admitted,
            admitted_per_minute: per_minute(recent.count, recent.span_secs),
        }
    }

    /// Applies an operator's change, admits if it made room, and wakes the
    /// SSE streams (whose cursor may not move) so they show the change.
    pub(in crate::backend::memory) fn set_admission(&self, change: &AdmissionChange) {
        let mut st = self.lock();
        st.controls = st.controls.with(change);
        self.tick(&mut st, Instant::now());
        self.cursor.send_modify(|_| {});
    }
}

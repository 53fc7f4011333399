//! The shared stack's admission controls: fields of the event's Redis hash
//! that the admission step every script runs reads, so every instance
//! obeys a change at once (see [`crate::backend::admission`]).

use super::health::Component;
use super::lua::TickReply;
use super::StackBackend;
use crate::backend::admission::{
    per_minute, Admission, AdmissionChange, AdmissionControls, AdmissionView,
};
use crate::error::{Error, Result};

impl Admission for StackBackend {
    async fn admission(&self, event_id: &str) -> Result<AdmissionView> {
        let n = self.view(event_id, None).await?;
        // Admission times are newest first; the last is the oldest.
        let span_secs = n
            .admissions
            .last()
            .map_or(0.0, |&oldest| (n.now - oldest) as f64 / 1000.0);
        Ok(AdmissionView {
            event_id: event_id.to_owned(),
            controls: AdmissionControls {
                paused: n.paused,
                queue_all: n.queue_all,
                release_rate_per_minute: n.rate,
                active_capacity: n.cap,
            },
            stock: n.stock,
            remaining: n.remaining,
            sold: n.sold,
            waiting: n.entries.saturating_sub(n.head),
            active: n.active,
            admitted: n.head,
            admitted_per_minute: per_minute(n.admissions.len(), span_secs),
        })
    }

    async fn set_admission(&self, event_id: &str, change: &AdmissionChange) -> Result<()> {
        self.require(&[Component::Redis])?;
        let flag = |v: Option<bool>| v.map_or("", |on| if on { "1" } else { "0" });
        let number = |v: Option<u32>| v.map_or_else(String::new, |n| n.to_string());
        let reply: TickReply = self
            .stack()
            .scripts
            .admission
            .on(&self.keys(event_id))
            .arg(flag(change.paused))
            .arg(flag(change.queue_all))
            .arg(number(change.release_rate_per_minute))
            .arg(number(change.active_capacity))
            .run(&mut self.redis())
            .await?;
        match reply {
            TickReply::Ok { .. } => Ok(()),
            TickReply::NotFound => Err(Error::not_found(format!("event {event_id} not found"))),
        }
    }
}

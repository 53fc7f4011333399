//! The operator's admission controls: pause and resume, the release rate
//! (users admitted per minute), the active capacity, and the emergency
//! "queue everyone" switch, read and changed live.
//!
//! Both backends keep the controls beside the line they govern (the
//! embedded one under the event's lock, the shared stack in the event's
//! Redis hash, read by the admission step every script runs), so every
//! instance obeys a change at its next admission step. Waiting entries
//! keep their places whatever the controls say: a pause stops the head
//! of the line, it never reorders it.

use serde::{Deserialize, Serialize};

use super::Backend;
use crate::error::Result;
use crate::validate;

/// The controls of one event's admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionControls {
    /// No entry is admitted while paused; waiting entries keep their places.
    pub paused: bool,
    /// The emergency switch: as paused, and kept apart from it so that an
    /// ordinary resume does not lift an emergency.
    pub queue_all: bool,
    /// Most entries admitted per minute; 0 is no limit (the capacity alone).
    pub release_rate_per_minute: u32,
    /// Most entries ACTIVE at once. Lowering it evicts nobody: admission
    /// waits until fewer are ACTIVE.
    pub active_capacity: u32,
}

impl AdmissionControls {
    /// The controls of a new event: open, no rate limit.
    pub fn open(active_capacity: u32) -> Self {
        AdmissionControls {
            paused: false,
            queue_all: false,
            release_rate_per_minute: 0,
            active_capacity,
        }
    }

    /// Whether admission is stopped (paused or queue-everyone).
    pub fn holding(&self) -> bool {
        self.paused || self.queue_all
    }

    /// These controls with `change` applied.
    pub fn with(mut self, change: &AdmissionChange) -> Self {
        if let Some(v) = change.paused {
            self.paused = v;
        }
        if let Some(v) = change.queue_all {
            self.queue_all = v;
        }
        if let Some(v) = change.release_rate_per_minute {
            self.release_rate_per_minute = v;
        }
        if let Some(v) = change.active_capacity {
            self.active_capacity = v;
        }
        self
    }
}

/// A change of the controls: absent (or null) fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdmissionChange {
    pub paused: Option<bool>,
    pub queue_all: Option<bool>,
    pub release_rate_per_minute: Option<u32>,
    pub active_capacity: Option<u32>,
}

/// Most entries one event may release per minute.
pub const MAX_RELEASE_RATE_PER_MINUTE: u32 = 1_000_000;

impl AdmissionChange {
    /// The body of a change, parsed and checked (400 otherwise).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let change: AdmissionChange = validate::json(bytes)?;
        if let Some(rate) = change.release_rate_per_minute {
            validate::range("releaseRatePerMinute", rate, 0, MAX_RELEASE_RATE_PER_MINUTE)?;
        }
        if let Some(cap) = change.active_capacity {
            validate::range("activeCapacity", cap, 1, 1_000_000)?;
        }
        Ok(change)
    }
}

/// What the operator's console shows for one event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionView {
    pub event_id: String,
    #[serde(flatten)]
    pub controls: AdmissionControls,
    pub stock: u64,
    pub remaining: u64,
    pub sold: u64,
    pub waiting: u64,
    pub active: u64,
    /// Entries admitted since the event began.
    pub admitted: u64,
    /// Admissions per minute over the recent ones (up to 64), measured
    /// until now, so it falls while admission is held.
    pub admitted_per_minute: f64,
}

/// Admissions per minute from `count` admissions, the oldest `span_secs`
/// ago (at least one second, as the wait estimate counts it).
pub fn per_minute(count: usize, span_secs: f64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let rate = count as f64 / span_secs.max(1.0) * 60.0;
    (rate * 10.0).round() / 10.0
}

/// What a backend does for the controls.
#[allow(async_fn_in_trait)]
pub trait Admission {
    /// The event's numbers and controls; NOT_FOUND when unknown.
    async fn admission(&self, event_id: &str) -> Result<AdmissionView>;
    /// Applies `change`, then runs an admission step (a raised capacity or
    /// a resume admits at once) and wakes the event's SSE streams, so the
    /// waiting see "paused" (or its end) without polling.
    async fn set_admission(&self, event_id: &str, change: &AdmissionChange) -> Result<()>;
}

impl Backend {
    pub async fn admission(&self, event_id: &str) -> Result<AdmissionView> {
        match self {
            Backend::Memory(b) => b.admission(event_id).await,
            Backend::Stack(b) => b.admission(event_id).await,
        }
    }

    pub async fn set_admission(
        &self,
        event_id: &str,
        change: &AdmissionChange,
    ) -> Result<AdmissionView> {
        match self {
            Backend::Memory(b) => b.set_admission(event_id, change).await?,
            Backend::Stack(b) => b.set_admission(event_id, change).await?,
        }
        self.admission(event_id).await
    }

    /// Every event's view, by event id (events that vanish meanwhile are
    /// left out).
    pub async fn admissions(&self) -> Vec<AdmissionView> {
        let mut ids: Vec<String> = self
            .gauges()
            .await
            .into_iter()
            .map(|g| g.event_id)
            .collect();
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(view) = self.admission(&id).await {
                out.push(view);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_sets_only_what_it_names() {
        let open = AdmissionControls::open(5);
        assert!(!open.holding());
        let paused = open.with(&AdmissionChange::parse(br#"{"paused":true}"#).unwrap());
        assert!(paused.holding());
        assert_eq!(paused.active_capacity, 5);
        let resumed = paused.with(&AdmissionChange::parse(br#"{"paused":false}"#).unwrap());
        assert_eq!(resumed, open);
        let both = open.with(
            &AdmissionChange::parse(
                br#"{"queueAll":true,"releaseRatePerMinute":60,"activeCapacity":2}"#,
            )
            .unwrap(),
        );
        assert!(both.holding() && both.queue_all && !both.paused);
        assert_eq!(
            (both.release_rate_per_minute, both.active_capacity),
            (60, 2)
        );
        let still = both.with(&AdmissionChange::parse(br#"{"paused":false}"#).unwrap());
        assert!(still.holding(), "a resume does not lift queue-everyone");
    }

    #[test]
    fn bad_changes_are_refused() {
        for body in [
            r#"{"activeCapacity":0}"#,
            r#"{"releaseRatePerMinute":1000001}"#,
            r#"{"paused":"yes"}"#,
            r#"{"pause":true}"#,
            r#"[true]"#,
        ] {
            let e = AdmissionChange::parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), "BAD_REQUEST", "{body}");
        }
        assert!(AdmissionChange::parse(b"{}").is_ok(), "no change is a read");
    }

    #[test]
    fn the_observed_rate_falls_while_nobody_is_admitted() {
        assert_eq!(per_minute(0, 5.0), 0.0);
        assert_eq!(per_minute(10, 10.0), 60.0);
        assert!(per_minute(10, 100.0) < per_minute(10, 10.0));
        assert_eq!(per_minute(3, 0.1), 180.0, "under a second counts as one");
    }
}

//! The reconciler: accepted reservations that PostgreSQL still lacks after
//! a while (the Kafka send failed, or the process died right after the
//! reserve script) are re-published; those it has leave Redis' pending set.

use std::collections::HashSet;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::watch;
use tracing::info;

use super::error::StackError;
use super::keys::{events_key, EventKeys};
use super::messages::ReservedEvent;
use super::{delayed_interval, next_tick, now_ms, pg, Stack};

/// How long a reservation may stay unconfirmed before the reconciler
/// re-publishes it.
const RECONCILE_AFTER_MS: i64 = 3000;

impl Stack {
    /// Re-publishes accepted reservations that PostgreSQL still lacks after
    /// a while (the Kafka send failed, or the process died right after the
    /// script), and clears those it has.
    pub(super) async fn reconcile_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(Duration::from_secs(1));
        while next_tick(&mut interval, &mut stop).await {
            if let Err(e) = self.reconcile_once().await {
                tracing::debug!(error = %e, "reconcile");
            }
        }
    }

    async fn reconcile_once(&self) -> Result<(), StackError> {
        let mut redis = self.redis.clone();
        let ids: Vec<String> = redis.smembers(events_key(&self.ns)).await?;
        for event in ids {
            let keys = EventKeys::new(&self.ns, &event);
            let pending: Vec<String> = redis.srandmember_multiple(&keys.pending, 1000).await?;
            if pending.is_empty() {
                continue;
            }
            let present = pg::present(&self.pg, &pending).await?;
            if !present.is_empty() {
                let _: () = redis.srem(&keys.pending, &present).await?;
            }
            let present: HashSet<String> = present.into_iter().collect();
            for id in pending.iter().filter(|id| !present.contains(*id)) {
                let record: Option<String> = redis.hget(&keys.reservations, id).await?;
                let Some(record) = record else { continue };
                let Ok(ev) = serde_json::from_str::<ReservedEvent>(&record) else {
                    continue;
                };
                if now_ms() - ev.created_ms < RECONCILE_AFTER_MS {
                    continue;
                }
                match self
                    .producer
                    .send(
                        &self.topics.reserved,
                        &event,
                        &record,
                        Duration::from_secs(1),
                    )
                    .await
                {
                    Ok(_) => {
                        self.metrics.republished.inc();
                        info!(reservation = %id, "re-published a reservation PostgreSQL lacked")
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

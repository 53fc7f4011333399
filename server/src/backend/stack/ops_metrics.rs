//! The operations view's gauges from the stack (see `deploy/prometheus/`):
//!
//! - `kafka_consumer_lag{consumer,topic,partition}`: the broker's high
//!   watermark minus the next offset the consumer committed to PostgreSQL
//!   (`consumer_offsets`, where this design keeps its offsets);
//! - `db_connection_pool_usage`: connections in use over the pool's size
//!   (0..1), and `db_connection_pool_max_size`;
//! - `redis_memory_used_bytes` and `redis_memory_max_bytes` (`INFO
//!   memory`; a max of 0 means no limit is set).
//!
//! A loop samples them (pool and Redis every second, lag every five), so a
//! scrape never waits on the services.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::watch;
use tracing::warn;

use super::error::StackError;
use super::{delayed_interval, next_tick, Stack};

/// How many pool samples pass between two lag samples.
const LAG_EVERY: u32 = 5;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    consumer: String,
    topic: String,
    partition: i32,
}

#[derive(Default)]
pub struct OpsGauges {
    lag: Family<LagLabels, Gauge>,
    pool_usage: Gauge<f64, AtomicU64>,
    pool_max: Gauge,
    redis_used: Gauge,
    redis_max: Gauge,
    /// `queue.activated` records sent (see [`super::activations`]).
    pub activated: prometheus_client::metrics::counter::Counter,
}

impl OpsGauges {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kafka_consumer_lag",
            "Records on the broker not yet consumed: high watermark minus the offset committed in PostgreSQL",
            self.lag.clone(),
        );
        registry.register(
            "db_connection_pool_usage",
            "PostgreSQL pool connections in use over the pool's size (0..1)",
            self.pool_usage.clone(),
        );
        registry.register(
            "db_connection_pool_max_size",
            "PostgreSQL pool size",
            self.pool_max.clone(),
        );
        registry.register(
            "redis_memory_used_bytes",
            "Redis used_memory (INFO memory)",
            self.redis_used.clone(),
        );
        registry.register(
            "redis_memory_max_bytes",
            "Redis maxmemory (INFO memory; 0: no limit set)",
            self.redis_max.clone(),
        );
        registry.register(
            "queue_activated_events",
            "queue.activated records sent to the broker (at least once per admission)",
            self.activated.clone(),
        );
    }
}

impl Stack {
    pub(super) async fn ops_loop(self, brokers: String, mut stop: watch::Receiver<bool>) {
        // One client for the loop's life (see `Stack::admin` on dropping
        // librdkafka clients while others run).
        let meta: Option<Arc<BaseConsumer>> = match ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
        {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                warn!(error = %e, "no kafka client for the consumer-lag gauge");
                None
            }
        };
        let mut interval = delayed_interval(Duration::from_secs(1));
        let mut tick = 0u32;
        while next_tick(&mut interval, &mut stop).await {
            self.sample_pool();
            if let Err(e) = self.sample_redis().await {
                warn!(error = %e, "redis memory gauge not sampled");
            }
            if tick % LAG_EVERY == 0 {
                if let Some(meta) = &meta {
                    if let Err(e) = self.sample_lag(meta).await {
                        warn!(error = %e, "consumer lag gauge not sampled");
                    }
                }
            }
            tick = tick.wrapping_add(1);
        }
    }

    fn sample_pool(&self) {
        let s = self.pg.status();
        let in_use = s.size.saturating_sub(s.available);
        let usage = in_use as f64 / s.max_size.max(1) as f64;
        self.ops.pool_usage.set(usage);
        self.ops.pool_max.set(s.max_size as i64);
    }

    async fn sample_redis(&self) -> Result<(), StackError> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.redis.clone())
            .await?;
        let field = |name: &str| -> Option<i64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        };
        if let Some(used) = field("used_memory") {
            self.ops.redis_used.set(used);
        }
        if let Some(max) = field("maxmemory") {
            self.ops.redis_max.set(max);
        }
        Ok(())
    }

    async fn sample_lag(&self, meta: &Arc<BaseConsumer>) -> Result<(), StackError> {
        let rows = self
            .pg
            .get()
            .await?
            .query(
                "SELECT consumer, topic, partition, next_offset FROM consumer_offsets",
                &[],
            )
            .await?;
        for row in rows {
            let labels = LagLabels {
                consumer: row.get(0),
                topic: row.get(1),
                partition: row.get(2),
            };
            let next: i64 = row.get(3);
            let (meta, topic, partition) = (meta.clone(), labels.topic.clone(), labels.partition);
            let high = tokio::task::spawn_blocking(move || {
                meta.fetch_watermarks(&topic, partition, Duration::from_secs(2))
            })
            .await;
            if let Ok(Ok((_, high))) = high {
                self.ops
                    .lag
                    .get_or_create(&labels)
                    .set((high - next).max(0));
            }
        }
        Ok(())
    }
}

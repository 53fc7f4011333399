//! Which of the stack's components answer, as the health loop last saw
//! them. Requests that need a component that is down are refused at once
//! with UNAVAILABLE (nothing applied) instead of waiting out a timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{delayed_interval, kafka, next_tick, Stack};
use crate::backend::ComponentHealth;
use crate::error::{Error, Result};

/// Consecutive failed metadata probes after which the broker is down.
const KAFKA_MISSES_DOWN: u32 = 2;

#[derive(Clone, Copy, Debug)]
pub enum Component {
    Redis,
    Postgres,
    Kafka,
}

impl Component {
    /// The name clients see in UNAVAILABLE.
    fn display_name(self) -> &'static str {
        match self {
            Component::Redis => "Redis",
            Component::Postgres => "PostgreSQL",
            Component::Kafka => "Kafka",
        }
    }
}

pub struct Health {
    redis: AtomicBool,
    postgres: AtomicBool,
    kafka: AtomicBool,
    /// Redis answers but lost its data and is not rebuilt yet (see
    /// [`super::rebuild`]): it counts as down.
    redis_incomplete: AtomicBool,
}

impl Health {
    /// Start-up has just reached every component.
    pub fn all_up() -> Self {
        Health {
            redis: AtomicBool::new(true),
            postgres: AtomicBool::new(true),
            kafka: AtomicBool::new(true),
            redis_incomplete: AtomicBool::new(false),
        }
    }

    pub fn redis_incomplete(&self) -> bool {
        self.redis_incomplete.load(Ordering::Relaxed)
    }

    /// Records whether Redis lacks its data, and logs each change.
    pub fn set_redis_incomplete(&self, incomplete: bool) {
        if self.redis_incomplete.swap(incomplete, Ordering::Relaxed) != incomplete {
            if incomplete {
                warn!("Redis answers without its data: refusing requests that need it until it is rebuilt");
            } else {
                info!("Redis is complete again");
            }
        }
    }

    fn up(&self, component: Component) -> bool {
        self.flag(component).load(Ordering::Relaxed)
            && !(matches!(component, Component::Redis) && self.redis_incomplete())
    }

    fn flag(&self, component: Component) -> &AtomicBool {
        match component {
            Component::Redis => &self.redis,
            Component::Postgres => &self.postgres,
            Component::Kafka => &self.kafka,
        }
    }

    pub fn require(&self, components: &[Component]) -> Result<()> {
        match components.iter().find(|&&c| !self.up(c)) {
            Some(Component::Redis) if self.redis_incomplete() => Err(Error::Unavailable(
                "Redis (being rebuilt after it lost its data)",
            )),
            Some(down) => Err(Error::Unavailable(down.display_name())),
            None => Ok(()),
        }
    }

    pub fn components(&self) -> Vec<ComponentHealth> {
        [
            ("redis", Component::Redis),
            ("postgres", Component::Postgres),
            ("kafka", Component::Kafka),
        ]
        .into_iter()
        .map(|(name, c)| ComponentHealth {
            name,
            up: self.up(c),
        })
        .collect()
    }

    /// Records what a probe saw and logs each change.
    fn record(&self, component: Component, up: bool) {
        if self.flag(component).swap(up, Ordering::Relaxed) != up {
            let name = component.display_name();
            if up {
                info!(component = name, "backend is up again");
            } else {
                warn!(component = name, "backend is down");
            }
        }
    }
}

impl Stack {
    /// Probes each component twice a second; recreates the topics when a
    /// broker without durable storage came back empty.
    pub(super) async fn health_loop(self, mut stop: watch::Receiver<bool>) {
        let mut interval = delayed_interval(Duration::from_millis(500));
        let mut kafka_misses = 0u32;
        while next_tick(&mut interval, &mut stop).await {
            let timeout = Duration::from_secs(1);
            let mut redis = self.redis.clone();
            let mut redis_up = matches!(
                tokio::time::timeout(
                    timeout,
                    redis::cmd("PING").query_async::<String>(&mut redis)
                )
                .await,
                Ok(Ok(_))
            );
            let pool = self.pg.clone();
            let pg_up = matches!(
                tokio::time::timeout(timeout, async move {
                    let c = pool.get().await.map_err(|e| e.to_string())?;
                    c.simple_query("SELECT 1").await.map_err(|e| e.to_string())
                })
                .await,
                Ok(Ok(_))
            );
            // Whole-cluster metadata: asking librdkafka about one topic that
            // a restarted broker no longer has has crashed it (metadata cache).
            let producer = self.producer.clone();
            let topics: Vec<String> = self.topics.all().into_iter().map(String::from).collect();
            let (kafka_up, topics_present) = tokio::task::spawn_blocking(move || {
                match producer
                    .client()
                    .fetch_metadata(None, Duration::from_secs(1))
                {
                    Ok(m) => (
                        true,
                        topics.iter().all(|t| {
                            m.topics()
                                .iter()
                                .any(|mt| mt.name() == t && !mt.partitions().is_empty())
                        }),
                    ),
                    Err(_) => (false, true),
                }
            })
            .await
            .unwrap_or((false, true));
            // The marker is read before Redis counts as up again, so a
            // Redis back without its data never serves a request.
            if redis_up && self.rebuild_redis {
                match tokio::time::timeout(timeout, self.redis_complete()).await {
                    Ok(Ok(complete)) => {
                        if !complete {
                            self.health.set_redis_incomplete(true);
                        }
                    }
                    _ => redis_up = false,
                }
            }
            self.health.record(Component::Redis, redis_up);
            self.health.record(Component::Postgres, pg_up);
            // The broker counts as down after two missed probes in a row,
            // not one: whole-cluster metadata from a busy broker holding
            // many topics can take longer than a probe's second while sends
            // still succeed (their timeout is 5 s), and one slow answer
            // turned every purchase of that half second into a 503.
            kafka_misses = if kafka_up { 0 } else { kafka_misses + 1 };
            self.health.record(
                Component::Kafka,
                kafka_up || kafka_misses < KAFKA_MISSES_DOWN,
            );
            if kafka_up && !topics_present {
                // A broker without durable storage comes back empty.
                let topics = self.topics.all();
                if let Err(e) = kafka::create_topics(&self.admin, &topics, self.partitions).await {
                    warn!(error = %e, "recreating topics");
                }
            }
        }
    }
}

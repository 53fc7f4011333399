//! Reading the reference server's real stack for check 2: which
//! reservation ids each store holds, and which seat-map events PostgreSQL
//! implies and Kafka carries ([`seat_events`]). This is the one place the
//! verifier looks behind the HTTP contract, so it uses the server crate's
//! own names for keys, topics and records.

mod seat_events;

pub use seat_events::{EventKey, SeatObserved};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use ticket_server::backend::stack::keys::{EventKeys, Topics};
use ticket_server::backend::stack::redis_conn::{RedisConn, RedisTarget};

/// Where the stores are.
#[derive(Debug, Clone)]
pub struct Stores {
    pub redis_url: String,
    pub kafka_brokers: String,
    pub postgres_url: String,
    pub namespace: String,
}

/// Reservation ids of one event as each store holds them; `kafka` and
/// `postgres` keep duplicates.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    pub redis: BTreeSet<String>,
    pub kafka: Vec<String>,
    pub postgres: Vec<String>,
    /// Milliseconds until PostgreSQL held every expected id, if it did.
    pub postgres_complete_ms: Option<u64>,
    /// Stores that could not be read.
    pub errors: Vec<String>,
}

impl Stores {
    /// Waits up to `deadline` for PostgreSQL to hold every id of `expected`,
    /// then reads all three stores.
    pub async fn observe(
        &self,
        event_id: &str,
        expected: &BTreeSet<String>,
        deadline: Duration,
    ) -> Observed {
        let mut out = Observed::default();
        let started = Instant::now();
        match self.postgres_client().await {
            Ok(db) => loop {
                match db
                    .query(
                        "SELECT reservation_id FROM reservations WHERE event_id = $1",
                        &[&event_id],
                    )
                    .await
                {
                    Ok(rows) => out.postgres = rows.iter().map(|r| r.get(0)).collect(),
                    Err(e) => {
                        out.errors.push(format!("PostgreSQL: {e}"));
                        break;
                    }
                }
                let held: BTreeSet<&String> = out.postgres.iter().collect();
                if expected.iter().all(|id| held.contains(id)) {
                    out.postgres_complete_ms = Some(started.elapsed().as_millis() as u64);
                    break;
                }
                if started.elapsed() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
            Err(e) => out.errors.push(format!("PostgreSQL: {e}")),
        }
        match self.redis_ids(event_id).await {
            Ok(ids) => out.redis = ids,
            Err(e) => out.errors.push(format!("Redis: {e}")),
        }
        let (brokers, topic, event) = (
            self.kafka_brokers.clone(),
            Topics::new(&self.namespace).reserved,
            event_id.to_owned(),
        );
        let read = move || {
            read_topics(&brokers, &[topic], |v| {
                (v["eventId"] == event.as_str())
                    .then(|| v["reservationId"].as_str().map(str::to_owned))
                    .flatten()
            })
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Ok(ids)) => out.kafka = ids,
            Ok(Err(e)) => out.errors.push(format!("Kafka: {e}")),
            Err(e) => out.errors.push(format!("Kafka reader: {e}")),
        }
        out
    }

    async fn postgres_client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = self.postgres_url.parse()?;
        config.options(format!("-c search_path={}", self.namespace));
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn redis_ids(&self, event_id: &str) -> redis::RedisResult<BTreeSet<String>> {
        // The server's own reading of the URL: one Redis or a cluster.
        let target = RedisTarget::parse(&self.redis_url).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "Redis URL", e))
        })?;
        let mut con = RedisConn::connect(&target).await?;
        let keys = EventKeys::new(&self.namespace, event_id);
        redis::cmd("HKEYS")
            .arg(&keys.reservations)
            .query_async(&mut con)
            .await
    }
}

/// What `keep` takes from every JSON message of `topics`, from the
/// beginning of each partition up to its end when reading started.
fn read_topics<T>(
    brokers: &str,
    topics: &[String],
    mut keep: impl FnMut(&serde_json::Value) -> Option<T>,
) -> Result<Vec<T>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("verify-reader-{}", rand::random::<u32>()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(5);
    let mut ends = std::collections::BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(|e| e.to_string())?;
            if high > low {
                ends.insert((topic.clone(), p), high);
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    // Read until every partition reached its end mark and then a second
    // passes with nothing new: brokers differ in how they count watermarks
    // (tansu's can lag what a fetch returns), so the mark alone is not trusted.
    let mut kept = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = Instant::now();
    while Instant::now() < until {
        match consumer.poll(Duration::from_millis(100)) {
            Some(message) => {
                let message = message.map_err(|e| e.to_string())?;
                quiet_since = Instant::now();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(
                    message.payload().unwrap_or_default(),
                ) {
                    kept.extend(keep(&v));
                }
                let at = (message.topic().to_owned(), message.partition());
                if ends
                    .get(&at)
                    .is_some_and(|&end| message.offset() + 1 >= end)
                {
                    ends.remove(&at);
                }
            }
            None if ends.is_empty() && quiet_since.elapsed() >= Duration::from_secs(1) => {
                return Ok(kept)
            }
            None => {}
        }
    }
    if !ends.is_empty() {
        return Err(format!("could not read {} to its end", topics.join(", ")));
    }
    Ok(kept)
}

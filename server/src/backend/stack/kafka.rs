//! Kafka: one producer (cloned), topics created at start (and
//! one waiting-line topic per event, created with the event), and consumers
//! whose partitions are divided between instances by PostgreSQL
//! advisory-lock leases.
//!
//! Why leases rather than consumer groups: the consumer keeps its offsets in
//! PostgreSQL (in the same transaction as its writes), so PostgreSQL already
//! has to be the authority on "who consumes what from where". A session
//! advisory lock per partition is held on a dedicated connection; when an
//! instance dies its connection closes, the locks are released at once, and
//! the survivors take the partitions over from the stored offsets. This also
//! avoids the slow group rejoins seen with tansu. Ownership is balanced by
//! heartbeats: each instance holds at most ceil(partitions / live instances).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{watch, Notify};
use tokio_postgres::NoTls;
use tracing::{debug, info, warn};

use super::error::StackError;
use super::pg;
use super::producer::KafkaProducer;

/// Most messages handled as one batch.
const BATCH_MAX: usize = 500;
/// How long a batch waits to fill once its first message arrived (what is
/// already fetched joins at once; longer lingers only add latency).
const BATCH_LINGER: Duration = Duration::from_millis(1);
/// How often leases are balanced.
const LEASE_INTERVAL: Duration = Duration::from_millis(500);

/// Not idempotent: tansu 0.6.0's SQLite storage panics on the producer
/// epoch an idempotent librdkafka producer raises after sends time out in
/// an outage, and then refuses every request until restarted. One request
/// in flight per connection keeps the order; a retried send may write a
/// record twice, which every consumer tolerates (a line passes the second
/// place, reservations and seat events are keyed by id).
pub fn producer(brokers: &str, linger_ms: u32) -> Result<KafkaProducer, StackError> {
    let config = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("message.timeout.ms", "5000")
        .set("socket.keepalive.enable", "true")
        .clone();
    KafkaProducer::new(&config).map_err(StackError::from)
}

/// The admin client. Created once and kept for the backend's lifetime:
/// librdkafka clients created and dropped while others run have been seen
/// to crash, so none is dropped at run time.
pub fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, StackError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?)
}

/// Creates the topics if they do not exist yet.
pub async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[&str],
    partitions: i32,
) -> Result<(), StackError> {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new, &options).await?;
    for result in results {
        match result {
            Ok(topic) => info!(%topic, partitions, "topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => debug!(%topic, "topic exists"),
            Err((topic, code)) => return Err(StackError::Topic { topic, code }),
        }
    }
    Ok(())
}

/// One consumed message.
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// A leased unit: one partition of one topic.
pub type Unit = (String, i32);

/// The next offset to read, per topic and partition.
pub type NextOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Where a leased consumer reads and who it is.
#[derive(Clone)]
pub struct ConsumerSpec {
    pub brokers: String,
    pub postgres_url: String,
    pub schema: String,
    /// Names the consumer in `consumer_offsets`, leases and heartbeats.
    pub consumer: &'static str,
    pub instance: String,
    /// Rebalances at once (a new topic joined the consumer's units)
    /// instead of at the next lease interval.
    pub rebalance: Arc<Notify>,
    /// The consumer's `fetch.wait.max.ms`. tansu answers every fetch only
    /// after this wait, and a fetch that finds data lists every stored
    /// batch of the partition (its memory store), so frequent fetches cost
    /// the broker more as a topic grows: only latency-critical consumers
    /// should fetch often.
    pub fetch_wait_ms: u32,
}

/// Consumes the units `units` lists (asked again at every balance, so the
/// set may grow) on those this instance leases, calling `handle` with each
/// batch and the next offset per topic and partition. `handle` must store
/// those offsets in PostgreSQL (with its writes when it has any); on error
/// the batch is redelivered from the stored offsets. Runs until `stop`
/// turns true.
pub async fn run_leased<U, UFut, F, Fut>(
    spec: ConsumerSpec,
    pool: Pool,
    mut stop: watch::Receiver<bool>,
    units: U,
    handle: F,
) where
    U: Fn() -> UFut,
    UFut: Future<Output = Result<Vec<Unit>, StackError>>,
    F: Fn(Vec<Record>, NextOffsets) -> Fut,
    Fut: Future<Output = Result<(), StackError>>,
{
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .set(
            "group.id",
            format!("ticketbench-{}-{}", spec.schema, spec.consumer),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Only reached when a stored offset is out of range: read it all.
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", spec.fetch_wait_ms.to_string())
        .set("session.timeout.ms", "6000")
        .set("max.poll.interval.ms", "10000")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, consumer = spec.consumer, "cannot create kafka consumer");
            return;
        }
    };
    // A second client for blocking metadata calls, run off the async threads.
    let meta: Arc<BaseConsumer> = match ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .create()
    {
        Ok(c) => Arc::new(c),
        Err(e) => {
            warn!(error = %e, "cannot create kafka metadata client");
            return;
        }
    };
    let mut leases = Leases::new(&spec);
    let mut interval = tokio::time::interval(LEASE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<Record> = Vec::new();
    let mut known: Vec<Unit> = Vec::new();
    loop {
        let balance = tokio::select! {
            _ = stop.changed() => break,
            _ = interval.tick() => true,
            _ = spec.rebalance.notified() => true,
            received = consumer.recv(), if !leases.owned().is_empty() => {
                match received {
                    Ok(m) => batch.push(record(&m)),
                    Err(e) => {
                        warn!(error = %e, consumer = spec.consumer, "kafka receive");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                false
            }
        };
        if balance {
            match units().await {
                Ok(listed) => known = listed,
                Err(e) => debug!(error = %e, consumer = spec.consumer, "listing units"),
            }
            if leases.balance(&pool, &known).await {
                assign(&consumer, &meta, &spec, &pool, leases.owned()).await;
            }
            continue;
        }
        let until = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(until, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(record(&m)),
                _ => break,
            }
        }
        let mut next = NextOffsets::new();
        for r in &batch {
            let n = next
                .entry(r.topic.clone())
                .or_default()
                .entry(r.partition)
                .or_insert(r.offset + 1);
            *n = (*n).max(r.offset + 1);
        }
        let records = std::mem::take(&mut batch);
        if let Err(e) = handle(records, next).await {
            warn!(error = %e, consumer = spec.consumer, "batch failed; redelivering from stored offsets");
            tokio::time::sleep(Duration::from_millis(500)).await;
            assign(&consumer, &meta, &spec, &pool, leases.owned()).await;
        }
    }
    leases.release_all().await;
    pg::leave(&pool, spec.consumer, &spec.instance).await;
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    Record {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        payload: m.payload().unwrap_or_default().to_vec(),
    }
}

/// Assigns the owned units, each from its offset stored in PostgreSQL.
async fn assign(
    consumer: &StreamConsumer,
    meta: &Arc<BaseConsumer>,
    spec: &ConsumerSpec,
    pool: &Pool,
    owned: &BTreeSet<Unit>,
) {
    let mut tpl = TopicPartitionList::new();
    let mut stored: BTreeMap<&str, BTreeMap<i32, i64>> = BTreeMap::new();
    for (topic, p) in owned {
        if !stored.contains_key(topic.as_str()) {
            match pg::load_offsets(pool, spec.consumer, topic).await {
                Ok(o) => stored.insert(topic, o),
                Err(e) => {
                    warn!(error = %e, "cannot load offsets; consuming nothing until PostgreSQL answers");
                    let _ = consumer.unassign();
                    return;
                }
            };
        }
        let mut offset = stored[topic.as_str()]
            .get(p)
            .map_or(Offset::Beginning, |&n| Offset::Offset(n));
        if let Offset::Offset(next) = offset {
            // A stored offset beyond the log's end means the broker lost the
            // log (a broker without durable storage restarted): start over.
            let (meta, t, p) = (meta.clone(), topic.clone(), *p);
            let high = tokio::task::spawn_blocking(move || {
                meta.fetch_watermarks(&t, p, Duration::from_secs(2))
            })
            .await;
            if let Ok(Ok((_, high))) = high {
                if next > high {
                    warn!(
                        %topic,
                        partition = p,
                        next, high, "stored offset beyond the log; consuming from the beginning"
                    );
                    let _ = pg::reset_offset(pool, spec.consumer, topic, p).await;
                    offset = Offset::Beginning;
                }
            }
        }
        if let Err(e) = tpl.add_partition_offset(topic, *p, offset) {
            warn!(error = %e, "bad partition offset");
        }
    }
    let result = if owned.is_empty() {
        consumer.unassign()
    } else {
        consumer.assign(&tpl)
    };
    match result {
        Ok(()) => info!(consumer = spec.consumer, units = owned.len(), "assigned"),
        Err(e) => warn!(error = %e, "kafka assign"),
    }
}

/// Session advisory locks, one per unit (a lock class per topic, the
/// partition as the key), on a dedicated connection.
struct Leases {
    spec: ConsumerSpec,
    conn: Option<tokio_postgres::Client>,
    owned: BTreeSet<Unit>,
}

impl Leases {
    fn new(spec: &ConsumerSpec) -> Self {
        Leases {
            spec: spec.clone(),
            conn: None,
            owned: BTreeSet::new(),
        }
    }

    fn owned(&self) -> &BTreeSet<Unit> {
        &self.owned
    }

    /// The lock class of a topic: a stable hash of schema, consumer and
    /// topic (FNV-1a: stable across processes and versions, unlike std's
    /// hasher). Two topics sharing a class only share locks, which keeps
    /// each unit exclusive.
    fn class(&self, topic: &str) -> i32 {
        let key = format!("{}:{}:{}", self.spec.schema, self.spec.consumer, topic);
        key.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        }) as i32
    }

    /// Heartbeats, then takes or gives back units of `units` towards this
    /// instance's share. Returns true when ownership changed.
    async fn balance(&mut self, pool: &Pool, units: &[Unit]) -> bool {
        let before = self.owned.clone();
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            // Locks die with their connection: whatever we held is gone.
            self.owned.clear();
            self.conn = match tokio_postgres::connect(&self.spec.postgres_url, NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    Some(client)
                }
                Err(e) => {
                    debug!(error = %e, "lease connection");
                    None
                }
            };
        }
        let live = match pg::heartbeat(pool, self.spec.consumer, &self.spec.instance).await {
            Ok(n) => n.max(1),
            Err(_) => return self.owned != before,
        };
        let Some(conn) = &self.conn else {
            return self.owned != before;
        };
        let share = (units.len() as i64 + live - 1) / live;
        while self.owned.len() as i64 > share {
            let Some(unit) = self.owned.iter().next_back().cloned() else {
                break;
            };
            let _ = conn
                .execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&self.class(&unit.0), &unit.1],
                )
                .await;
            self.owned.remove(&unit);
        }
        for unit in units {
            if self.owned.len() as i64 >= share {
                break;
            }
            if self.owned.contains(unit) {
                continue;
            }
            match conn
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&self.class(&unit.0), &unit.1],
                )
                .await
            {
                Ok(row) if row.get::<_, bool>(0) => {
                    self.owned.insert(unit.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(error = %e, "lease");
                    self.owned.clear();
                    self.conn = None;
                    break;
                }
            }
        }
        self.owned != before
    }

    async fn release_all(&mut self) {
        if let Some(conn) = &self.conn {
            let _ = conn.execute("SELECT pg_advisory_unlock_all()", &[]).await;
        }
        self.owned.clear();
    }
}

/// Every partition of one topic, as units.
pub fn partitions_of(topic: &str, partitions: i32) -> Vec<Unit> {
    (0..partitions).map(|p| (topic.to_owned(), p)).collect()
}

/// A reader of whole partitions (the Redis rebuild's), created once (see
/// `Stack::admin` on dropping librdkafka clients while others run).
pub fn reader(brokers: &str, ns: &str) -> Result<Arc<BaseConsumer>, StackError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("ticketbench-{ns}-rebuild"))
        .set("enable.auto.commit", "false")
        .create()?;
    Ok(Arc::new(consumer))
}

/// Partition 0 of `topic` from its beginning to its end, then until
/// nothing new came for `quiet` (tansu's watermarks can lag what a fetch
/// returns): `(offset, payload)` in offset order. Empty when the broker
/// no longer has the topic. Blocking.
pub fn read_partition(
    reader: &BaseConsumer,
    topic: &str,
    quiet: Duration,
    deadline: Duration,
) -> Result<Vec<(i64, Vec<u8>)>, StackError> {
    let timeout = Duration::from_secs(5);
    // A topic a broker without durable storage lost is read as empty (a
    // rebuilt line then has no places: its tokens name nobody's place).
    let metadata = reader.fetch_metadata(Some(topic), timeout)?;
    let present = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !present {
        warn!(%topic, "the topic is gone: read as empty");
        return Ok(Vec::new());
    }
    let (low, high) = reader.fetch_watermarks(topic, 0, timeout)?;
    if high <= low {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    reader.assign(&tpl)?;
    let mut out = Vec::new();
    let until = std::time::Instant::now() + deadline;
    let mut quiet_since = std::time::Instant::now();
    let mut reached = false;
    let result = loop {
        if std::time::Instant::now() >= until {
            break Err(StackError::Rebuild(format!(
                "could not read {topic} to its end ({high})"
            )));
        }
        match reader.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                quiet_since = std::time::Instant::now();
                reached |= m.offset() + 1 >= high;
                out.push((m.offset(), m.payload().unwrap_or_default().to_vec()));
            }
            Some(Err(e)) => break Err(e.into()),
            None if reached && quiet_since.elapsed() >= quiet => break Ok(()),
            None => {}
        }
    };
    let _ = reader.unassign();
    result?;
    out.sort_by_key(|(offset, _)| *offset);
    out.dedup_by_key(|(offset, _)| *offset);
    Ok(out)
}

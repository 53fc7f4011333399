//! The stack's Kafka producer: rdkafka's `BaseProducer`, whose delivery
//! reports complete one channel per record, polled by a thread of its own.
//!
//! Why not rdkafka's `FutureProducer` (0.39), which does the same: its
//! polling thread calls `BaseProducer::poll` for 100 ms at a time, and
//! `poll` hands librdkafka the time left in whole milliseconds, so once
//! less than one is left it polls with a zero timeout in a loop until the
//! deadline: a busy loop of up to a millisecond, ten times a second. On
//! an idle instance that thread used 8.8 ms of CPU per second, half of
//! all the instance used (reports/producer-poll.md). Polled a second at
//! a time, the loop runs once a second instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::oneshot;

/// How long one call of the polling thread waits for delivery reports;
/// also how long a dropped producer's thread may take to notice.
const POLL_FOR: Duration = Duration::from_secs(1);
/// How long a send waits before trying again when librdkafka's queue is
/// full (what `FutureProducer` does).
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(100);

/// Where a record was written.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    pub offset: i64,
}

type Report = oneshot::Sender<Result<Delivered, KafkaError>>;

/// Answers each record's channel from its delivery report.
pub struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<Report>;

    fn delivery(&self, result: &DeliveryResult<'_>, report: Box<Report>) {
        let outcome = match result {
            Ok(message) => Ok(Delivered {
                offset: message.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender may have stopped waiting (its request ended).
        let _ = report.send(outcome);
    }
}

/// A cloneable handle; the polling thread stops once the last is dropped.
#[derive(Clone)]
pub struct KafkaProducer {
    shared: Arc<Shared>,
}

struct Shared {
    producer: Arc<BaseProducer<Reports>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl KafkaProducer {
    /// Creates the producer from `config` and starts its polling thread.
    pub fn new(config: &ClientConfig) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<Reports>> = Arc::new(config.create_with_context(Reports)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kafka producer poll".into())
            .spawn(move || {
                while !stopped.load(Ordering::Acquire) {
                    polled.poll(POLL_FOR);
                }
                // Dropping the last reference purges what is still queued
                // and flushes: each waiting send gets its report.
            })
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        Ok(KafkaProducer {
            shared: Arc::new(Shared { producer, stop }),
        })
    }

    /// Queues the record (retrying for up to `queue_timeout` while
    /// librdkafka's queue is full) and waits for its delivery report. The
    /// record is queued when the future is first polled, so futures polled
    /// in order queue their records in order.
    pub async fn send<K, P>(
        &self,
        topic: &str,
        key: &K,
        payload: &P,
        queue_timeout: Duration,
    ) -> Result<Delivered, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let deadline = Instant::now() + queue_timeout;
        let (report, delivered) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(report))
            .key(key)
            .payload(payload);
        loop {
            match self.shared.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
        // A report is always sent, even for a record purged at drop; a
        // closed channel would mean the producer went away without one.
        delivered.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// The underlying client, for metadata requests.
    pub fn client(&self) -> &Client<Reports> {
        self.shared.producer.client()
    }
}

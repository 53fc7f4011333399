//! The stack's own producer (`producer::KafkaProducer`, in place of
//! rdkafka's `FutureProducer`), on the real broker: every send gets its
//! delivery report, with the record's offset, in the order the sends were
//! first polled; a record the broker cannot take ends in an error, not a
//! wait without end.

use std::time::Duration;

use ticket_server::backend::stack::kafka;
use ticket_server::backend::stack::producer::KafkaProducer;

/// Longer than the producer's 5 s message timeout, so a report that
/// never comes fails the test rather than hanging it.
const REPORT_DEADLINE: Duration = Duration::from_secs(15);

fn producer(brokers: &str) -> KafkaProducer {
    kafka::producer(brokers, 1).expect("create the producer")
}

#[tokio::test]
async fn sends_polled_in_order_are_written_in_order_and_report_their_offsets() {
    let Some(stack) = testkit::real_stack() else {
        return;
    };
    let topic = format!("{}-producer", stack.namespace);
    let admin = kafka::admin(&stack.kafka_brokers).expect("admin client");
    kafka::create_topics(&admin, &[&topic], 1)
        .await
        .expect("create the topic");
    let producer = producer(&stack.kafka_brokers);

    let payloads: Vec<String> = (0..5).map(|i| format!("record-{i}")).collect();
    let sends = payloads
        .iter()
        .map(|p| producer.send(&topic, "one-key", p, Duration::from_secs(1)));
    let reports = tokio::time::timeout(REPORT_DEADLINE, futures_util::future::join_all(sends))
        .await
        .expect("every send is answered within the deadline");
    let offsets: Vec<i64> = reports
        .into_iter()
        .map(|r| r.expect("delivered").offset)
        .collect();
    assert_eq!(
        offsets,
        (0..5).collect::<Vec<i64>>(),
        "a fresh one-partition topic takes the records at offsets 0-4, in the order sent"
    );

    // A second handle shares the producer and its polling thread.
    let again = producer.clone();
    drop(producer);
    let next = tokio::time::timeout(
        REPORT_DEADLINE,
        again.send(&topic, "one-key", "record-5", Duration::from_secs(1)),
    )
    .await
    .expect("answered within the deadline")
    .expect("delivered");
    assert_eq!(next.offset, 5);
}

#[tokio::test]
async fn a_record_for_a_topic_the_broker_lacks_ends_in_an_error() {
    let Some(stack) = testkit::real_stack() else {
        return;
    };
    // The broker does not create topics on first use.
    let topic = format!("{}-never-created", stack.namespace);
    let producer = producer(&stack.kafka_brokers);
    let result = tokio::time::timeout(
        REPORT_DEADLINE,
        producer.send(&topic, "k", "v", Duration::from_secs(1)),
    )
    .await
    .expect("the report comes within the producer's message timeout");
    assert!(result.is_err(), "no topic, no delivery: {result:?}");
}

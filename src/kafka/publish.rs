//! `jiancha simulate --kafka BROKERS --topic T [--rate N]`: the simulated
//! departmental systems publishing to Kafka, each event keyed by its
//! `case_id` (partitioned as the Java clients do), as fast as the broker
//! takes them or at `rate` events a second.

use super::{client, KafkaError};
use rdkafka::producer::{BaseProducer, Producer};
use std::time::{Duration, Instant};

/// Publishes lines; returns how many.
pub fn lines(
    brokers: &str,
    topic: &str,
    partitions: i32,
    rate: Option<f64>,
    lines: impl Iterator<Item = String>,
) -> Result<u64, KafkaError> {
    client::ensure_topics(brokers, &[(topic, partitions)], &|| false)?;
    let producer: BaseProducer<client::DeliveryWatch> = client::producer_config(brokers)
        .create_with_context(client::DeliveryWatch::default())
        .map_err(KafkaError::client)?;
    let started = Instant::now();
    let mut n = 0u64;
    for line in lines {
        let key = case_id(&line);
        client::send(&producer, topic, key.as_deref().map(str::as_bytes), line.as_bytes(), None)?;
        n += 1;
        producer.poll(Duration::ZERO);
        if let Some(r) = rate {
            let due = started + Duration::from_secs_f64(n as f64 / r);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    while client::flush(&producer, 0, Duration::from_secs(10)).is_err() {
        super::log(&format!("waiting for the brokers to acknowledge {} events", producer.in_flight_count()));
    }
    if let Some(f) = producer.context().failed() {
        return Err(f.into());
    }
    Ok(n)
}

/// The `case_id` of a line, when it is JSON with one (malformed lines go
/// unkeyed).
fn case_id(line: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Key {
        case_id: String,
    }
    serde_json::from_str::<Key>(line).ok().map(|k| k.case_id)
}

/// `run`'s [`Inbox`](crate::pipeline::inbox::Inbox): an event posted over
/// HTTP (a supervision notice) is published to the events topic, keyed by
/// its case, and consumed back like every departmental event; it is dated
/// with the wall clock.
pub struct TopicInbox {
    producer: rdkafka::producer::ThreadedProducer<Acks>,
    topic: String,
}

/// Hands each record's delivery report to the post waiting for it.
pub struct Acks;

impl rdkafka::ClientContext for Acks {}

impl rdkafka::producer::ProducerContext for Acks {
    type DeliveryOpaque = Box<std::sync::mpsc::SyncSender<Result<(), String>>>;
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let _ = tx.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

impl TopicInbox {
    /// A producer to `topic`; a record the brokers have not acknowledged
    /// within 30 s is reported as not posted.
    pub fn new(brokers: &str, topic: &str) -> Result<TopicInbox, KafkaError> {
        let producer = client::producer_config(brokers)
            .set("message.timeout.ms", "30000")
            .create_with_context(Acks)
            .map_err(KafkaError::client)?;
        Ok(TopicInbox { producer, topic: topic.to_string() })
    }
}

impl crate::pipeline::inbox::Inbox for TopicInbox {
    fn now(&self) -> crate::time::Instant {
        chrono::Utc::now().timestamp_millis()
    }

    fn post(&self, case_id: &str, line: Vec<u8>) -> Result<(), crate::pipeline::inbox::InboxError> {
        use crate::pipeline::inbox::InboxError;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let record =
            rdkafka::producer::BaseRecord::with_opaque_to(&self.topic, Box::new(tx)).key(case_id).payload(&line);
        self.producer.send(record).map_err(|(e, _)| InboxError::Publish(e.to_string()))?;
        match rx.recv() {
            Ok(r) => r.map_err(InboxError::Publish),
            Err(_) => Err(InboxError::Closed),
        }
    }
}

//! Kafka clients as the service uses them: the group consumer of case
//! events, the idempotent producer of alerts and dead letters, topic
//! creation, and reading a topic back (one message at a partition and
//! offset, or every message after given offsets).

use super::KafkaError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings shared by every client: the brokers, IPv4 for loopback names,
/// and quiet logs (errors reach us through results and callbacks).
pub fn base(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("broker.address.family", "v4").set("log_level", "3");
    c
}

/// Settings of a consumer that reads partitions it assigns itself (never
/// subscribing, never committing). librdkafka's consumer poll needs a group
/// id even then; this one is never joined.
pub fn reader(brokers: &str) -> ClientConfig {
    let mut c = base(brokers);
    c.set("group.id", "jiancha-reader").set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
    c
}

/// Why a topic could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The brokers answered with an error for it.
    #[error("{0}")]
    Broker(#[source] RDKafkaErrorCode),
    /// The brokers' metadata does not list it.
    #[error("absent")]
    Absent,
    /// It has fewer partitions than it must.
    #[error("it has {have} partitions; it needs as many as the events topic, {need}")]
    TooFew {
        /// Partitions it has.
        have: usize,
        /// Partitions it needs.
        need: usize,
    },
    /// The thread reading it back panicked.
    #[error("reading it back panicked")]
    ReaderLost,
    /// Reading it back made no progress for a minute.
    #[error("no progress reading it back for 60 s")]
    Stalled,
}

/// A record the brokers refused for good.
#[derive(Clone, Debug, thiserror::Error)]
#[error("delivery to {topic} failed: {source}")]
pub struct DeliveryFailure {
    /// The topic of the record.
    pub topic: String,
    /// librdkafka's reason.
    #[source]
    pub source: rdkafka::error::KafkaError,
}

/// Records the first delivery that failed for good, so that the service
/// never checkpoints past a record the broker did not take.
/// It also keeps, by topic and partition, the offset after the last record
/// delivered: where the records of this process end (ListOffsets answers
/// are not needed, nor trusted, for that).
#[derive(Default)]
pub struct DeliveryWatch {
    failed: Mutex<Option<DeliveryFailure>>,
    delivered: Mutex<std::collections::HashMap<(String, i32), i64>>,
}

impl DeliveryWatch {
    /// The first permanent delivery failure, if any.
    pub fn failed(&self) -> Option<DeliveryFailure> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Raises `ends` (by partition of `topic`) to past every record of this
    /// process delivered there.
    pub fn raise_ends(&self, topic: &str, ends: &mut BTreeMap<i32, i64>) {
        if let Ok(d) = self.delivered.lock() {
            for ((t, p), next) in d.iter() {
                if t == topic {
                    let e = ends.entry(*p).or_insert(0);
                    *e = (*e).max(*next);
                }
            }
        }
    }
}

impl ClientContext for DeliveryWatch {}

impl ProducerContext for DeliveryWatch {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if let Ok(mut d) = self.delivered.lock() {
                    let next = d.entry((m.topic().to_string(), m.partition())).or_insert(0);
                    *next = (*next).max(m.offset() + 1);
                }
            }
            Err((e, m)) => {
                if let Ok(mut f) = self.failed.lock() {
                    f.get_or_insert_with(|| DeliveryFailure { topic: m.topic().to_string(), source: e.clone() });
                }
            }
        }
    }
}

/// The producer settings: idempotent (no duplicates from retries, order
/// kept per partition), never timing a record out (a broker outage delays,
/// never drops), keys partitioned as the Java clients do.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = base(brokers);
    c.set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random");
    c
}

/// Queues a record, waiting while the producer's queue is full; returns
/// when librdkafka has it (delivery is confirmed by `flush`).
pub fn send(
    producer: &BaseProducer<DeliveryWatch>,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
) -> Result<(), KafkaError> {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(h) = headers {
        rec = rec.headers(h);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(50));
                rec = r;
            }
            Err((e, _)) => return Err(KafkaError::Produce { topic: topic.to_string(), source: e }),
        }
    }
}

/// Waits until the brokers have acknowledged every record queued, or until
/// `timeout` passes (then the error `Producer::flush` gives). rdkafka's own
/// `flush` (0.39) polls in steps of 100 ms, each waiting out its step, so
/// it never returns sooner than 100 ms while a record is in flight: a
/// checkpoint, which waits for the acknowledgements on the consuming loop,
/// held the loop that long every time. This polls a millisecond at a time.
pub fn flush(producer: &BaseProducer<DeliveryWatch>, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
    use rdkafka::producer::Producer;
    let deadline = Instant::now() + timeout;
    loop {
        match producer.flush(Duration::ZERO) {
            Err(rdkafka::error::KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
                if Instant::now() < deadline =>
            {
                producer.poll(Duration::from_millis(1))
            }
            r => return r,
        }
    }
}

/// Creates the topics that do not exist (an existing one is left as it is).
/// Retries while the brokers cannot be reached, saying so.
pub fn ensure_topics(brokers: &str, topics: &[(&str, i32)], stop: &dyn Fn() -> bool) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base(brokers).create().map_err(KafkaError::client)?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let news: Vec<NewTopic> = topics.iter().map(|(t, n)| NewTopic::new(t, *n, TopicReplication::Fixed(1))).collect();
    let mut wait = Duration::from_millis(500);
    loop {
        match futures_block(admin.create_topics(&news, &opts)) {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => return Err(KafkaError::Topic { topic, cause: TopicError::Broker(code) }),
                    }
                }
                return Ok(());
            }
            Err(e) => {
                if stop() {
                    return Err(KafkaError::Stopped);
                }
                tracing::warn!(
                    pid = std::process::id(),
                    brokers,
                    error = %e,
                    "brokers not reachable; retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Creates a compacted topic of `partitions` partitions unless it exists,
/// and checks that it has at least that many.
pub fn ensure_compacted(brokers: &str, topic: &str, partitions: usize) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base(brokers).create().map_err(KafkaError::client)?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for r in futures_block(admin.create_topics(&[new], &opts)).map_err(KafkaError::client)? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::Topic { topic, cause: TopicError::Broker(code) }),
        }
    }
    let c: BaseConsumer = reader(brokers).create().map_err(KafkaError::client)?;
    let have = self::partitions(&c, topic)?.len();
    if have < partitions {
        return Err(KafkaError::Topic { topic: topic.into(), cause: TopicError::TooFew { have, need: partitions } });
    }
    Ok(())
}

/// Runs a future to completion on this thread (the admin client's futures
/// are driven by its own thread; no runtime is needed).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The partitions of a topic.
pub fn partitions<C: rdkafka::consumer::ConsumerContext>(
    c: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(KafkaError::client)?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| KafkaError::Topic { topic: topic.into(), cause: TopicError::Absent })?;
    if let Some(e) = t.error() {
        return Err(KafkaError::Topic { topic: topic.into(), cause: TopicError::Broker(e.into()) });
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// The next offset of every partition of a topic, as ListOffsets answers.
/// Not every Kafka-compatible broker answers it exactly: a low answer is
/// harmless at the start of a fresh partition's read-back; the facts
/// catch-up (`task::CatchUp`) ends early on one.
pub fn ends_on<C: rdkafka::consumer::ConsumerContext>(
    c: &BaseConsumer<C>,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let mut out = BTreeMap::new();
    for p in partitions(c, topic)? {
        let (_, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).map_err(KafkaError::client)?;
        out.insert(p, high);
    }
    Ok(out)
}

/// Reads every message of `topic` from the given offsets (partitions not
/// named: from their beginning) to its end (each partition read until the
/// broker says there is no more).
pub fn read_after(
    brokers: &str,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    mut each: impl FnMut(&OwnedMessage),
) -> Result<u64, KafkaError> {
    let c: BaseConsumer = reader(brokers)
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", READ_BACK_WAIT_MS)
        .create()
        .map_err(KafkaError::client)?;
    let mut tpl = TopicPartitionList::new();
    let mut open: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
    for p in partitions(&c, topic)? {
        let start = from.get(&p).map_or(Offset::Beginning, |&o| Offset::Offset(o));
        tpl.add_partition_offset(topic, p, start).map_err(KafkaError::client)?;
        open.insert(p);
    }
    if open.is_empty() {
        return Ok(0);
    }
    c.assign(&tpl).map_err(KafkaError::client)?;
    let mut n = 0;
    let mut last = Instant::now();
    // A partition being written to may never show its end: each is read up
    // to the end it had when its first messages were fetched.
    let mut target: BTreeMap<i32, i64> = BTreeMap::new();
    while !open.is_empty() {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let (p, off) = (m.partition(), m.offset());
                if !open.contains(&p) {
                    continue;
                }
                each(&m.detach());
                n += 1;
                if let Some(high) = target.get(&p).copied().or_else(|| fetched_end(&c, topic, p)) {
                    target.insert(p, high);
                    if off + 1 >= high {
                        open.remove(&p);
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => {
                tracing::warn!(pid = std::process::id(), topic, error = %e, "error reading a topic back; reading on")
            }
            None if last.elapsed() > Duration::from_secs(60) => {
                return Err(KafkaError::Topic { topic: topic.into(), cause: TopicError::Stalled })
            }
            None => {}
        }
    }
    Ok(n)
}

/// The end of a partition as the last fetch response said (librdkafka's
/// cached high watermark; no request is made). ListOffsets is not used for
/// this: not every Kafka-compatible broker answers it exactly.
pub fn fetched_end<X: rdkafka::consumer::ConsumerContext>(
    c: &BaseConsumer<X>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `c` lives; the topic is a
    // NUL-terminated string that outlives the call; the out-pointers point
    // to live locals. The call only reads librdkafka's cached offsets.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            c.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// How long a read-back's fetch waits at the broker for records to come
/// (librdkafka's default, 500 ms, suits a consumer that follows a topic;
/// a read-back that reaches the end waits it out before it is told so, and
/// a restart of a small state was mostly such waits).
const READ_BACK_WAIT_MS: &str = "10";

/// A reader for [`read_at`], to keep and use again.
pub fn one_reader(brokers: &str) -> Result<BaseConsumer, KafkaError> {
    reader(brokers)
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", READ_BACK_WAIT_MS)
        .create()
        .map_err(KafkaError::client)
}

/// How far before an offset a partition is read again, try by try, when a
/// broker answers a fetch from inside a record batch with the batch after
/// it: whatever comes before the offset is skipped.
pub const READ_AGAIN_BACK: [i64; 5] = [0, 16, 256, 4096, 65_536];

/// One message of `topic` at a partition and offset (`None` when the topic
/// no longer holds it), read with a reader kept for it ([`one_reader`]).
/// Should the broker answer from past the offset, the read starts again
/// further back ([`READ_AGAIN_BACK`]) and reads forward to the offset.
pub fn read_at(c: &BaseConsumer, topic: &str, partition: i32, offset: i64) -> Result<Option<OwnedMessage>, KafkaError> {
    let found = read_from(c, topic, partition, offset);
    // Left assigned, the reader would go on fetching the partition.
    let _ = c.unassign();
    found
}

fn read_from(c: &BaseConsumer, topic: &str, partition: i32, offset: i64) -> Result<Option<OwnedMessage>, KafkaError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for back in READ_AGAIN_BACK {
        let from = offset.saturating_sub(back).max(0);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(KafkaError::client)?;
        c.assign(&tpl).map_err(KafkaError::client)?;
        // Until the offset, or a message past it.
        loop {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) if m.partition() == partition && m.offset() == offset => return Ok(Some(m.detach())),
                Some(Ok(m)) if m.partition() == partition && m.offset() > offset => break,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) if p == partition => return Ok(None),
                _ => {}
            }
        }
        if from == 0 {
            return Ok(None);
        }
    }
    Ok(None)
}

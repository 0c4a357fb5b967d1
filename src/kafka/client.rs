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
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
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
/// are not needed, nor trusted, for that). And it numbers the records
/// sent, so that another thread can wait until those sent before a point
/// are reported ([`DeliveryWatch::mark`]).
#[derive(Default)]
pub struct DeliveryWatch {
    failed: Mutex<Option<DeliveryFailure>>,
    delivered: Mutex<std::collections::HashMap<(String, i32), i64>>,
    in_flight: Mutex<InFlight>,
    /// Signalled when the oldest record in flight is reported.
    settled: Condvar,
}

/// The records sent whose delivery may not be reported yet, by number.
#[derive(Debug, Default)]
struct InFlight {
    /// Every record numbered below it is reported.
    settled: u64,
    /// Whether each record numbered from `settled` on is reported.
    reported: VecDeque<bool>,
    /// Threads waiting for records to settle (a record settling wakes
    /// them; with none, it makes no system call).
    waiting: usize,
}

impl InFlight {
    /// The number of the next record sent.
    fn next(&self) -> u64 {
        self.settled + self.reported.len() as u64
    }
}

/// The records a producer sent up to a point ([`DeliveryWatch::mark`]),
/// to wait for on another thread.
pub struct Acks {
    watch: Arc<DeliveryWatch>,
    upto: u64,
}

impl Acks {
    /// Waits until every record sent before the mark is reported, or until
    /// `give_up` says to (asked every 100 ms). Ok once they all were
    /// delivered; the first failure if one was not; Err(None) on giving up.
    pub fn wait(&self, give_up: &dyn Fn() -> bool) -> Result<(), Option<DeliveryFailure>> {
        let mut f = self.watch.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while f.settled < self.upto {
            if give_up() {
                return Err(None);
            }
            f.waiting += 1;
            f = self.watch.settled.wait_timeout(f, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
            f.waiting -= 1;
        }
        drop(f);
        self.watch.failed().map_or(Ok(()), |e| Err(Some(e)))
    }
}

impl DeliveryWatch {
    /// A mark of the records sent so far, to wait for their delivery.
    pub fn mark(self: &Arc<Self>) -> Acks {
        let upto = self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).next();
        Acks { watch: self.clone(), upto }
    }

    /// Numbers a record about to be sent.
    fn sending(&self) -> u64 {
        let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.next();
        f.reported.push_back(false);
        n
    }

    /// Notes that record `n` is reported (delivered, failed, or never
    /// queued).
    fn reported(&self, n: u64) {
        let mut f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let Some(i) = n.checked_sub(f.settled) else { return };
        if let Some(r) = f.reported.get_mut(i as usize) {
            *r = true;
        }
        if i == 0 {
            while f.reported.front() == Some(&true) {
                f.reported.pop_front();
                f.settled += 1;
            }
            if f.waiting > 0 {
                self.settled.notify_all();
            }
        }
    }

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
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, n: usize) {
        // (Its failure, below, is recorded before the record counts as
        // reported, so a wait for it sees the failure.)
        let _reported = Reported(self, n as u64);
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

/// Marks a record reported when dropped, after what it was reported for.
struct Reported<'a>(&'a DeliveryWatch, u64);

impl Drop for Reported<'_> {
    fn drop(&mut self) {
        self.0.reported(self.1);
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
    let n = producer.context().sending();
    // A record that never gets queued is reported here, not by librdkafka.
    let unsent = Reported(producer.context(), n);
    let mut rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, n as usize).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(h) = headers {
        rec = rec.headers(h);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => {
                std::mem::forget(unsent);
                return Ok(());
            }
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(50));
                rec = r;
            }
            Err((e, _)) => return Err(KafkaError::Produce { topic: topic.to_string(), source: e }),
        }
    }
}

/// Waits until at most `most` records are in flight (0: the brokers have
/// acknowledged every record queued), or until `timeout` passes (then the
/// error `Producer::flush` gives). rdkafka's own `flush` (0.39) polls in
/// steps of 100 ms, each waiting out its step, so it never returns sooner
/// than 100 ms while a record is in flight: a checkpoint, which waited for
/// the acknowledgements on the consuming loop, held the loop that long
/// every time. This polls a millisecond at a time.
pub fn flush(producer: &BaseProducer<DeliveryWatch>, most: i32, timeout: Duration) -> rdkafka::error::KafkaResult<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = if most > 0 && producer.in_flight_count() > most {
            Err(rdkafka::error::KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
        } else if most > 0 {
            Ok(())
        } else {
            producer.flush(Duration::ZERO)
        };
        match r {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_waits_for_the_records_sent_before_it_in_whatever_order_they_are_reported() {
        let watch = Arc::new(DeliveryWatch::default());
        let before: Vec<u64> = (0..3).map(|_| watch.sending()).collect();
        let mark = watch.mark();
        let after = watch.sending();
        let never = || false;
        let waiting = std::thread::spawn(move || mark.wait(&never).is_ok());
        // Reported out of order, the one after the mark first: the mark
        // holds until the first three are.
        for n in [after, before[2], before[0]] {
            watch.reported(n);
        }
        std::thread::sleep(Duration::from_millis(150));
        assert!(!waiting.is_finished(), "record 1 is still in flight");
        watch.reported(before[1]);
        assert!(waiting.join().unwrap(), "every record before the mark is delivered");
        let mark = watch.mark();
        assert!(mark.wait(&never).is_ok(), "nothing in flight: no wait");
        let late = watch.sending();
        let mark = watch.mark();
        assert!(matches!(mark.wait(&|| true), Err(None)), "given up while record {late} is in flight");
    }
}

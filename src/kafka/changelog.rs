//! A partition's checkpoints through Kafka: the changelog topic.
//!
//! Partition `p` of `kafka.changelog_topic` (compacted, as many partitions
//! as the events topic) carries the checkpoint of events partition `p`
//! byte for byte — the same base file and delta log as the local store
//! ([`super::checkpoint`]) — so an instance on another machine, sharing
//! no volume, can take the partition up (as Kafka Streams restores a store
//! from its changelog). Its records, by key:
//!
//! - `b/<generation>/<i>`: the `i`-th chunk of that generation's base file;
//! - `l/<generation>/<seq>`: the `seq`-th chunk of its delta log: the
//!   chunk's byte position in the log (u64, little-endian), then its bytes;
//! - `h`: the head ([`Head`], JSON): which generation, how many chunks of
//!   each, how long, and checksums. It goes last, as a batch of its own,
//!   once everything it describes is acknowledged: the head is the
//!   changelog's commit point. A chunk past the head (a write cut short
//!   by a crash, or written by an owner whose successor went on from an
//!   earlier head) is ignored, and overwritten by the next owner's chunk
//!   of the same number.
//!
//! Chunks stay under [`CHUNK`] bytes, well below Kafka's default
//! one-megabyte record limit. After a fold the previous generation's keys
//! get tombstones, and the head is written again after them, so the
//! partition always ends with a head (a crash between leaves tombstones
//! last; the head is then found further back).
//!
//! The writer is the partition's checkpoint thread ([`super::saver`]): a
//! checkpoint is durable once the local log is synced and the changelog
//! has acknowledged its chunks and head. Taking a partition up
//! ([`read_head`], [`read_image`]) reads only the partition's last records
//! when the local store agrees with the head, and the whole partition
//! otherwise.

use super::client;
use super::publish::Acks;
use super::KafkaError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest chunk of a base or a log in one record.
pub const CHUNK: usize = 512 << 10;

/// Key of the head record.
pub const HEAD_KEY: &str = "h";

/// What the changelog of a partition holds: its commit point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Format version (1).
    pub version: u32,
    /// Generation of the base (and of the log after it).
    pub generation: u64,
    /// Bytes of the base file.
    pub base_len: u64,
    /// Its chunks, `b/<generation>/0` on.
    pub base_chunks: u64,
    /// XXH3-64 of the base file.
    pub base_sum: u64,
    /// Chunks of the log, `l/<generation>/0` on.
    pub log_seqs: u64,
    /// Bytes of the log (whole frames).
    pub log_len: u64,
    /// Checksum of the log's last frame, as its header has it (0 with no
    /// frame).
    pub last_sum: u64,
}

/// Key of a base chunk.
pub fn base_key(generation: u64, i: u64) -> String {
    format!("b/{generation}/{i}")
}

/// Key of a log chunk.
pub fn log_key(generation: u64, seq: u64) -> String {
    format!("l/{generation}/{seq}")
}

/// The producer every partition's writer shares: idempotent, so that the
/// records of a partition land in the order they were sent.
pub type Producer = Arc<ThreadedProducer<Acks>>;

/// Makes the changelog producer.
pub fn producer(brokers: &str) -> Result<Producer, KafkaError> {
    let p =
        client::producer_config(brokers).set("linger.ms", "1").create_with_context(Acks).map_err(KafkaError::client)?;
    Ok(Arc::new(p))
}

/// Publishing to the changelog failed.
#[derive(Debug, thiserror::Error)]
#[error("changelog {topic} partition {partition}: {why}")]
pub struct ChangelogError {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// What went wrong.
    pub why: String,
}

/// The writing end of one partition's changelog.
pub struct Changelog {
    producer: Producer,
    topic: String,
    partition: i32,
}

impl Changelog {
    /// The changelog of `partition` in `topic`, written through `producer`.
    pub fn new(producer: Producer, topic: &str, partition: i32) -> Changelog {
        Changelog { producer, topic: topic.to_string(), partition }
    }

    fn err(&self, why: impl Into<String>) -> ChangelogError {
        ChangelogError { topic: self.topic.clone(), partition: self.partition, why: why.into() }
    }

    /// Sends records (a `None` value is a tombstone) and waits until the
    /// brokers have acknowledged every one.
    fn send(&self, records: &[(String, Option<&[u8]>)]) -> Result<(), ChangelogError> {
        if records.is_empty() {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(records.len());
        for (key, value) in records {
            let mut rec = BaseRecord::with_opaque_to(&self.topic, Box::new(tx.clone()))
                .partition(self.partition)
                .key(key.as_bytes());
            if let Some(v) = value {
                rec = rec.payload(*v);
            }
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        std::thread::sleep(Duration::from_millis(10));
                        rec = r;
                    }
                    Err((e, _)) => return Err(self.err(format!("sending {key}: {e}"))),
                }
            }
        }
        drop(tx);
        for _ in records {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.err(e)),
                Err(_) => return Err(self.err("the producer stopped")),
            }
        }
        Ok(())
    }

    /// Publishes `base` (a whole base file) as the base of
    /// `head.generation`, with an empty log, and then the head.
    pub fn publish_base(&self, head: &mut Head, base: &[u8]) -> Result<(), ChangelogError> {
        let g = head.generation;
        let records: Vec<(String, Option<&[u8]>)> =
            base.chunks(CHUNK).enumerate().map(|(i, c)| (base_key(g, i as u64), Some(c))).collect();
        self.send(&records)?;
        *head = Head {
            version: 1,
            generation: g,
            base_len: base.len() as u64,
            base_chunks: records.len() as u64,
            base_sum: xxhash_rust::xxh3::xxh3_64(base),
            ..Head::default()
        };
        self.publish_head(head)
    }

    /// Publishes `bytes`, appended to the log after `head.log_len`, the
    /// last of its frames checksummed `last_sum`, and then the head.
    pub fn publish_log(&self, head: &mut Head, bytes: &[u8], last_sum: u64) -> Result<(), ChangelogError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let chunks: Vec<Vec<u8>> = bytes
            .chunks(CHUNK)
            .scan(head.log_len, |at, c| {
                let mut v = Vec::with_capacity(8 + c.len());
                v.extend_from_slice(&at.to_le_bytes());
                v.extend_from_slice(c);
                *at += c.len() as u64;
                Some(v)
            })
            .collect();
        let records: Vec<(String, Option<&[u8]>)> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (log_key(head.generation, head.log_seqs + i as u64), Some(c.as_slice())))
            .collect();
        self.send(&records)?;
        head.log_seqs += chunks.len() as u64;
        head.log_len += bytes.len() as u64;
        head.last_sum = last_sum;
        self.publish_head(head)
    }

    /// Publishes the head, in a batch of its own.
    pub fn publish_head(&self, head: &Head) -> Result<(), ChangelogError> {
        let json = serde_json::to_vec(head).expect("a head serializes");
        self.send(&[(HEAD_KEY.to_string(), Some(&json))])
    }

    /// Tombstones for the keys of `old` (a generation folded away) and for
    /// `stale` keys, then `head` again, so the partition ends with it.
    pub fn retire(&self, old: Option<&Head>, stale: &[String], head: &Head) -> Result<(), ChangelogError> {
        let mut records: Vec<(String, Option<&[u8]>)> = stale.iter().map(|k| (k.clone(), None)).collect();
        if let Some(old) = old {
            records.extend((0..old.base_chunks).map(|i| (base_key(old.generation, i), None)));
            records.extend((0..old.log_seqs).map(|s| (log_key(old.generation, s), None)));
        }
        if records.is_empty() {
            return Ok(());
        }
        self.send(&records)?;
        self.publish_head(head)
    }
}

/// Reads partition `p` of `topic` from `from` until the broker says there
/// is no more; `each` gets every record's key and value.
fn scan(
    c: &BaseConsumer,
    topic: &str,
    p: i32,
    from: Offset,
    mut each: impl FnMut(&[u8], Option<&[u8]>),
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, from).map_err(KafkaError::client)?;
    c.assign(&tpl).map_err(KafkaError::client)?;
    let mut last = Instant::now();
    loop {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.partition() == p => {
                last = Instant::now();
                each(m.key().unwrap_or_default(), m.payload());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(q))) if q == p => break,
            Some(Err(e)) => {
                tracing::warn!(pid = std::process::id(), topic, error = %e, "error reading the changelog; reading on")
            }
            Some(Ok(_)) => {}
            None if last.elapsed() > Duration::from_secs(60) => {
                return Err(KafkaError::Topic { topic: topic.into(), cause: client::TopicError::Stalled })
            }
            None => {}
        }
    }
    let _ = c.unassign();
    Ok(())
}

fn damaged(topic: &str, p: i32, why: String) -> KafkaError {
    KafkaError::Changelog(ChangelogError { topic: topic.into(), partition: p, why })
}

fn parse_head(topic: &str, p: i32, value: &[u8]) -> Result<Head, KafkaError> {
    let h: Head = serde_json::from_slice(value).map_err(|e| damaged(topic, p, format!("head: {e}")))?;
    if h.version != 1 {
        return Err(damaged(topic, p, format!("head of format version {}, not 1", h.version)));
    }
    Ok(h)
}

/// How far back from the end the head is looked for, try by try: a
/// broker may answer a fetch from inside a record batch with the batch
/// after it, and a crash in the middle of a fold's tombstones leaves them
/// last. The last try reads the whole partition.
const HEAD_BACK: [i64; 4] = [1, 16, 256, i64::MAX];

/// The head of partition `p`'s changelog, reading only its last records
/// (`None`: the partition has none).
pub fn read_head(brokers: &str, topic: &str, p: i32) -> Result<Option<Head>, KafkaError> {
    let c = client::one_reader(brokers)?;
    let (low, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10)).map_err(KafkaError::client)?;
    for back in HEAD_BACK {
        let from = high.saturating_sub(back).max(low);
        let mut head = None;
        scan(&c, topic, p, Offset::Offset(from), |k, v| {
            if k == HEAD_KEY.as_bytes() {
                head = v.map(<[u8]>::to_vec);
            }
        })?;
        if let Some(h) = head {
            return parse_head(topic, p, &h).map(Some);
        }
        if from <= low {
            break;
        }
    }
    Ok(None)
}

/// A partition's checkpoint as its changelog holds it.
pub struct Image {
    /// Its head.
    pub head: Head,
    /// The base file.
    pub base: Vec<u8>,
    /// The delta log.
    pub log: Vec<u8>,
    /// Keys holding a value that the head does not use (other generations,
    /// chunks past the head): tombstones for them follow.
    pub stale: Vec<String>,
}

/// Reads partition `p`'s changelog whole and puts its checkpoint together
/// (`None`: the partition has no head). A chunk missing, or a base whose
/// checksum does not match its head's, is an error: the changelog is
/// damaged.
pub fn read_image(brokers: &str, topic: &str, p: i32) -> Result<Option<Image>, KafkaError> {
    let c = client::one_reader(brokers)?;
    let mut latest: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    scan(&c, topic, p, Offset::Beginning, |k, v| {
        latest.insert(k.to_vec(), v.map(<[u8]>::to_vec));
    })?;
    let Some(Some(h)) = latest.remove(HEAD_KEY.as_bytes()) else { return Ok(None) };
    let head = parse_head(topic, p, &h)?;
    let g = head.generation;
    let mut take = |key: String| -> Result<Vec<u8>, KafkaError> {
        match latest.remove(key.as_bytes()) {
            Some(Some(v)) => Ok(v),
            _ => Err(damaged(topic, p, format!("{key} is missing"))),
        }
    };
    let mut base = Vec::with_capacity(head.base_len as usize);
    for i in 0..head.base_chunks {
        base.extend_from_slice(&take(base_key(g, i))?);
    }
    if base.len() as u64 != head.base_len || xxhash_rust::xxh3::xxh3_64(&base) != head.base_sum {
        return Err(damaged(topic, p, format!("the base of generation {g} does not match its head")));
    }
    let mut log = Vec::with_capacity(head.log_len as usize);
    for s in 0..head.log_seqs {
        let chunk = take(log_key(g, s))?;
        let at = chunk.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        if at != Some(log.len() as u64) {
            return Err(damaged(topic, p, format!("{} is not where the log ends", log_key(g, s))));
        }
        log.extend_from_slice(&chunk[8..]);
    }
    if log.len() as u64 != head.log_len {
        return Err(damaged(topic, p, format!("the log of generation {g} is not as long as its head says")));
    }
    let mut stale: Vec<String> = latest
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
        .collect();
    stale.sort();
    Ok(Some(Image { head, base, log, stale }))
}

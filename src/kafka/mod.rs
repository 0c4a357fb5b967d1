//! `jiancha run`: the live service on Kafka.
//!
//! Source → core → sinks. A consumer-group member reads case events; each
//! partition it is assigned gets a [`task::Task`] with an engine and a
//! history writer of its own, restored from that partition's checkpoint,
//! so that instances of one group share the partitions and a partition's
//! state moves with it (through its changelog, [`changelog`]). Alert records go to the alerts topic (key
//! `case_id`), bad events to the dead-letter topic (the original bytes,
//! with the reason and the original topic, partition and offset in
//! headers). What one partition's cases mean to another's — acceptances for
//! `dual_intake`, the `center` events of joint cases for their sub-cases —
//! is told at once to the instance's other partitions and goes through the
//! facts topic to the other instances, which read it whole (as Kafka Streams
//! repartitions through an internal topic).
//!
//! Delivery: a partition's checkpoint is taken every
//! `storage.checkpoint_interval` (at least twenty times its last checkpoint's
//! cost), when it is revoked and at shutdown: the
//! producer is flushed (every record acknowledged), the partition's history
//! is flushed, a cut of what changed in the engine's state (with the offset
//! and where the output topics ended) is handed to the partition's
//! checkpoint writer ([`saver`]), and once that is durable the offset is
//! committed. A
//! partition taken up again — after a crash, or by another instance —
//! starts from its checkpoint: history parts written after it are removed,
//! and the records published after it are read back, alert records told to
//! the engine ([`crate::engine::Engine::recover_published`]) and dead
//! letters remembered by original offset, so that processing the events
//! after the checkpoint again publishes nothing twice.

pub mod changelog;
pub mod checkpoint;
pub mod client;
pub mod disposition;
pub mod publish;
pub mod saver;
mod task;

use crate::config::Config;
use crate::reference::RefData;
use disposition::Disposition;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use task::Service;

/// The service failed (configuration, broker, storage); bad events never
/// fail it. It stops; the partitions' last checkpoints stand, and a restart
/// (or another instance) goes on from them.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A Kafka client refused a call (creation, subscription, seek).
    #[error("kafka: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    /// A topic could not be created or read.
    #[error("topic {topic}: {cause}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        cause: client::TopicError,
    },
    /// The producer refused a record before sending it.
    #[error("producing to {topic}: {source}")]
    Produce {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The brokers refused a record for good: the service stops before a
    /// checkpoint could pass it.
    #[error(transparent)]
    Rejected(#[from] client::DeliveryFailure),
    /// A second signal gave up waiting for the brokers to acknowledge
    /// what was published.
    #[error("gave up waiting for the brokers after {waited} s ({source}); the previous checkpoints stand")]
    GaveUp {
        /// Seconds waited.
        waited: u64,
        /// The last flush's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A partition's changelog could not be read back.
    #[error(transparent)]
    Changelog(#[from] changelog::ChangelogError),
    /// Engine state in a checkpoint.
    #[error(transparent)]
    Snapshot(#[from] crate::engine::SnapshotError),
    /// History.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// `privacy.applicant_key` is the built-in default: `run` does not start.
    #[error("privacy.applicant_key is the built-in default; set a secret key (JIANCHA__PRIVACY__APPLICANT_KEY)")]
    DefaultApplicantKey,
    /// An alert record could not be encoded: the service stops rather than
    /// publish it empty (its last checkpoint stands; a restart tries again).
    #[error("{0}; stopping rather than publishing it empty")]
    Encode(#[from] crate::alert::EncodeError),
    /// Stopped by a signal before the service was up.
    #[error("stopped")]
    Stopped,
}

impl KafkaError {
    /// [`KafkaError::Client`], as a function to pass to `map_err`.
    fn client(e: rdkafka::error::KafkaError) -> KafkaError {
        KafkaError::Client(e)
    }
}

/// An info line of the service, with the process id as `pid` (instances
/// of a group may share a log).
pub fn log(msg: &str) {
    tracing::info!(pid = std::process::id(), "{msg}");
}

/// Counts of a running service, printed at shutdown.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Messages read.
    pub read: u64,
    /// Events applied.
    pub applied: u64,
    /// Messages dead-lettered at decode.
    pub bad: u64,
    /// Alert records published.
    pub alerts: u64,
    /// Facts learnt from other partitions.
    pub facts: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// The longest a checkpoint taken while consuming (not the final ones
    /// of a revoke or a stop, which wait for everything) held the loop.
    pub longest_hold: std::time::Duration,
}

/// The consumer's context: partitions assigned and revoked are taken up
/// and checkpointed inside the rebalance, before anyone else can have them.
struct Ctx {
    svc: Arc<Mutex<Service>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut svc = self.svc.lock().unwrap_or_else(|e| e.into_inner());
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let topic = svc.cfg.kafka.events_topic.clone();
                for (p, offset) in svc.assign(&parts) {
                    let _ = tpl.set_partition_offset(&topic, p, offset);
                }
                if let Err(e) = consumer.assign(tpl) {
                    svc.fail(KafkaError::client(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                svc.revoke(&parts, |tpl| consumer.commit(tpl, rdkafka::consumer::CommitMode::Sync));
                let _ = consumer.unassign();
            }
            other => tracing::warn!(pid = std::process::id(), error = ?other, "rebalance error; ignored"),
        }
    }
}

/// `run` refuses the built-in applicant key (checked before anything starts).
pub fn refuse_default_key(cfg: &Config) -> Result<(), KafkaError> {
    if cfg.privacy.applicant_key == crate::config::DEFAULT_APPLICANT_KEY {
        return Err(KafkaError::DefaultApplicantKey);
    }
    Ok(())
}

/// Runs the service until `stop` counts a signal. A second signal while a
/// checkpoint waits for the brokers gives up waiting (the previous
/// checkpoint stands; nothing is lost).
pub fn run(
    cfg: &Config,
    refdata: Arc<RefData>,
    stop: &AtomicU32,
    live: Arc<crate::pipeline::live::Live>,
) -> Result<RunStats, KafkaError> {
    refuse_default_key(cfg)?;
    let k = &cfg.kafka;
    let stopped = || stop.load(Ordering::Relaxed) > 0;
    client::ensure_topics(
        &k.brokers,
        &[(&k.alerts_topic, 1), (&k.dead_letter_topic, 1), (&k.facts_topic, 1)],
        &stopped,
    )?;
    let svc = Arc::new(Mutex::new(Service::new(cfg.clone(), refdata, live.clone())?));
    // Notices issued over HTTP go to the events topic like any event.
    let _ = live.inbox.set(Arc::new(publish::TopicInbox::new(&k.brokers, &k.events_topic)?));
    let consumer: BaseConsumer<Ctx> = client::base(&k.brokers)
        .set("group.id", &k.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        // Kafka's own default: a checkpoint of a large state, or reading back
        // the bytes of many dead letters after a restart, may keep the loop
        // from polling for a while without the group taking its partitions.
        .set("max.poll.interval.ms", "300000")
        .set("partition.assignment.strategy", "range")
        .set("enable.partition.eof", "true")
        .create_with_context(Ctx { svc: svc.clone() })
        .map_err(KafkaError::client)?;
    consumer.subscribe(&[&k.events_topic]).map_err(KafkaError::client)?;
    log(&format!(
        "consuming {} as group {} from {}; alerts → {}, dead letters → {}, facts ↔ {}; watermark {:?}",
        k.events_topic, k.group_id, k.brokers, k.alerts_topic, k.dead_letter_topic, k.facts_topic, cfg.time.watermark
    ));
    live.ready.store(true, Ordering::Relaxed);
    let mut last_error = std::time::Instant::now() - Duration::from_secs(60);
    let mut last_lag = std::time::Instant::now();
    let (mut since_tick, mut last_tick) = (0u32, std::time::Instant::now());
    let (mut failures, mut pause) = (0u32, Duration::ZERO);
    loop {
        if stopped() {
            break;
        }
        if !pause.is_zero() {
            // The brokers failed: wait before asking again (the service's
            // lock is not held, so rebalances and the servers go on).
            std::thread::sleep(std::mem::take(&mut pause));
        }
        let polled = consumer.poll(Duration::from_millis(20));
        let polled_nothing = polled.is_none();
        let mut s = svc.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = s.take_failure() {
            return Err(e);
        }
        match polled {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => s.end_of_partition(p),
            Some(Err(e)) => {
                let what = disposition::of_poll(&e);
                if what == Disposition::Fatal {
                    return Err(KafkaError::client(e));
                }
                live.metrics.source_errors.inc();
                if last_error.elapsed() > Duration::from_secs(5) {
                    let next = if what == Disposition::Skip { "skipping it" } else { "retrying" };
                    tracing::warn!(pid = std::process::id(), error = %e, "consumer error; {next}");
                    last_error = std::time::Instant::now();
                }
                if what == Disposition::Retry {
                    failures = failures.saturating_add(1);
                    pause = disposition::POLL_BACKOFF.delay(failures);
                }
            }
            Some(Ok(m)) => {
                failures = 0;
                if let Some(from) = s.message(&m)? {
                    let p = m.partition();
                    drop(m);
                    // Failing to go back would lose the messages between:
                    // the service stops instead (its checkpoints stand).
                    consumer
                        .seek(&k.events_topic, p, rdkafka::Offset::Offset(from), Duration::from_secs(10))
                        .map_err(KafkaError::client)?;
                    continue;
                }
                s.advance();
                since_tick += 1;
            }
        }
        // The watermark moves after every message; the rest waits a little
        // within a burst: facts, publishing and checkpoints every 256
        // messages or 10 ms, and whenever the consumer has nothing to give.
        if polled_nothing || since_tick >= 256 || last_tick.elapsed() >= Duration::from_millis(10) {
            s.tick(stop, |tpl| consumer.commit(tpl, rdkafka::consumer::CommitMode::Sync))?;
            since_tick = 0;
            last_tick = std::time::Instant::now();
        }
        if last_lag.elapsed() >= Duration::from_secs(1) {
            last_lag = std::time::Instant::now();
            s.update_lag(|p| client::fetched_end(&consumer, &k.events_topic, p));
        }
    }
    log("stopping: flushing, checkpointing, committing");
    let mut s = svc.lock().unwrap_or_else(|e| e.into_inner());
    s.checkpoint_all(stop, |tpl| consumer.commit(tpl, rdkafka::consumer::CommitMode::Sync))?;
    let st = s.stats.clone();
    s.stop();
    drop(s);
    log(&format!(
        "stopped: {} read, {} applied, {} dead-lettered at decode, {} alert records, {} facts learnt, {} checkpoints \
         (the longest held the loop {:.0} ms)",
        st.read,
        st.applied,
        st.bad,
        st.alerts,
        st.facts,
        st.checkpoints,
        st.longest_hold.as_secs_f64() * 1000.0
    ));
    Ok(st)
}

//! The service's state: one [`Task`] per assigned partition (its engine,
//! history writer and checkpoint), the producer, and the reader of the
//! facts topic.

use super::changelog::{self, Changelog, Head};
use super::checkpoint::{self, Meta};
use super::client::{self, DeliveryWatch};
use super::saver::{Mirror, Report, Saver};
use super::{log, KafkaError, RunStats};
use crate::config::{Config, WatermarkMode};
use crate::engine::CaseView;
use crate::engine::{Engine, SharedFact};
use crate::event::Decoder;
use crate::history::History;
use crate::pipeline::Watermark;
use crate::pipeline::{origin, split_origin, Core, DeadLetter, Payload, Pipeline, PipelineError, Record, Sink, Taken};
use crate::reference::RefData;
use crate::time::{Instant, Zone};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How many held events' original bytes a partition keeps for their dead
/// letters (about 300 bytes each).
const HELD_RAW_MAX: usize = 100_000;

/// Changes pending in a partition's state that make a checkpoint due
/// whatever its spacing, so a cut's hold on the loop follows this bound,
/// not the backlog. When it was chosen, a cut copied each changed case
/// (2-4 µs) and made its history row (6-11 µs in a backfill of the
/// simulator's stream, on 2 busy cores): in such a backfill a cut holds
/// 9-11 thousand cases, and 3 of its checkpoints held the loop over
/// 100 ms (longest 132-152 ms); 12,000 brought that to 1-2 but cost a
/// fifth of the throughput. A cut now shares the cases and leaves their
/// rows to the ticks, so the bound matters less than it did.
const CUT_CHANGES: usize = 20_000;

/// How many of the case rows left by a checkpoint each tick writes, per
/// partition (see [`Core::flush_deferring_cases`]): at 6–11 µs a case on 2
/// busy cores, 2–3 ms a tick, and a tick comes every 256 messages; a cut
/// of 10,000 changed cases is written in about 40 ticks.
const DEFERRED_ROWS: usize = 256;

/// Records in flight beyond which a checkpoint waits on the loop until the
/// brokers have acknowledged half of them (its writer waits for the rest):
/// a broker outage then stops the loop at a checkpoint, saying so, before
/// the producer's queue (100,000 records) is full, and the cuts waiting
/// for acknowledgements stay few. In a backfill of the simulator's stream
/// on one tansu broker (facts and alerts, 1.2 records an event), 1-28
/// thousand records were in flight at a checkpoint; at 20,000, the
/// checkpoints that waited held the loop up to 185 ms.
const UNACKED_MAX: i32 = 50_000;

/// Offset under which the views written since the last checkpoint wait in
/// [`Task::flushing_views`] until the next one gives them its own.
const NOT_CUT: i64 = i64::MAX;

/// Header naming the events partition a record or fact comes from.
const PARTITION_HEADER: &str = "jiancha_partition";

/// Headers of a fact naming the process that published it and its number
/// there (see [`Service::share_facts`]).
const INSTANCE_HEADER: &str = "jiancha_instance";
const SEQ_HEADER: &str = "jiancha_seq";

/// One assigned partition.
pub struct Task {
    partition: i32,
    pipeline: Pipeline,
    meta: Meta,
    /// Wall-clock instant of its last message (idle detection).
    last_message: std::time::Instant,
    /// Something changed since the last checkpoint.
    dirty: bool,
    last_checkpoint: std::time::Instant,
    /// Offsets whose dead letters were published after the checkpoint.
    dead_done: HashSet<i64>,
    /// After a restart with records published since the checkpoint: once
    /// the partition has been read again up to where it ended when it was
    /// taken up (`settle_at`; or to its end, should that be unknown), the
    /// records not given again are judged (see
    /// [`crate::engine::Engine::settle_recovered`]).
    settling: bool,
    /// The end of the partition when it was taken up: whatever an earlier
    /// owner read, and published records for, lies before it.
    settle_at: i64,
    /// The partition has been read to its end since it was taken up.
    caught_up: bool,
    /// Its last message read was the end of the partition (nothing new
    /// since).
    at_end: bool,
    /// A gap in the offsets read (expected, got, times read again): read
    /// again from further back each time (a broker may answer a fetch
    /// from inside a record batch with the batch after it), and taken as
    /// it is once reading from the partition's start still shows it.
    gap: Option<(i64, i64, usize)>,
    /// The original key and bytes of events the engine holds, by origin,
    /// for their dead letter should they be found invalid: no read back
    /// from the topic. Bounded; after a restart, or past the bound, the
    /// dead letter reads them back instead.
    held_raw: BTreeMap<u64, (Option<Vec<u8>>, Vec<u8>)>,
    /// Facts of this instance numbered above this were told to it directly
    /// (see [`Service::share_facts`]), not read from the facts topic.
    since_seq: u64,
    /// How long its last checkpoint held the loop (publishing, history, the
    /// cut of the state): the next waits at least twenty times the sum of
    /// this over every task, so checkpoints take at most about a twentieth
    /// of the loop's time.
    checkpoint_cost: Duration,
    /// Writes its checkpoints on a thread of its own.
    saver: Saver,
    /// With SQL users: the cases whose rows went to history parts not yet
    /// known complete (checkpoints not yet durable), by the offset of that
    /// checkpoint ([`NOT_CUT`] for those written since the last one), for
    /// SQL to see as pending meanwhile.
    flushing_views: VecDeque<(i64, Vec<CaseView>)>,
    /// Its event time as last published to the facts topic (event mode),
    /// and when.
    time_sent: Option<(TimeRecord, std::time::Instant)>,
}

/// A partition's event time as its owner publishes it to the facts topic
/// (key `t/<partition>`), after the facts its events gave up to then: an
/// instance whose watermark waits for it has read those facts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeRecord {
    /// The largest `occurred_at` applied.
    max_at: Option<Instant>,
    /// Read to its end with nothing new for `time.idle_timeout`.
    idle: bool,
}

/// Key prefix of [`TimeRecord`]s in the facts topic.
const TIME_KEY: &str = "t/";

/// Everything the consumer loop and the rebalance callback share.
pub struct Service {
    pub cfg: Config,
    /// What the HTTP and SQL endpoints see.
    pub live: Arc<crate::pipeline::live::Live>,
    refdata: Arc<RefData>,
    zone: Zone,
    producer: BaseProducer<DeliveryWatch>,
    /// Publishes the partitions' checkpoints to the changelog topic.
    changelog: changelog::Producer,
    /// The changelog topic was found (or made) with enough partitions.
    changelog_ready: bool,
    /// The object store history parts are moved to (`storage.history_url`).
    history_store: Option<Arc<crate::history::store::Remote>>,
    tasks: BTreeMap<i32, Task>,
    /// Reader of the whole facts topic, and the next offset it will give,
    /// by facts partition.
    facts: BaseConsumer,
    facts_next: BTreeMap<i32, i64>,
    /// Reads back the original bytes of events dead-lettered after a hold.
    raw: BaseConsumer,
    pub stats: RunStats,
    failure: Option<KafkaError>,
    /// When recovered records were last settled, and the facts reader
    /// last retried (at most once a second).
    last_settle: std::time::Instant,
    /// The facts reader could not be pointed where the tasks need it yet.
    facts_stale: bool,
    /// When a facts-topic error was last logged.
    last_facts_error: std::time::Instant,
    /// This process, in the facts it publishes (a facts topic read back
    /// names its own facts, which its tasks were told at once).
    instance: String,
    /// Number of the last fact collected.
    fact_seq: u64,
    /// Facts collected and told to this instance's other tasks, to be
    /// published for the other instances: (partition they come from,
    /// number, fact).
    outbox: Vec<(i32, u64, SharedFact)>,
    /// Reading the facts topic up to where it ended when partitions were
    /// taken up.
    catch_up: Option<CatchUp>,
    /// The events topic's partitions (event mode: the watermark is the
    /// group's, over all of them).
    events_partitions: Vec<i32>,
    /// The event time of partitions other instances hold, as they publish
    /// it.
    remote_times: BTreeMap<i32, TimeRecord>,
    /// The calendar folder, watched for a new or corrected `YYYY.json`.
    calendar: Option<crate::calendar::watch::Watch>,
}

/// The facts topic read to where it ended when partitions were taken up
/// (what their earlier owners and the other instances published): until
/// then no event is applied and the event-time watermark stays where the
/// engines stood, so that the partitions taken up judge their cases
/// knowing what `replay`, one engine, would know. The ends are the
/// broker's ListOffsets answer ([`client::ends_on`]): a broker answering
/// short of the last offset (tansu 0.6, for a partition written in large
/// batches) ends the catch-up before the last facts are read.
#[derive(Debug)]
struct CatchUp {
    /// The ends to reach, by facts partition (`None`: not known yet).
    ends: Option<BTreeMap<i32, i64>>,
    /// The smallest watermark of the engines when it began.
    at: Option<Instant>,
}

impl Service {
    pub fn new(
        cfg: Config,
        refdata: Arc<RefData>,
        live: Arc<crate::pipeline::live::Live>,
    ) -> Result<Service, KafkaError> {
        let zone = cfg.time.zone.clone();
        let k = &cfg.kafka;
        let producer = client::producer_config(&k.brokers)
            .create_with_context(DeliveryWatch::default())
            .map_err(KafkaError::client)?;
        // Should its position ever be out of range (a broker restarted,
        // say), the facts reader starts over rather than skipping to the
        // end (librdkafka's default): facts read twice change nothing, a
        // fact skipped leaves a card fired on the lack of it standing.
        let facts: BaseConsumer =
            client::reader(&k.brokers).set("auto.offset.reset", "earliest").create().map_err(KafkaError::client)?;
        let raw = client::one_reader(&k.brokers)?;
        let changelog = changelog::producer(&k.brokers)?;
        let history_store = match cfg.storage.history_url.as_str() {
            "" => None,
            url => Some(Arc::new(crate::history::store::Remote::open(url)?)),
        };
        let dir = &cfg.reference.calendar;
        let calendar = dir.is_dir().then(|| {
            crate::calendar::watch::Watch::new(dir.clone(), cfg.time.provisional_calendar.then(|| zone.clone()))
        });
        Ok(Service {
            calendar,
            live,
            cfg,
            refdata,
            zone,
            producer,
            changelog,
            changelog_ready: false,
            history_store,
            tasks: BTreeMap::new(),
            facts,
            facts_next: BTreeMap::new(),
            raw,
            stats: RunStats::default(),
            failure: None,
            last_settle: std::time::Instant::now(),
            facts_stale: false,
            last_facts_error: std::time::Instant::now() - Duration::from_secs(60),
            instance: format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros()),
            fact_seq: 0,
            outbox: Vec::new(),
            catch_up: None,
            events_partitions: Vec::new(),
            remote_times: BTreeMap::new(),
        })
    }

    /// Records a failure for the loop to return.
    pub fn fail(&mut self, e: KafkaError) {
        log(&format!("error: {e}"));
        self.failure.get_or_insert(e);
    }

    pub fn take_failure(&mut self) -> Option<KafkaError> {
        self.failure.take()
    }

    /// Takes up partitions; returns where to read each from.
    pub fn assign(&mut self, parts: &[i32]) -> Vec<(i32, Offset)> {
        let mut out = Vec::new();
        let new: Vec<i32> = parts.iter().copied().filter(|p| !self.tasks.contains_key(p)).collect();
        if !new.is_empty() && !self.changelog_ready {
            let k = &self.cfg.kafka;
            let made = client::partitions(&self.facts, &k.events_topic).and_then(|ps| {
                client::ensure_compacted(&k.brokers, &k.changelog_topic, ps.len())?;
                Ok(ps)
            });
            match made {
                Ok(ps) => {
                    self.events_partitions = ps;
                    self.changelog_ready = true;
                }
                Err(e) => {
                    self.fail(e);
                    return out;
                }
            }
        }
        let mut restored = self.restore_all(&new);
        for &p in parts {
            if let Some(t) = self.tasks.get(&p) {
                out.push((p, Offset::Offset(t.meta.offset)));
                continue;
            }
            let state = restored.remove(&p).unwrap_or(Ok(None));
            match state.and_then(|state| self.load(p, state)) {
                Ok(t) => {
                    out.push((p, Offset::Offset(t.meta.offset)));
                    self.tasks.insert(p, t);
                }
                Err(e) => self.fail(e),
            }
        }
        if !parts.is_empty() {
            self.catch_up_facts();
        }
        self.refresh_facts_reader();
        out
    }

    /// Starts reading the facts topic up to where it ends now (see
    /// [`CatchUp`]).
    fn catch_up_facts(&mut self) {
        let ends = self.facts_ends();
        let at = self.tasks.values().filter_map(|t| t.pipeline.core().engine.watermark()).min();
        self.catch_up = Some(match self.catch_up.take() {
            Some(old) => {
                let ends = old.ends.zip(ends).map(|(mut old, ends)| {
                    for (fp, e) in ends {
                        let o = old.entry(fp).or_insert(e);
                        *o = (*o).max(e);
                    }
                    old
                });
                CatchUp { ends, at: old.at.min(at) }
            }
            None => CatchUp { ends, at },
        });
    }

    /// The facts topic's ends, by partition; `None` (logged at most every
    /// five seconds) when the broker does not say.
    fn facts_ends(&mut self) -> Option<BTreeMap<i32, i64>> {
        match client::ends_on(&self.facts, &self.cfg.kafka.facts_topic) {
            Ok(e) => Some(e),
            Err(e) => {
                if self.last_facts_error.elapsed() >= Duration::from_secs(5) {
                    self.last_facts_error = std::time::Instant::now();
                    log(&format!("facts topic: its ends are unknown ({e}); events wait until they are known"));
                }
                None
            }
        }
    }

    /// Ends the catch-up once the facts reader has reached the ends (asks
    /// for them again if `retry` while they are unknown).
    fn check_caught_up(&mut self, retry: bool) {
        let Some(c) = &self.catch_up else { return };
        if c.ends.is_none() && retry {
            let ends = self.facts_ends();
            if let Some(c) = &mut self.catch_up {
                c.ends = ends;
            }
        }
        let Some(CatchUp { ends: Some(ends), .. }) = &self.catch_up else { return };
        if !self.facts_stale && ends.iter().all(|(fp, e)| self.facts_next.get(fp).is_some_and(|n| n >= e)) {
            self.catch_up = None;
        }
    }

    /// Reads facts for at most `d` or until caught up (unknown ends are
    /// asked for again by [`Service::tick`], once a second).
    fn catch_up_for(&mut self, d: Duration) {
        let started = std::time::Instant::now();
        loop {
            self.read_facts();
            self.check_caught_up(false);
            if self.catch_up.is_none() || started.elapsed() >= d {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Tells the facts the tasks collected to this instance's other tasks
    /// at once (in `replay` one engine knows them at once: a fact going
    /// round the facts topic first would let the watermark, moved by the
    /// next events, fire timers without it), and keeps them for the facts
    /// topic.
    fn share_facts(&mut self) {
        // A fact told may make a task collect one in turn; bounded, the
        // rest waits for the next call.
        for _ in 0..8 {
            if !self.tasks.values().any(|t| t.pipeline.core().engine.has_shared()) {
                return;
            }
            let from: Vec<i32> =
                self.tasks.iter().filter(|(_, t)| t.pipeline.core().engine.has_shared()).map(|(&p, _)| p).collect();
            for p in from {
                let facts =
                    self.tasks.get_mut(&p).map(|t| t.pipeline.core_mut().engine.take_shared()).unwrap_or_default();
                for f in facts {
                    self.fact_seq += 1;
                    for (&q, t) in self.tasks.iter_mut() {
                        if q != p {
                            t.pipeline.core_mut().remote_fact(&f);
                            t.dirty = true;
                            self.stats.facts += 1;
                        }
                    }
                    self.outbox.push((p, self.fact_seq, f));
                }
            }
        }
    }

    /// Checkpoints and lets go of partitions.
    pub fn revoke(&mut self, parts: &[i32], commit: impl Fn(&TopicPartitionList) -> KafkaResult<()>) {
        let never = AtomicU32::new(0);
        for p in parts {
            if self.tasks.contains_key(p) {
                if let Err(e) = self.checkpoint(*p, &never, &commit, true) {
                    self.fail(e);
                }
                self.tasks.remove(p);
                self.live.pending.clear(&format!("p{p}"));
                log(&format!("partition {p} revoked"));
            }
        }
    }

    /// Drops every task (after the final checkpoint).
    pub fn stop(&mut self) {
        self.tasks.clear();
    }

    /// Reads the checkpoints of partitions and restores their engines,
    /// one thread per partition: decoding a large state is most of a
    /// restart, and the partitions' are independent.
    fn restore_all(&self, parts: &[i32]) -> BTreeMap<i32, Result<Option<Restored>, KafkaError>> {
        let k = &self.cfg.kafka;
        let data = &self.cfg.storage.data_dir;
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .map(|&p| {
                    let path = checkpoint::path(data, &k.group_id, &k.events_topic, p);
                    let (refdata, zone, rules) = (self.refdata.clone(), self.zone.clone(), self.cfg.rules.clone());
                    (p, s.spawn(move || restore(&path, refdata, zone, rules, k, p)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(p, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(KafkaError::Checkpoint(checkpoint::CheckpointError {
                            path: checkpoint::path(data, &k.group_id, &k.events_topic, p),
                            cause: std::io::Error::other("restoring it panicked").into(),
                        }))
                    });
                    (p, r)
                })
                .collect()
        })
    }

    fn load(&mut self, p: i32, restored: Option<Restored>) -> Result<Task, KafkaError> {
        let k = &self.cfg.kafka;
        let data = &self.cfg.storage.data_dir;
        let path = checkpoint::path(data, &k.group_id, &k.events_topic, p);
        let writer = format!("p{p}");
        let rules = self.cfg.rules.clone();
        let mut mirror = Mirror {
            changelog: Changelog::new(self.changelog.clone(), &k.changelog_topic, p),
            head: None,
            stale: Vec::new(),
        };
        let (mut meta, mut engine, mut base_len, log_len, after) = match restored {
            Some(Restored { checkpoint: c, deltas, engine, after, head, stale, from_changelog }) => {
                let meta = c.meta;
                mirror.head = head;
                mirror.stale = stale;
                let removed =
                    crate::history::discard_parts_from(data, &writer, meta.next_part, self.history_store.as_deref())?;
                let source = if from_changelog { "from the changelog" } else { "from the local store" };
                log(&format!(
                    "partition {p}: restored checkpoint of {} at offset {} {source} ({} cases in memory; a base of {} bytes and {} deltas ({} bytes) read in {:.2} s; {removed} history parts after it removed)",
                    meta.written_at,
                    meta.offset,
                    engine.cases_in_memory(),
                    c.base_len,
                    deltas,
                    c.log_len,
                    c.took.as_secs_f64(),
                ));
                if c.cut > 0 {
                    log(&format!(
                        "partition {p}: the last {} bytes of its delta log were a checkpoint cut short (never committed); removed",
                        c.cut
                    ));
                }
                (meta, engine, c.base_len, c.log_len, Some(after))
            }
            None => {
                let meta = Meta {
                    version: 1,
                    topic: k.events_topic.clone(),
                    partition: p,
                    alerts_end: client::ends_on(&self.facts, &k.alerts_topic)?,
                    dead_letter_end: client::ends_on(&self.facts, &k.dead_letter_topic)?,
                    run: chrono::Utc::now().timestamp_millis() as u64,
                    ..Meta::default()
                };
                log(&format!("partition {p}: no checkpoint; starting from its beginning"));
                (meta, Engine::new(self.refdata.clone(), self.zone.clone(), rules), 0, 0, None)
            }
        };
        engine.share_facts();
        let mut history =
            History::open_as(data, self.zone.clone(), self.refdata.clone(), &writer, self.history_store.clone())?;
        history.set_run(meta.run);
        let mut dead_done = HashSet::new();
        let mut settling = false;
        let mut settle_at = i64::MAX;
        if meta.written_at.is_empty() {
            // A first checkpoint at once: should this process die before
            // its next one, the records it published are found after this.
            let (low, _) =
                self.facts.fetch_watermarks(&k.events_topic, p, Duration::from_secs(10)).map_err(KafkaError::client)?;
            meta.offset = low;
            meta.next_part = history.next_part();
            meta.written_at = chrono::Local::now().to_rfc3339();
            checkpoint::write(&path, &meta, |w| engine.write_snapshot(w))?;
            base_len = std::fs::metadata(&path).map_or(0, |m| m.len());
        } else {
            // What was published for this partition after its checkpoint
            // (read while the checkpoint was decoded).
            let after = after.unwrap_or_default();
            let recovered = after.alerts.len();
            for rec in &after.alerts {
                engine.recover_published(rec);
            }
            dead_done = after.dead_done;
            // Recovered records wait in the engine state, and may have come
            // with the checkpoint itself (taken while they waited): settle
            // once the partition has been read again up to where it ends
            // now, in any case — not later (as at its end, which a busy
            // partition may not reach for long): a case may leave memory.
            settling = true;
            match self.facts.fetch_watermarks(&k.events_topic, p, Duration::from_secs(10)) {
                Ok((_, high)) => settle_at = high,
                Err(e) => log(&format!("partition {p}: its end is unknown ({e}); settling once it is read to its end")),
            }
            if recovered > 0 || !dead_done.is_empty() {
                log(&format!(
                    "partition {p}: {recovered} alert records and {} dead letters were published after the checkpoint; none will be published again",
                    dead_done.len()
                ));
            }
        }
        // Checkpoints from here on are deltas of this state.
        engine.track_changes();
        let saver = Saver::start_with(&path, meta.generation, base_len, log_len, super::saver::FOLD_FROM, Some(mirror));
        let now = std::time::Instant::now();
        let mut core = Core::new(engine, history);
        if core.engine.judged_on_another_calendar() {
            // The calendar changed while the partition was elsewhere.
            log(&format!("partition {p}: its checkpoint was judged on another calendar; judging its cases again"));
            core.set_refdata(self.refdata.clone());
        }
        let decoder = Decoder::new(self.refdata.clone(), self.zone.clone(), &self.cfg.privacy.applicant_key)
            .with_unlisted_items(self.cfg.rules.unlisted_item);
        // The watermark moves over every partition at once (see [`Service::advance`]).
        let pipeline = Pipeline::new(decoder, core, Watermark::Shell, Some(self.live.metrics.clone()));
        Ok(Task {
            partition: p,
            pipeline,
            meta,
            last_message: now,
            dirty: false,
            last_checkpoint: now,
            dead_done,
            settling,
            settle_at,
            caught_up: false,
            at_end: false,
            checkpoint_cost: Duration::ZERO,
            since_seq: self.fact_seq,
            gap: None,
            held_raw: BTreeMap::new(),
            saver,
            flushing_views: VecDeque::new(),
            time_sent: None,
        })
    }

    /// Points the facts reader at the smallest position any task needs.
    fn refresh_facts_reader(&mut self) {
        let topic = self.cfg.kafka.facts_topic.clone();
        self.facts_stale = true;
        let parts = match client::partitions(&self.facts, &topic) {
            Ok(p) => p,
            Err(e) => return log(&format!("facts topic: {e}; retrying")),
        };
        let mut want: BTreeMap<i32, i64> = BTreeMap::new();
        for fp in parts {
            let need = self.tasks.values().map(|t| t.meta.facts_next.get(&fp).copied().unwrap_or(0)).min().unwrap_or(0);
            want.insert(fp, need);
        }
        let behind = want.iter().any(|(fp, need)| self.facts_next.get(fp).is_none_or(|have| need < have));
        if !behind && !self.facts_next.is_empty() {
            self.facts_stale = false;
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (&fp, &o) in &want {
            let _ = tpl.add_partition_offset(&topic, fp, Offset::Offset(o));
        }
        match self.facts.assign(&tpl) {
            Ok(()) => {
                self.facts_next = want;
                self.facts_stale = false;
            }
            Err(e) => log(&format!("facts topic: {e}; retrying")),
        }
    }

    /// The consumer read a partition to its end.
    pub fn end_of_partition(&mut self, p: i32) {
        if let Some(t) = self.tasks.get_mut(&p) {
            t.caught_up = true;
            t.at_end = true;
        }
    }

    /// Sets the consumer-lag gauge from each assigned partition's end.
    pub fn update_lag(&self, end: impl Fn(i32) -> Option<i64>) {
        let g = &self.live.metrics.consumer_lag;
        g.reset();
        for t in self.tasks.values() {
            if let Some(e) = end(t.partition) {
                g.with_label_values(&[t.partition.to_string().as_str()]).set((e - t.meta.offset).max(0));
            }
        }
    }

    /// One message of the events topic.
    ///
    /// Returns the offset to read the partition from again when this
    /// message lies past the next one expected (the message is not taken):
    /// taking it would move the partition's position past messages never
    /// applied. A gap that is still there when read again (offsets a
    /// transactional producer's markers or compaction left unused) is
    /// taken.
    pub fn message(&mut self, m: &BorrowedMessage<'_>) -> Result<Option<i64>, KafkaError> {
        let (p, off) = (m.partition(), m.offset());
        let Some(task) = self.tasks.get_mut(&p) else { return Ok(None) };
        if off < task.meta.offset {
            return Ok(None); // already in the checkpointed state
        }
        if self.catch_up.is_some() {
            // No event before the facts published before it (see
            // [`CatchUp`]): read again once they are read.
            let again = task.meta.offset;
            self.catch_up_for(Duration::from_millis(200));
            if self.catch_up.is_some() {
                return Ok(Some(again));
            }
            return self.message(m);
        }
        if off > task.meta.offset {
            let expected = task.meta.offset;
            let tries = match task.gap {
                Some((e, g, n)) if e == expected && g == off => n + 1,
                _ => 0,
            };
            // From the expected offset, then ever further back (whatever
            // comes before it is skipped above). A real gap (compaction,
            // transaction markers) is taken once read again from the
            // furthest back, or from the partition's start.
            let from = |n: usize| expected.saturating_sub(client::READ_AGAIN_BACK[n]).max(0);
            let exhausted = tries >= client::READ_AGAIN_BACK.len() || (tries > 0 && from(tries - 1) == 0);
            if !exhausted {
                if tries == 0 {
                    log(&format!("partition {p}: offset {off} arrived while {expected} was expected; reading again"));
                }
                task.gap = Some((expected, off, tries));
                return Ok(Some(from(tries)));
            }
            log(&format!("partition {p}: offsets {expected}..{off} hold no message; going on from {off}"));
        }
        task.gap = None;
        task.at_end = false;
        task.meta.offset = off + 1;
        task.dirty = true;
        task.last_message = std::time::Instant::now();
        self.stats.read += 1;
        let o = origin(p as usize, off as u64);
        let (key, payload) = (m.key(), m.payload().unwrap_or(b""));
        let record = Record { origin: o, kafka: Some((p, off)), key, payload: Payload::Raw(payload) };
        let Service { tasks, producer, cfg, live, raw, stats, .. } = self;
        let Some(Task { pipeline, dead_done, held_raw, meta, .. }) = tasks.get_mut(&p) else { return Ok(None) };
        let out = Outputs { producer, kafka: &cfg.kafka, live, raw };
        let mut sink = KafkaSink { p, out, dead_done, held_raw, alerts: &mut stats.alerts };
        match pipeline.step(record, &mut sink)? {
            Taken::Rejected => stats.bad += 1,
            Taken::Held => {
                // Kept for its dead letter, should it be found invalid.
                if held_raw.len() >= HELD_RAW_MAX {
                    held_raw.pop_first();
                }
                held_raw.insert(o, (key.map(<[u8]>::to_vec), payload.to_vec()));
            }
            Taken::Applied(at) => {
                stats.applied += 1;
                meta.max_at = Some(meta.max_at.map_or(at, |x| x.max(at)));
            }
            Taken::Duplicate => {}
        }
        Ok(None)
    }

    /// Moves every task's watermark (after each message: in event time the
    /// order of events and watermark steps decides which transient cards a
    /// run shows, and must be replay's).
    pub fn advance(&mut self) {
        let lateness = self.cfg.time.allowed_lateness.as_millis() as i64;
        let wm = match self.cfg.time.watermark {
            WatermarkMode::Wall => Some(chrono::Utc::now().timestamp_millis() - lateness),
            WatermarkMode::Event => {
                let wm = self.event_watermark().map(|w| w - lateness);
                match &self.catch_up {
                    Some(c) => wm.zip(c.at).map(|(w, at)| w.min(at)),
                    None => wm,
                }
            }
        };
        if let Some(w) = wm {
            for t in self.tasks.values_mut() {
                t.pipeline.advance(w);
            }
            self.live.set_clock(w);
        }
        self.share_facts();
    }

    /// A new calendar (the folder changed): every case in memory is judged
    /// again on it, events are decoded with it from now on.
    fn set_calendar(&mut self, calendar: crate::calendar::Calendar) {
        let refdata = Arc::new(self.refdata.with_calendar(calendar));
        let cal = &refdata.calendar;
        let years = |v: Vec<i32>| v.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
        log(&format!(
            "calendar folder changed: official years {}, provisional {}; judging {} cases again",
            years(cal.years().collect()),
            match years(cal.provisional_years().collect()) {
                y if y.is_empty() => "none".to_string(),
                y => y,
            },
            self.tasks.values().map(|t| t.pipeline.core().engine.cases_in_memory()).sum::<usize>()
        ));
        for t in self.tasks.values_mut() {
            t.pipeline.set_refdata(refdata.clone());
            t.dirty = true;
        }
        self.refdata = refdata;
    }

    /// Between messages: facts from other partitions, the watermark,
    /// publishing, and checkpoints that are due.
    pub fn tick(
        &mut self,
        stop: &AtomicU32,
        commit: impl Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) -> Result<(), KafkaError> {
        match self.calendar.as_mut().and_then(|w| w.poll()) {
            Some(Ok(cal)) => self.set_calendar(cal),
            Some(Err(e)) => log(&format!("calendar folder changed but does not load ({e}); the calendar in use stays")),
            None => {}
        }
        self.read_facts();
        self.check_caught_up(self.last_settle.elapsed() >= Duration::from_secs(1));
        self.advance();
        let m = &self.live.metrics;
        let oldest = self.tasks.values().map(|t| t.last_checkpoint.elapsed().as_secs_f64()).fold(0.0, f64::max);
        m.checkpoint_age.set(oldest);
        let now = chrono::Utc::now().timestamp_millis();
        let lowest = self.tasks.values().filter_map(|t| t.pipeline.core().engine.watermark()).min();
        m.watermark_delay.set(lowest.map_or(0.0, |w| (now - w) as f64 / 1000.0));
        if self.last_settle.elapsed() >= Duration::from_secs(1) {
            self.last_settle = std::time::Instant::now();
            // Counting open cases walks every case in memory: once a second.
            m.open_cases.set(self.tasks.values().map(|t| t.pipeline.core().engine.open_cases() as i64).sum());
            m.pending_timers.set(self.tasks.values().map(|t| t.pipeline.core().engine.pending_timers() as i64).sum());
            if !self.live.users.is_empty() {
                // SQL sees the cases changed since each partition's last
                // flush (at most a second old).
                for t in self.tasks.values() {
                    // (The views written since the last checkpoint are the
                    // newest of `flushing_views`, under NOT_CUT.)
                    let views = with_flushing(t.pipeline.core().engine.pending_views(), &t.flushing_views);
                    self.live.pending.set(&format!("p{}", t.partition), views);
                }
            }
            if self.facts_stale {
                self.refresh_facts_reader();
            }
            for t in self.tasks.values_mut() {
                let read_again = t.caught_up || t.meta.offset >= t.settle_at;
                if t.settling && read_again && t.pipeline.core_mut().settle_recovered() == 0 {
                    t.settling = false;
                }
            }
        }
        self.publish()?;
        // The rows of the cases the last checkpoints left, a few at a time.
        let sql = !self.live.users.is_empty();
        for t in self.tasks.values_mut() {
            if t.pipeline.core().engine.deferred() > 0 {
                let views = sql.then(|| uncut(&mut t.flushing_views));
                // The rows written reach complete parts at the next
                // checkpoint, which must come even if nothing else does.
                t.dirty |= t.pipeline.core_mut().take_deferred(DEFERRED_ROWS, views) > 0;
            }
        }
        // Each partition waits at least twenty times what a checkpoint of
        // every partition costs: all of them together take at most about a
        // twentieth of the time, however many partitions this instance
        // holds. When every partition has been read to its end and nothing
        // came for an interval, there is no work to make way for: the
        // interval only, so offsets are committed soon after a burst.
        // (Not one quiet partition alone: the facts of a busy one keep
        // changing it, and its checkpoints would take the time the busy
        // one needs.)
        let interval = self.cfg.storage.checkpoint_interval;
        let quiet = self.tasks.values().all(|t| t.time().idle(interval));
        let round: Duration = self.tasks.values().map(|t| t.checkpoint_cost).sum();
        let spacing = if quiet { interval } else { interval.max(round * 20) };
        // A partition whose state has CUT_CHANGES changes pending (a bulk
        // load) is checkpointed at once: what a checkpoint holds the loop
        // for follows the changes it cuts.
        let due: Vec<i32> = self
            .tasks
            .values()
            .filter(|t| {
                t.dirty
                    && (t.last_checkpoint.elapsed() >= spacing
                        || t.pipeline.core().engine.changes_pending() >= CUT_CHANGES)
            })
            .map(|t| t.partition)
            .collect();
        for p in due {
            self.checkpoint(p, stop, &commit, false)?;
        }
        let parts: Vec<i32> = self.tasks.keys().copied().collect();
        for p in parts {
            self.durable(p, &commit)?;
        }
        Ok(())
    }

    /// The group's event-time watermark (see [`event_watermark`]): over this instance's partitions
    /// and, as their owners last published them, every other partition of
    /// the events topic (one never published holds it back).
    fn event_watermark(&self) -> Option<Instant> {
        let idle = self.cfg.time.idle_timeout;
        let others = self.events_partitions.iter().filter(|p| !self.tasks.contains_key(p)).map(|p| {
            match self.remote_times.get(p) {
                Some(r) => PartitionTime {
                    max_at: r.max_at,
                    at_end: r.idle,
                    quiet_for: if r.idle { Duration::MAX } else { Duration::ZERO },
                },
                None => PartitionTime { max_at: None, at_end: false, quiet_for: Duration::ZERO },
            }
        });
        event_watermark(self.tasks.values().map(Task::time).chain(others), idle)
    }

    /// Facts the other partitions published, told to every task but the
    /// one they come from.
    fn read_facts(&mut self) {
        for _ in 0..1000 {
            let m = match self.facts.poll(Duration::ZERO) {
                Some(Ok(m)) => m.detach(),
                Some(Err(e)) => {
                    // Broker trouble shows in the main consumer's log lines too.
                    if self.last_facts_error.elapsed() >= Duration::from_secs(5) {
                        self.last_facts_error = std::time::Instant::now();
                        log(&format!("facts topic: {e} (retrying)"));
                    }
                    return;
                }
                None => return,
            };
            let (fp, off) = (m.partition(), m.offset());
            // Where the reader stood before this message: a task that needs
            // facts from further back must wait for the reader to be
            // pointed there (not be handed this one, which would move its
            // position past the facts it never got).
            let reader_from = self.facts_next.get(&fp).copied().unwrap_or(0);
            self.facts_next.insert(fp, off + 1);
            // One of this instance's: told directly to the tasks it had then.
            let own = if header(&m, INSTANCE_HEADER).as_deref() == Some(self.instance.as_str()) {
                header(&m, SEQ_HEADER).and_then(|v| v.parse::<u64>().ok())
            } else {
                None
            };
            let from = header(&m, PARTITION_HEADER).and_then(|v| v.parse::<i32>().ok());
            // A partition's event time, or a fact; either way each task's
            // position moves past it (a task left behind would have the
            // reader pointed back here again and again).
            let fact = if m.key().is_some_and(|k| k.starts_with(TIME_KEY.as_bytes())) {
                let rec = m.payload().and_then(|b| serde_json::from_slice::<TimeRecord>(b).ok());
                if let (Some(p), Some(rec)) = (from, rec) {
                    self.remote_times.insert(p, rec);
                }
                None
            } else {
                m.payload().and_then(|b| serde_json::from_slice::<SharedFact>(b).ok())
            };
            for t in self.tasks.values_mut() {
                let need = t.meta.facts_next.get(&fp).copied().unwrap_or(0);
                if off < need {
                    continue;
                }
                if reader_from > need {
                    self.facts_stale = true;
                    continue;
                }
                t.meta.facts_next.insert(fp, off + 1);
                let Some(fact) = &fact else { continue };
                if from != Some(t.partition) && own.is_none_or(|seq| seq <= t.since_seq) {
                    t.pipeline.core_mut().remote_fact(fact);
                    t.dirty = true;
                    self.stats.facts += 1;
                }
            }
        }
    }

    fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], headers: OwnedHeaders) -> Result<(), KafkaError> {
        client::send(&self.producer, topic, key, payload, Some(headers))
    }

    /// Publishes every task's effects and facts.
    fn publish(&mut self) -> Result<(), KafkaError> {
        self.share_facts();
        for (p, seq, f) in std::mem::take(&mut self.outbox) {
            let json = serde_json::to_vec(&f).expect("fact serializes");
            let (ps, seq) = (p.to_string(), seq.to_string());
            let h = OwnedHeaders::new()
                .insert(Header { key: PARTITION_HEADER, value: Some(ps.as_str()) })
                .insert(Header { key: INSTANCE_HEADER, value: Some(self.instance.as_str()) })
                .insert(Header { key: SEQ_HEADER, value: Some(seq.as_str()) });
            // Keyed by kind and case, so a compacted topic keeps each one's latest.
            let key = match &f {
                SharedFact::Acceptance { case_id, .. } => format!("a/{case_id}"),
                SharedFact::Center { case_id, .. } => format!("c/{case_id}"),
            };
            self.send(&self.cfg.kafka.facts_topic, Some(key.as_bytes()), &json, h)?;
        }
        if self.cfg.time.watermark == WatermarkMode::Event {
            self.publish_times()?;
        }
        let Service { tasks, producer, cfg, live, raw, stats, .. } = self;
        for (&p, t) in tasks.iter_mut() {
            let Task { pipeline, dead_done, held_raw, .. } = t;
            let out = Outputs { producer, kafka: &cfg.kafka, live, raw };
            let mut sink = KafkaSink { p, out, dead_done, held_raw, alerts: &mut stats.alerts };
            pipeline.drain(&mut sink)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Publishes each task's event time to the facts topic, after the facts
    /// (event mode; see [`TimeRecord`]): when it changed, at most every
    /// 50 ms (at once when it turns idle or active), and every second.
    fn publish_times(&mut self) -> Result<(), KafkaError> {
        let idle = self.cfg.time.idle_timeout;
        let mut due = Vec::new();
        for (&p, t) in self.tasks.iter() {
            let rec = TimeRecord { max_at: t.meta.max_at, idle: t.time().idle(idle) };
            let send = match t.time_sent {
                None => true,
                Some((sent, at)) => {
                    let since = at.elapsed();
                    sent.idle != rec.idle
                        || (sent != rec && since >= Duration::from_millis(50))
                        || since >= Duration::from_secs(1)
                }
            };
            if send {
                due.push((p, rec));
            }
        }
        for (p, rec) in due {
            let json = serde_json::to_vec(&rec).expect("a time record serializes");
            let ps = p.to_string();
            let h = OwnedHeaders::new()
                .insert(Header { key: PARTITION_HEADER, value: Some(ps.as_str()) })
                .insert(Header { key: INSTANCE_HEADER, value: Some(self.instance.as_str()) });
            let key = format!("{TIME_KEY}{p}");
            self.send(&self.cfg.kafka.facts_topic, Some(key.as_bytes()), &json, h)?;
            if let Some(t) = self.tasks.get_mut(&p) {
                t.time_sent = Some((rec, std::time::Instant::now()));
            }
        }
        Ok(())
    }

    /// Checkpoints every task.
    pub fn checkpoint_all(
        &mut self,
        stop: &AtomicU32,
        commit: impl Fn(&TopicPartitionList) -> KafkaResult<()>,
    ) -> Result<(), KafkaError> {
        let parts: Vec<i32> = self.tasks.keys().copied().collect();
        for p in parts {
            self.checkpoint(p, stop, &commit, true)?;
        }
        Ok(())
    }

    /// Flushes the producer and the partition's history, and hands a cut
    /// of its state (what changed since its last checkpoint) to its
    /// writer; with `wait`, waits until it is durable and commits its
    /// offset (else that follows once the writer says it is durable).
    fn checkpoint(
        &mut self,
        p: i32,
        stop: &AtomicU32,
        commit: &impl Fn(&TopicPartitionList) -> KafkaResult<()>,
        wait: bool,
    ) -> Result<(), KafkaError> {
        let started = std::time::Instant::now();
        let cpu_started = thread_cpu();
        self.publish()?;
        // A checkpoint must not be durable before the records published
        // before it are acknowledged (the state would claim records the
        // brokers may not have). A final one waits for them here; the
        // others leave the wait to their writer, which writes them once
        // the records they follow are acknowledged, unless too many are
        // in flight (the brokers are slow or gone): the loop then waits
        // until half of them are, and says so if that takes long.
        let acks = self.producer.context().mark();
        let in_flight = self.producer.in_flight_count();
        let most = match wait {
            true => Some(0),
            false => (in_flight > UNACKED_MAX).then_some(UNACKED_MAX / 2),
        };
        let mut waited = 0;
        while let Some(most) = most {
            let Err(e) = client::flush(&self.producer, most, Duration::from_secs(5)) else { break };
            waited += 5;
            if stop.load(Ordering::Relaxed) > 1 {
                return Err(KafkaError::GaveUp { waited, source: e });
            }
            log(&format!(
                "waiting {waited} s for the brokers to acknowledge {} records ({e})",
                self.producer.in_flight_count()
            ));
        }
        if let Some(f) = self.producer.context().failed() {
            return Err(KafkaError::Rejected(f));
        }
        let k = self.cfg.kafka.clone();
        let Some(t) = self.tasks.get_mut(&p) else { return Ok(()) };
        // What the loop waits for: at a final checkpoint, the brokers'
        // acknowledgement of every record published (above); the rows of
        // the cases that left memory (and, at a final checkpoint, of every
        // changed case), and the cut of the state. The rows of the other
        // changed cases are written by the ticks until the next
        // checkpoint; the history parts complete on the history writer's
        // thread; the checkpoint writer waits for them.
        let acked = started.elapsed();
        let rows_started = std::time::Instant::now();
        let waited = t.pipeline.core().history.waited();
        let sql = !self.live.users.is_empty();
        let views = sql.then(|| uncut(&mut t.flushing_views));
        let core = t.pipeline.core_mut();
        let flushing = if wait { core.flush_in_background(views) } else { core.flush_deferring_cases(views) };
        let history = rows_started.elapsed();
        let waited = t.pipeline.core().history.waited() - waited;
        // SQL sees the rows written since the last checkpoint as pending
        // until their parts are complete and this checkpoint durable. The
        // cases left for the ticks are still among the changed ones, which
        // the next refresh of the pending rows views; the pending rows
        // published before have them meanwhile.
        if let Some(back) = t.flushing_views.back_mut().filter(|b| b.0 == NOT_CUT) {
            back.0 = t.meta.offset;
        }
        if !sql {
            self.live.pending.clear(&format!("p{p}"));
        }
        // The output topics' ends past every record acknowledged: records
        // of this partition after them were published after the cut, or
        // before it and not yet acknowledged. A restart reads them all
        // back: a record the cut already has is only marked recovered
        // again, until the input is caught up.
        let watch = self.producer.context();
        watch.raise_ends(&k.alerts_topic, &mut t.meta.alerts_end);
        watch.raise_ends(&k.dead_letter_topic, &mut t.meta.dead_letter_end);
        t.meta.next_part = t.pipeline.core().history.next_part();
        t.meta.written_at = chrono::Local::now().to_rfc3339();
        let mut cut = 0;
        let cut_started = std::time::Instant::now();
        match t.pipeline.core_mut().engine.take_delta() {
            Some(delta) => {
                cut = delta.cases();
                t.saver.save_after_acks(t.meta.clone(), delta, flushing, acks);
            }
            None => flushing.wait()?,
        }
        let cut_cost = cut_started.elapsed();
        t.dirty = false;
        t.last_checkpoint = std::time::Instant::now();
        t.checkpoint_cost = started.elapsed();
        if t.checkpoint_cost > Duration::from_millis(100) {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let cpu = ms(thread_cpu().saturating_sub(cpu_started));
            log(&format!(
                "partition {p}: a checkpoint held the loop {:.0} ms, {cpu:.0} ms of it on a CPU (publishing {:.0} ms, with {in_flight} records in flight{}; history rows {:.0} ms, of which {:.0} ms waiting for the history writer; the cut of {cut} changed cases {:.0} ms)",
                ms(t.checkpoint_cost),
                ms(acked),
                if most.is_some() { ", waiting for their acknowledgement" } else { "" },
                ms(history),
                ms(waited),
                ms(cut_cost),
            ));
        }
        self.live.metrics.checkpoint_stall.observe(t.checkpoint_cost.as_secs_f64());
        if !wait {
            self.stats.longest_hold = self.stats.longest_hold.max(t.checkpoint_cost);
        }
        if wait {
            t.saver.sync();
            self.durable(p, commit)?;
        }
        Ok(())
    }

    /// Commits the offset of the partition's latest durable checkpoint.
    fn durable(&mut self, p: i32, commit: &impl Fn(&TopicPartitionList) -> KafkaResult<()>) -> Result<(), KafkaError> {
        let Some(t) = self.tasks.get_mut(&p) else { return Ok(()) };
        let mut offset = None;
        for r in t.saver.durable() {
            match r {
                Report::Durable(meta) => {
                    offset = Some(meta.offset);
                    // Their rows are in complete parts now; the next
                    // refresh of the pending rows leaves them out.
                    while t.flushing_views.front().is_some_and(|(o, _)| *o <= meta.offset) {
                        t.flushing_views.pop_front();
                    }
                    self.stats.checkpoints += 1;
                }
                Report::Failed(e) => return Err(e.into()),
                Report::HistoryFailed(e) => return Err(e.into()),
            }
        }
        let Some(offset) = offset else { return Ok(()) };
        let mut tpl = TopicPartitionList::new();
        let _ = tpl.add_partition_offset(&self.cfg.kafka.events_topic, p, Offset::Offset(offset));
        if let Err(e) = commit(&tpl) {
            // Restarts read the checkpoint; the group's offsets only follow
            // it (for lag monitoring), so a failed commit loses nothing.
            log(&format!("partition {p}: committing offset {offset}: {e} (the checkpoint stands)"));
        }
        Ok(())
    }
}

/// CPU time the calling thread has used: what part of a stall was work,
/// not waiting for a core.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The views written since the last checkpoint (the newest entry of
/// `flushing`, under [`NOT_CUT`], made if missing).
fn uncut(flushing: &mut VecDeque<(i64, Vec<CaseView>)>) -> &mut Vec<CaseView> {
    if flushing.back().is_none_or(|b| b.0 != NOT_CUT) {
        flushing.push_back((NOT_CUT, Vec::new()));
    }
    &mut flushing.back_mut().expect("just made").1
}

/// The pending case rows SQL sees: `newer` (changed since the last flush),
/// then those of flushes whose parts may not be complete yet, the latest
/// view of each case only.
fn with_flushing(newer: Vec<CaseView>, flushing: &VecDeque<(i64, Vec<CaseView>)>) -> Vec<CaseView> {
    latest_first(newer, flushing, |v| &v.case_id)
}

/// `newer`, then the items of `older` (latest batch first) whose id is
/// not given yet.
fn latest_first<T: Clone>(mut newer: Vec<T>, older: &VecDeque<(i64, Vec<T>)>, id: impl Fn(&T) -> &str) -> Vec<T> {
    let mut seen: HashSet<String> = newer.iter().map(|v| id(v).to_string()).collect();
    for (_, batch) in older.iter().rev() {
        for v in batch {
            if seen.insert(id(v).to_string()) {
                newer.push(v.clone());
            }
        }
    }
    newer
}

/// A partition's engine restored from its checkpoint.
struct Restored {
    /// The checkpoint (its base and deltas dropped once applied).
    checkpoint: checkpoint::Loaded,
    /// How many deltas followed its base.
    deltas: usize,
    engine: Engine,
    /// What was published for the partition after the checkpoint.
    after: PublishedAfter,
    /// The changelog's head, when the changelog holds exactly this
    /// checkpoint (else the checkpoint is published to it first).
    head: Option<Head>,
    /// Changelog keys the head does not use.
    stale: Vec<String>,
    /// The checkpoint came from the changelog, not the local store.
    from_changelog: bool,
}

/// The records published for a partition after its checkpoint.
#[derive(Default)]
struct PublishedAfter {
    /// Its alert records.
    alerts: Vec<crate::alert::AlertRecord>,
    /// The original offsets of its dead letters.
    dead_done: HashSet<i64>,
}

/// A partition's checkpoint as found when it is taken up, and whether the
/// changelog holds it.
struct Found {
    checkpoint: checkpoint::Loaded,
    head: Option<Head>,
    stale: Vec<String>,
    from_changelog: bool,
}

/// Finds a partition's checkpoint: the local one when the changelog's head
/// describes it, or a prefix of it (frames the changelog never
/// acknowledged are cut off); else the changelog's, put in place of the
/// local one first; the local one when the changelog is empty (it is then
/// published to it); none when neither has one.
fn find(path: &std::path::Path, k: &crate::config::KafkaConfig, p: i32) -> Result<Option<Found>, KafkaError> {
    let head = changelog::read_head(&k.brokers, &k.changelog_topic, p)?;
    let local = checkpoint::load(path)?;
    let Some(head) = head else {
        return Ok(local.map(|c| Found { checkpoint: c, head: None, stale: Vec::new(), from_changelog: false }));
    };
    if let Some(mut c) = local {
        let same_base =
            c.base_meta.generation == head.generation && c.base_len == head.base_len && c.base_sum == head.base_sum;
        let frames = if head.log_len == 0 {
            Some(0)
        } else {
            c.frames.iter().position(|f| f.end == head.log_len && f.sum == head.last_sum).map(|i| i + 1)
        };
        if let (true, Some(n)) = (same_base, frames) {
            c.keep_frames(path, n)?;
            return Ok(Some(Found { checkpoint: c, head: Some(head), stale: Vec::new(), from_changelog: false }));
        }
    }
    let Some(image) = changelog::read_image(&k.brokers, &k.changelog_topic, p)? else {
        return Err(KafkaError::Changelog(changelog::ChangelogError {
            topic: k.changelog_topic.clone(),
            partition: p,
            why: "its head is gone on a second read".into(),
        }));
    };
    checkpoint::install(path, image.head.generation, &image.base, &image.log)?;
    drop(image.base);
    let c = checkpoint::load(path)?.ok_or_else(|| {
        KafkaError::Checkpoint(checkpoint::CheckpointError {
            path: path.to_path_buf(),
            cause: std::io::Error::other("the checkpoint installed from the changelog is gone").into(),
        })
    })?;
    if c.base_meta.generation != image.head.generation || c.log_len != image.head.log_len {
        return Err(KafkaError::Changelog(changelog::ChangelogError {
            topic: k.changelog_topic.clone(),
            partition: p,
            why: format!(
                "its checkpoint does not read as its head says (generation {}, log {} bytes)",
                image.head.generation, image.head.log_len
            ),
        }));
    }
    Ok(Some(Found { checkpoint: c, head: Some(image.head), stale: image.stale, from_changelog: true }))
}

/// Reads a partition's checkpoint, if it has one, and restores its engine;
/// meanwhile reads what was published for it after the checkpoint.
fn restore(
    path: &std::path::Path,
    refdata: Arc<RefData>,
    zone: Zone,
    rules: crate::config::RulesConfig,
    k: &crate::config::KafkaConfig,
    p: i32,
) -> Result<Option<Restored>, KafkaError> {
    let started = std::time::Instant::now();
    let Some(Found { checkpoint: mut c, head, stale, from_changelog }) = find(path, k, p)? else { return Ok(None) };
    let (engine, after) = std::thread::scope(|s| {
        let after = s.spawn(|| published_after(k, p, &c.meta));
        let deltas = c.deltas.iter().map(|d| d.as_slice());
        let engine = Engine::restore_with_deltas(refdata, zone, rules, &c.base, deltas);
        (engine, after.join())
    });
    let engine = engine?;
    let after = after.unwrap_or_else(|_| Err(KafkaError::Checkpoint(lost_reader(path))))?;
    c.took = started.elapsed();
    let deltas = c.deltas.len();
    c.base = Vec::new();
    c.deltas = Vec::new();
    Ok(Some(Restored { checkpoint: c, deltas, engine, after, head, stale, from_changelog }))
}

fn lost_reader(path: &std::path::Path) -> checkpoint::CheckpointError {
    checkpoint::CheckpointError {
        path: path.to_path_buf(),
        cause: std::io::Error::other("reading what was published after it panicked").into(),
    }
}

/// Reads the alert records and dead letters published for partition `p`
/// after its checkpoint of `meta`.
fn published_after(k: &crate::config::KafkaConfig, p: i32, meta: &Meta) -> Result<PublishedAfter, KafkaError> {
    let mine = |m: &OwnedMessage| header(m, PARTITION_HEADER).and_then(|v| v.parse::<i32>().ok()) == Some(p);
    // The two topics at once: each read-back is mostly waiting on the broker.
    let (alerts, dead_done) = std::thread::scope(|s| {
        let alerts = s.spawn(|| {
            let mut alerts = Vec::new();
            client::read_after(&k.brokers, &k.alerts_topic, &meta.alerts_end, |m| {
                if !mine(m) {
                    return;
                }
                if let Some(rec) = m.payload().and_then(|b| serde_json::from_slice::<crate::alert::AlertRecord>(b).ok())
                {
                    alerts.push(rec);
                }
            })
            .map(|_| alerts)
        });
        let mut dead_done = HashSet::new();
        let dead = client::read_after(&k.brokers, &k.dead_letter_topic, &meta.dead_letter_end, |m| {
            if header(m, "original_topic").as_deref() == Some(k.events_topic.as_str())
                && header(m, "original_partition").and_then(|v| v.parse::<i32>().ok()) == Some(p)
            {
                if let Some(o) = header(m, "original_offset").and_then(|v| v.parse::<i64>().ok()) {
                    dead_done.insert(o);
                }
            }
        });
        let alerts = alerts.join().unwrap_or_else(|_| {
            Err(KafkaError::Topic { topic: k.alerts_topic.clone(), cause: client::TopicError::ReaderLost })
        });
        (alerts, dead.map(|_| dead_done))
    });
    Ok(PublishedAfter { alerts: alerts?, dead_done: dead_done? })
}

/// What a partition's sink publishes through.
struct Outputs<'a> {
    producer: &'a BaseProducer<DeliveryWatch>,
    kafka: &'a crate::config::KafkaConfig,
    live: &'a crate::pipeline::live::Live,
    /// Reads back the original bytes of events dead-lettered after a hold.
    raw: &'a BaseConsumer,
}

/// A partition's sink: alert records to the live feed and the alerts
/// topic, dead letters to the dead-letter topic (with the original key and
/// bytes, and where they came from in headers).
struct KafkaSink<'a> {
    p: i32,
    out: Outputs<'a>,
    /// Offsets whose dead letters were published after the checkpoint.
    dead_done: &'a mut HashSet<i64>,
    /// The original key and bytes of events the engine holds.
    held_raw: &'a mut BTreeMap<u64, (Option<Vec<u8>>, Vec<u8>)>,
    /// Alert records published.
    alerts: &'a mut u64,
}

impl Sink for KafkaSink<'_> {
    type Error = KafkaError;

    fn alert(&mut self, rec: &crate::alert::AlertRecord, json: String) -> Result<(), KafkaError> {
        let entry = self.out.live.alert_encoded(rec, json);
        let ps = self.p.to_string();
        let h = OwnedHeaders::new().insert(Header { key: PARTITION_HEADER, value: Some(ps.as_str()) });
        let k = self.out.kafka;
        client::send(self.out.producer, &k.alerts_topic, Some(rec.case_id.as_bytes()), entry.json.as_bytes(), Some(h))?;
        *self.alerts += 1;
        Ok(())
    }

    fn dead_letter(&mut self, d: DeadLetter<'_>) -> Result<(), KafkaError> {
        let (_, off) = split_origin(d.origin);
        let off = off as i64;
        if self.dead_done.remove(&off) {
            return Ok(()); // published before the restart
        }
        let k = self.out.kafka;
        // Found invalid after its hold, or undone by a late arrival: its
        // original bytes are kept, or still on the topic.
        let kept;
        let (key, bytes) = match d.raw {
            Some(raw) => (raw.key, raw.bytes),
            None => {
                kept = match self.held_raw.remove(&d.origin) {
                    Some(kept) => kept,
                    None => {
                        let msg = client::read_at(self.out.raw, &k.events_topic, self.p, off)?;
                        let key = msg.as_ref().and_then(|m| m.key().map(<[u8]>::to_vec));
                        (key, msg.as_ref().and_then(|m| m.payload().map(<[u8]>::to_vec)).unwrap_or_default())
                    }
                };
                (kept.0.as_deref(), kept.1.as_slice())
            }
        };
        let rej = d.rejection;
        let (ps, os) = (self.p.to_string(), off.to_string());
        let h = OwnedHeaders::new()
            .insert(Header { key: "reason", value: Some(rej.reason.as_str()) })
            .insert(Header { key: "field", value: rej.field.as_deref() })
            .insert(Header { key: "detail", value: Some(rej.detail.as_str()) })
            .insert(Header { key: "original_topic", value: Some(k.events_topic.as_str()) })
            .insert(Header { key: "original_partition", value: Some(ps.as_str()) })
            .insert(Header { key: "original_offset", value: Some(os.as_str()) });
        client::send(self.out.producer, &k.dead_letter_topic, key, bytes, Some(h))
    }
}

impl From<PipelineError<KafkaError>> for KafkaError {
    fn from(e: PipelineError<KafkaError>) -> KafkaError {
        match e {
            PipelineError::Shell(e) => e,
            PipelineError::History(e) => KafkaError::History(e),
            PipelineError::Encode(e) => KafkaError::Encode(e),
        }
    }
}

/// Where a partition stands, for the event-time watermark.
#[derive(Clone, Copy, Debug)]
struct PartitionTime {
    /// Its largest `occurred_at` applied.
    max_at: Option<Instant>,
    /// Its last message read was the end of the partition.
    at_end: bool,
    /// Time since its last message.
    quiet_for: Duration,
}

impl PartitionTime {
    /// Read to its end, with nothing new for `d`.
    fn idle(&self, d: Duration) -> bool {
        self.at_end && self.quiet_for >= d
    }
}

impl Task {
    /// Where it stands now.
    fn time(&self) -> PartitionTime {
        PartitionTime { max_at: self.meta.max_at, at_end: self.at_end, quiet_for: self.last_message.elapsed() }
    }
}

/// The event-time watermark: the smallest, over the partitions that are not
/// idle, of each one's largest `occurred_at`; when all are idle, the largest
/// over them. Idle means read to its end with nothing new for `idle`: a
/// partition with events waiting is not idle however long this process
/// took to read them (a long checkpoint, say), since skipping it would move
/// the watermark past its unread events.
fn event_watermark(parts: impl Iterator<Item = PartitionTime>, idle: Duration) -> Option<Instant> {
    let mut active: Option<Instant> = None;
    let mut any_active = false;
    let mut all: Option<Instant> = None;
    for t in parts {
        all = match (all, t.max_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if !t.idle(idle) {
            any_active = true;
            match t.max_at {
                None => return None, // an active partition with no event time yet holds it back
                Some(m) => active = Some(active.map_or(m, |a: Instant| a.min(m))),
            }
        }
    }
    if any_active {
        active
    } else {
        all
    }
}

/// A header's value as text.
fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    m.headers()?.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQL's pending rows while checkpoints are not durable yet: the view
    /// changed since the last flush wins, then the latest flush's.
    #[test]
    fn pending_rows_take_the_latest_view_of_each_case() {
        let older: VecDeque<(i64, Vec<(&str, u32)>)> =
            VecDeque::from(vec![(10, vec![("a", 1), ("b", 1)]), (20, vec![("b", 2), ("c", 2)])]);
        let got = latest_first(vec![("c", 3)], &older, |v| v.0);
        assert_eq!(got, vec![("c", 3), ("b", 2), ("a", 1)]);
        assert_eq!(latest_first(Vec::new(), &VecDeque::new(), |v: &(&str, u32)| v.0), vec![]);
    }

    fn part(max_at: i64, at_end: bool, quiet_secs: u64) -> PartitionTime {
        PartitionTime { max_at: Some(max_at), at_end, quiet_for: Duration::from_secs(quiet_secs) }
    }

    /// Regression: a partition from which nothing had been read for the
    /// idle timeout counted as idle even with events waiting in the broker,
    /// so a stall of the service itself (a checkpoint of a large state)
    /// made every partition idle and moved the watermark to the largest
    /// partition time, past the slower partitions' unread events: cards
    /// fired that those events would have prevented (the same 1 M events
    /// gave 264 k alert records in one run, 788 k in another).
    #[test]
    fn regression_a_stalled_service_does_not_make_partitions_with_unread_events_idle() {
        let idle = Duration::from_secs(30);
        // Both quiet for longer than the timeout, neither read to its end.
        let parts = [part(100, false, 60), part(500, false, 60)];
        assert_eq!(event_watermark(parts.into_iter(), idle), Some(100));
        // One read to its end and quiet: skipped.
        let parts = [part(100, true, 60), part(500, false, 60)];
        assert_eq!(event_watermark(parts.into_iter(), idle), Some(500));
        // Read to its end but not quiet for long enough: still counts.
        let parts = [part(100, true, 5), part(500, false, 0)];
        assert_eq!(event_watermark(parts.into_iter(), idle), Some(100));
        // All idle: the largest.
        let parts = [part(100, true, 60), part(500, true, 60)];
        assert_eq!(event_watermark(parts.into_iter(), idle), Some(500));
        // An active partition with no event time yet holds it back.
        let parts = [PartitionTime { max_at: None, at_end: false, quiet_for: Duration::ZERO }, part(500, false, 0)];
        assert_eq!(event_watermark(parts.into_iter(), idle), None);
    }
}

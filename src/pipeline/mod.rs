//! The one path every event takes, whatever the shell:
//!
//! ```text
//! source ──record──▶ Pipeline::step ──▶ decode ──▶ Core::apply ──▶ watermark
//!                         │ bad bytes                (engine + history)
//!                         ▼                                │ effects
//!                    Sink::dead_letter ◀── Pipeline::drain ┘──▶ Sink::alert
//! ```
//!
//! A [`Source`] gives records (file lines, simulated events, Kafka
//! messages) and clock readings; [`Pipeline::step`] decodes a record,
//! dead-letters it at once when it is bad, otherwise stores it in history
//! and applies it ([`Core`]), then moves the watermark as the shell's
//! [`Watermark`] policy says; [`Pipeline::drain`] encodes each alert record
//! once and hands it, and every dead letter the engine found later, to the
//! [`Sink`] (JSON Lines files, the live feed, Kafka topics). Counting for
//! the metrics happens here too, so every shell counts the same way.
//!
//! `replay` and the demo pull from their source through [`Pipeline::run`];
//! the Kafka service polls its consumer itself (rebalances, seeks and facts
//! between partitions are its business) and hands each message to
//! [`Pipeline::step`] of the partition's pipeline, then drains it into the
//! topics.

pub mod files;
pub mod inbox;
pub mod jsonl;
pub mod live;
mod stage;

pub use stage::Core;

use crate::alert::{AlertRecord, EncodeError};
use crate::deadletter::Rejection;
use crate::engine::{Effect, Outcome};
use crate::event::{Decoder, Event};
use crate::history::HistoryError;
use crate::metrics::Metrics;
use crate::reference::RefData;
use crate::time::Instant;
use std::sync::Arc;
use std::time::Duration;

/// An event's input position, as the engine and dead letters carry it: the
/// source (file index in replay, partition in `run`) in the top 16 bits,
/// the 1-based line or the offset below.
pub fn origin(source: usize, position: u64) -> u64 {
    ((source as u64) << 48) | (position & ((1 << 48) - 1))
}

/// The (file or partition, line or offset) of an input position.
pub fn split_origin(o: u64) -> (usize, u64) {
    ((o >> 48) as usize, o & ((1 << 48) - 1))
}

/// One record a source read.
pub struct Record<'a> {
    /// Its input position (see [`origin`]).
    pub origin: u64,
    /// Its (partition, offset) when it came from Kafka.
    pub kafka: Option<(i32, i64)>,
    /// Its Kafka key, if any (kept with its dead letter).
    pub key: Option<&'a [u8]>,
    /// What it holds.
    pub payload: Payload<'a>,
}

/// A record's content, as its source has it. (Not boxed: a box per event
/// would cost an allocation for every good one to spare the rest its size.)
#[allow(clippy::large_enum_variant)]
pub enum Payload<'a> {
    /// Bytes to decode.
    Raw(&'a [u8]),
    /// Already decoded (replay decodes on a reader thread).
    Decoded(Event),
    /// Already found bad by the decoder, with its bytes.
    Rejected(Rejection, &'a [u8]),
}

/// What became of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// Bad at decode: dead-lettered at once.
    Rejected,
    /// Applied; its `occurred_at`.
    Applied(Instant),
    /// A repeated event id: ignored.
    Duplicate,
    /// Not valid at its place yet: held by the engine.
    Held,
}

/// How the watermark moves.
#[derive(Clone, Copy, Debug)]
pub enum Watermark {
    /// After each event applied, to its `occurred_at` less `lateness` ms
    /// (replay; the demo with none).
    FollowEvents {
        /// Allowed lateness, ms.
        lateness: i64,
    },
    /// Only when the shell says (the Kafka service: over every partition,
    /// or by the wall clock).
    Shell,
}

/// A dead letter handed to a sink.
pub struct DeadLetter<'a> {
    /// The event's input position.
    pub origin: u64,
    /// Why.
    pub rejection: &'a Rejection,
    /// Its original key and bytes when at hand (bad at decode); `None` when
    /// the engine found it invalid later (the sink finds them by origin).
    pub raw: Option<Raw<'a>>,
}

/// A record's original key and bytes.
#[derive(Clone, Copy)]
pub struct Raw<'a> {
    /// Kafka key, if any.
    pub key: Option<&'a [u8]>,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// Where effects go: files, the live feed, topics.
pub trait Sink {
    /// What goes wrong publishing.
    type Error;
    /// An alert record, with its JSON (encoded once, by
    /// [`AlertRecord::to_json`]).
    fn alert(&mut self, record: &AlertRecord, json: String) -> Result<(), Self::Error>;
    /// An event that is not in effect.
    fn dead_letter(&mut self, dead: DeadLetter<'_>) -> Result<(), Self::Error>;
    /// History was flushed: every case row and event so far is stored.
    fn flushed(&mut self, _core: &Core) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Called after every pull in [`Pipeline::run`] (gauges, pending views).
    fn polled(&mut self, _core: &Core) {}
}

/// What a source gives the driver.
#[allow(clippy::large_enum_variant)]
pub enum Pulled<'a> {
    /// A record.
    Record(Record<'a>),
    /// No record now; the shell's clock reads this instant: the watermark
    /// may move to it.
    Clock(Instant),
    /// Reference data changed (a calendar file added or corrected): judge
    /// every case again on it, decode with it from now on.
    Refdata(Arc<RefData>),
    /// Nothing now; ask again.
    Idle,
    /// The source is done (input ended, or a stop was asked for).
    End,
}

/// A source of records for [`Pipeline::run`].
pub trait Source {
    /// What goes wrong reading.
    type Error;
    /// The next thing that happened.
    fn pull(&mut self) -> Result<Pulled<'_>, Self::Error>;
}

/// When [`Pipeline::run`] flushes history.
#[derive(Clone, Copy, Debug)]
pub struct FlushPolicy {
    /// Once this many rows wait.
    pub rows: usize,
    /// And at least this often, if set.
    pub every: Option<Duration>,
}

/// The pipeline failed; bad events never fail it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError<E> {
    /// A source or sink (the shell's error).
    #[error(transparent)]
    Shell(E),
    /// Writing history.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// An alert record could not be encoded: nothing is published empty.
    #[error("{0}; stopping rather than publishing it empty")]
    Encode(#[from] EncodeError),
}

/// Decoder, core and watermark policy: one per input stream (the whole
/// input in replay and the demo, one partition in `run`).
pub struct Pipeline {
    decoder: Decoder,
    core: Core,
    watermark: Watermark,
    metrics: Option<Arc<Metrics>>,
}

impl Pipeline {
    /// A pipeline decoding with `decoder` into `core`, counting into
    /// `metrics` when given.
    pub fn new(decoder: Decoder, core: Core, watermark: Watermark, metrics: Option<Arc<Metrics>>) -> Pipeline {
        Pipeline { decoder, core, watermark, metrics }
    }

    /// The decoder (a source decoding on a thread of its own clones it).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Engine and history.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Engine and history, to change (facts, recovery).
    pub fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    /// One record: decoded (a bad one goes to `sink` at once, with its
    /// bytes), stored and applied, the watermark moved per policy. Its
    /// effects wait for [`Pipeline::drain`].
    pub fn step<S: Sink>(&mut self, rec: Record<'_>, sink: &mut S) -> Result<Taken, S::Error> {
        let metrics = self.metrics.as_deref();
        if let Some(m) = metrics {
            m.events_read.inc();
        }
        let decoded = match rec.payload {
            Payload::Raw(bytes) => self.decoder.decode(bytes).map_err(|r| (r, bytes)),
            Payload::Decoded(ev) => Ok(ev),
            Payload::Rejected(r, bytes) => Err((r, bytes)),
        };
        let ev = match decoded {
            Ok(ev) => ev,
            Err((rejection, bytes)) => {
                if let Some(m) = metrics {
                    m.events_dead_lettered.with_label_values(&[rejection.reason.as_str()]).inc();
                }
                let raw = Some(Raw { key: rec.key, bytes });
                sink.dead_letter(DeadLetter { origin: rec.origin, rejection: &rejection, raw })?;
                return Ok(Taken::Rejected);
            }
        };
        let at = ev.occurred_at;
        let started = metrics.map(|_| std::time::Instant::now());
        let counter = metrics.and_then(|m| m.counter_for(&ev, self.core.engine.refdata()));
        let outcome = self.core.apply(ev, rec.kafka, rec.origin);
        if outcome == Outcome::Applied {
            if let Watermark::FollowEvents { lateness } = self.watermark {
                self.core.advance(at.saturating_sub(lateness));
            }
        }
        if let (Some(m), Some(started)) = (metrics, started) {
            m.outcome(outcome, counter, started.elapsed());
        }
        Ok(match outcome {
            Outcome::Applied => Taken::Applied(at),
            Outcome::Duplicate => Taken::Duplicate,
            Outcome::Held => Taken::Held,
        })
    }

    /// Moves the watermark (never back), firing every timer due.
    pub fn advance(&mut self, to: Instant) {
        self.core.advance(to);
    }

    /// Judges every case again on new reference data, and decodes with it
    /// from now on.
    pub fn set_refdata(&mut self, refdata: Arc<RefData>) {
        if let Some(m) = &self.metrics {
            m.set_calendar(&refdata.calendar);
        }
        self.decoder.set_refdata(refdata.clone());
        self.core.set_refdata(refdata);
    }

    /// Hands every pending effect to `sink`, in order: each alert record
    /// encoded once.
    pub fn drain<S: Sink>(&mut self, sink: &mut S) -> Result<(), PipelineError<S::Error>> {
        let metrics = self.metrics.as_deref();
        for eff in self.core.effects() {
            match eff {
                Effect::Alert(rec) => {
                    let json = rec.to_json()?;
                    sink.alert(&rec, json).map_err(PipelineError::Shell)?;
                }
                Effect::DeadLetter { origin, rejection } => {
                    if let Some(m) = metrics {
                        m.events_dead_lettered.with_label_values(&[rejection.reason.as_str()]).inc();
                    }
                    let dead = DeadLetter { origin, rejection: &rejection, raw: None };
                    sink.dead_letter(dead).map_err(PipelineError::Shell)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the changed cases' rows and every buffered history row, then
    /// tells the sink.
    pub fn flush<S: Sink>(&mut self, sink: &mut S) -> Result<(), PipelineError<S::Error>> {
        self.core.flush()?;
        sink.flushed(&self.core).map_err(PipelineError::Shell)
    }

    /// Pulls from `source` until it ends: each record stepped, clock
    /// readings and reference data taken, effects drained into `sink` after
    /// each pull, history flushed per `flush`. The caller ends the run
    /// (a final watermark, a last flush).
    pub fn run<E, Src, Snk>(
        &mut self,
        source: &mut Src,
        sink: &mut Snk,
        flush: FlushPolicy,
    ) -> Result<(), PipelineError<E>>
    where
        Src: Source<Error = E>,
        Snk: Sink<Error = E>,
    {
        let mut last_flush = std::time::Instant::now();
        loop {
            match source.pull().map_err(PipelineError::Shell)? {
                Pulled::Record(rec) => {
                    self.step(rec, sink).map_err(PipelineError::Shell)?;
                }
                Pulled::Clock(at) => self.advance(at),
                Pulled::Refdata(rd) => self.set_refdata(rd),
                Pulled::Idle => {}
                Pulled::End => return Ok(()),
            }
            self.drain(sink)?;
            let due = flush.every.is_some_and(|d| last_flush.elapsed() >= d);
            if due || self.core.history.pending() >= flush.rows {
                self.flush(sink)?;
                last_flush = std::time::Instant::now();
            }
            sink.polled(&self.core);
        }
    }
}

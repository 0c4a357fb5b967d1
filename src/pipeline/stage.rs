//! Engine and history kept in step: an event handed in is stored in history
//! (unless it is a duplicate) and applied; the effects that come out are
//! recorded in history (alert records, events found not in effect) before
//! the driver hands them to the sinks.

use crate::engine::{CaseView, Effect, Engine, Outcome};
use crate::event::Event;
use crate::history::{Flushing, History, HistoryError};
use crate::time::Instant;

/// Engine and history, kept in step.
pub struct Core {
    /// The rules engine.
    pub engine: Engine,
    /// The history writer.
    pub history: History,
    effects: Vec<Effect>,
    /// How many of `effects` are already in history.
    recorded: usize,
    /// Rows of cases that left memory go to history at once (see
    /// [`Core::stream_evicted`]).
    stream_evicted: bool,
}

impl Core {
    /// A core over an engine (fresh or restored) and a history writer.
    pub fn new(engine: Engine, history: History) -> Core {
        Core { engine, history, effects: Vec::new(), recorded: 0, stream_evicted: false }
    }

    /// Writes the rows of cases leaving memory to history as they leave,
    /// not at the next flush: for a shell whose SQL does not read pending
    /// rows (replay, which flushes every 400,000 history rows and would
    /// otherwise hold the final view of every case closed meanwhile).
    pub fn stream_evicted(&mut self) {
        self.stream_evicted = true;
    }

    /// Stores (unless a duplicate) and applies one decoded event found at
    /// input position `origin`; `kafka` is its (partition, offset) when it
    /// came from Kafka. The effects wait in [`Core::effects`].
    pub fn apply(&mut self, ev: Event, kafka: Option<(i32, i64)>, origin: u64) -> Outcome {
        if !self.engine.is_duplicate(&ev.event_id) {
            self.history.event_from(&ev, kafka, origin);
        }
        let out = self.engine.apply(ev, origin, &mut self.effects);
        self.record();
        out
    }

    /// Advances the watermark (never back), firing every timer due.
    pub fn advance(&mut self, to: Instant) {
        self.engine.advance_watermark(to, &mut self.effects);
        self.record();
    }

    /// Learns a fact about a case of another partition (see
    /// [`Engine::remote_fact`]).
    pub fn remote_fact(&mut self, fact: &crate::engine::SharedFact) {
        self.engine.remote_fact(fact, &mut self.effects);
        self.record();
    }

    /// Judges every case again on new reference data (see
    /// [`Engine::set_refdata`]).
    pub fn set_refdata(&mut self, refdata: std::sync::Arc<crate::reference::RefData>) {
        self.engine.set_refdata(refdata, &mut self.effects);
        self.record();
    }

    /// See [`Engine::settle_recovered`]; returns how many still wait.
    pub fn settle_recovered(&mut self) -> usize {
        let n = self.engine.settle_recovered(&mut self.effects);
        self.record();
        n
    }

    /// Records the pending effects in history.
    fn record(&mut self) {
        for e in &self.effects[self.recorded..] {
            match e {
                Effect::Alert(r) => self.history.alert(r),
                Effect::DeadLetter { origin, .. } => self.history.rejected(*origin),
            }
        }
        self.recorded = self.effects.len();
        if self.stream_evicted {
            let h = &mut self.history;
            self.engine.take_evicted(|v| h.case(v));
        }
    }

    /// The effects produced since the last call, already in history, for
    /// the shell to publish.
    pub fn effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.recorded = 0;
        self.effects.drain(..)
    }

    /// Writes the changed cases' rows and every buffered history row.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.flush_in_background(None).wait()
    }

    /// [`Core::flush`], the parts completing in the background (see
    /// [`History::flush_in_background`]); the views of the cases written
    /// are added to `views` if given.
    pub fn flush_in_background(&mut self, mut views: Option<&mut Vec<CaseView>>) -> Flushing {
        let h = &mut self.history;
        self.engine.take_changed_with(|v| take_row(h, v, &mut views));
        self.history.flush_in_background()
    }

    /// [`Core::flush_in_background`] without the rows of the cases judged
    /// since the last flush: those are left for [`Core::take_deferred`]
    /// to write a few at a time until the next flush (see
    /// [`Engine::defer_changed`]). The rows of cases that left memory are
    /// written; the views written are added to `views` if given.
    pub fn flush_deferring_cases(&mut self, mut views: Option<&mut Vec<CaseView>>) -> Flushing {
        let h = &mut self.history;
        self.engine.take_evicted(|v| take_row(h, v, &mut views));
        self.engine.defer_changed();
        self.history.flush_in_background()
    }

    /// Writes the rows of up to `max` of the cases left by
    /// [`Core::flush_deferring_cases`] (and of the cases that left memory
    /// since); the views written are added to `views` if given. Returns how
    /// many deferred cases it wrote.
    pub fn take_deferred(&mut self, max: usize, mut views: Option<&mut Vec<CaseView>>) -> usize {
        let h = &mut self.history;
        self.engine.take_deferred_with(max, |v| take_row(h, v, &mut views))
    }
}

/// Writes a case's row, keeping its view in `views` if given.
fn take_row(h: &mut History, v: &CaseView, views: &mut Option<&mut Vec<CaseView>>) {
    h.case(v);
    if let Some(views) = views.as_mut() {
        views.push(v.clone());
    }
}

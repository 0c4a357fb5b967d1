//! Events posted by users — a supervision bureau's notices (督办) issued and
//! answered from the board — enter the pipeline by the same road as every
//! departmental event, so they are judged, stored, replayed and counted like
//! the rest: in `run` they are published to the events topic (and consumed
//! back like any event), in the demo they join the simulated stream.
//!
//! An [`Inbox`] is what the HTTP endpoint holds: the pipeline's present (the
//! wall clock in `run`, the compressed clock in the demo), which the posted
//! event is dated with, and the road in.

use crate::time::Instant;
use std::sync::mpsc;
use std::sync::Mutex;

/// An event could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The pipeline has stopped taking events.
    #[error("the pipeline has stopped taking events")]
    Closed,
    /// The events topic did not take it.
    #[error("publishing to the events topic: {0}")]
    Publish(String),
}

/// Where posted events go.
pub trait Inbox: Send + Sync {
    /// The pipeline's present, to date a posted event with.
    fn now(&self) -> Instant;

    /// Posts one event (a JSON object of the event contract), keyed by its
    /// `case_id`; returns once the pipeline's source has it (in `run`: the
    /// brokers acknowledged it).
    fn post(&self, case_id: &str, line: Vec<u8>) -> Result<(), InboxError>;
}

/// The demo's compressed clock: `days_per_minute` simulated days pass per
/// wall-clock minute from `sim_start`.
#[derive(Clone, Copy, Debug)]
pub struct Compressed {
    /// The wall-clock instant the simulation started.
    pub wall_start: std::time::Instant,
    /// The simulated instant it started at.
    pub sim_start: Instant,
    /// Simulated milliseconds per wall-clock millisecond.
    pub ms_per_wall_ms: f64,
}

impl Compressed {
    /// The clock's reading.
    pub fn now(&self) -> Instant {
        let wall = self.wall_start.elapsed().as_millis() as f64;
        self.sim_start + (wall * self.ms_per_wall_ms) as i64
    }
}

/// The demo's inbox: posted lines wait on a channel the demo's source
/// drains before its next simulated event.
pub struct ChannelInbox {
    tx: Mutex<mpsc::Sender<Vec<u8>>>,
    clock: Compressed,
}

impl ChannelInbox {
    /// An inbox on the compressed clock, and the receiving end for the source.
    pub fn new(clock: Compressed) -> (ChannelInbox, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel();
        (ChannelInbox { tx: Mutex::new(tx), clock }, rx)
    }
}

impl Inbox for ChannelInbox {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn post(&self, _case_id: &str, line: Vec<u8>) -> Result<(), InboxError> {
        let tx = self.tx.lock().map_err(|_| InboxError::Closed)?;
        tx.send(line).map_err(|_| InboxError::Closed)
    }
}

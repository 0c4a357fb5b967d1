//! The live feed as a sink: each alert record goes on the feed (the board,
//! the SSE stream and Alertmanager follow it) and into the metrics; cards
//! fired are tallied; after each flush the gauges of the state are set.

use super::{Core, DeadLetter, Sink};
use crate::alert::{AlertRecord, AlertState, Level};
use crate::serve::Live;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Publishes on the feed of one writer (`name`: its pending cases' key).
pub struct LiveSink {
    /// What the HTTP and SQL endpoints see.
    pub live: Arc<Live>,
    name: String,
    /// Red cards fired.
    pub red: u64,
    /// Yellow cards fired.
    pub yellow: u64,
    /// Dead letters.
    pub dead: u64,
    last_flush: Instant,
    last_pending: Instant,
}

impl LiveSink {
    /// A sink onto `live` for the writer `name`.
    pub fn new(live: Arc<Live>, name: &str) -> LiveSink {
        let now = Instant::now();
        LiveSink { live, name: name.to_string(), red: 0, yellow: 0, dead: 0, last_flush: now, last_pending: now }
    }
}

impl Sink for LiveSink {
    type Error = Infallible;

    fn alert(&mut self, r: &AlertRecord, json: String) -> Result<(), Infallible> {
        if r.state == AlertState::Firing {
            match r.level {
                Level::Red => self.red += 1,
                Level::Yellow => self.yellow += 1,
            }
        }
        self.live.alert_encoded(r, json);
        Ok(())
    }

    fn dead_letter(&mut self, _: DeadLetter<'_>) -> Result<(), Infallible> {
        self.dead += 1;
        Ok(())
    }

    fn flushed(&mut self, core: &Core) -> Result<(), Infallible> {
        let m = &self.live.metrics;
        self.live.pending.clear(&self.name);
        m.open_cases.set(core.engine.open_cases() as i64);
        m.pending_timers.set(core.engine.pending_timers() as i64);
        m.checkpoint_age.set(0.0);
        self.last_flush = Instant::now();
        Ok(())
    }

    fn polled(&mut self, core: &Core) {
        let m = &self.live.metrics;
        if let Some(w) = core.engine.watermark() {
            self.live.set_clock(w);
        }
        m.checkpoint_age.set(self.last_flush.elapsed().as_secs_f64());
        if self.last_pending.elapsed() >= Duration::from_millis(250) {
            // SQL sees the cases changed since the flush at once.
            self.live.pending.set(&self.name, core.engine.pending_views());
            self.last_pending = Instant::now();
        }
    }
}

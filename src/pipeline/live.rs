//! What the pipeline shares with the servers ([`Live`]: the alert feed,
//! the metrics, the clock, the cases not yet flushed), and the live feed as
//! a sink ([`LiveSink`]): each alert record goes on the feed (the board,
//! the SSE stream and Alertmanager follow it) and into the metrics; cards
//! fired are tallied; after each flush the gauges of the state are set.

use super::{Core, DeadLetter, Sink};
use crate::alert::{AlertRecord, AlertState, Level};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::reference::RefData;
use crate::serve::feed;
use crate::serve::users::Users;
use crate::time::Zone;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// State shared between the pipeline and the servers.
pub struct Live {
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The alert records published.
    pub feed: feed::Feed,
    /// Reference data.
    pub refdata: Arc<RefData>,
    /// The configured zone.
    pub zone: Zone,
    /// Who may read SQL (empty: the SQL endpoint is not served).
    pub users: Arc<Users>,
    /// HTTP asks for no credentials (no users configured).
    pub http_open: bool,
    /// Ready to serve: reference data loaded and partitions (or the demo)
    /// started.
    pub ready: AtomicBool,
    /// The pipeline's clock (event-time watermark), ms since the epoch; 0
    /// before the first event.
    pub clock: AtomicI64,
    /// History folder.
    pub data: PathBuf,
    /// Cases changed since their writer last flushed, which SQL sees
    /// with the stored ones.
    pub pending: Arc<crate::history::pending::PendingCases>,
    /// Where events posted over HTTP (supervision notices) go; unset where
    /// nothing can be posted.
    pub inbox: std::sync::OnceLock<Arc<dyn super::inbox::Inbox>>,
    /// Notices posted here, by `notice_id`: (case_id, region), so an answer
    /// finds its case before history has the notice.
    pub posted_notices: std::sync::Mutex<std::collections::HashMap<String, (String, Option<String>)>>,
}

impl Live {
    /// Shared state for a pipeline writing history under `data`.
    pub fn new(cfg: &Config, refdata: Arc<RefData>, users: Users, data: &Path) -> Live {
        let metrics = Arc::new(Metrics::new(&refdata));
        metrics.on_time_target.set(cfg.metrics.on_time_target);
        let zone = cfg.time.zone.clone();
        Live {
            metrics,
            feed: feed::Feed::new(50_000),
            refdata: refdata.clone(),
            zone: zone.clone(),
            http_open: users.is_empty(),
            users: Arc::new(users),
            ready: AtomicBool::new(false),
            clock: AtomicI64::new(0),
            data: data.to_path_buf(),
            pending: Arc::new(crate::history::pending::PendingCases::new(
                zone.clone(),
                cfg.time.zone.name(),
                refdata.clone(),
            )),
            inbox: std::sync::OnceLock::new(),
            posted_notices: Default::default(),
        }
    }

    /// Publishes one alert record to the feed and the metrics; returns its
    /// feed entry (with the record's JSON). A record that cannot be
    /// encoded is not published anywhere.
    pub fn alert(&self, r: &AlertRecord) -> Result<Arc<feed::Entry>, crate::alert::EncodeError> {
        Ok(self.alert_encoded(r, r.to_json()?))
    }

    /// Publishes a record already encoded as `json` on the feed and counts
    /// it.
    pub fn alert_encoded(&self, r: &AlertRecord, json: String) -> Arc<feed::Entry> {
        let (prev, entry) = self.feed.push_encoded(r, json);
        self.metrics.alert(r, prev);
        entry
    }

    /// Moves the clock (never back).
    pub fn set_clock(&self, at: crate::time::Instant) {
        self.clock.fetch_max(at, Ordering::Relaxed);
    }
}

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

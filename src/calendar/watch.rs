//! The calendar folder, watched while `run` and the demo serve: a
//! `YYYY.json` added (the State Council's notice is out) or corrected, or a
//! new year begun (the provisional years move on), gives a new calendar for
//! the shells to judge every case in memory again with.
//!
//! Polling, not inotify: the folder holds a handful of small files, a look
//! costs a directory listing, and it works the same on network volumes and
//! Kubernetes ConfigMaps (whose files change by a symlink swap).

use super::{provisional, Calendar, CalendarError};
use crate::time::Zone;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// How often the folder is looked at.
pub const EVERY: Duration = Duration::from_secs(2);

/// What a look at the folder sees: each `.json` file's name, size and
/// modification time, and the provisional years of the day.
type Seen = (Vec<(String, u64, Option<SystemTime>)>, Option<[i32; 2]>);

/// A watched calendar folder.
pub struct Watch {
    dir: PathBuf,
    /// The zone whose today decides the provisional years (`None`: no
    /// provisional calendars).
    provisional: Option<Zone>,
    seen: Seen,
    last: Instant,
}

impl Watch {
    /// Watches `dir`, as it is now (the calendar already loaded from it).
    pub fn new(dir: PathBuf, provisional: Option<Zone>) -> Watch {
        let mut w = Watch { dir, provisional, seen: (Vec::new(), None), last: Instant::now() };
        w.seen = w.look();
        w
    }

    fn look(&self) -> Seen {
        let mut files = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !name.ends_with(".json") {
                    continue;
                }
                // Through symlinks (ConfigMap volumes swap a link).
                let meta = std::fs::metadata(e.path()).ok();
                files.push((name, meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok())));
            }
        }
        files.sort();
        let years = self.provisional.as_ref().and_then(|z| provisional::today(z).ok()).map(provisional::years_for);
        (files, years)
    }

    /// The folder's calendar, when it changed since the last look (looked at
    /// no more often than [`EVERY`]); an error when the changed folder does
    /// not load (the shell keeps the calendar it has, and says so).
    pub fn poll(&mut self) -> Option<Result<Calendar, CalendarError>> {
        if self.last.elapsed() < EVERY {
            return None;
        }
        self.last = Instant::now();
        let seen = self.look();
        if seen == self.seen {
            return None;
        }
        self.seen = seen;
        Some(self.load())
    }

    /// Loads the folder as it is, with the provisional years of today.
    pub fn load(&self) -> Result<Calendar, CalendarError> {
        let cal = Calendar::load_dir(&self.dir)?;
        Ok(match &self.seen.1 {
            Some(years) => cal.with_provisional(*years),
            None => cal,
        })
    }
}

//! The working-day calendar (工作日历).
//!
//! Monday–Friday are working days, Saturday and Sunday are not, except the
//! dates the State Council's yearly notice lists: days off (法定节假日,
//! `isOffDay: true`) and make-up working days (调休上班, `isOffDay: false`).
//! One holiday-cn style JSON file per year (`YYYY.json`) in a folder; files are
//! merged, and a year "has a calendar" only when its own file exists. Asking
//! about a day in any other year is an error ([`NoCalendar`]), never a guess.
//!
//! A year without its file can be given a *provisional* calendar
//! ([`Calendar::with_provisional`], [`provisional`]): its statutory public
//! holidays only, so that cases running into it get due dates and cards
//! (marked provisional) until the notice is out.
//!
//! Lookups are O(1) or O(log n) on a prefix count of working days, so a due
//! date N working days out costs one binary search however large N is.

pub mod provisional;
pub mod watch;

use crate::time::Day;
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A day was needed in a year for which no calendar file is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no working-day calendar for {0} (add {0}.json to the calendar folder)")]
pub struct NoCalendar(pub i32);

/// What can be wrong with a calendar folder.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The folder or a file could not be read.
    #[error("cannot read calendar {path}: {cause}")]
    Io {
        /// The path read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        cause: std::io::Error,
    },
    /// A file is not the JSON of the holiday-cn layout.
    #[error("calendar file {path}: {source}")]
    Json {
        /// The offending file.
        path: PathBuf,
        /// The JSON reader's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A file is not in the holiday-cn layout.
    #[error("calendar file {path}: {message}")]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The folder holds no `YYYY.json` file.
    #[error("calendar folder {0} holds no YYYY.json file")]
    Empty(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    /// holiday-cn files carry these two; accepted and ignored.
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(rename = "$id", default)]
    _id: Option<String>,
    year: i32,
    #[serde(default)]
    papers: Vec<String>,
    days: Vec<DayEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayEntry {
    #[serde(default)]
    name: String,
    date: String,
    #[serde(rename = "isOffDay")]
    is_off_day: bool,
}

/// A listed exception to the Monday–Friday rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The holiday the date belongs to (春节 …).
    pub name: String,
    /// True for a day off, false for a make-up working day.
    pub off: bool,
}

/// The merged working-day calendar.
#[derive(Clone, Debug)]
pub struct Calendar {
    /// Years with a calendar: their own file, or a provisional one.
    years: BTreeSet<i32>,
    /// The years among them whose calendar is provisional.
    provisional: BTreeSet<i32>,
    exceptions: BTreeMap<Day, Exception>,
    /// First day of the table (1 January of the first year).
    base: Day,
    /// `cum[i]` = working days in `[base, base + i)`; one longer than the table.
    cum: Vec<u32>,
    /// `gaps[i]` = days without a calendar file in `[base, base + i)`.
    gaps: Vec<u32>,
}

fn ymd(y: i32, m: u32, d: u32) -> Day {
    Day::from_date(NaiveDate::from_ymd_opt(y, m, d).expect("valid date"))
}

impl Calendar {
    /// Loads every `YYYY.json` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Calendar, CalendarError> {
        let rd = std::fs::read_dir(dir).map_err(|cause| CalendarError::Io { path: dir.to_path_buf(), cause })?;
        let mut files = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|cause| CalendarError::Io { path: dir.to_path_buf(), cause })?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let year: i32 = match stem.parse() {
                Ok(y) if stem.len() == 4 => y,
                _ => {
                    return Err(CalendarError::Format {
                        path,
                        message: "calendar files must be named YYYY.json".into(),
                    })
                }
            };
            let text =
                std::fs::read_to_string(&path).map_err(|cause| CalendarError::Io { path: path.clone(), cause })?;
            files.push((year, path, text));
        }
        if files.is_empty() {
            return Err(CalendarError::Empty(dir.to_path_buf()));
        }
        files.sort();
        let parsed: Vec<_> = files.iter().map(|(y, p, t)| (*y, p.as_path(), t.as_str())).collect();
        Calendar::from_json_files(&parsed)
    }

    /// Builds a calendar from `(year, path for messages, JSON text)` triples.
    pub fn from_json_files(files: &[(i32, &Path, &str)]) -> Result<Calendar, CalendarError> {
        let mut years = BTreeSet::new();
        let mut exceptions: BTreeMap<Day, Exception> = BTreeMap::new();
        for (year, path, text) in files {
            let fmt_err = |message: String| CalendarError::Format { path: path.to_path_buf(), message };
            let f: YearFile = serde_json::from_str(text)
                .map_err(|source| CalendarError::Json { path: path.to_path_buf(), source })?;
            if f.year != *year {
                return Err(fmt_err(format!("file is named for {year} but says \"year\": {}", f.year)));
            }
            if !(1990..=2199).contains(year) {
                return Err(fmt_err(format!("year {year} is out of the supported range 1990–2199")));
            }
            let _ = f.papers;
            for d in f.days {
                let date = NaiveDate::parse_from_str(&d.date, "%Y-%m-%d")
                    .map_err(|_| fmt_err(format!("{:?} is not a YYYY-MM-DD date", d.date)))?;
                let day = Day::from_date(date);
                if (day.year() - year).abs() > 1 {
                    return Err(fmt_err(format!("{} is too far from {year}", d.date)));
                }
                let ex = Exception { name: d.name, off: d.is_off_day };
                if let Some(prev) = exceptions.get(&day) {
                    if prev.off != ex.off {
                        return Err(fmt_err(format!("{} is listed both as a day off and as a working day", d.date)));
                    }
                }
                exceptions.insert(day, ex);
            }
            years.insert(*year);
        }
        if years.is_empty() {
            return Err(CalendarError::Empty(PathBuf::new()));
        }
        Ok(Calendar::build(years, BTreeSet::new(), exceptions))
    }

    /// The same calendar, with a provisional one for each of `years` that
    /// has no file (and that the shipped lunar table reaches).
    pub fn with_provisional(self, years: impl IntoIterator<Item = i32>) -> Calendar {
        let Calendar { years: mut have, mut provisional, mut exceptions, .. } = self;
        for y in years {
            if have.contains(&y) {
                continue;
            }
            let Some(days) = provisional::statutory_days_off(y) else { continue };
            for (name, date) in days {
                exceptions.insert(Day::from_date(date), Exception { name: name.to_string(), off: true });
            }
            have.insert(y);
            provisional.insert(y);
        }
        Calendar::build(have, provisional, exceptions)
    }

    /// The prefix tables over `years` (not empty).
    fn build(years: BTreeSet<i32>, provisional: BTreeSet<i32>, exceptions: BTreeMap<Day, Exception>) -> Calendar {
        let first = *years.iter().next().expect("at least one year");
        let last = *years.iter().next_back().unwrap_or(&first);
        let base = ymd(first, 1, 1);
        let end = ymd(last + 1, 1, 1);
        let len = (end.0 - base.0) as usize;
        let mut cum = Vec::with_capacity(len + 1);
        cum.push(0u32);
        let mut acc = 0u32;
        for i in 0..len {
            let day = Day(base.0 + i as i32);
            let working = match exceptions.get(&day) {
                Some(e) => !e.off,
                None => day.weekday() < 5,
            };
            acc += working as u32;
            cum.push(acc);
        }
        let mut gaps = Vec::with_capacity(len + 1);
        gaps.push(0u32);
        let mut g = 0u32;
        for i in 0..len {
            g += !years.contains(&Day(base.0 + i as i32).year()) as u32;
            gaps.push(g);
        }
        Calendar { years, provisional, exceptions, base, cum, gaps }
    }

    /// The years that have their own calendar file.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied().filter(|y| !self.provisional.contains(y))
    }

    /// Whether `year` has a calendar file.
    pub fn has_year(&self, year: i32) -> bool {
        self.years.contains(&year) && !self.provisional.contains(&year)
    }

    /// The years whose calendar is provisional (no file yet).
    pub fn provisional_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.provisional.iter().copied()
    }

    /// Whether `day` lies in a year whose calendar is provisional.
    pub fn is_provisional(&self, day: Day) -> bool {
        self.provisional.contains(&day.year())
    }

    /// A digest of every working day known (equal calendars, equal digests):
    /// an engine restored from a checkpoint judged on another calendar
    /// judges its cases again.
    pub fn digest(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.base.0.to_le_bytes());
        for c in &self.cum {
            h.update(&c.to_le_bytes());
        }
        for g in &self.gaps {
            h.update(&g.to_le_bytes());
        }
        for y in &self.provisional {
            h.update(&y.to_le_bytes());
        }
        h.digest()
    }

    /// The listed exception for a date, if any.
    pub fn exception(&self, day: Day) -> Option<&Exception> {
        self.exceptions.get(&day)
    }

    /// The table index of a day with a calendar, or the year it lacks.
    fn index(&self, day: Day) -> Result<usize, NoCalendar> {
        let i = day.0 as i64 - self.base.0 as i64;
        if i < 0 || i as usize + 1 >= self.cum.len() {
            return Err(NoCalendar(day.year()));
        }
        let i = i as usize;
        if self.gaps[i + 1] > self.gaps[i] {
            return Err(NoCalendar(day.year()));
        }
        Ok(i)
    }

    /// Whether `day` lies in a year with a calendar file.
    pub fn covers(&self, day: Day) -> bool {
        self.index(day).is_ok()
    }

    /// Whether `day` is a working day.
    pub fn is_working(&self, day: Day) -> Result<bool, NoCalendar> {
        let i = self.index(day)?;
        Ok(self.cum[i + 1] > self.cum[i])
    }

    /// Checks that every day from `from` to `to` (inclusive) has a calendar.
    fn covered(&self, from: Day, to: Day) -> Result<(), NoCalendar> {
        let a = self.index(from)?;
        let b = self.index(to)?;
        if self.gaps[b + 1] != self.gaps[a] {
            let first = (a..=b).find(|&k| self.gaps[k + 1] > self.gaps[k]).unwrap_or(a);
            return Err(NoCalendar(Day(self.base.0 + first as i32).year()));
        }
        Ok(())
    }

    /// Working days in `(after, upto]`; 0 when `upto <= after`.
    pub fn count_working(&self, after: Day, upto: Day) -> Result<u32, NoCalendar> {
        if upto <= after {
            return Ok(0);
        }
        self.covered(after.next(), upto)?;
        let a = (after.0 + 1 - self.base.0) as usize;
        let b = (upto.0 - self.base.0) as usize;
        Ok(self.cum[b + 1] - self.cum[a])
    }

    /// The `n`-th working day after `after` (`n >= 1`); `after` itself is not
    /// counted. For `n == 0`, `after` itself.
    pub fn nth_working_after(&self, after: Day, n: u32) -> Result<Day, NoCalendar> {
        if n == 0 {
            return Ok(after);
        }
        let start = after.next();
        let si = self.index(start)?;
        let target = self.cum[si] + n;
        // Smallest k with cum[k] >= target; the day is base + k - 1.
        if *self.cum.last().unwrap_or(&0) < target {
            let last_year = *self.years.iter().next_back().unwrap_or(&start.year());
            return Err(NoCalendar(last_year + 1));
        }
        let k = self.cum.partition_point(|&c| c < target);
        let day = Day(self.base.0 + k as i32 - 1);
        self.covered(start, day)?;
        Ok(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> Calendar {
        let y2026 = r#"{"year":2026,"papers":[],"days":[
            {"name":"春节","date":"2026-02-14","isOffDay":false},
            {"name":"春节","date":"2026-02-15","isOffDay":true},
            {"name":"春节","date":"2026-02-16","isOffDay":true},
            {"name":"春节","date":"2026-02-17","isOffDay":true},
            {"name":"春节","date":"2026-02-18","isOffDay":true},
            {"name":"春节","date":"2026-02-19","isOffDay":true},
            {"name":"春节","date":"2026-02-20","isOffDay":true},
            {"name":"春节","date":"2026-02-21","isOffDay":true},
            {"name":"春节","date":"2026-02-22","isOffDay":true},
            {"name":"春节","date":"2026-02-23","isOffDay":true},
            {"name":"春节","date":"2026-02-28","isOffDay":false}]}"#;
        Calendar::from_json_files(&[(2026, Path::new("2026.json"), y2026)]).unwrap()
    }

    fn d(s: &str) -> Day {
        Day::from_date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    #[test]
    fn spring_festival_make_up_saturdays() {
        let c = cal();
        assert!(c.is_working(d("2026-02-14")).unwrap()); // make-up Saturday
        assert!(!c.is_working(d("2026-02-16")).unwrap()); // Monday off
        assert!(c.is_working(d("2026-02-24")).unwrap());
        assert!(!c.is_working(d("2026-03-01")).unwrap()); // ordinary Sunday
        assert_eq!(c.nth_working_after(d("2026-02-13"), 1).unwrap(), d("2026-02-14"));
        assert_eq!(c.nth_working_after(d("2026-02-13"), 2).unwrap(), d("2026-02-24"));
        assert_eq!(c.nth_working_after(d("2026-02-13"), 3).unwrap(), d("2026-02-25"));
        assert_eq!(c.nth_working_after(d("2026-02-13"), 0).unwrap(), d("2026-02-13"));
        // 14 Feb (make-up), 24–27 Feb, 28 Feb (make-up), 2 Mar.
        assert_eq!(c.count_working(d("2026-02-13"), d("2026-03-02")).unwrap(), 7);
        assert_eq!(c.count_working(d("2026-03-02"), d("2026-03-02")).unwrap(), 0);
    }

    #[test]
    fn a_year_without_a_file_is_an_error_not_a_guess() {
        let c = cal();
        assert_eq!(c.is_working(d("2027-01-04")), Err(NoCalendar(2027)));
        assert_eq!(c.nth_working_after(d("2026-12-28"), 10), Err(NoCalendar(2027)));
        assert_eq!(c.count_working(d("2025-12-30"), d("2026-01-05")), Err(NoCalendar(2025)));
    }

    #[test]
    fn a_provisional_year_has_its_statutory_days_off_and_nothing_else() {
        let c = cal().with_provisional([2026, 2027]);
        assert!(!c.is_provisional(d("2026-12-31")) && c.is_provisional(d("2027-01-01")));
        assert!(!c.has_year(2027) && c.has_year(2026));
        assert_eq!(c.years().collect::<Vec<_>>(), [2026]);
        assert_eq!(c.provisional_years().collect::<Vec<_>>(), [2027]);
        assert!(!c.is_working(d("2027-01-01")).unwrap()); // 元旦, a Friday
        assert!(c.is_working(d("2027-02-04")).unwrap()); // the Thursday before 除夕
        for off in ["2027-02-05", "2027-02-08", "2027-04-05", "2027-06-09", "2027-09-15", "2027-10-01"] {
            assert!(!c.is_working(d(off)).unwrap(), "{off}");
        }
        assert!(c.is_working(d("2027-02-09")).unwrap()); // no bridging day
        assert!(!c.is_working(d("2027-02-20")).unwrap()); // no make-up Saturday
                                                          // 2026-12-21 + 15 working days: 22–25, 28–31 Dec, 4–8, 11–12 Jan.
        assert_eq!(c.nth_working_after(d("2026-12-21"), 15).unwrap(), d("2027-01-12"));
        assert_eq!(c.is_working(d("2028-01-03")), Err(NoCalendar(2028)));
        assert_ne!(c.digest(), cal().digest());
    }

    #[test]
    fn contradictory_or_misnamed_files_are_rejected() {
        let bad = r#"{"year":2026,"papers":[],"days":[{"name":"x","date":"2026-01-01","isOffDay":true},{"name":"x","date":"2026-01-01","isOffDay":false}]}"#;
        let e = Calendar::from_json_files(&[(2026, Path::new("2026.json"), bad)]).unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        let wrong_year = r#"{"year":2025,"papers":[],"days":[]}"#;
        let e = Calendar::from_json_files(&[(2026, Path::new("2026.json"), wrong_year)]).unwrap_err();
        assert!(e.to_string().contains("2025"), "{e}");
    }
}

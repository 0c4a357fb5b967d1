//! Instants, local dates and the configured time zone.
//!
//! The engine works on two integer types only: an [`Instant`] is milliseconds
//! since the Unix epoch (UTC), a [`Day`] is a local calendar date counted in
//! days since 1970-01-01. Everything calendar-related (working days, 00:00 of a
//! day) goes through [`Zone`], which knows the configured IANA zone
//! (default `Asia/Shanghai`).

use chrono::{DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Instant = i64;

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A local calendar date, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Day(pub i32);

const EPOCH_CE_DAYS: i32 = 719_163; // NaiveDate(1970-01-01).num_days_from_ce()

impl Day {
    /// The day of a calendar date.
    pub fn from_date(d: NaiveDate) -> Day {
        Day(d.num_days_from_ce() - EPOCH_CE_DAYS)
    }
    /// The calendar date of this day.
    pub fn date(self) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.0 + EPOCH_CE_DAYS).unwrap_or(NaiveDate::MIN)
    }
    /// The next calendar day.
    pub fn next(self) -> Day {
        Day(self.0 + 1)
    }
    /// The calendar year of this day.
    pub fn year(self) -> i32 {
        self.date().year()
    }
    /// 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
    pub fn weekday(self) -> u32 {
        (self.0 + 3).rem_euclid(7) as u32
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date().format("%Y-%m-%d"))
    }
}

/// The configured time zone, with a fast path for zones whose offset never
/// changes in the supported range (such as `Asia/Shanghai` since 1992).
#[derive(Clone, Debug)]
pub struct Zone {
    tz: Tz,
    fixed: Option<FixedOffset>,
}

/// Written as its IANA name; read by [`Zone::new`], so that configuration
/// holds a zone parsed once, and an unknown name is an error at load.
impl Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        let name = String::deserialize(d)?;
        Zone::new(&name).map_err(serde::de::Error::custom)
    }
}

/// The range in which a zone must keep one offset to take the fast path.
const FAST_FROM_YEAR: i32 = 1992;
const FAST_TO_YEAR: i32 = 2100;

/// A time zone name not in the tz database.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {name:?}")]
pub struct UnknownZone {
    /// The name given.
    pub name: String,
}

impl Zone {
    /// Looks up an IANA zone name such as `Asia/Shanghai`.
    pub fn new(name: &str) -> Result<Zone, UnknownZone> {
        let tz: Tz = name.parse().map_err(|_| UnknownZone { name: name.to_string() })?;
        let first = tz
            .offset_from_utc_datetime(
                &NaiveDate::from_ymd_opt(FAST_FROM_YEAR, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap(),
            )
            .fix();
        let mut fixed = Some(first);
        for y in FAST_FROM_YEAR..=FAST_TO_YEAR {
            for m in [1, 4, 7, 10] {
                let t = NaiveDate::from_ymd_opt(y, m, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
                if tz.offset_from_utc_datetime(&t).fix() != first {
                    fixed = None;
                }
            }
        }
        Ok(Zone { tz, fixed })
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &str {
        self.tz.name()
    }

    fn fast(&self, t: Instant) -> Option<i64> {
        let off = self.fixed?;
        // The fast path holds well inside the checked years only.
        const LO: i64 = (22 * 365) * DAY_MS; // 1992
        const HI: i64 = (130 * 365) * DAY_MS; // ~2099
        if (LO..HI).contains(&t) {
            Some(off.local_minus_utc() as i64 * 1000)
        } else {
            None
        }
    }

    fn offset_ms(&self, t: Instant) -> i64 {
        if let Some(o) = self.fast(t) {
            return o;
        }
        match DateTime::<Utc>::from_timestamp_millis(t) {
            Some(dt) => self.tz.offset_from_utc_datetime(&dt.naive_utc()).fix().local_minus_utc() as i64 * 1000,
            None => 0,
        }
    }

    /// The local date of an instant.
    pub fn day_of(&self, t: Instant) -> Day {
        let local = t + self.offset_ms(t);
        Day(local.div_euclid(DAY_MS) as i32)
    }

    /// The instant of 00:00 local time on `day` (the first instant of the day
    /// where a transition skips midnight).
    pub fn midnight(&self, day: Day) -> Instant {
        let naive_ms = day.0 as i64 * DAY_MS;
        if let Some(o) = self.fast(naive_ms) {
            return naive_ms - o;
        }
        let naive = day.date().and_hms_opt(0, 0, 0).unwrap_or_default();
        match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
            LocalResult::None => {
                // Midnight does not exist (a DST gap): the day starts at the gap's end.
                let mut probe = naive;
                for _ in 0..48 {
                    probe += chrono::Duration::minutes(30);
                    if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                        return t.timestamp_millis();
                    }
                }
                naive_ms
            }
        }
    }

    /// RFC 3339 with this zone's offset and whole seconds (milliseconds only
    /// when the instant has them), e.g. `2026-03-21T00:00:00+08:00`.
    pub fn format(&self, t: Instant) -> String {
        let off = FixedOffset::east_opt((self.offset_ms(t) / 1000) as i32).unwrap_or(FixedOffset::east_opt(0).unwrap());
        let dt = DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default().with_timezone(&off);
        let secs = if t.rem_euclid(1000) == 0 { chrono::SecondsFormat::Secs } else { chrono::SecondsFormat::Millis };
        dt.to_rfc3339_opts(secs, false)
    }
}

/// Parses an RFC 3339 timestamp with an offset (`Z` allowed) to an instant.
pub fn parse_rfc3339(s: &str) -> Option<Instant> {
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    Some(dt.timestamp_millis())
}

/// Parses a command-line time: RFC 3339, or a local date `YYYY-MM-DD`
/// (its 00:00), or a local `YYYY-MM-DDTHH:MM[:SS]` without offset.
pub fn parse_cli_time(s: &str, zone: &Zone) -> Option<Instant> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(zone.midnight(Day::from_date(d)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return zone.tz.from_local_datetime(&n).earliest().map(|t| t.timestamp_millis());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_dates_and_midnights() {
        let z = Zone::new("Asia/Shanghai").unwrap();
        assert!(z.fixed.is_some());
        let t = parse_rfc3339("2026-02-13T23:30:00+08:00").unwrap();
        assert_eq!(z.day_of(t).to_string(), "2026-02-13");
        let t = parse_rfc3339("2026-02-13T16:30:00Z").unwrap(); // 00:30 on the 14th in Shanghai
        assert_eq!(z.day_of(t).to_string(), "2026-02-14");
        let d = Day::from_date(NaiveDate::from_ymd_opt(2026, 3, 21).unwrap());
        assert_eq!(z.format(z.midnight(d)), "2026-03-21T00:00:00+08:00");
        assert_eq!(d.weekday(), 5); // Saturday
    }

    #[test]
    fn zone_with_daylight_saving_takes_the_slow_path() {
        let z = Zone::new("Europe/Berlin").unwrap();
        assert!(z.fixed.is_none());
        let d = Day::from_date(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(z.format(z.midnight(d)), "2026-07-01T00:00:00+02:00");
        assert!(Zone::new("Mars/Olympus").is_err());
    }

    #[test]
    fn cli_times() {
        let z = Zone::new("Asia/Shanghai").unwrap();
        assert_eq!(parse_cli_time("2026-03-10", &z), parse_rfc3339("2026-03-10T00:00:00+08:00"));
        assert_eq!(parse_cli_time("2026-03-10T00:00", &z), parse_rfc3339("2026-03-10T00:00:00+08:00"));
        assert_eq!(parse_cli_time("nonsense", &z), None);
    }
}

//! Working-day clocks with stops (`rules.md`, "The processing clock").
//!
//! A stop from date `s` to date `r` makes every date from `s` to `r`, both
//! included, uncharged; an open stop (`r` = None) makes every date from `s` on
//! uncharged. Charged days are the working days after the start date that are
//! not uncharged. All functions are pure and cost O(stops · log days).

use crate::calendar::{Calendar, NoCalendar};
use crate::time::Day;

/// A stop: first uncharged date and last one (None while open).
pub type Stop = (Day, Option<Day>);

/// Sorts and merges overlapping or touching stops.
pub fn merge(stops: &mut Vec<Stop>) {
    stops.sort_by_key(|s| s.0);
    let mut out: Vec<Stop> = Vec::with_capacity(stops.len());
    for &(s, r) in stops.iter() {
        if let Some(last) = out.last_mut() {
            match last.1 {
                None => continue,
                Some(lr) if s.0 <= lr.0 + 1 => {
                    last.1 = r.map(|r| r.max(lr));
                    continue;
                }
                _ => {}
            }
        }
        out.push((s, r));
    }
    *stops = out;
}

/// The `n`-th charged day after `start` under merged `stops`; `start` itself
/// for `n == 0`; `Ok(None)` while an open stop leaves fewer than `n`.
pub fn nth_charged(cal: &Calendar, start: Day, n: u32, stops: &[Stop]) -> Result<Option<Day>, NoCalendar> {
    if n == 0 {
        return Ok(Some(start));
    }
    let mut pos = start; // last date already accounted for
    let mut remaining = n;
    for &(s, r) in stops {
        if let Some(r) = r {
            if r <= pos {
                continue;
            }
        }
        let s = s.max(pos.next());
        let candidate = cal.nth_working_after(pos, remaining)?;
        if candidate < s {
            return Ok(Some(candidate));
        }
        remaining -= cal.count_working(pos, Day(s.0 - 1))?;
        match r {
            None => return Ok(None),
            Some(r) => pos = r,
        }
    }
    cal.nth_working_after(pos, remaining).map(Some)
}

/// Uncharged working days in `(start, upto]` under merged `stops`.
pub fn stopped_days(cal: &Calendar, start: Day, upto: Day, stops: &[Stop]) -> Result<u32, NoCalendar> {
    let mut total = 0;
    for &(s, r) in stops {
        let lo = Day(s.0.max(start.0 + 1));
        let hi = r.map_or(upto, |r| r.min(upto));
        if hi >= lo {
            total += cal.count_working(Day(lo.0 - 1), hi)?;
        }
    }
    Ok(total)
}

/// Charged days in `(start, upto]` under merged `stops`.
pub fn charged_days(cal: &Calendar, start: Day, upto: Day, stops: &[Stop]) -> Result<u32, NoCalendar> {
    Ok(cal.count_working(start, upto)? - stopped_days(cal, start, upto, stops)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use std::path::Path;

    fn d(s: &str) -> Day {
        Day::from_date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    /// 2026 with the Spring Festival of examples.md only.
    fn cal() -> Calendar {
        let mut days = vec![r#"{"name":"春节","date":"2026-02-14","isOffDay":false}"#.to_string()];
        for x in 15..=23 {
            days.push(format!(r#"{{"name":"春节","date":"2026-02-{x}","isOffDay":true}}"#));
        }
        days.push(r#"{"name":"春节","date":"2026-02-28","isOffDay":false}"#.to_string());
        let json = format!(r#"{{"year":2026,"papers":[],"days":[{}]}}"#, days.join(","));
        Calendar::from_json_files(&[(2026, Path::new("2026.json"), &json)]).unwrap()
    }

    #[test]
    fn worked_example_c1_no_stops() {
        let c = cal();
        assert_eq!(nth_charged(&c, d("2026-02-13"), 3, &[]).unwrap(), Some(d("2026-02-25")));
        assert_eq!(nth_charged(&c, d("2026-02-13"), 2, &[]).unwrap(), Some(d("2026-02-24")));
        assert_eq!(nth_charged(&c, d("2026-02-13"), 0, &[]).unwrap(), Some(d("2026-02-13")));
    }

    #[test]
    fn worked_example_c2_closed_stop() {
        let c = cal();
        let stops = [(d("2026-02-24"), Some(d("2026-02-26")))];
        assert_eq!(nth_charged(&c, d("2026-02-13"), 3, &stops).unwrap(), Some(d("2026-02-28")));
        assert_eq!(charged_days(&c, d("2026-02-13"), d("2026-03-02"), &stops).unwrap(), 4);
        assert_eq!(stopped_days(&c, d("2026-02-13"), d("2026-03-02"), &stops).unwrap(), 3);
    }

    #[test]
    fn open_stop_leaves_due_date_undefined_until_enough_days() {
        let c = cal();
        let open = [(d("2026-02-24"), None)];
        assert_eq!(nth_charged(&c, d("2026-02-13"), 3, &open).unwrap(), None);
        // The 1st charged day lies before the stop, so it is still defined.
        assert_eq!(nth_charged(&c, d("2026-02-13"), 1, &open).unwrap(), Some(d("2026-02-14")));
        // 24–27 Feb, 28 Feb (make-up) and 2 Mar.
        assert_eq!(stopped_days(&c, d("2026-02-13"), d("2026-03-02"), &open).unwrap(), 6);
    }

    #[test]
    fn stop_after_due_date_changes_nothing_and_overlaps_merge() {
        let c = cal();
        let late = [(d("2026-03-02"), Some(d("2026-03-04")))];
        assert_eq!(nth_charged(&c, d("2026-02-13"), 3, &late).unwrap(), Some(d("2026-02-25")));
        let mut v = vec![
            (d("2026-03-03"), Some(d("2026-03-05"))),
            (d("2026-03-02"), Some(d("2026-03-03"))),
            (d("2026-03-10"), None),
        ];
        merge(&mut v);
        assert_eq!(v, vec![(d("2026-03-02"), Some(d("2026-03-05"))), (d("2026-03-10"), None)]);
        // A stop starting on the start date itself only blocks later dates.
        let same = [(d("2026-03-02"), Some(d("2026-03-03")))];
        assert_eq!(nth_charged(&c, d("2026-03-02"), 1, &same).unwrap(), Some(d("2026-03-04")));
    }
}

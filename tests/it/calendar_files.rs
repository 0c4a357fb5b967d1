//! The shipped working-day calendars (`config/calendar/YYYY.json`) checked
//! against the State Council notices.
//!
//! The expected days below are written out by hand from the notices, not read
//! from the JSON files, so that a slip in either place shows up here.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Weekday};
use serde_json::Value;

/// One year's notice: its holiday periods and make-up working days.
struct Notice {
    year: i32,
    /// The calendar file that ships this notice.
    path: &'static str,
    periods: &'static [Period],
    /// Make-up working days (调休上班), with the holiday they belong to.
    makeup: &'static [(&'static str, &'static str)],
}

/// A holiday period: every day from `first` to `last` (weekends included) is off.
struct Period {
    name: &'static str,
    first: &'static str,
    last: &'static str,
    /// The length the notice states ("共N天"); 1 where it says "…放假，与周末连休".
    days: usize,
}

const fn period(name: &'static str, first: &'static str, last: &'static str, days: usize) -> Period {
    Period { name, first, last, days }
}

/// 国务院办公厅关于2024年部分节假日安排的通知（国办发明电〔2023〕7号，2023年10月25日）.
/// 元旦 and 端午节 are single days off "与周末连休": only the day itself is listed.
/// 除夕 (2月9日) is a working day; the notice only encourages employers to give it off.
const NOTICE_2024: Notice = Notice {
    year: 2024,
    path: concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendar/2024.json"),
    periods: &[
        period("元旦", "2024-01-01", "2024-01-01", 1),
        period("春节", "2024-02-10", "2024-02-17", 8),
        period("清明节", "2024-04-04", "2024-04-06", 3),
        period("劳动节", "2024-05-01", "2024-05-05", 5),
        period("端午节", "2024-06-10", "2024-06-10", 1),
        period("中秋节", "2024-09-15", "2024-09-17", 3),
        period("国庆节", "2024-10-01", "2024-10-07", 7),
    ],
    makeup: &[
        ("春节", "2024-02-04"),
        ("春节", "2024-02-18"),
        ("清明节", "2024-04-07"),
        ("劳动节", "2024-04-28"),
        ("劳动节", "2024-05-11"),
        ("中秋节", "2024-09-14"),
        ("国庆节", "2024-09-29"),
        ("国庆节", "2024-10-12"),
    ],
};

/// 国务院办公厅关于2025年部分节假日安排的通知（国办发明电〔2024〕12号，2024年11月12日）.
/// From 2025 on, 除夕 and 5月2日 are statutory holidays (revised 全国年节及纪念日放假办法).
/// 国庆节 and 中秋节 are one combined period, named as in the notice.
const NOTICE_2025: Notice = Notice {
    year: 2025,
    path: concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendar/2025.json"),
    periods: &[
        period("元旦", "2025-01-01", "2025-01-01", 1),
        period("春节", "2025-01-28", "2025-02-04", 8),
        period("清明节", "2025-04-04", "2025-04-06", 3),
        period("劳动节", "2025-05-01", "2025-05-05", 5),
        period("端午节", "2025-05-31", "2025-06-02", 3),
        period("国庆节、中秋节", "2025-10-01", "2025-10-08", 8),
    ],
    makeup: &[
        ("春节", "2025-01-26"),
        ("春节", "2025-02-08"),
        ("劳动节", "2025-04-27"),
        ("国庆节、中秋节", "2025-09-28"),
        ("国庆节、中秋节", "2025-10-11"),
    ],
};

/// 国务院办公厅关于2026年部分节假日安排的通知（国办发明电〔2025〕7号，2025年11月4日）.
const NOTICE_2026: Notice = Notice {
    year: 2026,
    path: concat!(env!("CARGO_MANIFEST_DIR"), "/config/calendar/2026.json"),
    periods: &[
        period("元旦", "2026-01-01", "2026-01-03", 3),
        period("春节", "2026-02-15", "2026-02-23", 9),
        period("清明节", "2026-04-04", "2026-04-06", 3),
        period("劳动节", "2026-05-01", "2026-05-05", 5),
        period("端午节", "2026-06-19", "2026-06-21", 3),
        period("中秋节", "2026-09-25", "2026-09-27", 3),
        period("国庆节", "2026-10-01", "2026-10-07", 7),
    ],
    makeup: &[
        ("元旦", "2026-01-04"),
        ("春节", "2026-02-14"),
        ("春节", "2026-02-28"),
        ("劳动节", "2026-05-09"),
        ("国庆节", "2026-09-20"),
        ("国庆节", "2026-10-10"),
    ],
};

#[test]
fn calendar_2024_matches_notice() {
    check(&NOTICE_2024);
}

#[test]
fn calendar_2025_matches_notice() {
    check(&NOTICE_2025);
}

#[test]
fn calendar_2026_matches_notice() {
    check(&NOTICE_2026);
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_else(|e| panic!("{text:?} is not a YYYY-MM-DD date: {e}"))
}

/// Every day from `first` to `last`, both included.
fn expand(first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    first.iter_days().take_while(|d| *d <= last).collect()
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The days a notice declares: date → (holiday name, is a day off).
fn expected_days(notice: &Notice) -> BTreeMap<NaiveDate, (String, bool)> {
    let mut days = BTreeMap::new();
    for p in notice.periods {
        let span = expand(date(p.first), date(p.last));
        assert_eq!(
            span.len(),
            p.days,
            "{}: the {} period {}..={} should be {} days as the notice says",
            notice.year,
            p.name,
            p.first,
            p.last,
            p.days
        );
        for day in span {
            let clash = days.insert(day, (p.name.to_string(), true));
            assert!(clash.is_none(), "{}: {day} is in two holiday periods", notice.year);
        }
    }
    for &(name, text) in notice.makeup {
        let clash = days.insert(date(text), (name.to_string(), false));
        assert!(clash.is_none(), "{}: make-up day {text} is also a day off", notice.year);
    }
    days
}

/// The days a calendar file lists, in file order, checking each entry's shape.
fn listed_days(notice: &Notice, json: &Value) -> Vec<(NaiveDate, String, bool)> {
    let year = notice.year;
    let entries = json["days"].as_array().unwrap_or_else(|| panic!("{year}.json: \"days\" should be an array"));
    entries
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap_or_else(|| panic!("{year}.json: {entry} has no string \"name\""));
            let day = entry["date"].as_str().unwrap_or_else(|| panic!("{year}.json: {entry} has no string \"date\""));
            let off = entry["isOffDay"]
                .as_bool()
                .unwrap_or_else(|| panic!("{year}.json: {entry} has no boolean \"isOffDay\""));
            (date(day), name.to_string(), off)
        })
        .collect()
}

fn check(notice: &Notice) {
    let year = notice.year;
    let text = std::fs::read_to_string(notice.path).unwrap_or_else(|e| panic!("cannot read {}: {e}", notice.path));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", notice.path));

    assert_eq!(json["year"].as_i64(), Some(i64::from(year)), "{year}.json: wrong \"year\"");
    let papers = json["papers"].as_array().unwrap_or_else(|| panic!("{year}.json: \"papers\" should be an array"));
    assert!(!papers.is_empty(), "{year}.json: \"papers\" should cite the notice");
    for paper in papers {
        assert!(
            paper.as_str().is_some_and(|url| url.starts_with("https://")),
            "{year}.json: paper {paper} should be an https URL"
        );
    }

    let listed = listed_days(notice, &json);
    let dates: Vec<NaiveDate> = listed.iter().map(|(day, _, _)| *day).collect();
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "{year}.json: days should be sorted by date with no date twice");

    let expected = expected_days(notice);
    let actual: BTreeMap<NaiveDate, (String, bool)> =
        listed.iter().map(|(day, name, off)| (*day, (name.clone(), *off))).collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|(day, want)| actual.get(*day) != Some(*want))
        .map(|(day, (name, off))| format!("{day} {name} isOffDay={off}"))
        .collect();
    let extra: Vec<String> = actual
        .iter()
        .filter(|(day, got)| expected.get(*day) != Some(*got))
        .map(|(day, (name, off))| format!("{day} {name} isOffDay={off}"))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{year}.json differs from the notice:\n  missing or different: {missing:?}\n  not in the notice: {extra:?}"
    );

    let periods: Vec<(NaiveDate, NaiveDate)> = notice.periods.iter().map(|p| (date(p.first), date(p.last))).collect();
    for (day, name, off) in &listed {
        if *off {
            if !is_weekend(*day) {
                assert!(
                    periods.iter().any(|(first, last)| first <= day && day <= last),
                    "{year}.json: weekday day off {day} ({name}) lies in no holiday period"
                );
            }
        } else {
            assert!(
                is_weekend(*day),
                "{year}.json: make-up working day {day} ({name}) is a {}, not a Saturday or Sunday",
                day.weekday()
            );
        }
    }
}

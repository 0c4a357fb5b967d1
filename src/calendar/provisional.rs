//! Provisional calendars: the days off of a year whose State Council notice
//! (放假调休安排) is not published yet, from the statutory public holidays
//! of the 全国年节及纪念日放假办法 (2024 revision) alone:
//!
//! 元旦 1 January; 春节 除夕 and 正月初一 to 初三; 清明节 (the solar term's
//! day); 劳动节 1–2 May; 端午节 (五月初五); 中秋节 (八月十五); 国庆节 1–3
//! October. No make-up working days (调休) and no bridging days: only the
//! notice says those.
//!
//! The lunar and solar-term dates come from `config/lunar-holidays.csv`,
//! built into the binary: one row a year, checked against the lunar-python
//! library by `scripts/check-lunar-holidays.py` (run by the tests).

use chrono::NaiveDate;

/// The table, as shipped.
const TABLE: &str = include_str!("../../config/lunar-holidays.csv");

/// One year's lunar and solar-term holidays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LunarYear {
    chuxi: NaiveDate,
    chunjie: NaiveDate,
    qingming: NaiveDate,
    duanwu: NaiveDate,
    zhongqiu: NaiveDate,
}

fn lunar_year(year: i32) -> Option<LunarYear> {
    let prefix = format!("{year},");
    let line = TABLE.lines().find(|l| l.starts_with(&prefix))?;
    let f: Vec<NaiveDate> = line
        .split(',')
        .skip(1)
        .map(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d"))
        .collect::<Result<_, _>>()
        .ok()?;
    let [chuxi, chunjie, qingming, duanwu, zhongqiu] = f.as_slice() else { return None };
    Some(LunarYear { chuxi: *chuxi, chunjie: *chunjie, qingming: *qingming, duanwu: *duanwu, zhongqiu: *zhongqiu })
}

/// The years the shipped table covers.
pub fn table_years() -> std::ops::RangeInclusive<i32> {
    let years: Vec<i32> = TABLE.lines().skip(1).filter_map(|l| l.split(',').next()?.parse().ok()).collect();
    *years.first().unwrap_or(&0)..=*years.last().unwrap_or(&-1)
}

/// The statutory days off of `year` as `(name, date)`, or `None` when the
/// table does not reach that year. 除夕 can fall in the year before
/// 春节's only when 春节 is 1 January, which it never is; it is listed
/// under its own date's year.
pub fn statutory_days_off(year: i32) -> Option<Vec<(&'static str, NaiveDate)>> {
    let l = lunar_year(year)?;
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d).expect("valid date");
    let mut v = vec![("元旦", ymd(1, 1))];
    v.push(("春节", l.chuxi));
    for k in 0..3 {
        v.push(("春节", l.chunjie + chrono::Days::new(k)));
    }
    v.extend([
        ("清明节", l.qingming),
        ("劳动节", ymd(5, 1)),
        ("劳动节", ymd(5, 2)),
        ("端午节", l.duanwu),
        ("中秋节", l.zhongqiu),
        ("国庆节", ymd(10, 1)),
        ("国庆节", ymd(10, 2)),
        ("国庆节", ymd(10, 3)),
    ]);
    v.sort_by_key(|(_, d)| *d);
    Some(v)
}

/// `JIANCHA_TODAY` is set but not a date; the commands that need today
/// refuse to start until it is one, or unset.
#[derive(Debug, thiserror::Error)]
#[error("JIANCHA_TODAY={value:?} is not a YYYY-MM-DD date (unset it to use today's date)")]
pub struct BadToday {
    /// The variable's value.
    pub value: String,
    /// chrono's reason.
    #[source]
    pub source: chrono::ParseError,
}

/// Today in `zone`, or the date in `JIANCHA_TODAY` (`YYYY-MM-DD`), which
/// tests and dry runs set to see the calendars as on that day.
pub fn today(zone: &crate::time::Zone) -> Result<NaiveDate, BadToday> {
    match std::env::var("JIANCHA_TODAY") {
        Ok(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|source| BadToday { value: s, source }),
        Err(_) => Ok(zone.day_of(chrono::Utc::now().timestamp_millis()).date()),
    }
}

/// The years a provisional calendar is made for, seen on `today`: the
/// current one and the next.
pub fn years_for(today: NaiveDate) -> [i32; 2] {
    use chrono::Datelike;
    [today.year(), today.year() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_statutory_days_off_of_2027() {
        let got: Vec<(&str, NaiveDate)> = statutory_days_off(2027).unwrap();
        let want = [
            ("元旦", "2027-01-01"),
            ("春节", "2027-02-05"),
            ("春节", "2027-02-06"),
            ("春节", "2027-02-07"),
            ("春节", "2027-02-08"),
            ("清明节", "2027-04-05"),
            ("劳动节", "2027-05-01"),
            ("劳动节", "2027-05-02"),
            ("端午节", "2027-06-09"),
            ("中秋节", "2027-09-15"),
            ("国庆节", "2027-10-01"),
            ("国庆节", "2027-10-02"),
            ("国庆节", "2027-10-03"),
        ];
        assert_eq!(got, want.map(|(n, s)| (n, d(s))));
    }

    #[test]
    fn the_table_reaches_ten_years_ahead() {
        let years = table_years();
        assert!(*years.start() <= 2025 && *years.end() >= 2036, "{years:?}");
        for y in years {
            assert!(statutory_days_off(y).is_some_and(|v| v.len() == 13), "{y}");
        }
        assert_eq!(statutory_days_off(1990), None);
    }
}

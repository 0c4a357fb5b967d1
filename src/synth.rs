//! A deterministic synthetic event stream: simulated departmental systems
//! over the catalogue and calendar, with every anomaly the rules look for
//! (late completion, missing center registration, dual intake, backdating,
//! overcharging, denial without reason, bad ratings, repeated supplements),
//! out-of-order arrivals, duplicates and bad lines. Used by property tests and
//! benchmarks; same seed, same stream.

use crate::reference::{ItemKind, RefData};
use crate::time::{Day, Instant, Zone, HOUR_MS};
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

/// SplitMix64: small, fast, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// Number of cases.
    pub cases: usize,
    /// Seed.
    pub seed: u64,
    /// First arrival date.
    pub start: NaiveDate,
    /// Arrivals spread over this many calendar days.
    pub days: u32,
    /// Share of events that arrive late (up to `max_delay_hours` after their time).
    pub late_rate: f64,
    /// Longest arrival delay, hours.
    pub max_delay_hours: u32,
    /// Share of events re-sent (duplicate event id).
    pub duplicate_rate: f64,
    /// Share of extra malformed lines.
    pub bad_line_rate: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            cases: 1000,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
            days: 300,
            late_rate: 0.01,
            max_delay_hours: 48,
            duplicate_rate: 0.005,
            bad_line_rate: 0.002,
        }
    }
}

struct Gen<'a> {
    rd: &'a RefData,
    zone: &'a Zone,
    rng: Rng,
    out: Vec<(Instant, u64, String)>,
    seq: u64,
}

impl Gen<'_> {
    fn working_after(&self, d: Day, n: u32) -> Option<Day> {
        self.rd.calendar.nth_working_after(d, n).ok()
    }
    fn at(&mut self, day: Day, min_hour: i64) -> Instant {
        let mins = self.rng.below(((17 - min_hour.min(16)) * 60) as u64) as i64;
        self.zone.midnight(day) + min_hour * HOUR_MS + mins * 60_000
    }
    fn push(&mut self, mut v: Map<String, Value>, at: Instant, case: &str, n: &mut u32) {
        *n += 1;
        v.insert("event_id".into(), json!(format!("{case}-e{n}")));
        v.insert("case_id".into(), json!(case));
        v.insert("occurred_at".into(), json!(self.zone.format(at)));
        if !v.contains_key("recorded_at") {
            v.insert("recorded_at".into(), json!(self.zone.format(at + 60_000 * (1 + self.rng.below(30) as i64))));
        }
        let line = Value::Object(v).to_string();
        self.seq += 1;
        self.out.push((at, self.seq, line));
    }
}

fn obj(kind: &str, source: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    m.insert("source".into(), json!(source));
    m
}

/// Generates the stream as JSON lines, in arrival order.
pub fn generate(rd: &RefData, zone: &Zone, opts: &SynthOptions) -> Vec<String> {
    let mut g = Gen { rd, zone, rng: Rng::new(opts.seed), out: Vec::new(), seq: 0 };
    let items = rd.catalog.items();
    let regions: Vec<&str> = rd.regions.rows().iter().map(|r| r.code.as_str()).filter(|c| c.len() >= 6).collect();
    let start = Day::from_date(opts.start);
    let applicants = (opts.cases as u64 * 4 / 5).max(1);
    let mut prev_case: Option<(String, u32, String)> = None; // (applicant, item, source) for dual intake
    for ci in 0..opts.cases {
        let case = format!("C{ci:08}");
        let mut n = 0u32;
        let mut item_idx = g.rng.below(items.len() as u64) as u32;
        let mut applicant = format!("P{:09}", g.rng.below(applicants));
        let dept_source = format!("{}-sys", items[item_idx as usize].department);
        let mut source = if g.rng.chance(0.85) { "center".to_string() } else { dept_source.clone() };
        // Dual intake: the same applicant and item as the previous case, from the other system.
        if let Some((a, i, s)) = &prev_case {
            if g.rng.chance(0.01) {
                applicant = a.clone();
                item_idx = *i;
                source = if s == "center" { format!("{}-sys", items[*i as usize].department) } else { "center".into() };
            }
        }
        let item = &items[item_idx as usize];
        let offset = 1 + g.rng.below(opts.days as u64 * 5 / 7) as u32;
        let Some(day0) = g.working_after(Day(start.0 - 1), offset) else {
            continue;
        };
        let region = regions.get(g.rng.below(regions.len() as u64) as usize).copied().unwrap_or("220421");
        let mut base = Map::new();
        base.insert("region".into(), json!(region));
        base.insert("department".into(), json!(item.department));
        base.insert("item_code".into(), json!(item.item_code));
        base.insert("applicant".into(), json!(applicant));
        base.insert("window".into(), json!(format!("W{:02}", 1 + g.rng.below(20))));
        let with_base = |mut m: Map<String, Value>| {
            for (k, v) in &base {
                m.insert(k.clone(), v.clone());
            }
            m
        };
        let mut t = g.at(day0, 9);
        let mut day = day0;
        if g.rng.chance(0.6) {
            g.push(with_base(obj("submitted", &source)), t, &case, &mut n);
            if g.rng.chance(0.02) {
                g.push(obj("withdrawn", &source), t + HOUR_MS, &case, &mut n);
                continue;
            }
            if g.rng.chance(0.06) {
                let times = if g.rng.chance(0.2) { 2 } else { 1 };
                for _ in 0..times {
                    let Some(d1) = g.working_after(day, 1) else {
                        break;
                    };
                    g.push(obj("supplement_requested", &source), g.zone.midnight(d1) + 10 * HOUR_MS, &case, &mut n);
                    let k = 1 + g.rng.below(3) as u32;
                    let Some(d2) = g.working_after(d1, k) else {
                        break;
                    };
                    let rt = g.zone.midnight(d2) + 10 * HOUR_MS;
                    g.push(obj("supplement_received", &source), rt, &case, &mut n);
                    day = d2;
                    t = rt;
                }
            }
            if g.rng.chance(0.02) {
                let mut m = obj("refused", &source);
                if g.rng.chance(0.5) {
                    m.insert("reason".into(), json!("材料不符合法定形式"));
                }
                let Some(d) = g.working_after(day, 1) else {
                    continue;
                };
                g.push(m, g.zone.midnight(d) + 11 * HOUR_MS, &case, &mut n);
                continue;
            }
            // Mostly accepted within the intake limit, a few late.
            let wait = if g.rng.chance(0.03) { 6 + g.rng.below(3) as u32 } else { g.rng.below(3) as u32 };
            if wait > 0 {
                let Some(d) = g.working_after(day, wait) else {
                    continue;
                };
                day = d;
            }
            t = g.at(day, 9).max(t + 60_000);
        }
        let mut acc = with_base(obj("accepted", &source));
        if let Some(p) = prev_case.as_ref().filter(|_| item.kind == ItemKind::Joint && ci > 0) {
            let _ = p;
            acc.insert("parent_case_id".into(), json!(format!("C{:08}", ci - 1)));
        }
        if g.rng.chance(0.02) {
            acc.insert("recorded_at".into(), json!(g.zone.format(t + 30 * HOUR_MS)));
        }
        g.push(acc, t, &case, &mut n);
        let acc_day = day;
        prev_case = Some((applicant.clone(), item_idx, source.clone()));
        // A center registration for departmental intakes, sometimes late.
        // (Emitted once the completion time is known: a step after completion
        // would be an invalid transition.)
        let mut registration = (source != "center" && g.rng.chance(0.5))
            .then(|| t + if g.rng.chance(0.7) { 2 * HOUR_MS } else { 30 * HOUR_MS });
        let mut register = |g: &mut Gen, before: Option<Instant>, n: &mut u32| {
            if let Some(r) = registration.take() {
                let r = before.map_or(r, |b| r.min(b - 60_000));
                let m = obj("step_completed", "center").into_iter().chain([("step".into(), json!("登记"))]).collect();
                g.push(m, r, &case, n);
            }
        };
        let big_n = item.promised_days;
        // How many charged days it takes: mostly early, some on the day, a few late.
        let used = if big_n == 0 {
            if g.rng.chance(0.95) {
                0
            } else {
                1
            }
        } else {
            let r = g.rng.below(100);
            if r < 70 {
                g.rng.below(big_n as u64) as u32
            } else if r < 85 {
                big_n
            } else if r < 95 {
                big_n + 1 + g.rng.below(3) as u32
            } else {
                u32::MAX // never completes within the stream
            }
        };
        let mut cur = acc_day;
        let mut left = used;
        if big_n > 1 && g.rng.chance(0.1) && used != u32::MAX && used > 0 {
            // A stop in the middle.
            let half = left / 2;
            let Some(d) = g.working_after(cur, half.max(1)) else {
                continue;
            };
            let (a, b) =
                if item.kind == ItemKind::ReportUp { ("escalated", "returned") } else { ("suspended", "resumed") };
            let mut m = obj(a, &source);
            if a == "suspended" {
                let reasons = ["testing", "expert_review", "hearing", "supplement", "inspection"];
                m.insert("reason".into(), json!(reasons[g.rng.below(reasons.len() as u64) as usize]));
            }
            g.push(m, g.zone.midnight(d) + 9 * HOUR_MS, &case, &mut n);
            let k = 1 + g.rng.below(3) as u32;
            let Some(r) = g.working_after(d, k) else {
                continue;
            };
            g.push(obj(b, &source), g.zone.midnight(r) + 15 * HOUR_MS, &case, &mut n);
            cur = r;
            left -= half.max(1).min(left);
        }
        if used == u32::MAX {
            register(&mut g, None, &mut n);
            continue;
        }
        let Some(cday) = (if left == 0 && cur == acc_day { Some(cur) } else { g.working_after(cur, left.max(1)) })
        else {
            continue;
        };
        let ct = (g.zone.midnight(cday) + 16 * HOUR_MS).max(t + 30 * 60_000);
        register(&mut g, Some(ct), &mut n);
        let mut m = obj("completed", &source);
        let denied = g.rng.chance(0.05);
        m.insert("result".into(), json!(if denied { "denied" } else { "approved" }));
        if denied && g.rng.chance(0.5) {
            m.insert("reason".into(), json!("不符合许可条件"));
        }
        if item.fee_yuan > 0.0 || g.rng.chance(0.01) {
            let fee = if g.rng.chance(0.03) { item.fee_yuan + 20.0 } else { item.fee_yuan };
            m.insert("fee_yuan".into(), json!(fee));
        }
        if g.rng.chance(0.01) {
            m.insert("recorded_at".into(), json!(g.zone.format(ct + 40 * HOUR_MS)));
        }
        g.push(m, ct, &case, &mut n);
        if g.rng.chance(0.6) {
            let rating = match g.rng.below(100) {
                0..=2 => 1 + g.rng.below(2),
                3..=10 => 3,
                11..=40 => 4,
                _ => 5,
            };
            let rt = ct + (1 + g.rng.below(72)) as i64 * HOUR_MS;
            let mut m = obj("evaluated", "center");
            m.insert("rating".into(), json!(rating));
            g.push(m, rt, &case, &mut n);
            if rating <= 2 && g.rng.chance(0.5) {
                let rect = rt + (24 + g.rng.below(24 * 14)) as i64 * HOUR_MS;
                g.push(obj("rectified", &source), rect, &case, &mut n);
            }
        }
    }
    // Arrival order: by time, with some events delayed.
    let mut arrivals: Vec<(Instant, u64, String)> = Vec::with_capacity(g.out.len());
    let out = std::mem::take(&mut g.out);
    for (at, seq, line) in out {
        let delay = if g.rng.chance(opts.late_rate) {
            g.rng.below(opts.max_delay_hours as u64 * 3600) as i64 * 1000
        } else {
            0
        };
        if g.rng.chance(opts.duplicate_rate) {
            arrivals.push((at + delay + HOUR_MS, seq, line.clone()));
        }
        arrivals.push((at + delay, seq, line));
    }
    let bad = [
        "{not json",
        r#"{"event_id":"x","case_id":"y","type":"teleported","occurred_at":"2026-03-01T10:00:00+08:00","source":"center"}"#,
        r#"{"event_id":"x","case_id":"y","type":"evaluated","occurred_at":"2026-03-01T10:00:00+08:00","source":"center","rating":6}"#,
        r#"{"event_id":"x","case_id":"y","type":"accepted","occurred_at":"yesterday","source":"center"}"#,
    ];
    let n_bad = (arrivals.len() as f64 * opts.bad_line_rate) as usize;
    for i in 0..n_bad {
        let at = arrivals[g.rng.below(arrivals.len() as u64) as usize].0;
        arrivals.push((at, u64::MAX - i as u64, bad[i % bad.len()].to_string()));
    }
    arrivals.sort_by_key(|a| (a.0, a.1));
    arrivals.into_iter().map(|a| a.2).collect()
}

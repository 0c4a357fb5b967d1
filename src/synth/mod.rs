//! Simulated departmental systems (`jiancha simulate`): a deterministic,
//! streaming event source over the catalogue and the calendar, with every
//! anomaly of the rules injected at configurable rates and a ground truth of
//! what was injected and what each case's figures are by construction.
//!
//! Cases start in order over the working days of the span; each case's whole
//! life is planned when it starts (its events go into a heap keyed by arrival
//! time), so memory holds only the cases in flight and ten million events
//! stream in constant memory. The plan is made in charged days — the
//! simulator walks the calendar itself — so the truth (due date, used days,
//! on time, early) is computed independently of the engine.

mod follow_up;
mod plan;

use crate::reference::RefData;
use crate::time::{Day, Instant, Zone};
use chrono::NaiveDate;
pub use plan::Truth;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

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
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}

/// How often each anomaly is injected, per case (0–1).
#[derive(Clone, Debug)]
pub struct AnomalyRates {
    /// Completed after the due date (超期).
    pub overdue: f64,
    /// Accepted after the 5-working-day intake limit (受理超时).
    pub intake_overdue: f64,
    /// Two requests for supplements (多次补正).
    pub repeated_supplement: f64,
    /// The same applicant and item taken in by another system (两头受理).
    pub dual_intake: f64,
    /// Never registered in the centre's system (体外循环).
    pub unregistered_case: f64,
    /// Entered more than a day after it happened (补录/倒签).
    pub backdated_entry: f64,
    /// Charged more than the standard fee (超标准收费).
    pub overcharge: f64,
    /// Denied without a reason (不予许可未说明理由).
    pub denial_without_reason: f64,
    /// A bad rating never rectified (差评未整改).
    pub bad_rating_unrectified: f64,
    /// A complaint filed about the case (效能投诉); a quarter of them are
    /// answered after their due date (投诉超时).
    pub complaint: f64,
    /// Share of overdue cases the bureau issues a notice on (督办); three in
    /// ten are answered late (督办超时).
    pub notice_on_overdue: f64,
    /// An item outside the catalogue (清单外事项), of cases neither joint nor
    /// dual intakes. Drawn, like `late_sub_case`, from a generator of their
    /// own, so the stream is otherwise the same with them at 0.
    pub unlisted_item: f64,
    /// A joint case whose first sub-case completes after the parent's due
    /// date (联办拖延; sub-cases may also do so by their durations alone).
    pub late_sub_case: f64,
    /// A case of an item with steps whose first step runs over its limit
    /// (环节超时; a case over its whole limit runs its last step over too).
    pub step_overdue: f64,
}

impl Default for AnomalyRates {
    fn default() -> Self {
        AnomalyRates {
            overdue: 0.08,
            intake_overdue: 0.03,
            repeated_supplement: 0.02,
            dual_intake: 0.01,
            unregistered_case: 0.03,
            backdated_entry: 0.02,
            overcharge: 0.01,
            denial_without_reason: 0.01,
            bad_rating_unrectified: 0.01,
            complaint: 0.01,
            notice_on_overdue: 0.3,
            unlisted_item: 0.005,
            late_sub_case: 0.2,
            step_overdue: 0.3,
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// Number of cases (joint cases add sub-cases on top).
    pub cases: usize,
    /// Seed: same seed, same stream.
    pub seed: u64,
    /// First day cases may start.
    pub start: NaiveDate,
    /// Cases start over this many calendar days.
    pub days: u32,
    /// Anomaly rates.
    pub rates: AnomalyRates,
    /// Share of events that arrive late (up to `max_delay_hours` after their time).
    pub late_rate: f64,
    /// Longest arrival delay, hours.
    pub max_delay_hours: u32,
    /// Share of events sent twice (same event id).
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
            days: 240,
            rates: AnomalyRates::default(),
            late_rate: 0.01,
            max_delay_hours: 48,
            duplicate_rate: 0.005,
            bad_line_rate: 0.002,
        }
    }
}

/// One item of the simulated stream. (Not boxed: a truth comes once per
/// case, lines many times; boxing would cost an allocation each.)
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SimItem {
    /// A JSON line as a departmental system would send it.
    Line(String),
    /// The plan of a case, emitted when the case starts.
    Truth(Truth),
}

/// The streaming simulator.
pub struct Simulator<'a> {
    rd: &'a RefData,
    zone: Zone,
    opts: SynthOptions,
    rng: Rng,
    /// Working days on which cases may start.
    start_days: Vec<Day>,
    next_case: usize,
    heap: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    truths: VecDeque<Truth>,
    planner: plan::Planner,
    bureau: follow_up::Bureau,
    bad_lines: u64,
}

const BAD_LINES: [&str; 5] = [
    "{not json",
    r#"{"event_id":"bad-type","case_id":"X","type":"teleported","occurred_at":"2026-03-01T10:00:00+08:00","source":"center"}"#,
    r#"{"event_id":"bad-rating","case_id":"X","type":"evaluated","occurred_at":"2026-03-01T10:00:00+08:00","source":"center","rating":6}"#,
    r#"{"event_id":"bad-time","case_id":"X","type":"resumed","occurred_at":"yesterday","source":"center"}"#,
    r#"{"event_id":"bad-fee","case_id":"X","type":"completed","occurred_at":"2026-03-01T10:00:00+08:00","source":"center","result":"approved","fee_yuan":"10"}"#,
];

impl<'a> Simulator<'a> {
    /// A simulator over reference data.
    pub fn new(rd: &'a RefData, zone: Zone, opts: SynthOptions) -> Simulator<'a> {
        let first = Day::from_date(opts.start);
        let start_days: Vec<Day> = (0..opts.days as i32)
            .map(|i| Day(first.0 + i))
            .filter(|&d| rd.calendar.is_working(d).unwrap_or(false))
            .collect();
        let planner = plan::Planner::new(rd);
        let bureau = follow_up::Bureau::new(opts.seed, opts.rates.complaint, opts.rates.notice_on_overdue);
        Simulator {
            rd,
            zone,
            rng: Rng::new(opts.seed),
            opts,
            start_days,
            next_case: 0,
            heap: BinaryHeap::new(),
            seq: 0,
            truths: VecDeque::new(),
            planner,
            bureau,
            bad_lines: 0,
        }
    }

    fn start_of(&self, case: usize) -> Option<Day> {
        if self.start_days.is_empty() {
            return None;
        }
        let i = case as u128 * self.start_days.len() as u128 / self.opts.cases.max(1) as u128;
        self.start_days.get(i as usize).copied()
    }

    fn schedule(&mut self, events: Vec<(Instant, String)>) {
        for (at, line) in events {
            let delay = if self.rng.chance(self.opts.late_rate) {
                self.rng.below(self.opts.max_delay_hours as u64 * 3600) as i64 * 1000
            } else {
                0
            };
            if self.rng.chance(self.opts.duplicate_rate) {
                self.seq += 1;
                self.heap.push(Reverse((at + delay + 3_600_000, self.seq, line.clone())));
            }
            if self.rng.chance(self.opts.bad_line_rate) {
                self.seq += 1;
                let bad = BAD_LINES[(self.bad_lines % BAD_LINES.len() as u64) as usize].to_string();
                self.bad_lines += 1;
                self.heap.push(Reverse((at + delay, self.seq, bad)));
            }
            self.seq += 1;
            self.heap.push(Reverse((at + delay, self.seq, line)));
        }
    }
}

impl Iterator for Simulator<'_> {
    type Item = SimItem;

    fn next(&mut self) -> Option<SimItem> {
        loop {
            if let Some(t) = self.truths.pop_front() {
                return Some(SimItem::Truth(t));
            }
            let next_start = if self.next_case < self.opts.cases { self.start_of(self.next_case) } else { None };
            match (next_start, self.heap.peek()) {
                (Some(day), top) if top.is_none_or(|Reverse((t, _, _))| *t >= self.zone.midnight(day)) => {
                    let case = self.next_case;
                    self.next_case += 1;
                    let planned = self.planner.plan(self.rd, &self.zone, &mut self.rng, &self.opts, case, day);
                    for (events, mut truth) in planned {
                        let (bureau, complaints) = self.bureau.plan(self.rd, &self.zone, &mut truth, &events);
                        self.schedule(events);
                        self.truths.push_back(truth);
                        // The bureau's events arrive on time, once: the
                        // departments' random draws stay as they were.
                        for (at, line) in bureau {
                            self.seq += 1;
                            self.heap.push(Reverse((at, self.seq, line)));
                        }
                        self.truths.extend(complaints);
                    }
                }
                _ => {
                    let Reverse((_, _, line)) = self.heap.pop()?;
                    return Some(SimItem::Line(line));
                }
            }
        }
    }
}

/// The whole stream as lines, in arrival order (tests and benchmarks).
pub fn generate(rd: &RefData, zone: &Zone, opts: &SynthOptions) -> Vec<String> {
    Simulator::new(rd, zone.clone(), opts.clone())
        .filter_map(|i| match i {
            SimItem::Line(l) => Some(l),
            SimItem::Truth(_) => None,
        })
        .collect()
}

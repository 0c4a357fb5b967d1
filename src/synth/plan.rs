//! Planning one case's life: its events, and its truth (the anomalies put in
//! and its figures by construction).

use super::{Rng, SynthOptions};
use crate::reference::{ItemKind, RefData};
use crate::time::{Day, Instant, Zone, HOUR_MS};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};

const MIN: i64 = 60_000;

/// What the simulator planned for one case.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Truth {
    /// The case.
    pub case_id: String,
    /// Parent of a joint sub-case.
    pub parent_case_id: Option<String>,
    /// Department.
    pub department: String,
    /// Region code.
    pub region: String,
    /// Window.
    pub window: String,
    /// Item code.
    pub item_code: String,
    /// Item kind.
    pub kind: &'static str,
    /// Source system of its intake.
    pub source: String,
    /// `submitted` instant, RFC 3339.
    pub submitted_at: Option<String>,
    /// `accepted` instant.
    pub accepted_at: Option<String>,
    /// Final status: completed, refused, withdrawn.
    pub status: &'static str,
    /// `completed` instant.
    pub completed_at: Option<String>,
    /// approved or denied.
    pub result: Option<&'static str>,
    /// The limit N (promised days).
    pub limit_days: Option<u32>,
    /// Due date.
    pub due_date: Option<String>,
    /// Charged days used.
    pub used_days: Option<u32>,
    /// Uncharged working days.
    pub stopped_days: Option<u32>,
    /// Completed on or before the due date.
    pub on_time: Option<bool>,
    /// Completed before the due date, N ≥ 1.
    pub early: Option<bool>,
    /// Fee charged.
    pub fee_yuan: Option<f64>,
    /// Rating given.
    pub rating: Option<u8>,
    /// When the rating was given.
    pub rated_at: Option<String>,
    /// When the case closed (completed, refused or withdrawn).
    pub closed_at: Option<String>,
    /// Rules whose alert this case must raise (all but `due_soon`, which
    /// follows from the durations).
    pub anomalies: Vec<&'static str>,
    /// A sub-case completed after its parent's due date (it made the parent
    /// late).
    #[serde(default)]
    pub made_parent_late: bool,
    /// Channel of its `accepted` (the one sent, or the default by source).
    pub channel_accepted: Option<&'static str>,
    /// Channel of its `completed`.
    pub channel_completed: Option<&'static str>,
    /// The official who handled it: the `staff` of its `completed` when
    /// sent, else of its `accepted`.
    pub staff: Option<String>,
}

struct Recent {
    applicant: String,
    item: u32,
    source: String,
    acc_at: Instant,
    withdrawn_at: Option<Instant>,
}

/// Remembers what later cases refer to.
pub struct Planner {
    regions: Vec<String>,
    sub_items: HashMap<String, Vec<u32>>,
    /// The windows of each department in the hall: W01, W02 … in the order
    /// of the department codes, one to three each by the size of its part
    /// of the catalogue.
    windows: HashMap<String, Vec<u32>>,
    recent: VecDeque<Recent>,
}

/// Officials at each window (seats).
const SEATS: u64 = 2;

/// The window's code.
fn window_code(w: u32) -> String {
    format!("W{w:02}")
}

/// An official's code: the window and the seat (S3201: window 32, seat 1).
fn staff_code(w: u32, seat: u64) -> String {
    format!("S{w:02}{:02}", seat + 1)
}

/// The channels of a case and who recorded its steps, drawn from a
/// generator of its own (`aux`), so that the rest of the stream is what
/// the same seed gave before channels and staff existed.
struct Steps {
    accepted_channel: &'static str,
    accepted_staff: Option<String>,
}

impl Steps {
    /// The acceptance: at a centre source mostly at the window, a quarter
    /// online, some at an agent's point; at a departmental system in the
    /// back office or online. The official at the window's seat; the
    /// departmental systems send no staff one time in four.
    fn accept(aux: &mut Rng, source: &str, window: u32) -> Steps {
        let centre = source == "center";
        let accepted_channel = match (centre, aux.below(100)) {
            (true, 0..=69) => "window",
            (true, 70..=94) => "online",
            (true, _) => "agent",
            (false, 0..=79) => "back_office",
            (false, _) => "online",
        };
        let accepted_staff = (centre || aux.chance(0.75)).then(|| staff_code(window, aux.below(SEATS)));
        Steps { accepted_channel, accepted_staff }
    }

    /// The completion's channel: the same day at the window for most cases
    /// taken in at the window (现场办结); the result collected at the window
    /// a third of the time otherwise; else the back office, or online for a
    /// case taken in online.
    fn complete_channel(&self, aux: &mut Rng, source: &str, same_day: bool) -> &'static str {
        if source != "center" {
            return if aux.chance(0.9) { "back_office" } else { "online" };
        }
        match (self.accepted_channel, same_day, aux.below(100)) {
            ("window", true, 0..=84) => "window",
            ("online", _, 0..=59) => "online",
            (_, false, 0..=29) => "window",
            _ => "back_office",
        }
    }
}

struct Events<'z> {
    case: String,
    n: u32,
    zone: &'z Zone,
    out: Vec<(Instant, String)>,
}

impl Events<'_> {
    fn push(&mut self, rng: &mut Rng, kind: &str, at: Instant, source: &str, extra: Map<String, Value>) {
        self.n += 1;
        let mut m = extra;
        m.insert("event_id".into(), json!(format!("{}-{}", self.case, self.n)));
        m.insert("case_id".into(), json!(self.case));
        m.insert("type".into(), json!(kind));
        m.insert("occurred_at".into(), json!(self.zone.format(at)));
        m.insert("source".into(), json!(source));
        if !m.contains_key("recorded_at") {
            m.insert("recorded_at".into(), json!(self.zone.format(at + (1 + rng.below(30) as i64) * MIN)));
        }
        self.out.push((at, Value::Object(m).to_string()));
    }
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

const STOP_REASONS: [&str; 6] = ["hearing", "testing", "inspection", "appraisal", "expert_review", "quarantine"];

impl Planner {
    /// A planner over the reference data.
    pub fn new(rd: &RefData) -> Planner {
        let mut regions: Vec<String> =
            rd.regions.rows().iter().filter(|r| r.code.len() >= 9).map(|r| r.code.clone()).collect();
        if regions.is_empty() {
            regions = rd.regions.rows().iter().map(|r| r.code.clone()).collect();
        }
        if regions.is_empty() {
            regions.push("220421".into());
        }
        let mut sub_items: HashMap<String, Vec<u32>> = HashMap::new();
        let mut items_of: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for (i, it) in rd.catalog.items().iter().enumerate() {
            if it.kind == ItemKind::Promised && it.promised_days >= 1 {
                sub_items.entry(it.department.clone()).or_default().push(i as u32);
            }
            *items_of.entry(it.department.as_str()).or_default() += 1;
        }
        let mut windows = HashMap::new();
        let mut next = 1u32;
        for (dept, n) in items_of {
            let k = match n {
                19.. => 3,
                13..=18 => 2,
                _ => 1,
            };
            windows.insert(dept.to_string(), (next..next + k).collect());
            next += k;
        }
        Planner { regions, sub_items, windows, recent: VecDeque::new() }
    }

    /// Plans case number `no`, starting on `day`: its events and truth, then
    /// those of its sub-cases. Empty when the calendar does not reach far enough.
    pub fn plan(
        &mut self,
        rd: &RefData,
        zone: &Zone,
        rng: &mut Rng,
        opts: &SynthOptions,
        no: usize,
        day: Day,
    ) -> Vec<(Vec<(Instant, String)>, Truth)> {
        let case_id = format!("C{no:08}");
        // The newer anomalies draw from a generator of their own, so that
        // the stream is otherwise the one it was before them.
        let mut extra = super::Rng::new(opts.seed ^ (no as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let unlisted = extra.chance(opts.rates.unlisted_item);
        let late_sub = extra.chance(opts.rates.late_sub_case);
        let late_step = extra.chance(opts.rates.step_overdue);
        let items = rd.catalog.items();
        let r = &opts.rates;
        let wd = |d: Day, n: u32| rd.calendar.nth_working_after(d, n).ok();
        let t0 = zone.midnight(day) + 8 * HOUR_MS + 30 * MIN + rng.below(7 * 60) as i64 * MIN;

        // Dual intake: the same applicant and item as a recent acceptance, from the other system.
        let mut item_idx = rng.below(items.len() as u64) as u32;
        let mut applicant = format!("P{no:09}");
        let mut dual_source = None;
        if rng.chance(r.dual_intake) {
            if let Some(p) = self.recent.iter().rev().find(|p| {
                p.acc_at < t0
                    && day.0 - zone.day_of(p.acc_at).0 <= 30
                    && p.withdrawn_at.is_none()
                    && items[p.item as usize].kind != ItemKind::Joint
            }) {
                item_idx = p.item;
                applicant = p.applicant.clone();
                let dept = &items[p.item as usize].department;
                dual_source = Some(if p.source == "center" { format!("{dept}-sys") } else { "center".to_string() });
            }
        }
        let item = &items[item_idx as usize];
        let n = item.promised_days;
        let dept = item.department.clone();
        let dept_sys = format!("{dept}-sys");
        let joint = item.kind == ItemKind::Joint;
        let mut anomalies: Vec<&'static str> = Vec::new();
        let unreg = item.in_hall && !joint && dual_source.is_none() && rng.chance(r.unregistered_case);
        let source = match &dual_source {
            Some(s) => s.clone(),
            None if unreg || (!joint && rng.chance(0.1)) => dept_sys.clone(),
            None => "center".to_string(),
        };
        if dual_source.is_some() {
            anomalies.push("dual_intake");
        }
        if unreg {
            anomalies.push("unregistered_case");
        }
        // A departmental intake that is not an anomaly is registered by the
        // centre 10 minutes after acceptance; it is then accepted first.
        let registered_late = source != "center" && !unreg;
        let region = self.regions[rng.below(self.regions.len() as u64) as usize].clone();
        // One draw, as before windows belonged to departments: now it picks
        // one of the department's windows.
        let window_draw = rng.below(12);
        let window_no = self.window_of(&dept, window_draw);
        let window = window_code(window_no);
        let mut aux =
            Rng::new(opts.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (no as u64).wrapping_add(0xA24B_AED4_963E_E407));
        let intake_late = !registered_late && dual_source.is_none() && rng.chance(r.intake_overdue);
        let supplements: u32 = if registered_late || dual_source.is_some() {
            0
        } else if rng.chance(r.repeated_supplement) {
            2
        } else if rng.chance(0.05) {
            1
        } else {
            0
        };
        // A dual intake is accepted on its first day, so the 30-day window is known now.
        let submitted =
            !registered_late && dual_source.is_none() && (intake_late || supplements > 0 || rng.chance(0.6));
        let denial = rng.chance(r.denial_without_reason);
        let backdated = rng.chance(r.backdated_entry);
        let overdue = rng.chance(r.overdue);
        let overcharge = rng.chance(r.overcharge);
        let bad_rating = rng.chance(r.bad_rating_unrectified);
        let refuse = submitted && !intake_late && supplements < 2 && !backdated && rng.chance(0.02);
        let attrs = fields(&[
            ("region", json!(region)),
            ("department", json!(dept)),
            ("window", json!(window)),
            ("item_code", json!(item.item_code)),
            ("applicant", json!(applicant)),
        ]);
        let mut ev = Events { case: case_id.clone(), n: 0, zone, out: Vec::new() };
        let mut truth = Truth {
            case_id: case_id.clone(),
            parent_case_id: None,
            department: dept.clone(),
            region: region.clone(),
            window: window.clone(),
            item_code: item.item_code.clone(),
            kind: item.kind.as_str(),
            source: source.clone(),
            submitted_at: None,
            accepted_at: None,
            status: "completed",
            completed_at: None,
            result: None,
            limit_days: None,
            due_date: None,
            used_days: None,
            stopped_days: None,
            on_time: None,
            early: None,
            fee_yuan: None,
            rating: None,
            rated_at: None,
            closed_at: None,
            anomalies: Vec::new(),
            made_parent_late: false,
            channel_accepted: None,
            channel_completed: None,
            staff: None,
        };
        let eval_source = if unreg { dept_sys.clone() } else { "center".to_string() };

        // Intake.
        let mut acc_day = day;
        let mut acc_at = t0;
        if submitted {
            ev.push(rng, "submitted", t0, &source, attrs.clone());
            truth.submitted_at = Some(zone.format(t0));
            let mut cur = day;
            let mut last = t0;
            for _ in 0..supplements {
                let Some(d1) = wd(cur, 1) else { return Vec::new() };
                let Some(d2) = wd(d1, 1 + rng.below(2) as u32) else { return Vec::new() };
                ev.push(rng, "supplement_requested", zone.midnight(d1) + 10 * HOUR_MS, &source, Map::new());
                last = zone.midnight(d2) + 10 * HOUR_MS;
                ev.push(rng, "supplement_received", last, &source, Map::new());
                cur = d2;
            }
            if supplements == 2 {
                anomalies.push("repeated_supplement");
            }
            if refuse {
                let Some(d) = wd(cur, 1) else { return Vec::new() };
                let at = zone.midnight(d) + 11 * HOUR_MS;
                let reason =
                    if denial { Map::new() } else { fields(&[("reason", json!("材料不符合法定形式"))]) };
                if denial {
                    anomalies.push("denial_without_reason");
                }
                ev.push(rng, "refused", at, &source, reason);
                truth.status = "refused";
                truth.closed_at = Some(zone.format(at));
                if intake_late {
                    anomalies.push("intake_overdue");
                }
                truth.anomalies = anomalies;
                return vec![(ev.out, truth)];
            }
            // The intake clock counts working days after the last received
            // supplement (or the submission); due on the 5th.
            let k = if intake_late { 6 + rng.below(3) as u32 } else { rng.below(4) as u32 };
            let Some(d) = wd(cur, k) else { return Vec::new() };
            acc_day = d;
            acc_at = (zone.midnight(d) + 9 * HOUR_MS + rng.below(7 * 60) as i64 * MIN).max(last + 30 * MIN);
            if intake_late {
                anomalies.push("intake_overdue");
            }
        }
        let mut acc = attrs.clone();
        let steps = Steps::accept(&mut aux, &source, window_no);
        acc.insert("channel".into(), json!(steps.accepted_channel));
        if let Some(st) = &steps.accepted_staff {
            acc.insert("staff".into(), json!(st));
        }
        truth.channel_accepted = Some(steps.accepted_channel);
        truth.staff = steps.accepted_staff.clone();
        if backdated {
            acc.insert("recorded_at".into(), json!(zone.format(acc_at + 30 * HOUR_MS)));
            anomalies.push("backdated_entry");
        }
        ev.push(rng, "accepted", acc_at, &source, acc);
        truth.accepted_at = Some(zone.format(acc_at));
        truth.limit_days = Some(n);
        if registered_late {
            ev.push(rng, "step_completed", acc_at + 10 * MIN, "center", fields(&[("step", json!("登记"))]));
        }
        let mut recent =
            Recent { applicant: applicant.clone(), item: item_idx, source: source.clone(), acc_at, withdrawn_at: None };

        // Withdrawn after acceptance: no figures beyond acceptance.
        if !overdue && !denial && !overcharge && !bad_rating && rng.chance(0.01) {
            // On the first charged day, or the same day for an immediate item
            // (which would be overdue the next day).
            let at = if n == 0 {
                acc_at + 30 * MIN
            } else {
                let Some(d) = wd(acc_day, 1) else { return Vec::new() };
                (zone.midnight(d) + 10 * HOUR_MS).max(acc_at + 30 * MIN)
            };
            ev.push(rng, "withdrawn", at, &source, Map::new());
            recent.withdrawn_at = Some(at);
            self.remember(recent);
            truth.status = "withdrawn";
            truth.closed_at = Some(zone.format(at));
            truth.anomalies = anomalies;
            return vec![(ev.out, truth)];
        }
        self.remember(recent);

        // Processing: completion on the `used`-th charged day.
        let used = if overdue {
            n + 1 + rng.below(3) as u32
        } else if n == 0 || rng.chance(0.2) {
            n
        } else {
            rng.below(n as u64) as u32
        };
        if overdue {
            anomalies.push("overdue");
        }
        // A stop of `len` working days starting at the s-th working day after acceptance (s ≤ used).
        let stop =
            (used >= 1 && rng.chance(0.12)).then(|| (1 + rng.below(used as u64) as u32, 1 + rng.below(3) as u32));
        let charged = |k: u32| -> Option<Day> {
            match stop {
                Some((s, len)) if k >= s => wd(acc_day, k + len),
                _ => wd(acc_day, k),
            }
        };
        let Some(due) = (if n == 0 { Some(acc_day) } else { charged(n) }) else { return Vec::new() };
        let Some(c_day) = (if used == 0 { Some(acc_day) } else { charged(used) }) else { return Vec::new() };
        if let Some((s, len)) = stop {
            let (Some(a), Some(b)) = (wd(acc_day, s), wd(acc_day, s + len - 1)) else { return Vec::new() };
            let (start, end) =
                if item.kind == ItemKind::ReportUp { ("escalated", "returned") } else { ("suspended", "resumed") };
            let reason = if start == "suspended" {
                fields(&[("reason", json!(STOP_REASONS[rng.below(STOP_REASONS.len() as u64) as usize]))])
            } else {
                Map::new()
            };
            ev.push(rng, start, zone.midnight(a) + 9 * HOUR_MS, &source, reason);
            ev.push(rng, end, zone.midnight(b) + 15 * HOUR_MS, &source, Map::new());
            truth.stopped_days = Some(len);
        } else {
            truth.stopped_days = Some(0);
        }
        let c_at = if used == 0 {
            acc_at + (30 + rng.below(90) as i64) * MIN
        } else {
            zone.midnight(c_day) + 16 * HOUR_MS + rng.below(60) as i64 * MIN
        };
        // Steps (steps.csv): step k completes on charged day C_k, the last
        // with the case. Each step takes its limit at most, unless injected
        // late (the first) or the case itself runs over (the last).
        let Some((marks, late)) =
            plan_steps(rd.steps.of(item_idx), used, late_step, &mut extra, &charged, acc_at, zone)
        else {
            return Vec::new();
        };
        for (at, name) in marks {
            ev.push(rng, "step_completed", at, &source, fields(&[("step", json!(name))]));
        }
        if late {
            anomalies.push("step_overdue");
        }
        let denied = denial || rng.chance(0.03);
        let mut done = fields(&[("result", json!(if denied { "denied" } else { "approved" }))]);
        let done_channel = steps.complete_channel(&mut aux, &source, used == 0);
        done.insert("channel".into(), json!(done_channel));
        truth.channel_completed = Some(done_channel);
        // The official who finished it: at the window, one of its seats; a
        // departmental system sends no staff one time in four.
        if source == "center" || aux.chance(0.75) {
            let st = staff_code(window_no, aux.below(SEATS));
            done.insert("staff".into(), json!(st));
            truth.staff = Some(st);
        }
        if denied && !denial {
            done.insert("reason".into(), json!("不符合法定条件"));
        }
        if denial {
            anomalies.push("denial_without_reason");
        }
        let fee = if overcharge {
            anomalies.push("overcharge");
            Some(item.fee_yuan + 20.0)
        } else {
            (item.fee_yuan > 0.0).then_some(item.fee_yuan)
        };
        if let Some(f) = fee {
            done.insert("fee_yuan".into(), json!(f));
        }
        ev.push(rng, "completed", c_at, &source, done);
        truth.completed_at = Some(zone.format(c_at));
        truth.closed_at = truth.completed_at.clone();
        truth.result = Some(if denied { "denied" } else { "approved" });
        truth.due_date = Some(due.to_string());
        truth.used_days = Some(used);
        truth.on_time = Some(used <= n);
        truth.early = Some(n >= 1 && used < n);
        truth.fee_yuan = fee;

        // Rating.
        if bad_rating || rng.chance(0.6) {
            let rating = if bad_rating {
                1 + rng.below(2) as u8
            } else if rng.chance(0.02) {
                2
            } else {
                3 + rng.below(3) as u8
            };
            let r_at = c_at + (1 + rng.below(48) as i64) * HOUR_MS;
            // The rectify window must lie inside the calendar for the truth to hold.
            if wd(zone.day_of(r_at), 17).is_none() {
                return Vec::new();
            }
            ev.push(rng, "evaluated", r_at, &eval_source, fields(&[("rating", json!(rating))]));
            truth.rating = Some(rating);
            truth.rated_at = Some(zone.format(r_at));
            if bad_rating {
                anomalies.push("bad_rating_unrectified");
            } else if rating <= 2 {
                ev.push(rng, "rectified", r_at + 26 * HOUR_MS, &source, Map::new());
            }
        }
        truth.anomalies = anomalies;
        let unlisted = unlisted && !joint && dual_source.is_none();
        if unlisted {
            make_unlisted(&mut ev.out, &mut truth, &item.item_code, no);
            // Not a dual intake's earlier case: its item is no longer that item.
            self.recent.retain(|r| !(r.applicant == applicant && r.item == item_idx));
        }
        let mut planned = vec![(ev.out, truth)];

        // Sub-cases of a joint case: other departments' items, registered
        // through the parent's centre acceptance, completed on time.
        if joint {
            let mut others: Vec<&String> = self.sub_items.keys().filter(|d| **d != dept).collect();
            others.sort();
            for k in 1..=1 + rng.below(2) {
                let Some(sd) = others.get(rng.below(others.len() as u64) as usize) else { break };
                let list = &self.sub_items[*sd];
                let sub_item_idx = list[rng.below(list.len() as u64) as usize];
                let sub_item = &items[sub_item_idx as usize];
                let sub_id = format!("{case_id}-S{k}");
                let sub_source = format!("{sd}-sys");
                // The sub-case is the other department's: its window and an official of it.
                let sub_window = self.window_of(sd, window_draw);
                let sub_staff = staff_code(sub_window, aux.below(SEATS));
                let mut sub = Events { case: sub_id.clone(), n: 0, zone, out: Vec::new() };
                let s_acc = acc_at + HOUR_MS;
                let a = fields(&[
                    ("region", json!(region)),
                    ("department", json!(sd)),
                    ("window", json!(window_code(sub_window))),
                    ("item_code", json!(sub_item.item_code)),
                    ("applicant", json!(format!("{applicant}-{k}"))),
                    ("parent_case_id", json!(case_id)),
                    ("staff", json!(sub_staff)),
                ]);
                sub.push(rng, "accepted", s_acc, &sub_source, a);
                let sn = sub_item.promised_days;
                let mut su = rng.below(sn as u64 + 1) as u32;
                if k == 1 && late_sub {
                    // Completed on the 1st or 2nd working day after the
                    // parent's due date: su = its charged day number.
                    let Some(c) = wd(due, 1 + extra.below(2) as u32) else { continue };
                    let Some(k) = (1..=80).find(|&k| wd(acc_day, k) == Some(c)) else { continue };
                    su = k;
                }
                let (Some(s_due), Some(s_c)) = (wd(acc_day, sn), if su == 0 { Some(acc_day) } else { wd(acc_day, su) })
                else {
                    continue;
                };
                let mut s_anomalies = if su > sn { vec!["overdue"] } else { Vec::new() };
                let s_charged = |k: u32| wd(acc_day, k);
                let Some((marks, late)) =
                    plan_steps(rd.steps.of(sub_item_idx), su, false, &mut extra, &s_charged, s_acc, zone)
                else {
                    continue;
                };
                for (at, name) in marks {
                    sub.push(rng, "step_completed", at, &sub_source, fields(&[("step", json!(name))]));
                }
                if late {
                    s_anomalies.push("step_overdue");
                }
                let s_c_at = if su == 0 { s_acc + 60 * MIN } else { zone.midnight(s_c) + 15 * HOUR_MS };
                sub.push(rng, "completed", s_c_at, &sub_source, fields(&[("result", json!("approved"))]));
                let sub_done_channel = "back_office";
                planned.push((
                    sub.out,
                    Truth {
                        case_id: sub_id,
                        parent_case_id: Some(case_id.clone()),
                        department: (*sd).clone(),
                        region: region.clone(),
                        window: window_code(sub_window),
                        item_code: sub_item.item_code.clone(),
                        kind: sub_item.kind.as_str(),
                        source: sub_source,
                        submitted_at: None,
                        accepted_at: Some(zone.format(s_acc)),
                        status: "completed",
                        completed_at: Some(zone.format(s_c_at)),
                        closed_at: Some(zone.format(s_c_at)),
                        rated_at: None,
                        result: Some("approved"),
                        limit_days: Some(sn),
                        due_date: Some(s_due.to_string()),
                        used_days: Some(su),
                        stopped_days: Some(0),
                        on_time: Some(su <= sn),
                        early: Some(su < sn),
                        fee_yuan: None,
                        rating: None,
                        anomalies: s_anomalies,
                        made_parent_late: s_c > due,
                        channel_accepted: Some("back_office"),
                        channel_completed: Some(sub_done_channel),
                        staff: Some(sub_staff.clone()),
                    },
                ));
            }
        }
        planned
    }

    /// Window `draw` (0–11) of a department's windows (W01 when the
    /// department has none: not in the catalogue).
    fn window_of(&self, dept: &str, draw: u64) -> u32 {
        match self.windows.get(dept) {
            Some(w) if !w.is_empty() => w[(draw % w.len() as u64) as usize],
            _ => 1,
        }
    }

    fn remember(&mut self, r: Recent) {
        self.recent.push_back(r);
        if self.recent.len() > 64 {
            self.recent.pop_front();
        }
    }
}

/// Turns a planned completed case into one of an item outside the catalogue
/// (`UNL-` + the item's code): its events name that code, and its truth
/// has no time limit and no steps — no clock, step or fee anomaly, no due
/// date, no on-time —
/// and `unlisted_item` instead.
fn make_unlisted(out: &mut [(Instant, String)], truth: &mut Truth, code: &str, no: usize) {
    let from = format!("\"item_code\":\"{code}\"");
    let unl = format!("UNL-{code}-{}", no % 7);
    let to = format!("\"item_code\":\"{unl}\"");
    for (_, line) in out.iter_mut() {
        if line.contains(&from) {
            *line = line.replace(&from, &to);
        }
    }
    truth.item_code = unl;
    truth.kind = "unlisted";
    truth.limit_days = None;
    truth.due_date = None;
    truth.on_time = None;
    truth.early = None;
    truth.anomalies.retain(|a| !matches!(*a, "overdue" | "intake_overdue" | "overcharge" | "step_overdue"));
    truth.anomalies.push("unlisted_item");
}

/// The `step_completed` marks of a case of an item with `steps` that uses
/// `used` charged days (`charged(k)` = its k-th charged day), accepted at
/// `acc_at`: step k completes on charged day C_k, the last with the case
/// (no mark). Each step takes its limit at most, except the first when
/// `late_first` (one or two days over) and the last, which takes what is
/// left. Also whether a step runs over its limit (`step_overdue`). None when
/// the calendar does not reach.
fn plan_steps<'s>(
    steps: &'s [crate::reference::Step],
    used: u32,
    late_first: bool,
    extra: &mut Rng,
    charged: &dyn Fn(u32) -> Option<Day>,
    acc_at: Instant,
    zone: &Zone,
) -> Option<(Vec<(Instant, &'s str)>, bool)> {
    let mut marks = Vec::new();
    let mut late = false;
    let mut left = used;
    let mut at_k = 0;
    for (k, s) in steps.iter().enumerate() {
        let d = if k + 1 == steps.len() {
            left
        } else if k == 0 && late_first && left > s.limit_days {
            (s.limit_days + 1 + extra.below(2) as u32).min(left)
        } else {
            s.limit_days.min(left)
        };
        left -= d;
        at_k += d;
        late |= d > s.limit_days;
        if k + 1 == steps.len() {
            break;
        }
        // On the acceptance day just after it (a same-day completion comes
        // 30 minutes or more after), else at 11:00 of the charged day.
        let at = if at_k == 0 {
            acc_at + (1 + k as i64) * MIN
        } else {
            zone.midnight(charged(at_k)?) + 11 * HOUR_MS + k as i64 * MIN
        };
        marks.push((at, s.name.as_str()));
    }
    Some((marks, late))
}

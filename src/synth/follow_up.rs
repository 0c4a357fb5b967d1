//! What the supervision bureau adds to the simulated stream
//! (`follow-up.md`): complaints about cases (效能投诉), some upheld, some
//! answered after their due date, and notices (督办) on cases that went
//! overdue, some answered late. Each is recorded in the truth: a late
//! complaint as its own truth with `complaint_overdue`, a late notice as
//! `notice_overdue` on its case's truth.
//!
//! Drawn from a random stream of its own, so the departmental events of a
//! seed are the same with or without them.

use super::plan::Truth;
use super::Rng;
use crate::reference::RefData;
use crate::time::{Day, Instant, Zone, HOUR_MS};
use serde_json::json;

/// Working days to answer a complaint (`rules.complaint_days` by default).
const COMPLAINT_DAYS: u32 = 5;

const CATEGORIES: [&str; 6] = ["delay", "attitude", "fee", "dual_intake", "outside_hall", "other"];

/// The bureau's side of the simulation.
pub struct Bureau {
    rng: Rng,
    /// Share of cases complained about.
    complaint_rate: f64,
    /// Share of overdue cases that get a notice.
    notice_rate: f64,
}

/// Events of the bureau, in time order of their own (not delayed, never
/// repeated), and the truths of new complaints.
pub type Planned = (Vec<(Instant, String)>, Vec<Truth>);

fn line(id: String, case: &str, kind: &str, at: Instant, zone: &Zone, extra: serde_json::Value) -> (Instant, String) {
    let mut v =
        json!({"event_id": id, "case_id": case, "type": kind, "occurred_at": zone.format(at), "source": "bureau"});
    if let (Some(m), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(x.clone());
    }
    (at, v.to_string())
}

impl Bureau {
    /// A bureau drawing from `seed`.
    pub fn new(seed: u64, complaint_rate: f64, notice_rate: f64) -> Bureau {
        Bureau { rng: Rng::new(seed ^ 0xB0EA_u64.rotate_left(40)), complaint_rate, notice_rate }
    }

    /// The bureau's events about a case just planned (its events `events`,
    /// its truth `truth`, to which a late notice is added).
    pub fn plan(&mut self, rd: &RefData, zone: &Zone, truth: &mut Truth, events: &[(Instant, String)]) -> Planned {
        let mut out = (Vec::new(), Vec::new());
        let Some(first) = events.iter().map(|e| e.0).min() else { return out };
        let cal = &rd.calendar;
        // A complaint some days after the case began.
        if self.rng.chance(self.complaint_rate) {
            let filed_day = Day(zone.day_of(first).0 + 1 + self.rng.below(10) as i32);
            let late = self.rng.chance(0.25);
            let k = if late { 6 + self.rng.below(3) as u32 } else { 1 + self.rng.below(COMPLAINT_DAYS as u64) as u32 };
            if let (Ok(due), Ok(answered_day)) =
                (cal.nth_working_after(filed_day, COMPLAINT_DAYS), cal.nth_working_after(filed_day, k))
            {
                let id = format!("TS-{}", truth.case_id);
                let filed = zone.midnight(filed_day) + 9 * HOUR_MS + self.rng.below(8 * 60) as i64 * 60_000;
                let answered = zone.midnight(answered_day) + 15 * HOUR_MS;
                let category = if truth.anomalies.contains(&"overdue") {
                    "delay"
                } else {
                    CATEGORIES[self.rng.below(CATEGORIES.len() as u64) as usize]
                };
                let finding = ["upheld", "partly_upheld", "not_upheld", "not_upheld"][self.rng.below(4) as usize];
                let mut filing = json!({"region": truth.region, "department": truth.department,
                                        "complaint_category": category, "about_case_id": truth.case_id});
                if !truth.window.is_empty() {
                    filing["window"] = json!(truth.window);
                }
                out.0.push(line(format!("{id}-1"), &id, "complaint_filed", filed, zone, filing));
                out.0.push(line(
                    format!("{id}-2"),
                    &id,
                    "complaint_answered",
                    answered,
                    zone,
                    json!({"finding": finding}),
                ));
                out.1.push(Truth {
                    case_id: id,
                    parent_case_id: None,
                    department: truth.department.clone(),
                    region: truth.region.clone(),
                    window: truth.window.clone(),
                    item_code: String::new(),
                    kind: "complaint",
                    source: "bureau".into(),
                    submitted_at: Some(zone.format(filed)),
                    accepted_at: None,
                    status: "answered",
                    completed_at: Some(zone.format(answered)),
                    result: None,
                    limit_days: None,
                    due_date: Some(due.to_string()),
                    used_days: None,
                    stopped_days: None,
                    on_time: Some(answered_day <= due),
                    early: None,
                    fee_yuan: None,
                    rating: None,
                    rated_at: None,
                    closed_at: Some(zone.format(answered)),
                    anomalies: if answered_day > due { vec!["complaint_overdue"] } else { vec![] },
                    made_parent_late: Default::default(),
                    channel_accepted: None,
                    channel_completed: None,
                    staff: None,
                });
            }
        }
        // A notice on an overdue case, the morning after its overdue card.
        let due = truth.due_date.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        if let Some(due) = due.filter(|_| truth.anomalies.contains(&"overdue")) {
            if self.rng.chance(self.notice_rate) {
                let issued_day = Day(Day::from_date(due).0 + 1);
                let days = [3, 5][self.rng.below(2) as usize];
                let late = self.rng.chance(0.3);
                let k = if late { days + 1 + self.rng.below(2) as u32 } else { 1 + self.rng.below(days as u64) as u32 };
                if let Ok(answered_day) = cal.nth_working_after(issued_day, k) {
                    let case = truth.case_id.clone();
                    let notice_id = format!("DB-{case}");
                    let issued = zone.midnight(issued_day) + 10 * HOUR_MS;
                    let answered = zone.midnight(answered_day) + 16 * HOUR_MS;
                    out.0.push(line(
                        format!("{case}-db1"),
                        &case,
                        "notice_issued",
                        issued,
                        zone,
                        json!({"notice_id": notice_id, "deadline_days": days, "reason": "超期未办结，限期说明"}),
                    ));
                    out.0.push(line(
                        format!("{case}-db2"),
                        &case,
                        "notice_answered",
                        answered,
                        zone,
                        json!({"notice_id": notice_id, "source": truth.source}),
                    ));
                    if late {
                        truth.anomalies.push("notice_overdue");
                    }
                }
            }
        }
        out
    }
}

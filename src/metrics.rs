//! Every Prometheus metric jiancha exports, declared in one place.
//!
//! Labels are bounded sets only — region, department, case kind, rule, level,
//! dead-letter reason, partition — never a case id or an applicant. Names
//! follow Prometheus conventions: `jiancha_` prefix, `_total` on counters,
//! seconds as the time unit.
//!
//! Two families:
//! - **pipeline health**, updated by the shell as it works (events read,
//!   applied, duplicated, dead-lettered; lag; watermark delay; open cases;
//!   timers; processing latency; checkpoint age);
//! - **supervision figures**: counters of intake, completions and cards as
//!   they happen, and the monthly briefing's figures per region and
//!   department as gauges, set from the very SQL file the report runs (see
//!   [`crate::serve::figures`]), so Grafana and the monthly report cannot
//!   disagree.

use crate::alert::{AlertRecord, AlertState};
use crate::engine::Outcome;
use crate::event::{Event, EventType};
use crate::reference::RefData;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The briefing figures exported as gauges `jiancha_briefing_<name>`:
/// (column of `monthly-briefing.sql`, metric name suffix, help).
pub const FIGURES: [(&str, &str, &str); 20] = [
    ("accepted", "accepted_cases", "受理量: cases accepted this month"),
    ("completed", "completed_cases", "办结量: cases completed this month"),
    ("on_time_rate", "on_time_rate", "按时办结率: on-time completions / completions, 0-1"),
    ("early_rate", "early_rate", "提前办结率: early completions / completions with a limit, 0-1"),
    ("onsite_rate", "onsite_rate", "现场办结率: completed at the window the day accepted / completions, 0-1"),
    ("online_rate", "online_rate", "网上办理率: cases accepted online / accepted cases, 0-1"),
    ("immediate_share", "immediate_share", "即办件比率: immediate cases / accepted cases, 0-1"),
    ("immediate_item_share", "immediate_item_share", "即办事项比率: immediate catalogue items / catalogue items, 0-1"),
    (
        "in_hall_item_share",
        "in_hall_item_share",
        "进厅事项比率: catalogue items handled in the hall / catalogue items, 0-1",
    ),
    ("within_10_days_rate", "within_10_workdays_rate", "10个工作日内办结率: used days <= 10 / completions, 0-1"),
    ("avg_used_days", "avg_used_workdays", "平均办理时长: mean used working days of completions"),
    ("overdue_open", "overdue_open_cases", "超期在办件: open cases past their due date"),
    ("compression_rate", "compression_rate", "承诺时限压缩率: 1 - promised / statutory days, 0-1"),
    ("evaluation_rate", "evaluation_rate", "评议率: completions with a rating / completions, 0-1"),
    ("good_rating_rate", "good_rating_rate", "好评率: ratings 3-5 / ratings, 0-1"),
    ("red_alerts", "red_cards", "红牌: red cards raised this month, not retracted"),
    ("yellow_alerts", "yellow_cards", "黄牌: yellow cards raised this month, not retracted"),
    ("deducted_points", "deducted_points", "扣分: points the performance office deducted this month (deductions.csv)"),
    ("score", "score", "综合得分: the briefing's weighted score"),
    ("rank", "rank", "排名: rank of the score within the region, 1 = best"),
];

/// The registry and every metric in it.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Events read from the source (file line, Kafka message, simulator).
    pub events_read: IntCounter,
    /// Events applied by the engine.
    pub events_applied: IntCounter,
    /// Events dropped as repeats of an event id already seen.
    pub events_duplicate: IntCounter,
    /// Events dead-lettered, by reason.
    pub events_dead_lettered: IntCounterVec,
    /// Consumer lag per partition, in messages.
    pub consumer_lag: IntGaugeVec,
    /// Wall (or demo) clock minus the watermark, seconds.
    pub watermark_delay: prometheus::Gauge,
    /// Open cases in memory.
    pub open_cases: IntGauge,
    /// Timers (deadlines) pending.
    pub pending_timers: IntGauge,
    /// Time to apply one event and carry out its effects, seconds.
    pub processing_latency: Histogram,
    /// Seconds since the last checkpoint (Kafka) or history flush (demo).
    pub checkpoint_age: prometheus::Gauge,
    /// Time a checkpoint holds the consuming loop (Kafka): publishing,
    /// history and the cut of the state; its writing is off the loop.
    pub checkpoint_stall: Histogram,
    /// The last year with a calendar file.
    pub calendar_last_year: IntGauge,
    /// `jiancha_calendar_provisional_year`.
    pub calendar_provisional_year: IntGauge,
    /// 1, labelled with the version.
    pub build_info: IntGaugeVec,
    /// 1 per department of `departments.csv`, labelled with its name: the
    /// dashboards join it to show names beside codes.
    pub department_info: IntGaugeVec,
    /// Cases accepted, by region, department and kind.
    pub cases_accepted: IntCounterVec,
    /// Cases completed, by region, department and kind.
    pub cases_completed: IntCounterVec,
    /// Alert records by rule, level, region, department and state.
    pub alert_records: IntCounterVec,
    /// Alerts firing now, by rule, level, region and department.
    pub alerts_firing: IntGaugeVec,
    /// The briefing figures of the current month, by region and department.
    pub briefing: Vec<(&'static str, GaugeVec)>,
    /// The on-time rate target the dashboards draw against.
    pub on_time_target: prometheus::Gauge,
    /// Unix time the figures were last computed.
    pub figures_updated: prometheus::Gauge,
    /// Alert records pushed to Alertmanager, by outcome: `sent`, `failed`
    /// (an attempt that will be retried), `rejected` (refused as invalid,
    /// not sent again), `missed` (left the feed before they were pushed).
    pub alertmanager_pushes: IntCounterVec,
    /// Events (or records) the source could not read (broker errors).
    pub source_errors: IntCounter,
    /// Open complaints (效能投诉), and those of them past their due date, by
    /// region and department: `[open, overdue]`.
    pub complaints: [IntGaugeVec; 2],
    /// Open supervision notices (督办), and those of them past their due
    /// date, by region and department: `[open, overdue]`.
    pub notices: [IntGaugeVec; 2],
}

const PLACE: [&str; 2] = ["region", "department"];
const CARD: [&str; 4] = ["rule", "level", "region", "department"];

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Gauge {
    let g = prometheus::Gauge::new(name, help).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

impl Metrics {
    /// The calendar gauges: the last official year, the last provisional one.
    pub fn set_calendar(&self, cal: &crate::calendar::Calendar) {
        self.calendar_last_year.set(cal.years().max().map_or(0, i64::from));
        self.calendar_provisional_year.set(cal.provisional_years().max().map_or(0, i64::from));
    }

    /// `jiancha_department_info` as the departments' names are now.
    pub fn set_departments(&self, d: &crate::reference::Departments) {
        self.department_info.reset();
        for row in d.rows() {
            self.department_info.with_label_values(&[row.code.as_str(), row.name.as_str()]).set(1);
        }
    }

    /// Every metric, registered; `refdata` gives the calendar's last year.
    pub fn new(refdata: &RefData) -> Metrics {
        let r = Registry::new();
        let processing_latency = Histogram::with_opts(
            HistogramOpts::new(
                "jiancha_processing_latency_seconds",
                "Time to apply one event and carry out its effects",
            )
            .buckets(vec![0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0]),
        )
        .expect("metric");
        r.register(Box::new(processing_latency.clone())).expect("register");
        let checkpoint_stall = Histogram::with_opts(
            HistogramOpts::new(
                "jiancha_checkpoint_stall_seconds",
                "Time a checkpoint holds the consuming loop (its writing is off the loop)",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .expect("metric");
        r.register(Box::new(checkpoint_stall.clone())).expect("register");
        let briefing = FIGURES
            .iter()
            .map(|(col, name, help)| {
                let g = GaugeVec::new(Opts::new(format!("jiancha_briefing_{name}"), *help), &PLACE).expect("metric");
                r.register(Box::new(g.clone())).expect("register");
                (*col, g)
            })
            .collect();
        let m = Metrics {
            events_read: counter(&r, "jiancha_events_read_total", "Events read from the source"),
            events_applied: counter(&r, "jiancha_events_applied_total", "Events applied by the rules engine"),
            events_duplicate: counter(&r, "jiancha_events_duplicate_total", "Events dropped as repeated event ids"),
            events_dead_lettered: counter_vec(
                &r,
                "jiancha_events_dead_lettered_total",
                "Events dead-lettered, by reason",
                &["reason"],
            ),
            consumer_lag: int_gauge_vec(
                &r,
                "jiancha_consumer_lag_messages",
                "Messages not yet consumed, per partition",
                &["partition"],
            ),
            watermark_delay: gauge(
                &r,
                "jiancha_watermark_delay_seconds",
                "Clock minus the event-time watermark (the demo's clock in the demo)",
            ),
            open_cases: int_gauge(&r, "jiancha_open_cases", "Cases open in memory"),
            pending_timers: int_gauge(&r, "jiancha_pending_timers", "Deadlines waiting to fire"),
            processing_latency,
            checkpoint_stall,
            checkpoint_age: gauge(
                &r,
                "jiancha_checkpoint_age_seconds",
                "Seconds since the state was last made durable (checkpoint, or history flush in the demo)",
            ),
            calendar_last_year: int_gauge(
                &r,
                "jiancha_calendar_last_year",
                "The last year with an official holiday calendar file loaded",
            ),
            calendar_provisional_year: int_gauge(
                &r,
                "jiancha_calendar_provisional_year",
                "The last year judged on a provisional calendar (statutory holidays only, its file missing); 0: none",
            ),
            build_info: int_gauge_vec(&r, "jiancha_build_info", "Always 1; the version as a label", &["version"]),
            department_info: int_gauge_vec(
                &r,
                "jiancha_department_info",
                "Always 1; a department's name (departments.csv) as a label",
                &["department", "name"],
            ),
            cases_accepted: counter_vec(
                &r,
                "jiancha_cases_accepted_total",
                "Cases accepted (受理)",
                &["region", "department", "kind"],
            ),
            cases_completed: counter_vec(
                &r,
                "jiancha_cases_completed_total",
                "Cases completed (办结)",
                &["region", "department", "kind"],
            ),
            alert_records: counter_vec(
                &r,
                "jiancha_alert_records_total",
                "Alert records published (state firing, resolved or retracted)",
                &["rule", "level", "region", "department", "state"],
            ),
            alerts_firing: int_gauge_vec(&r, "jiancha_alerts_firing", "Alerts (cards) firing now", &CARD),
            briefing,
            on_time_target: gauge(&r, "jiancha_on_time_rate_target", "The on-time rate target, 0-1"),
            figures_updated: gauge(
                &r,
                "jiancha_figures_updated_timestamp_seconds",
                "Unix time the briefing figures were last computed",
            ),
            alertmanager_pushes: counter_vec(
                &r,
                "jiancha_alertmanager_pushes_total",
                "Alert records pushed to Alertmanager, by outcome",
                &["outcome"],
            ),
            source_errors: counter(&r, "jiancha_source_errors_total", "Errors reading the source (broker)"),
            complaints: [
                int_gauge_vec(&r, "jiancha_complaints_open", "效能投诉: complaints not yet answered", &PLACE),
                int_gauge_vec(
                    &r,
                    "jiancha_complaints_overdue",
                    "投诉超时: complaints not answered by their due date",
                    &PLACE,
                ),
            ],
            notices: [
                int_gauge_vec(&r, "jiancha_notices_open", "督办: supervision notices not yet answered", &PLACE),
                int_gauge_vec(
                    &r,
                    "jiancha_notices_overdue",
                    "督办超时: notices not answered by their due date",
                    &PLACE,
                ),
            ],
            registry: r,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.set_calendar(&refdata.calendar);
        m.set_departments(&refdata.departments.get());
        for outcome in ["sent", "failed", "rejected", "missed"] {
            m.alertmanager_pushes.with_label_values(&[outcome]);
        }
        for reason in crate::deadletter::DeadReason::ALL {
            m.events_dead_lettered.with_label_values(&[reason.as_str()]);
        }
        m
    }

    /// The intake or completion counter an event moves if applied, looked
    /// up before the engine takes the event.
    pub fn counter_for(&self, ev: &Event, refdata: &RefData) -> Option<IntCounter> {
        let c = match ev.kind {
            EventType::Accepted => &self.cases_accepted,
            EventType::Completed => &self.cases_completed,
            _ => return None,
        };
        let kind = ev.item.map_or("", |i| refdata.catalog.item(i).kind.as_str());
        Some(c.with_label_values(&[ev.region.as_deref().unwrap_or(""), ev.department.as_deref().unwrap_or(""), kind]))
    }

    /// Counts what became of one event handed to the engine, `took` long;
    /// `counter` from [`Metrics::counter_for`].
    pub fn outcome(&self, outcome: Outcome, counter: Option<IntCounter>, took: std::time::Duration) {
        match outcome {
            Outcome::Applied => {
                self.events_applied.inc();
                if let Some(c) = counter {
                    c.inc();
                }
            }
            Outcome::Duplicate => self.events_duplicate.inc(),
            Outcome::Held => {}
        }
        self.processing_latency.observe(took.as_secs_f64());
    }

    /// Counts one alert record and keeps the firing gauge.
    pub fn alert(&self, r: &AlertRecord, previous: Option<AlertState>) {
        let region = r.region.as_deref().unwrap_or("");
        let dept = r.department.as_deref().unwrap_or("");
        let labels = [r.rule.as_str(), r.level.as_str(), region, dept];
        self.alert_records.with_label_values(&[labels[0], labels[1], region, dept, r.state.as_str()]).inc();
        let firing = self.alerts_firing.with_label_values(&labels);
        let was = previous == Some(AlertState::Firing);
        let is = r.state == AlertState::Firing;
        if is && !was {
            firing.inc();
        } else if was && !is {
            firing.dec();
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

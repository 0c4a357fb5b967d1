//! Arrow schemas of the history tables, and row builders for them.
//!
//! Storage is append-only: `events` (one row per event read and handed to the
//! engine, with its run and input position), `rejected_events` (the run and
//! input position of each of those events that ended up not in effect:
//! dead-lettered by the engine — invalid at its place after its hold, or
//! undone by a late arrival — or still held at the end of a replay),
//! `alert_records` (one row per published alert record) and `case_versions`
//! (one row each time a case's row changes). SQL sees `events` (the stored
//! events minus the rejected ones), `cases` (the latest version of each case)
//! and `alerts` (one row per alert) as views over them.

use crate::alert::AlertRecord;
use crate::engine::CaseView;
use crate::event::Event;
use crate::privacy::hex32_in;
use crate::reference::Catalog;
use crate::time::{Day, Instant};
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

fn ts(zone: &str) -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(zone.into()))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// `events`: every field of the event contract (applicant as its hash).
pub fn events(zone: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        utf8("case_id", false),
        utf8("type", false),
        Field::new("occurred_at", ts(zone), false),
        Field::new("occurred_date", DataType::Date32, false),
        Field::new("recorded_at", ts(zone), true),
        utf8("source", false),
        utf8("region", true),
        utf8("department", true),
        utf8("window", true),
        utf8("item_code", true),
        utf8("applicant", true),
        utf8("parent_case_id", true),
        utf8("reason", true),
        utf8("result", true),
        Field::new("fee_yuan", DataType::Float64, true),
        Field::new("rating", DataType::Int32, true),
        utf8("step", true),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        Field::new("run", DataType::UInt64, true),
        Field::new("origin", DataType::UInt64, true),
        // Last, and nullable: parts written before follow-up.md have none.
        utf8("complaint_category", true),
        utf8("about_case_id", true),
        utf8("finding", true),
        Field::new("deadline_days", DataType::Int32, true),
        utf8("notice_id", true),
        // Last, and nullable: parts written before them have none.
        utf8("channel", true),
        utf8("staff", true),
    ]))
}

/// `rejected_events`: stored events (by run and input position) that are not
/// in effect after all.
pub fn rejected_events() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run", DataType::UInt64, false),
        Field::new("origin", DataType::UInt64, false),
    ]))
}

/// `alert_records`: every published alert record.
pub fn alert_records(zone: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("alert_id", false),
        utf8("rule", false),
        utf8("level", false),
        utf8("state", false),
        Field::new("at", ts(zone), false),
        Field::new("at_date", DataType::Date32, false),
        utf8("case_id", false),
        utf8("region", true),
        utf8("department", true),
        utf8("window", true),
        utf8("item_code", true),
        Field::new("due_date", DataType::Date32, true),
        Field::new("retracted", DataType::Boolean, false),
        utf8("earlier_case_id", true),
    ]))
}

/// `case_versions`: the `cases` columns of interfaces.md, plus local dates
/// for period filters and a version number.
pub fn case_versions(zone: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("case_id", false),
        utf8("parent_case_id", true),
        utf8("region", true),
        utf8("department", true),
        utf8("window", true),
        utf8("item_code", true),
        utf8("kind", true),
        utf8("applicant_hash", true),
        Field::new("submitted_at", ts(zone), true),
        Field::new("accepted_at", ts(zone), true),
        Field::new("accepted_date", DataType::Date32, true),
        Field::new("limit_days", DataType::Int32, true),
        Field::new("statutory_days", DataType::Int32, true),
        Field::new("due_date", DataType::Date32, true),
        utf8("status", false),
        utf8("result", true),
        Field::new("completed_at", ts(zone), true),
        Field::new("completed_date", DataType::Date32, true),
        Field::new("closed_at", ts(zone), true),
        Field::new("closed_date", DataType::Date32, true),
        Field::new("on_time", DataType::Boolean, true),
        Field::new("early", DataType::Boolean, true),
        Field::new("used_days", DataType::Int32, true),
        Field::new("stopped_days", DataType::Int32, true),
        Field::new("overdue", DataType::Boolean, false),
        Field::new("fee_yuan", DataType::Float64, true),
        Field::new("rating", DataType::Int32, true),
        Field::new("version", DataType::UInt64, false),
        // Last, and nullable: parts written before them have none.
        Field::new("provisional_calendar", DataType::Boolean, true),
        // The step clock (环节时限); nullable, after the rest, for the same reason.
        utf8("current_step", true),
        Field::new("step_due_date", DataType::Date32, true),
        utf8("step_used_days", true),
        // Joint parents (follow-up.md): sub-cases that made them late.
        Field::new("late_sub_cases", DataType::Int32, true),
        utf8("late_departments", true),
        utf8("late_sub_case_ids", true),
        utf8("channel_accepted", true),
        utf8("channel_completed", true),
        utf8("staff", true),
    ]))
}

/// `notice_versions`: the supervision notices of a case each time the case's
/// row changes (a case with notices only), with the case's version number;
/// the `notices` view keeps the latest version's.
pub fn notice_versions(zone: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("notice_id", false),
        utf8("case_id", false),
        utf8("region", true),
        utf8("department", true),
        utf8("window", true),
        Field::new("issued_at", ts(zone), false),
        Field::new("issued_date", DataType::Date32, false),
        Field::new("deadline_days", DataType::Int32, false),
        Field::new("due_date", DataType::Date32, true),
        Field::new("answered_at", ts(zone), true),
        Field::new("answered_date", DataType::Date32, true),
        Field::new("overdue", DataType::Boolean, false),
        Field::new("version", DataType::UInt64, false),
    ]))
}

/// Rows of `notice_versions` being collected.
pub struct NoticeRows {
    schema: SchemaRef,
    s: [StringBuilder; 5],
    t: [TimestampMillisecondBuilder; 2],
    d: [Date32Builder; 3],
    deadline: Int32Builder,
    overdue: BooleanBuilder,
    version: UInt64Builder,
    /// Rows collected.
    pub len: usize,
}

impl NoticeRows {
    /// Empty rows for a zone.
    pub fn new(zone: &str) -> NoticeRows {
        NoticeRows {
            schema: notice_versions(zone),
            s: Default::default(),
            t: std::array::from_fn(|_| TimestampMillisecondBuilder::new().with_timezone(zone)),
            d: Default::default(),
            deadline: Int32Builder::new(),
            overdue: BooleanBuilder::new(),
            version: UInt64Builder::new(),
            len: 0,
        }
    }

    /// Adds the notices of a version of a case; `day_of` gives local dates.
    pub fn push(&mut self, v: &CaseView, version: u64, day_of: impl Fn(Instant) -> Day) {
        for (n, id) in v.summary.notices.iter().zip(&v.notices) {
            self.s[0].append_value(id);
            self.s[1].append_value(&v.case_id);
            self.s[2].append_option(v.region.as_deref());
            self.s[3].append_option(v.department.as_deref());
            self.s[4].append_option(v.window.as_deref());
            self.t[0].append_value(n.issued_at);
            self.d[0].append_value(day_of(n.issued_at).0);
            self.deadline.append_value(n.deadline_days as i32);
            self.d[1].append_option(n.due_date.map(|d| d.0));
            self.t[1].append_option(n.answered_at);
            self.d[2].append_option(n.answered_at.map(|t| day_of(t).0));
            self.overdue.append_value(n.overdue);
            self.version.append_value(version);
            self.len += 1;
        }
    }

    /// The collected rows as a batch, leaving this empty.
    pub fn finish(&mut self) -> RecordBatch {
        let s = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(s[0].finish()),
            Arc::new(s[1].finish()),
            Arc::new(s[2].finish()),
            Arc::new(s[3].finish()),
            Arc::new(s[4].finish()),
            Arc::new(self.t[0].finish()),
            Arc::new(self.d[0].finish()),
            Arc::new(self.deadline.finish()),
            Arc::new(self.d[1].finish()),
            Arc::new(self.t[1].finish()),
            Arc::new(self.d[2].finish()),
            Arc::new(self.overdue.finish()),
            Arc::new(self.version.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), cols).expect("notice batch matches its schema")
    }
}

/// Rows of `events` being collected.
pub struct EventRows {
    schema: SchemaRef,
    s: [StringBuilder; 15],
    occurred: TimestampMillisecondBuilder,
    occurred_date: Date32Builder,
    recorded: TimestampMillisecondBuilder,
    fee: Float64Builder,
    rating: Int32Builder,
    partition: Int32Builder,
    offset: Int64Builder,
    run: UInt64Builder,
    origin: UInt64Builder,
    /// complaint_category, about_case_id, finding, notice_id.
    follow_up: [StringBuilder; 4],
    deadline: Int32Builder,
    /// Rows collected.
    pub len: usize,
}

impl EventRows {
    /// Empty rows for a zone.
    pub fn new(zone: &str) -> EventRows {
        EventRows {
            schema: events(zone),
            s: Default::default(),
            occurred: TimestampMillisecondBuilder::new().with_timezone(zone),
            occurred_date: Date32Builder::new(),
            recorded: TimestampMillisecondBuilder::new().with_timezone(zone),
            fee: Float64Builder::new(),
            rating: Int32Builder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            run: UInt64Builder::new(),
            origin: UInt64Builder::new(),
            follow_up: Default::default(),
            deadline: Int32Builder::new(),
            len: 0,
        }
    }

    /// Adds an event on local date `day`; `kafka` is its (partition, offset)
    /// when it came from Kafka; `at` its (run, input position) when known,
    /// the key of `rejected_events`.
    pub fn push(&mut self, e: &Event, day: Day, catalog: &Catalog, kafka: Option<(i32, i64)>, at: Option<(u64, u64)>) {
        let s = &mut self.s;
        s[0].append_value(&e.event_id);
        s[1].append_value(&e.case_id);
        s[2].append_value(e.kind.as_str());
        s[3].append_value(&e.source);
        s[4].append_option(e.region.as_deref());
        s[5].append_option(e.department.as_deref());
        s[6].append_option(e.window.as_deref());
        s[7].append_option(e.item.map(|i| catalog.item(i).item_code.as_str()).or(e.unlisted_item.as_deref()));
        let mut buf = [0; 64];
        s[8].append_option(e.applicant.as_ref().map(|a| hex32_in(a, &mut buf)));
        s[9].append_option(e.parent_case_id.as_deref());
        s[10].append_option(e.reason.as_deref());
        s[11].append_option(e.result.map(|r| match r {
            crate::event::Decision::Approved => "approved",
            crate::event::Decision::Denied => "denied",
        }));
        s[12].append_option(e.step.as_deref());
        s[13].append_option(e.channel.map(|c| c.as_str()));
        s[14].append_option(e.staff.as_deref());
        self.occurred.append_value(e.occurred_at);
        self.occurred_date.append_value(day.0);
        self.recorded.append_option(e.recorded_at);
        self.fee.append_option(e.fee_yuan);
        self.rating.append_option(e.rating.map(i32::from));
        self.partition.append_option(kafka.map(|k| k.0));
        self.offset.append_option(kafka.map(|k| k.1));
        self.run.append_option(at.map(|a| a.0));
        self.origin.append_option(at.map(|a| a.1));
        let f = &mut self.follow_up;
        f[0].append_option(e.complaint_category.map(|c| c.as_str()));
        f[1].append_option(e.about_case_id.as_deref());
        f[2].append_option(e.finding.map(|x| x.as_str()));
        f[3].append_option(e.notice_id.as_deref());
        self.deadline.append_option(e.deadline_days.map(i32::from));
        self.len += 1;
    }

    /// The collected rows as a batch, leaving this empty.
    pub fn finish(&mut self) -> RecordBatch {
        let s = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(s[0].finish()),
            Arc::new(s[1].finish()),
            Arc::new(s[2].finish()),
            Arc::new(self.occurred.finish()),
            Arc::new(self.occurred_date.finish()),
            Arc::new(self.recorded.finish()),
            Arc::new(s[3].finish()),
            Arc::new(s[4].finish()),
            Arc::new(s[5].finish()),
            Arc::new(s[6].finish()),
            Arc::new(s[7].finish()),
            Arc::new(s[8].finish()),
            Arc::new(s[9].finish()),
            Arc::new(s[10].finish()),
            Arc::new(s[11].finish()),
            Arc::new(self.fee.finish()),
            Arc::new(self.rating.finish()),
            Arc::new(s[12].finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.run.finish()),
            Arc::new(self.origin.finish()),
            Arc::new(self.follow_up[0].finish()),
            Arc::new(self.follow_up[1].finish()),
            Arc::new(self.follow_up[2].finish()),
            Arc::new(self.deadline.finish()),
            Arc::new(self.follow_up[3].finish()),
            Arc::new(s[13].finish()),
            Arc::new(s[14].finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), cols).expect("events batch matches its schema")
    }
}

/// Rows of `alert_records` being collected.
pub struct AlertRows {
    schema: SchemaRef,
    s: [StringBuilder; 10],
    at: TimestampMillisecondBuilder,
    at_date: Date32Builder,
    due: Date32Builder,
    retracted: BooleanBuilder,
    /// Rows collected.
    pub len: usize,
}

fn parse_day(s: &str) -> Option<i32> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| Day::from_date(d).0)
}

impl AlertRows {
    /// Empty rows for a zone.
    pub fn new(zone: &str) -> AlertRows {
        AlertRows {
            schema: alert_records(zone),
            s: Default::default(),
            at: TimestampMillisecondBuilder::new().with_timezone(zone),
            at_date: Date32Builder::new(),
            due: Date32Builder::new(),
            retracted: BooleanBuilder::new(),
            len: 0,
        }
    }

    /// Adds a record whose `at` falls on local date `day`.
    pub fn push(&mut self, r: &AlertRecord, day: Day) {
        let s = &mut self.s;
        s[0].append_value(&r.alert_id);
        s[1].append_value(r.rule.as_str());
        s[2].append_value(r.level.as_str());
        s[3].append_value(r.state.as_str());
        s[4].append_value(&r.case_id);
        s[5].append_option(r.region.as_deref());
        s[6].append_option(r.department.as_deref());
        s[7].append_option(r.window.as_deref());
        s[8].append_option(r.item_code.as_deref());
        s[9].append_option(r.detail.earlier_case_id.as_deref());
        self.at.append_value(r.at_ms);
        self.at_date.append_value(day.0);
        self.due.append_option(r.due_date.as_deref().and_then(parse_day));
        self.retracted.append_value(r.retracted);
        self.len += 1;
    }

    /// The collected rows as a batch, leaving this empty.
    pub fn finish(&mut self) -> RecordBatch {
        let s = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(s[0].finish()),
            Arc::new(s[1].finish()),
            Arc::new(s[2].finish()),
            Arc::new(s[3].finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.at_date.finish()),
            Arc::new(s[4].finish()),
            Arc::new(s[5].finish()),
            Arc::new(s[6].finish()),
            Arc::new(s[7].finish()),
            Arc::new(s[8].finish()),
            Arc::new(self.due.finish()),
            Arc::new(self.retracted.finish()),
            Arc::new(s[9].finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), cols).expect("alert batch matches its schema")
    }
}

/// Rows of `case_versions` being collected.
pub struct CaseRows {
    schema: SchemaRef,
    s: [StringBuilder; 13],
    t: [TimestampMillisecondBuilder; 4],
    d: [Date32Builder; 4],
    i: [Int32Builder; 5],
    b: [BooleanBuilder; 4],
    fee: Float64Builder,
    version: UInt64Builder,
    /// `current_step`, `step_used_days`.
    steps: [StringBuilder; 2],
    step_due: Date32Builder,
    late_n: Int32Builder,
    /// `late_departments`, `late_sub_case_ids`.
    late: [StringBuilder; 2],
    /// Rows collected.
    pub len: usize,
}

impl CaseRows {
    /// Empty rows for a zone.
    pub fn new(zone: &str) -> CaseRows {
        CaseRows {
            schema: case_versions(zone),
            s: Default::default(),
            t: std::array::from_fn(|_| TimestampMillisecondBuilder::new().with_timezone(zone)),
            d: Default::default(),
            i: Default::default(),
            b: Default::default(),
            fee: Float64Builder::new(),
            version: UInt64Builder::new(),
            steps: Default::default(),
            step_due: Date32Builder::new(),
            late_n: Int32Builder::new(),
            late: Default::default(),
            len: 0,
        }
    }

    /// Adds a version of a case; `day_of` gives local dates.
    pub fn push(&mut self, v: &CaseView, catalog: &Catalog, version: u64, day_of: impl Fn(Instant) -> Day) {
        let sm = &v.summary;
        let item = sm.attrs.as_ref().and_then(|a| catalog.get(a.item));
        let s = &mut self.s;
        s[0].append_value(&v.case_id);
        s[1].append_option(v.parent_case_id.as_deref());
        s[2].append_option(v.region.as_deref());
        s[3].append_option(v.department.as_deref());
        s[4].append_option(v.window.as_deref());
        s[5].append_option(v.item_code.as_deref());
        s[6].append_option(item.map(|i| i.kind.as_str()).or(sm.status.complaint().then_some("complaint")));
        let mut buf = [0; 64];
        s[7].append_option(sm.attrs.as_ref().map(|a| hex32_in(&a.applicant, &mut buf)));
        s[8].append_value(sm.status.as_str());
        s[9].append_option(sm.result.map(|r| match r {
            crate::event::Decision::Approved => "approved",
            crate::event::Decision::Denied => "denied",
        }));
        s[10].append_option(sm.channel_accepted.map(|c| c.as_str()));
        s[11].append_option(sm.channel_completed.map(|c| c.as_str()));
        s[12].append_option(v.staff.as_deref());
        self.t[0].append_option(sm.submitted_at);
        self.t[1].append_option(sm.accepted_at);
        self.t[2].append_option(sm.completed_at);
        self.t[3].append_option(sm.closed_at);
        self.d[0].append_option(sm.accepted_at.map(|t| day_of(t).0));
        self.d[1].append_option(sm.due_date.map(|d| d.0));
        self.d[2].append_option(sm.completed_at.map(|t| day_of(t).0));
        self.d[3].append_option(sm.closed_at.map(|t| day_of(t).0));
        self.i[0].append_option(sm.limit_days.map(|n| n as i32));
        self.i[1].append_option(item.filter(|_| sm.accepted_at.is_some()).map(|i| i.statutory_days as i32));
        self.i[2].append_option(sm.used_days.map(|n| n as i32));
        self.i[3].append_option(sm.stopped_days.map(|n| n as i32));
        self.i[4].append_option(sm.rating.map(i32::from));
        self.b[0].append_option(sm.on_time);
        self.b[1].append_option(sm.early);
        self.b[2].append_value(sm.overdue);
        self.b[3].append_value(v.provisional_calendar);
        self.fee.append_option(sm.fee_yuan);
        self.version.append_value(version);
        self.steps[0].append_option(v.step.as_deref());
        self.step_due.append_option(sm.step_due_date.map(|d| d.0));
        self.steps[1].append_option(v.step_used_days.as_deref());
        let late = v.late_sub_cases.as_ref();
        self.late_n.append_option(late.map(|l| l.case_ids.len() as i32));
        self.late[0].append_option(late.map(|l| l.departments.join(",")));
        self.late[1].append_option(late.map(|l| l.case_ids.join(",")));
        self.len += 1;
    }

    /// The collected rows as a batch, leaving this empty.
    pub fn finish(&mut self) -> RecordBatch {
        let s = &mut self.s;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(s[0].finish()),
            Arc::new(s[1].finish()),
            Arc::new(s[2].finish()),
            Arc::new(s[3].finish()),
            Arc::new(s[4].finish()),
            Arc::new(s[5].finish()),
            Arc::new(s[6].finish()),
            Arc::new(s[7].finish()),
            Arc::new(self.t[0].finish()),
            Arc::new(self.t[1].finish()),
            Arc::new(self.d[0].finish()),
            Arc::new(self.i[0].finish()),
            Arc::new(self.i[1].finish()),
            Arc::new(self.d[1].finish()),
            Arc::new(s[8].finish()),
            Arc::new(s[9].finish()),
            Arc::new(self.t[2].finish()),
            Arc::new(self.d[2].finish()),
            Arc::new(self.t[3].finish()),
            Arc::new(self.d[3].finish()),
            Arc::new(self.b[0].finish()),
            Arc::new(self.b[1].finish()),
            Arc::new(self.i[2].finish()),
            Arc::new(self.i[3].finish()),
            Arc::new(self.b[2].finish()),
            Arc::new(self.fee.finish()),
            Arc::new(self.i[4].finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.b[3].finish()),
            Arc::new(self.steps[0].finish()),
            Arc::new(self.step_due.finish()),
            Arc::new(self.steps[1].finish()),
            Arc::new(self.late_n.finish()),
            Arc::new(self.late[0].finish()),
            Arc::new(self.late[1].finish()),
            Arc::new(s[10].finish()),
            Arc::new(s[11].finish()),
            Arc::new(s[12].finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), cols).expect("case batch matches its schema")
    }
}

//! The case-event contract (`events.md`): decoding one JSON object into a
//! checked [`Event`], or a [`Rejection`] naming the reason and the field.
//!
//! Decoding never panics and never guesses: every field is checked for its
//! JSON type and domain, per-type required fields are enforced, the item must
//! be in the catalogue and the date in a year with a calendar. The applicant
//! id is replaced by its keyed hash here, so the raw value never reaches the
//! engine.

use crate::deadletter::{DeadReason, Rejection};
use crate::privacy::ApplicantHasher;
use crate::reference::{is_region_code, RefData};
use crate::time::{parse_rfc3339, Instant, Zone};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// What happened to a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EventType {
    /// 收件.
    Submitted,
    /// 补正告知.
    SupplementRequested,
    /// 补正材料收到.
    SupplementReceived,
    /// 受理.
    Accepted,
    /// 不予受理.
    Refused,
    /// 环节办结.
    StepCompleted,
    /// 特别程序开始 / 挂起.
    Suspended,
    /// 特别程序结束.
    Resumed,
    /// 上报.
    Escalated,
    /// 上级返回.
    Returned,
    /// 办结.
    Completed,
    /// 撤回.
    Withdrawn,
    /// 评价.
    Evaluated,
    /// 差评整改.
    Rectified,
    /// 效能投诉受理: opens a complaint, a case of its own.
    ComplaintFiled,
    /// 投诉办结答复: closes a complaint with its finding.
    ComplaintAnswered,
    /// 督办: a supervision notice on a case, to be answered in working days.
    NoticeIssued,
    /// 督办反馈: the department answered the case's open notice.
    NoticeAnswered,
}

impl EventType {
    /// Parses the contract name.
    pub fn parse(s: &str) -> Option<EventType> {
        use EventType::*;
        Some(match s {
            "submitted" => Submitted,
            "supplement_requested" => SupplementRequested,
            "supplement_received" => SupplementReceived,
            "accepted" => Accepted,
            "refused" => Refused,
            "step_completed" => StepCompleted,
            "suspended" => Suspended,
            "resumed" => Resumed,
            "escalated" => Escalated,
            "returned" => Returned,
            "completed" => Completed,
            "withdrawn" => Withdrawn,
            "evaluated" => Evaluated,
            "rectified" => Rectified,
            "complaint_filed" => ComplaintFiled,
            "complaint_answered" => ComplaintAnswered,
            "notice_issued" => NoticeIssued,
            "notice_answered" => NoticeAnswered,
            _ => return None,
        })
    }

    /// The contract name.
    pub fn as_str(self) -> &'static str {
        use EventType::*;
        match self {
            Submitted => "submitted",
            SupplementRequested => "supplement_requested",
            SupplementReceived => "supplement_received",
            Accepted => "accepted",
            Refused => "refused",
            StepCompleted => "step_completed",
            Suspended => "suspended",
            Resumed => "resumed",
            Escalated => "escalated",
            Returned => "returned",
            Completed => "completed",
            Withdrawn => "withdrawn",
            Evaluated => "evaluated",
            Rectified => "rectified",
            ComplaintFiled => "complaint_filed",
            ComplaintAnswered => "complaint_answered",
            NoticeIssued => "notice_issued",
            NoticeAnswered => "notice_answered",
        }
    }

    /// A complaint's own event (`follow-up.md`): valid on complaints only.
    pub fn is_complaint(self) -> bool {
        matches!(self, EventType::ComplaintFiled | EventType::ComplaintAnswered)
    }

    /// A supervision notice's event: valid on cases and complaints alike,
    /// and no step in the life of either.
    pub fn is_notice(self) -> bool {
        matches!(self, EventType::NoticeIssued | EventType::NoticeAnswered)
    }
}

/// Reasons a `suspended` may give (行政许可法 §45, and 补正).
pub const SUSPEND_REASONS: [&str; 9] =
    ["hearing", "tender", "auction", "inspection", "testing", "quarantine", "appraisal", "expert_review", "supplement"];

/// The decision of a `completed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// 准予.
    Approved,
    /// 不予.
    Denied,
}

/// Where a step was done (`channel`, on `accepted` and `completed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 窗口现场: at the window, in the hall.
    Window,
    /// 网上办理: online.
    Online,
    /// 后台办理: in the back office.
    BackOffice,
    /// 代办点: at an agent's point (代办帮办).
    Agent,
}

impl Channel {
    /// Every channel, in the order of the contract.
    pub const ALL: [Channel; 4] = [Channel::Window, Channel::Online, Channel::BackOffice, Channel::Agent];

    /// The contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Window => "window",
            Channel::Online => "online",
            Channel::BackOffice => "back_office",
            Channel::Agent => "agent",
        }
    }

    /// Parses the contract name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The channel of an `accepted` or `completed` that names none: `window`
    /// when it comes from the service centre's system, else `back_office`.
    pub fn default_for(source: &str) -> Channel {
        if source == "center" {
            Channel::Window
        } else {
            Channel::BackOffice
        }
    }

    /// A small code for compact state (0 is "none").
    pub fn code(c: Option<Channel>) -> u8 {
        match c {
            None => 0,
            Some(c) => 1 + Channel::ALL.iter().position(|x| *x == c).unwrap_or(0) as u8,
        }
    }

    /// The channel of a [`Channel::code`].
    pub fn from_code(code: u8) -> Option<Channel> {
        code.checked_sub(1).and_then(|i| Channel::ALL.get(i as usize).copied())
    }
}

/// The longest `staff` code, in characters.
pub const STAFF_MAX_CHARS: usize = 64;

/// What a complaint is about (`complaint_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintCategory {
    /// 拖延.
    Delay,
    /// 态度.
    Attitude,
    /// 乱收费.
    Fee,
    /// 两头受理.
    DualIntake,
    /// 体外循环.
    OutsideHall,
    /// Anything else.
    Other,
}

impl ComplaintCategory {
    /// Every category, in the contract's order.
    pub const ALL: [ComplaintCategory; 6] = [
        ComplaintCategory::Delay,
        ComplaintCategory::Attitude,
        ComplaintCategory::Fee,
        ComplaintCategory::DualIntake,
        ComplaintCategory::OutsideHall,
        ComplaintCategory::Other,
    ];

    /// The contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            ComplaintCategory::Delay => "delay",
            ComplaintCategory::Attitude => "attitude",
            ComplaintCategory::Fee => "fee",
            ComplaintCategory::DualIntake => "dual_intake",
            ComplaintCategory::OutsideHall => "outside_hall",
            ComplaintCategory::Other => "other",
        }
    }
}

/// The finding of an answered complaint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// 属实.
    Upheld,
    /// 部分属实.
    PartlyUpheld,
    /// 不属实.
    NotUpheld,
}

impl Finding {
    /// The contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Upheld => "upheld",
            Finding::PartlyUpheld => "partly_upheld",
            Finding::NotUpheld => "not_upheld",
        }
    }
}

/// A checked case event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique event id.
    pub event_id: String,
    /// The case.
    pub case_id: String,
    /// What happened.
    pub kind: EventType,
    /// Event time.
    pub occurred_at: Instant,
    /// When the source wrote the record.
    pub recorded_at: Option<Instant>,
    /// `center` or a departmental system's id.
    pub source: String,
    /// Region code.
    pub region: Option<String>,
    /// Department code.
    pub department: Option<String>,
    /// Service window.
    pub window: Option<String>,
    /// Catalogue index of `item_code`.
    pub item: Option<u32>,
    /// HMAC-SHA256 of the applicant id.
    pub applicant: Option<[u8; 32]>,
    /// Parent of a joint sub-case.
    pub parent_case_id: Option<String>,
    /// Reason code or text.
    pub reason: Option<String>,
    /// Decision of a `completed`.
    pub result: Option<Decision>,
    /// Fee charged, yuan.
    pub fee_yuan: Option<f64>,
    /// 好差评 rating 1–5.
    pub rating: Option<u8>,
    /// The step finished.
    pub step: Option<String>,
    /// What a `complaint_filed` is about.
    pub complaint_category: Option<ComplaintCategory>,
    /// The case a complaint is about, when it names one.
    pub about_case_id: Option<String>,
    /// The finding of a `complaint_answered`.
    pub finding: Option<Finding>,
    /// Working days a `notice_issued` gives the department (1–60).
    pub deadline_days: Option<u8>,
    /// The notice of a `notice_issued` or `notice_answered`.
    pub notice_id: Option<String>,
    /// `item_code` when it is not in the catalogue and such items are
    /// followed (`rules.unlisted_item = "card"`); `item` is None then.
    pub unlisted_item: Option<String>,
    /// Where the step was done. On `accepted` and `completed` always set
    /// (absent in the input: [`Channel::default_for`] its source); on other
    /// types as given.
    pub channel: Option<Channel>,
    /// Code of the official who did it (工作人员编号), as given.
    pub staff: Option<String>,
}

/// One JSON value of a field, as far as the contract cares.
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i128),
    Float(f64),
    Bool,
    Null,
    Array,
    Object,
}

impl Val<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Int(_) | Val::Float(_) => "a number",
            Val::Bool => "a boolean",
            Val::Null => "null",
            Val::Array => "an array",
            Val::Object => "an object",
        }
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Int(v as i128))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Int(v as i128))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
        {
            let _ = v;
            Ok(Val::Bool)
        }
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Val::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Object)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// The contract's fields, in the order errors are reported.
const FIELDS: [&str; N_FIELDS] = [
    "event_id",
    "case_id",
    "type",
    "occurred_at",
    "recorded_at",
    "source",
    "region",
    "department",
    "window",
    "item_code",
    "applicant",
    "parent_case_id",
    "reason",
    "result",
    "fee_yuan",
    "rating",
    "step",
    "complaint_category",
    "about_case_id",
    "finding",
    "deadline_days",
    "notice_id",
    "channel",
    "staff",
];

/// How many fields the contract has.
const N_FIELDS: usize = 24;

const F_EVENT_ID: usize = 0;
const F_CASE_ID: usize = 1;
const F_TYPE: usize = 2;
const F_OCCURRED: usize = 3;
const F_RECORDED: usize = 4;
const F_SOURCE: usize = 5;
const F_REGION: usize = 6;
const F_DEPARTMENT: usize = 7;
const F_WINDOW: usize = 8;
const F_ITEM: usize = 9;
const F_APPLICANT: usize = 10;
const F_PARENT: usize = 11;
const F_REASON: usize = 12;
const F_RESULT: usize = 13;
const F_FEE: usize = 14;
const F_RATING: usize = 15;
const F_STEP: usize = 16;
const F_CATEGORY: usize = 17;
const F_ABOUT: usize = 18;
const F_FINDING: usize = 19;
const F_DEADLINE: usize = 20;
const F_NOTICE: usize = 21;
const F_CHANNEL: usize = 22;
const F_STAFF: usize = 23;

struct Wire<'a> {
    vals: [Option<Val<'a>>; N_FIELDS],
    duplicate: Option<&'static str>,
}

struct WireVisitor;

impl<'de> Visitor<'de> for WireVisitor {
    type Value = Wire<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let mut w = Wire { vals: Default::default(), duplicate: None };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match FIELDS.iter().position(|f| *f == key) {
                Some(i) => {
                    let v: Val<'de> = map.next_value()?;
                    if w.vals[i].is_some() && w.duplicate.is_none() {
                        w.duplicate = Some(FIELDS[i]);
                    }
                    w.vals[i] = Some(v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(w)
    }
}

impl<'de> Deserialize<'de> for Wire<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(WireVisitor)
    }
}

/// Decodes and checks events against the reference data.
#[derive(Clone)]
pub struct Decoder {
    refdata: Arc<RefData>,
    zone: Zone,
    hasher: ApplicantHasher,
    unlisted: crate::config::UnlistedItem,
}

fn bad(field: usize, detail: String) -> Rejection {
    Rejection::field(DeadReason::BadValue, FIELDS[field], detail)
}

impl Decoder {
    /// A decoder over reference data, in a zone, hashing applicants with
    /// `key`; an item outside the catalogue is dead-lettered `unknown_item`
    /// unless [`Decoder::with_unlisted_items`] says otherwise.
    pub fn new(refdata: Arc<RefData>, zone: Zone, applicant_key: &str) -> Decoder {
        Decoder {
            refdata,
            zone,
            hasher: ApplicantHasher::new(applicant_key),
            unlisted: crate::config::UnlistedItem::DeadLetter,
        }
    }

    /// What an item outside the catalogue gets (`rules.unlisted_item`).
    pub fn with_unlisted_items(mut self, mode: crate::config::UnlistedItem) -> Decoder {
        self.unlisted = mode;
        self
    }

    /// The reference data it decodes with.
    pub fn refdata(&self) -> &Arc<RefData> {
        &self.refdata
    }

    /// Decodes with new reference data from now on (a calendar changed).
    pub fn set_refdata(&mut self, refdata: Arc<RefData>) {
        self.refdata = refdata;
    }

    /// Decodes one line (without its line break).
    pub fn decode(&self, line: &[u8]) -> Result<Event, Rejection> {
        let text = std::str::from_utf8(line).map_err(|e| Rejection {
            reason: DeadReason::NotJson,
            field: None,
            detail: format!("the line is not UTF-8 (invalid byte at {})", e.valid_up_to()),
        })?;
        let mut w: Wire = serde_json::from_str(text).map_err(|e| Rejection {
            reason: DeadReason::NotJson,
            field: None,
            detail: if e.is_data() {
                "the line is JSON but not a JSON object".to_string()
            } else {
                format!("not valid JSON: {e}")
            },
        })?;
        if let Some(f) = w.duplicate {
            return Err(Rejection::field(DeadReason::BadValue, f, format!("field {f} is given twice")));
        }
        let take = |i: usize| match w.vals[i].take() {
            None | Some(Val::Null) => None,
            Some(v) => Some(v),
        };
        let vals: [Option<Val>; N_FIELDS] = std::array::from_fn(take);
        self.check(vals)
    }

    fn check(&self, mut v: [Option<Val>; N_FIELDS]) -> Result<Event, Rejection> {
        // Required for every type.
        for i in [F_EVENT_ID, F_CASE_ID, F_TYPE, F_OCCURRED, F_SOURCE] {
            if v[i].is_none() {
                return Err(Rejection::field(
                    DeadReason::MissingField,
                    FIELDS[i],
                    format!("{} is required", FIELDS[i]),
                ));
            }
        }
        let type_str = string(&mut v, F_TYPE)?.unwrap_or_default();
        let kind = EventType::parse(&type_str).ok_or_else(|| {
            Rejection::field(
                DeadReason::UnknownType,
                "type",
                format!("{type_str:?} is not an event type of the contract"),
            )
        })?;
        use EventType::*;
        let per_type: &[usize] = match kind {
            Submitted | Accepted => &[F_REGION, F_DEPARTMENT, F_ITEM, F_APPLICANT],
            Suspended => &[F_REASON],
            Completed => &[F_RESULT],
            Evaluated => &[F_RATING],
            StepCompleted => &[F_STEP],
            ComplaintFiled => &[F_REGION, F_DEPARTMENT, F_CATEGORY],
            ComplaintAnswered => &[F_FINDING],
            NoticeIssued => &[F_DEADLINE, F_NOTICE],
            NoticeAnswered => &[F_NOTICE],
            _ => &[],
        };
        for &i in per_type {
            if v[i].is_none() {
                return Err(Rejection::field(
                    DeadReason::MissingField,
                    FIELDS[i],
                    format!("{} is required on {}", FIELDS[i], kind.as_str()),
                ));
            }
        }
        let event_id = id_string(&mut v, F_EVENT_ID)?;
        let case_id = id_string(&mut v, F_CASE_ID)?;
        let occurred_at = timestamp(&mut v, F_OCCURRED)?.unwrap_or_default();
        let recorded_at = timestamp(&mut v, F_RECORDED)?;
        let source = nonempty(&mut v, F_SOURCE)?.unwrap_or_default();
        let region = nonempty(&mut v, F_REGION)?;
        if let Some(r) = &region {
            if !is_region_code(r) {
                return Err(bad(F_REGION, format!("region {r:?} is not a code of 6, 9 or 12 digits")));
            }
        }
        let department = nonempty(&mut v, F_DEPARTMENT)?;
        let window = string(&mut v, F_WINDOW)?.filter(|s| !s.trim().is_empty());
        let item_code = nonempty(&mut v, F_ITEM)?;
        let applicant = nonempty(&mut v, F_APPLICANT)?;
        let parent_case_id = string(&mut v, F_PARENT)?.filter(|s| !s.trim().is_empty());
        if let Some(p) = &parent_case_id {
            if p.chars().count() > 128 {
                return Err(bad(F_PARENT, "parent_case_id is longer than 128 characters".into()));
            }
        }
        let reason = string(&mut v, F_REASON)?;
        if kind == Suspended {
            let r = reason.as_deref().unwrap_or("");
            if !SUSPEND_REASONS.contains(&r) {
                return Err(bad(
                    F_REASON,
                    format!("suspended reason {r:?} is not one of {}", SUSPEND_REASONS.join(", ")),
                ));
            }
        }
        let result = match string(&mut v, F_RESULT)? {
            None => None,
            Some(s) => Some(match s.as_str() {
                "approved" => Decision::Approved,
                "denied" => Decision::Denied,
                _ => return Err(bad(F_RESULT, format!("result {s:?} is not approved or denied"))),
            }),
        };
        let fee_yuan = match v[F_FEE].take() {
            None => None,
            Some(Val::Int(i)) if i >= 0 => Some(i as f64),
            Some(Val::Float(f)) if f.is_finite() && f >= 0.0 => Some(f),
            Some(Val::Int(_) | Val::Float(_)) => return Err(bad(F_FEE, "fee_yuan must be ≥ 0".into())),
            Some(other) => {
                return Err(bad(F_FEE, format!("fee_yuan must be a JSON number, not {}", other.type_name())))
            }
        };
        let rating = match v[F_RATING].take() {
            None => None,
            Some(Val::Int(i)) if (1..=5).contains(&i) => Some(i as u8),
            Some(Val::Int(i)) => return Err(bad(F_RATING, format!("rating {i} is outside 1–5"))),
            Some(other) => {
                return Err(bad(F_RATING, format!("rating must be an integer 1–5, not {}", other.type_name())))
            }
        };
        let step = nonempty(&mut v, F_STEP)?;
        let complaint_category = match string(&mut v, F_CATEGORY)? {
            None => None,
            Some(c) => Some(ComplaintCategory::ALL.into_iter().find(|k| k.as_str() == c).ok_or_else(|| {
                let all: Vec<&str> = ComplaintCategory::ALL.iter().map(|k| k.as_str()).collect();
                bad(F_CATEGORY, format!("complaint_category {c:?} is not one of {}", all.join(", ")))
            })?),
        };
        let about_case_id = string(&mut v, F_ABOUT)?.filter(|s| !s.trim().is_empty());
        if about_case_id.as_ref().is_some_and(|a| a.chars().count() > 128) {
            return Err(bad(F_ABOUT, "about_case_id is longer than 128 characters".into()));
        }
        let finding = match string(&mut v, F_FINDING)? {
            None => None,
            Some(f) => Some(match f.as_str() {
                "upheld" => Finding::Upheld,
                "partly_upheld" => Finding::PartlyUpheld,
                "not_upheld" => Finding::NotUpheld,
                _ => return Err(bad(F_FINDING, format!("finding {f:?} is not upheld, partly_upheld or not_upheld"))),
            }),
        };
        let deadline_days = match v[F_DEADLINE].take() {
            None => None,
            Some(Val::Int(i)) if (1..=60).contains(&i) => Some(i as u8),
            Some(Val::Int(i)) => return Err(bad(F_DEADLINE, format!("deadline_days {i} is outside 1–60"))),
            Some(other) => {
                return Err(bad(
                    F_DEADLINE,
                    format!("deadline_days must be an integer 1–60, not {}", other.type_name()),
                ))
            }
        };
        let channel = match string(&mut v, F_CHANNEL)? {
            None => None,
            Some(s) => Some(Channel::parse(&s).ok_or_else(|| {
                bad(F_CHANNEL, format!("channel {s:?} is not one of window, online, back_office, agent"))
            })?),
        };
        let channel = match kind {
            Accepted | Completed => Some(channel.unwrap_or_else(|| Channel::default_for(&source))),
            _ => channel,
        };
        let staff = string(&mut v, F_STAFF)?;
        if let Some(s) = &staff {
            let n = s.chars().count();
            if s.trim().is_empty() {
                return Err(bad(F_STAFF, "staff is blank".into()));
            }
            if n > STAFF_MAX_CHARS {
                return Err(bad(F_STAFF, format!("staff must be 1–{STAFF_MAX_CHARS} characters, not {n}")));
            }
        }
        let notice_id = match v[F_NOTICE].is_some() {
            true => Some(id_string(&mut v, F_NOTICE)?),
            false => None,
        };
        let mut unlisted_item = None;
        let item = match &item_code {
            None => None,
            Some(code) => match self.refdata.catalog.lookup(code) {
                Some(i) => Some(i),
                None if self.unlisted == crate::config::UnlistedItem::Card && code.chars().count() <= 128 => {
                    unlisted_item = Some(code.clone());
                    None
                }
                None => {
                    return Err(Rejection::field(
                        DeadReason::UnknownItem,
                        "item_code",
                        format!("item {code:?} is not in the catalogue"),
                    ))
                }
            },
        };
        let day = self.zone.day_of(occurred_at);
        if !self.refdata.calendar.covers(day) {
            let year = day.year();
            return Err(Rejection::field(
                DeadReason::NoCalendar,
                "occurred_at",
                format!("no working-day calendar for {year}"),
            ));
        }
        Ok(Event {
            event_id,
            case_id,
            kind,
            occurred_at,
            recorded_at,
            source,
            region,
            department,
            window,
            item,
            applicant: applicant.map(|a| self.hasher.hash(&a)),
            parent_case_id,
            reason,
            result,
            fee_yuan,
            rating,
            step,
            complaint_category,
            about_case_id,
            finding,
            deadline_days,
            notice_id,
            unlisted_item,
            channel,
            staff,
        })
    }
}

fn string(v: &mut [Option<Val>; N_FIELDS], i: usize) -> Result<Option<String>, Rejection> {
    match v[i].take() {
        None => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(bad(i, format!("{} must be a string, not {}", FIELDS[i], other.type_name()))),
    }
}

fn nonempty(v: &mut [Option<Val>; N_FIELDS], i: usize) -> Result<Option<String>, Rejection> {
    match string(v, i)? {
        Some(s) if s.trim().is_empty() => Err(bad(i, format!("{} is blank", FIELDS[i]))),
        other => Ok(other),
    }
}

fn id_string(v: &mut [Option<Val>; N_FIELDS], i: usize) -> Result<String, Rejection> {
    let s = string(v, i)?.unwrap_or_default();
    let n = s.chars().count();
    if s.trim().is_empty() {
        return Err(bad(i, format!("{} is blank", FIELDS[i])));
    }
    if n > 128 {
        return Err(bad(i, format!("{} must be 1–128 characters, not {n}", FIELDS[i])));
    }
    Ok(s)
}

fn timestamp(v: &mut [Option<Val>; N_FIELDS], i: usize) -> Result<Option<Instant>, Rejection> {
    match v[i].take() {
        None => Ok(None),
        Some(Val::Str(s)) => parse_rfc3339(&s).map(Some).ok_or_else(|| {
            Rejection::field(
                DeadReason::BadTimestamp,
                FIELDS[i],
                format!("{s:?} is not an RFC 3339 timestamp with an offset"),
            )
        }),
        Some(other) => Err(Rejection::field(
            DeadReason::BadTimestamp,
            FIELDS[i],
            format!("{} must be an RFC 3339 string, not {}", FIELDS[i], other.type_name()),
        )),
    }
}

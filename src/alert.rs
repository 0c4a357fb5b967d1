//! The ten alert rules and the alert record (`rules.md`, "Alert record").

use serde::{Deserialize, Serialize};

/// An alert rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// 即将超期.
    DueSoon,
    /// 超期.
    Overdue,
    /// 受理超时.
    IntakeOverdue,
    /// 多次补正.
    RepeatedSupplement,
    /// 两头受理.
    DualIntake,
    /// 体外循环.
    UnregisteredCase,
    /// 补录 / 倒签.
    BackdatedEntry,
    /// 超标准收费.
    Overcharge,
    /// 不予许可未说明理由.
    DenialWithoutReason,
    /// 差评未整改.
    BadRatingUnrectified,
}

/// Card colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 黄牌.
    Yellow,
    /// 红牌.
    Red,
}

impl Level {
    /// The name in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Yellow => "yellow",
            Level::Red => "red",
        }
    }
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 10] = [
        Rule::DueSoon,
        Rule::Overdue,
        Rule::IntakeOverdue,
        Rule::RepeatedSupplement,
        Rule::DualIntake,
        Rule::UnregisteredCase,
        Rule::BackdatedEntry,
        Rule::Overcharge,
        Rule::DenialWithoutReason,
        Rule::BadRatingUnrectified,
    ];

    /// The rule's name in ids, records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::DueSoon => "due_soon",
            Rule::Overdue => "overdue",
            Rule::IntakeOverdue => "intake_overdue",
            Rule::RepeatedSupplement => "repeated_supplement",
            Rule::DualIntake => "dual_intake",
            Rule::UnregisteredCase => "unregistered_case",
            Rule::BackdatedEntry => "backdated_entry",
            Rule::Overcharge => "overcharge",
            Rule::DenialWithoutReason => "denial_without_reason",
            Rule::BadRatingUnrectified => "bad_rating_unrectified",
        }
    }

    /// The card colour.
    pub fn level(self) -> Level {
        match self {
            Rule::Overdue | Rule::IntakeOverdue | Rule::DualIntake | Rule::UnregisteredCase | Rule::Overcharge => {
                Level::Red
            }
            _ => Level::Yellow,
        }
    }

    /// The rule's name as supervision offices write it (rules.md).
    pub fn label(self) -> &'static str {
        match self {
            Rule::DueSoon => "即将超期",
            Rule::Overdue => "超期",
            Rule::IntakeOverdue => "受理超时",
            Rule::RepeatedSupplement => "多次补正",
            Rule::DualIntake => "两头受理",
            Rule::UnregisteredCase => "体外循环",
            Rule::BackdatedEntry => "补录 / 倒签",
            Rule::Overcharge => "超标准收费",
            Rule::DenialWithoutReason => "不予许可未说明理由",
            Rule::BadRatingUnrectified => "差评未整改",
        }
    }

    /// A short label for narrow places (table headings).
    pub fn short_label(self) -> &'static str {
        match self {
            Rule::BackdatedEntry => "补录倒签",
            Rule::Overcharge => "超标收费",
            Rule::DenialWithoutReason => "未说明理由",
            r => r.label(),
        }
    }

    /// Whether the alert resolves when its case closes.
    pub fn resolves_on_close(self) -> bool {
        self != Rule::BadRatingUnrectified
    }
}

/// The state a record announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Raised.
    Firing,
    /// Resolved.
    Resolved,
    /// Proven wrong by a late event.
    Retracted,
}

impl AlertState {
    /// The name in records.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
            AlertState::Retracted => "retracted",
        }
    }
}

/// `detail` of a record: `{"earlier_case_id": …}` for `dual_intake`,
/// `{"provisional_calendar": true}` for a card whose instant or due date
/// was computed on a provisional calendar, `{}` otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// The most recent earlier acceptance, for `dual_intake`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub earlier_case_id: Option<String>,
    /// Computed with a day of a year whose calendar is provisional.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub provisional_calendar: bool,
}

impl Rule {
    /// Whether the rule's instant or due date is counted in working days
    /// (and so depends on the calendar).
    pub fn uses_calendar(self) -> bool {
        matches!(self, Rule::DueSoon | Rule::Overdue | Rule::IntakeOverdue | Rule::BadRatingUnrectified)
    }
}

/// One alert record, as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// `<case_id>/<rule>`, or `…#n` for the n-th instance.
    pub alert_id: String,
    /// The rule.
    pub rule: Rule,
    /// The card colour.
    pub level: Level,
    /// What this record announces.
    pub state: AlertState,
    /// RFC 3339 instant at which the alert changed state.
    pub at: String,
    /// The case.
    pub case_id: String,
    /// Region code of the case.
    pub region: Option<String>,
    /// Department code of the case.
    pub department: Option<String>,
    /// Window, null when none.
    pub window: Option<String>,
    /// Item code of the case.
    pub item_code: Option<String>,
    /// Due date (due_soon, overdue) or intake due date (intake_overdue).
    pub due_date: Option<String>,
    /// True on a retracted record.
    pub retracted: bool,
    /// Rule-specific detail.
    pub detail: Detail,
    /// `at` as milliseconds since the epoch (not serialized).
    #[serde(skip)]
    pub at_ms: i64,
}

/// An alert record could not be encoded as JSON (never published empty).
#[derive(Debug, thiserror::Error)]
#[error("alert record {alert_id} could not be encoded as JSON")]
pub struct EncodeError {
    /// The record's alert id.
    pub alert_id: String,
    /// Why.
    #[source]
    pub source: serde_json::Error,
}

impl AlertRecord {
    /// The record as published — to `alerts.jsonl`, the alerts topic, the
    /// feed and its stream: one JSON object, encoded here only.
    pub fn to_json(&self) -> Result<String, EncodeError> {
        serde_json::to_string(self).map_err(|source| EncodeError { alert_id: self.alert_id.clone(), source })
    }
}

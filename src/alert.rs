//! The alert rules' names and the alert record (`rules.md`, "Alert record").
//! What each rule is and does lives in `engine/rules/`, one file a rule.

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
    /// 投诉超时.
    ComplaintOverdue,
    /// 督办超时.
    NoticeOverdue,
    /// 环节超时.
    StepOverdue,
    /// 清单外事项.
    UnlistedItem,
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
    pub const ALL: [Rule; 14] = [
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
        Rule::ComplaintOverdue,
        Rule::NoticeOverdue,
        Rule::StepOverdue,
        Rule::UnlistedItem,
    ];

    /// Its position in [`Rule::ALL`] and in the rules' registry.
    pub fn index(self) -> usize {
        self as usize
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

//! Dead letters: why an event was not applied, kept with its original bytes.

use serde::{Deserialize, Serialize};

/// Why an event was dead-lettered (`events.md`, "Bad input").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// Not valid JSON, not UTF-8, or not a JSON object.
    NotJson,
    /// A required field is absent or null.
    MissingField,
    /// `type` is not one of the contract's types.
    UnknownType,
    /// A timestamp does not parse as RFC 3339 with an offset.
    BadTimestamp,
    /// `item_code` is not in the catalogue.
    UnknownItem,
    /// A field has the wrong JSON type or is outside its domain.
    BadValue,
    /// The event's date is in a year with no calendar file.
    NoCalendar,
    /// Invalid at its place in its case's life when its hold ended.
    InvalidTransition,
    /// Its case never opened when its hold ended.
    Orphan,
}

impl DeadReason {
    /// Every reason, for metrics and summaries.
    pub const ALL: [DeadReason; 9] = [
        DeadReason::NotJson,
        DeadReason::MissingField,
        DeadReason::UnknownType,
        DeadReason::BadTimestamp,
        DeadReason::UnknownItem,
        DeadReason::BadValue,
        DeadReason::NoCalendar,
        DeadReason::InvalidTransition,
        DeadReason::Orphan,
    ];

    /// The reason's name in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::NotJson => "not_json",
            DeadReason::MissingField => "missing_field",
            DeadReason::UnknownType => "unknown_type",
            DeadReason::BadTimestamp => "bad_timestamp",
            DeadReason::UnknownItem => "unknown_item",
            DeadReason::BadValue => "bad_value",
            DeadReason::NoCalendar => "no_calendar",
            DeadReason::InvalidTransition => "invalid_transition",
            DeadReason::Orphan => "orphan",
        }
    }
}

/// A rejection: the reason, the field concerned and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Why.
    pub reason: DeadReason,
    /// The field concerned, if one is.
    pub field: Option<String>,
    /// A sentence for the person fixing the source.
    pub detail: String,
}

impl Rejection {
    /// A rejection about one field.
    pub fn field(reason: DeadReason, field: &str, detail: impl Into<String>) -> Rejection {
        Rejection { reason, field: Some(field.to_string()), detail: detail.into() }
    }
}

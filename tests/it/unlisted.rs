//! Items outside the catalogue (清单外事项, follow-up.md) in both modes of
//! `rules.unlisted_item`; expectations worked out by hand from the contract
//! (calendar: the shipped 2026 schedule).

use crate::support::{refdata, sorted, zone, CATALOG, H};
use jiancha::config::{RulesConfig, UnlistedItem};
use jiancha::deadletter::DeadReason;
use jiancha::event::Decoder;
use serde_json::json;

#[test]
fn card_mode_follows_the_case_without_a_time_limit_and_raises_a_red_card() {
    // Default mode "card". U1, item ZZZ-1 (not in the catalogue), department
    // housing from the event: submitted Mon 2 Mar 09:00 → unlisted_item at
    // that instant, no due date. It stays submitted four weeks: an item of
    // the catalogue would get intake_overdue (5 working days); this one has no
    // time limit, so nothing. Accepted Wed 1 Apr (no second card: one live
    // alert per rule), left open to 1 May: no due_soon or overdue either.
    // Completed Wed 6 May 11:00 → the card resolves then. Every event is from
    // the centre, so no unregistered_case.
    let mut h = H::new();
    let unlisted = json!({"item_code": "ZZZ-1", "department": "housing"});
    h.ev("U1", "submitted", "2026-03-02T09:00", unlisted.clone());
    h.until("2026-04-01T00:00");
    assert_eq!(h.of("U1"), sorted(&["U1/unlisted_item firing 2026-03-02T09:00"]));
    h.ev("U1", "accepted", "2026-04-01T10:00", unlisted.clone());
    h.until("2026-05-01T00:00");
    let v = h.case("U1");
    assert_eq!((v.item_code.as_deref(), v.department.as_deref()), (Some("ZZZ-1"), Some("housing")));
    assert_eq!((v.summary.limit_days, v.summary.due_date), (None, None));
    h.ev("U1", "completed", "2026-05-06T11:00", json!({"result": "approved", "fee_yuan": 50}));
    assert_eq!(
        h.of("U1"),
        sorted(&["U1/unlisted_item firing 2026-03-02T09:00", "U1/unlisted_item resolved 2026-05-06T11:00"])
    );
    let r = h.records.iter().find(|r| r.alert_id == "U1/unlisted_item").unwrap();
    assert_eq!((r.level.as_str(), r.item_code.as_deref(), r.due_date.as_deref()), ("red", Some("ZZZ-1"), None));
    let s = h.case("U1").summary;
    assert_eq!((s.on_time, s.overdue), (None, false));

    // U2 is only ever seen by its department's own system: an unlisted item
    // counts as handled in the hall, so unregistered_case fires at the end of
    // the 24-hour grace, Tue 3 Mar 09:00, beside unlisted_item.
    h.ev("U2", "accepted", "2026-03-02T09:00", json!({"item_code": "ZZZ-2", "source": "dept-sys"}));
    h.until("2026-03-04T00:00");
    assert_eq!(
        h.of("U2"),
        sorted(&["U2/unlisted_item firing 2026-03-02T09:00", "U2/unregistered_case firing 2026-03-03T09:00"])
    );
    assert!(h.dead.is_empty(), "{:?}", h.dead);
}

#[test]
fn dead_letter_mode_keeps_the_unknown_item_dead_letter() {
    let line =
        json!({"event_id": "e1", "case_id": "U1", "type": "accepted", "occurred_at": "2026-03-02T09:00:00+08:00",
                      "source": "center", "region": "220421", "department": "housing", "item_code": "ZZZ-1",
                      "applicant": "p1"})
        .to_string();
    for d in [
        Decoder::new(refdata(CATALOG), zone(), "k").with_unlisted_items(UnlistedItem::DeadLetter),
        // A decoder told nothing keeps the old behaviour too.
        Decoder::new(refdata(CATALOG), zone(), "k"),
    ] {
        let r = d.decode(line.as_bytes()).unwrap_err();
        assert_eq!((r.reason, r.field.as_deref()), (DeadReason::UnknownItem, Some("item_code")));
    }
    // In card mode the same line decodes, with the code kept.
    let d = Decoder::new(refdata(CATALOG), zone(), "k").with_unlisted_items(UnlistedItem::Card);
    let ev = d.decode(line.as_bytes()).unwrap();
    assert_eq!((ev.item, ev.unlisted_item.as_deref()), (None, Some("ZZZ-1")));
    // follow-up.md: "card" is the default.
    assert_eq!(RulesConfig::default().unlisted_item, UnlistedItem::Card);
}

//! Supervision from the board (follow-up.md, "Interfaces"): notices issued
//! and answered over HTTP by a supervisor travel the pipeline's own road —
//! the simulated stream in the demo, the events topic in `run` — and are
//! judged like every event; readers may not issue them; lists of notices
//! and complaints are scoped like alerts.

use crate::support::demo::{get, metric, post, Demo};
use crate::support::{poll_until, wait_until};
use serde_json::Value;
use std::time::Duration;

const SCOPE: &str = "220421101";

fn users() -> String {
    format!(
        "[[users]]\nname = \"admin\"\npassword = \"{}\"\nrole = \"admin\"\n\n\
         [[users]]\nname = \"sup\"\npassword = \"{}\"\nrole = \"supervisor\"\nregion = \"{SCOPE}\"\n\n\
         [[users]]\nname = \"town\"\npassword = \"{}\"\nrole = \"reader\"\nregion = \"{SCOPE}\"\n",
        super::pgwire::hash("admin-pw"),
        super::pgwire::hash("sup-pw"),
        super::pgwire::hash("town-pw")
    )
}

fn json(r: (u16, String), want: u16) -> Value {
    assert_eq!(r.0, want, "{}", r.1);
    serde_json::from_str(&r.1).unwrap_or_else(|e| panic!("{e}: {}", r.1))
}

fn in_scope(region: &str) -> bool {
    region.starts_with(SCOPE)
}

/// A red card's case in and one out of the supervisor's region.
fn red_cases(demo: &Demo) -> Option<(String, String)> {
    let (code, body) = get(&demo.url("/api/alerts?level=red&limit=1000"), Some("admin:admin-pw"));
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let cards = v["alerts"].as_array()?;
    let pick = |inside: bool| {
        cards
            .iter()
            .filter(|a| a["rule"] == "overdue")
            .find(|a| a["region"].as_str().is_some_and(|r| in_scope(r) == inside))
            .and_then(|a| a["case_id"].as_str().map(str::to_string))
    };
    Some((pick(true)?, pick(false)?))
}

#[test]
fn a_supervisor_issues_and_answers_a_notice_that_the_engine_judges() {
    let demo = Demo::start(&["--days-per-minute", "300", "--cases-per-day", "60", "--days", "200"], Some(&users()));
    let mut cases = None;
    wait_until("red cards in and out of the supervisor's region", Duration::from_secs(90), || {
        cases = red_cases(&demo);
        cases.is_some()
    });
    let (mine, other) = cases.unwrap();
    let url = demo.url("/api/notices");
    let body = |case: &str, days: &str| {
        format!(r#"{{"case_id": "{case}", "deadline_days": {days}, "reason": "请说明超期原因"}}"#)
    };

    // A reader may not; a case outside the region is not there; bad bodies.
    let r = json(post(&url, Some("town:town-pw"), &body(&mine, "3")), 403);
    assert!(r["error"].as_str().unwrap().contains("supervisor"), "{r}");
    assert_eq!(post(&url, None, &body(&mine, "3")).0, 401);
    json(post(&url, Some("sup:sup-pw"), &body(&other, "3")), 404);
    json(post(&url, Some("sup:sup-pw"), &body("no-such-case", "3")), 404);
    for (bad, what) in [
        (body(&mine, "0"), "deadline_days"),
        (body(&mine, "61"), "deadline_days"),
        (body(&mine, "\"3\""), "deadline_days"),
        (format!(r#"{{"case_id": "{mine}", "deadline_days": 3}}"#), "reason"),
        (r#"{"deadline_days": 3, "reason": "x"}"#.to_string(), "case_id"),
        (format!(r#"{{"case_id": "{mine}", "deadline_days": 3, "reason": "x", "extra": 1}}"#), "extra"),
        ("not json".to_string(), "JSON"),
    ] {
        let r = json(post(&url, Some("sup:sup-pw"), &bad), 400);
        assert!(r["error"].as_str().unwrap().contains(what), "{bad}: {r}");
    }

    // Issued: the event joins the stream, the engine judges it; with 1
    // working day and no answer, its notice_overdue card fires.
    let issued = json(post(&url, Some("sup:sup-pw"), &body(&mine, "1")), 202);
    let notice_id = issued["notice_id"].as_str().unwrap().to_string();
    let card = format!("{mine}/notice_overdue");
    wait_until("the notice's overdue card on the feed", Duration::from_secs(60), || {
        let (_, b) = get(&demo.url("/api/alerts?rule=notice_overdue&limit=1000"), Some("sup:sup-pw"));
        b.contains(&format!("\"alert_id\":\"{card}\""))
    });
    // In the list (once history has it) with its deadline, for the region's
    // reader too; a second notice on the case is refused while it is open.
    let mut row = Value::Null;
    wait_until("the notice in GET /api/notices", Duration::from_secs(30), || {
        let v = json(get(&demo.url("/api/notices?status=open"), Some("town:town-pw")), 200);
        row = v["notices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["notice_id"] == notice_id.as_str())
            .cloned()
            .unwrap_or_default();
        !row.is_null()
    });
    assert_eq!(row["case_id"], mine.as_str());
    assert_eq!(row["deadline_days"], 1);
    assert!(row["due_date"].as_str().is_some_and(|d| d.len() == 10), "{row}");
    assert!(row["issued_date"].as_str().unwrap() < row["due_date"].as_str().unwrap(), "{row}");
    json(post(&url, Some("sup:sup-pw"), &body(&mine, "5")), 409);
    // The live gauges count it open and overdue (summed over the regions
    // they are kept for: at least once).
    wait_until("jiancha_notices_overdue on /metrics", Duration::from_secs(60), || {
        metric(&demo.http, "jiancha_notices_open").is_some_and(|n| n >= 1.0)
            && metric(&demo.http, "jiancha_notices_overdue").is_some_and(|n| n >= 1.0)
    });

    // Answered: the card resolves.
    let answer = demo.url(&format!("/api/notices/{notice_id}/answer"));
    json(post(&answer, Some("town:town-pw"), r#"{"reason": "已办结"}"#), 403);
    json(post(&demo.url("/api/notices/DB-unknown/answer"), Some("sup:sup-pw"), r#"{"reason": "x"}"#), 404);
    json(post(&answer, Some("sup:sup-pw"), r#"{"reason": "已办结"}"#), 202);
    assert!(
        poll_until(Duration::from_secs(60), || {
            let (_, b) =
                get(&demo.url("/api/alerts?rule=notice_overdue&state=resolved&limit=1000"), Some("sup:sup-pw"));
            b.contains(&format!("\"alert_id\":\"{card}\""))
        }),
        "the notice's card did not resolve"
    );
    // Lists: paging and filters as for alerts; a bad status is a 400.
    json(get(&demo.url("/api/notices?status=late"), Some("sup:sup-pw")), 400);
    json(get(&demo.url("/api/complaints?limit=0"), Some("sup:sup-pw")), 400);
    let c = json(get(&demo.url("/api/complaints?limit=5"), Some("town:town-pw")), 200);
    assert!(c["complaints"].as_array().unwrap().iter().all(|r| in_scope(r["region"].as_str().unwrap_or(""))), "{c}");
}

#[test]
fn a_supervisor_issues_a_notice_from_a_red_card_on_the_board_in_chromium() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let demo = Demo::start(&["--days-per-minute", "20", "--cases-per-day", "120", "--days", "120"], Some(&users()));
    wait_until("a red card in the supervisor's region", Duration::from_secs(90), || {
        let (code, body) = get(&demo.url("/api/alerts?level=red&limit=1"), Some("sup:sup-pw"));
        code == 200 && body.contains("\"alert_id\"")
    });
    let shot = root.join("target/test-artifacts/notice.png");
    let _ = std::fs::remove_file(&shot);
    let out = std::process::Command::new("node")
        .arg(root.join("tests/browser/notice.mjs"))
        .arg(demo.url("/"))
        .args(["sup:sup-pw", "town:town-pw"])
        .arg(&shot)
        .output()
        .expect("node runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser test failed: {said}");
    assert!(shot.exists(), "no screenshot: {said}");
    eprintln!("notice: {said}");
}

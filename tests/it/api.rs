//! The alert feed over real HTTP on loopback, from a running demo: filters,
//! paging, region roll-up, 400/404, and the stream resuming with
//! `Last-Event-ID` without losing a record.

use crate::support::demo::{alert_records, get, get_json, seq, sse, sse_opened, Demo};
use crate::support::wait_until;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Parent of each region, read from the regions file the demo uses.
fn parents() -> HashMap<String, String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/regions.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect()
}

fn under(parents: &HashMap<String, String>, region: &str, top: &str) -> bool {
    let mut r = region.to_string();
    for _ in 0..10 {
        if r == top {
            return true;
        }
        match parents.get(&r) {
            Some(p) if !p.is_empty() => r = p.clone(),
            _ => return false,
        }
    }
    false
}

fn alerts(v: &Value) -> &Vec<Value> {
    v["alerts"].as_array().unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    alerts(v).iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn alert_list_filters_pages_rolls_up_regions_and_answers_errors() {
    let demo = Demo::start(&["--days-per-minute", "600", "--cases-per-day", "40", "--days", "20"], None);
    assert!(
        demo.wait_for_line("the simulated span is over", Duration::from_secs(90)),
        "the demo did not finish its span"
    );
    let all = get_json(&demo.url("/api/alerts?limit=1000"));
    let total = all["total"].as_u64().unwrap() as usize;
    assert!(total > 20, "too few alerts to test with: {total}");
    let all_ids = ids(&all);
    let mut sorted = all_ids.clone();
    sorted.sort();
    assert_eq!(all_ids, sorted, "the list is in alert id order");
    assert_eq!(all_ids.iter().collect::<BTreeSet<_>>().len(), all_ids.len(), "one entry per alert");

    // Paging: pages of 7 put together are the whole list, in order.
    let mut paged = Vec::new();
    let mut offset = 0;
    while offset < total.min(1000) {
        let page = get_json(&demo.url(&format!("/api/alerts?limit=7&offset={offset}")));
        assert_eq!(page["total"].as_u64().unwrap() as usize, total);
        paged.extend(ids(&page));
        offset += 7;
    }
    assert_eq!(paged, all_ids[..total.min(1000)].to_vec());

    // Filters give exactly the matching subset of the whole list.
    for (param, field, value) in [("rule", "rule", "overdue"), ("level", "level", "red"), ("state", "state", "firing")]
    {
        let v = get_json(&demo.url(&format!("/api/alerts?limit=1000&{param}={value}")));
        let expect: Vec<String> = alerts(&all)
            .iter()
            .filter(|a| a[field] == value)
            .map(|a| a["alert_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids(&v), expect, "{param}={value}");
    }
    let dept = alerts(&all)[0]["department"].as_str().unwrap().to_string();
    let v = get_json(&demo.url(&format!("/api/alerts?limit=1000&department={dept}")));
    assert!(!alerts(&v).is_empty() && alerts(&v).iter().all(|a| a["department"] == dept.as_str()));

    // Region roll-up: a city's list is its own and every county's below it.
    let parents = parents();
    let regions: BTreeSet<String> =
        alerts(&all).iter().filter_map(|a| a["region"].as_str().map(str::to_string)).collect();
    let some = regions.iter().next().unwrap().clone();
    let city = parents[&some].clone();
    for top in [city.as_str(), some.as_str()] {
        let v = get_json(&demo.url(&format!("/api/alerts?limit=1000&region={top}")));
        let expect: Vec<String> = alerts(&all)
            .iter()
            .filter(|a| a["region"].as_str().is_some_and(|r| under(&parents, r, top)))
            .map(|a| a["alert_id"].as_str().unwrap().to_string())
            .collect();
        assert!(!expect.is_empty());
        assert_eq!(ids(&v), expect, "region={top}");
    }

    // Bad parameters: 400 with a JSON message naming the problem.
    for (q, word) in [
        ("rule=bogus", "bogus"),
        ("level=green", "green"),
        ("state=open", "open"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("region=999999", "999999"),
        ("colour=red", "colour"),
        ("rule=%FF%FE", "rule"),
        ("limit=1&limit=2&&=", ""),
    ] {
        let (code, body) = get(&demo.url(&format!("/api/alerts?{q}")), None);
        assert_eq!(code, 400, "{q}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(word), "{q}: {body}");
    }

    // One case, with its clock, events and alerts; an unknown case is 404.
    let case_id = alerts(&all)[0]["case_id"].as_str().unwrap().to_string();
    let c = get_json(&demo.url(&format!("/api/cases/{case_id}")));
    assert_eq!(c["case"]["case_id"], case_id.as_str());
    for key in ["due_date", "used_days", "stopped_days", "status", "limit_days"] {
        assert!(c["case"].get(key).is_some(), "case has {key}: {c}");
    }
    let events = c["events"].as_array().unwrap();
    assert!(!events.is_empty());
    let times: Vec<&str> = events.iter().map(|e| e["occurred_at"].as_str().unwrap()).collect();
    let mut t2 = times.clone();
    t2.sort();
    assert_eq!(times, t2, "events in time order");
    assert!(c["alerts"].as_array().unwrap().iter().any(|a| a["case_id"] == case_id.as_str()));
    let (code, body) = get(&demo.url("/api/cases/NO-SUCH-CASE"), None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("NO-SUCH-CASE"));
    let (code, _) = get(&demo.url("/api/nothing-here"), None);
    assert_eq!(code, 404);
}

#[test]
fn stream_resumed_with_last_event_id_loses_nothing() {
    let demo = Demo::start(&["--days-per-minute", "60", "--cases-per-day", "60", "--days", "60"], None);
    // A reference client reads without interruption while another reads,
    // disconnects, and resumes from its last id.
    let host = demo.http.clone();
    let h2 = host.clone();
    let (opened, reference_open) = std::sync::mpsc::channel();
    let reference = std::thread::spawn(move || {
        sse_opened(&h2, "/api/alerts/stream", None, Duration::from_secs(14), move || {
            let _ = opened.send(());
        })
    });
    reference_open
        .recv_timeout(Duration::from_secs(10))
        .expect("the reference client's stream did not open within 10 s (or its reader failed)");
    let first = sse(&host, "/api/alerts/stream", None, Duration::from_secs(5));
    assert!(!first.is_empty(), "no records in 5 s");
    let last = first.last().unwrap().0.clone();
    // Records pass while disconnected: the demo publishes some more.
    let published = alert_records(&host);
    wait_until("records published while the client is disconnected", Duration::from_secs(3), || {
        alert_records(&host) >= published + 3
    });
    let second = sse(&host, "/api/alerts/stream", Some(&last), Duration::from_secs(5));
    let reference = reference.join().unwrap();
    assert!(!second.is_empty());
    assert_eq!(seq(&second[0].0), seq(&last) + 1, "resumes right after the last id");
    let got: Vec<u64> = first.iter().chain(&second).map(|(id, _)| seq(id)).collect();
    for w in got.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or repeat across the reconnect: {:?}", &got);
    }
    // The same records as the uninterrupted client over the same span.
    let (lo, hi) = (got[0], *got.last().unwrap());
    let want: Vec<u64> = reference.iter().map(|(id, _)| seq(id)).filter(|s| *s >= lo && *s <= hi).collect();
    assert_eq!(got.len(), want.len(), "records missed or added: {got:?} vs {want:?}");
    let by_id: HashMap<u64, &String> = reference.iter().map(|(id, d)| (seq(id), d)).collect();
    for (id, data) in first.iter().chain(&second) {
        assert_eq!(by_id.get(&seq(id)).map(|d| d.as_str()), Some(data.as_str()));
    }
    // Resuming with ?since= works the same; an id of another run replays
    // what the feed holds rather than a wrong position.
    let again = sse(&host, &format!("/api/alerts/stream?since={last}"), None, Duration::from_secs(1));
    assert_eq!(again.first().map(|(id, _)| seq(id)), Some(seq(&last) + 1));
    let other = sse(&host, "/api/alerts/stream", Some("1-5"), Duration::from_secs(1));
    assert_eq!(other.first().map(|(id, _)| seq(id)), Some(1));
}

#[test]
fn two_hundred_stream_clients_each_get_every_record_for_30_s() {
    let demo = Demo::start(&["--days-per-minute", "30", "--cases-per-day", "120", "--days", "120"], None);
    wait_until("the demo's first alert record", Duration::from_secs(30), || alert_records(&demo.http) >= 1);
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
    };
    let before = rss(demo.pid());
    let started = Instant::now();
    let start_id = format!("{}", 0);
    let _ = start_id;
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let h = demo.http.clone();
            std::thread::spawn(move || sse(&h, "/api/alerts/stream?since=0-0", None, Duration::from_secs(30)))
        })
        .collect();
    // Not a wait for anything: RSS sampled halfway through the clients' fixed 30 s read (printed only).
    std::thread::sleep(Duration::from_secs(15));
    let mid = rss(demo.pid());
    let results: Vec<Vec<(String, String)>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let after = rss(demo.pid());
    let n: Vec<usize> = results.iter().map(Vec::len).collect();
    let min_last = results.iter().map(|r| r.last().map_or(0, |(id, _)| seq(id))).min().unwrap();
    // `since=0-0` is of another run: every client starts from the ring's
    // first record, so each must hold 1..=its last, in order, with no gap.
    for r in &results {
        let seqs: Vec<u64> = r.iter().map(|(id, _)| seq(id)).collect();
        assert_eq!(seqs.first().copied(), Some(1));
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1);
        }
        assert!(seqs.last().unwrap() >= &min_last);
    }
    eprintln!(
        "200 SSE clients for {:.0} s: records per client min {} max {}, last seq ≥ {min_last}; demo RSS {} → {} → {} KiB",
        started.elapsed().as_secs_f64(),
        n.iter().min().unwrap(),
        n.iter().max().unwrap(),
        before,
        mid,
        after
    );
    assert!(min_last > 50, "too few records to mean anything: {min_last}");
    // The clients cost memory only while connected and bounded: growth over
    // the run stays within 200 MiB (the demo's own cases grow meanwhile).
    assert!(after < before + 200 * 1024, "RSS {before} → {after} KiB");
}

/// With users configured the board and the API ask for credentials, and a
/// reader sees its region only; metrics and health checks stay open.
#[test]
fn http_asks_for_credentials_and_scopes_readers_to_their_region() {
    let scope = "220421101";
    let cfg = format!(
        "[[users]]\nname = \"admin\"\npassword = \"{}\"\nrole = \"admin\"\n\n\
         [[users]]\nname = \"town\"\npassword = \"{}\"\nrole = \"reader\"\nregion = \"{scope}\"\n",
        super::pgwire::hash("admin-pw"),
        super::pgwire::hash("town-pw")
    );
    let demo = Demo::start(&["--days-per-minute", "600", "--cases-per-day", "60", "--days", "20"], Some(&cfg));
    assert!(demo.wait_for_line("the simulated span is over", Duration::from_secs(120)));
    for path in [
        "/",
        "/api/alerts",
        "/api/regions",
        "/api/departments",
        "/api/rules",
        "/api/calendar",
        "/api/cases/C00000001",
        "/api/reports/monthly-briefing?month=2026-03",
    ] {
        let (code, body) = get(&demo.url(path), None);
        assert_eq!(code, 401, "{path}: {body}");
        let (code, _) = get(&demo.url(path), Some("admin:wrong"));
        assert_eq!(code, 401, "{path} with a wrong password");
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(&demo.url(path), None).0, 200, "{path}");
    }
    let parse = |(code, body): (u16, String)| -> Value {
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let all = parse(get(&demo.url("/api/alerts?limit=1000"), Some("admin:admin-pw")));
    let mine = parse(get(&demo.url("/api/alerts?limit=1000"), Some("town:town-pw")));
    let parents = parents();
    let expect: Vec<String> = alerts(&all)
        .iter()
        .filter(|a| a["region"].as_str().is_some_and(|r| under(&parents, r, scope)))
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!expect.is_empty() && expect.len() < alerts(&all).len(), "{} of {}", expect.len(), alerts(&all).len());
    assert_eq!(ids(&mine), expect);
    // Asking for a wider region does not widen the scope.
    let wide = parse(get(&demo.url("/api/alerts?limit=1000&region=220000"), Some("town:town-pw")));
    assert_eq!(ids(&wide), expect);
    // A case of another region is not there for the reader.
    let other = alerts(&all).iter().find(|a| a["region"].as_str().is_some_and(|r| !under(&parents, r, scope))).unwrap();
    let path = format!("/api/cases/{}", other["case_id"].as_str().unwrap());
    assert_eq!(get(&demo.url(&path), Some("town:town-pw")).0, 404);
    assert_eq!(get(&demo.url(&path), Some("admin:admin-pw")).0, 200);
    // A case of its own: the reader sees it without the officials' codes, the admin with them.
    let own = alerts(&mine).first().map(|a| a["case_id"].as_str().unwrap().to_string()).unwrap();
    let path = format!("/api/cases/{own}");
    let as_reader = parse(get(&demo.url(&path), Some("town:town-pw")));
    let as_admin = parse(get(&demo.url(&path), Some("admin:admin-pw")));
    assert!(as_reader["case"]["staff"].is_null(), "{as_reader}");
    assert!(as_reader["events"].as_array().unwrap().iter().all(|e| e["staff"].is_null()), "{as_reader}");
    assert!(
        as_admin["events"].as_array().unwrap().iter().any(|e| e["staff"].is_string()),
        "the simulator's officials: {as_admin}"
    );
    let regions = parse(get(&demo.url("/api/regions"), Some("town:town-pw")));
    assert!(regions.as_array().unwrap().iter().all(|r| under(&parents, r["code"].as_str().unwrap(), scope)));
    // Reports as JSON: a reader gets its region's rows, is refused the staff
    // briefing (403) and a region outside its own (403); an admin gets both.
    let rows = parse(get(&demo.url("/api/reports/monthly-briefing?month=2026-03"), Some("town:town-pw")));
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["region"] == scope), "{rows:?}");
    assert!(rows.iter().all(|r| r["department_name"].as_str().is_some_and(|n| !n.is_empty())), "{rows:?}");
    let (code, body) = get(&demo.url("/api/reports/staff-briefing?month=2026-03"), Some("town:town-pw"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("admins only"), "{body}");
    let (code, body) =
        get(&demo.url("/api/reports/monthly-briefing?month=2026-03&region=220421"), Some("town:town-pw"));
    assert_eq!(code, 403, "{body}");
    let staff = parse(get(&demo.url("/api/reports/staff-briefing?month=2026-03"), Some("admin:admin-pw")));
    assert!(!staff.as_array().unwrap().is_empty(), "{staff}");
    let annual = parse(get(&demo.url("/api/reports/annual-assessment?year=2026&top=3"), Some("admin:admin-pw")));
    assert!(annual.as_array().unwrap().iter().any(|r| r["grade"].is_string()), "{annual}");
    for (path, want) in [
        ("/api/reports/monthly-briefing", 400),
        ("/api/reports/monthly-briefing?month=2026-13", 400),
        ("/api/reports/annual-assessment?month=2026-03", 400),
        ("/api/reports/monthly-briefing?month=2026-03&colour=red", 400),
        ("/api/reports/no-such-report?month=2026-03", 404),
    ] {
        assert_eq!(get(&demo.url(path), Some("admin:admin-pw")).0, want, "{path}");
    }
    // The departments' names the board shows (departments.csv; the demo's built-in sample).
    let names = parse(get(&demo.url("/api/departments"), Some("town:town-pw")));
    let names: Vec<(&str, &str)> =
        names.as_array().unwrap().iter().map(|d| (d["code"].as_str().unwrap(), d["name"].as_str().unwrap())).collect();
    assert!(names.contains(&("tax", "税务局")) && names.contains(&("culture-tourism", "文化旅游局")), "{names:?}");
    // The rule table the board draws from: rules.md's table, in its order.
    let rules = parse(get(&demo.url("/api/rules"), Some("town:town-pw")));
    let got: Vec<String> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!("{} {} {}", r["rule"].as_str().unwrap(), r["level"].as_str().unwrap(), r["label"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [
            "due_soon yellow 即将超期",
            "overdue red 超期",
            "intake_overdue red 受理超时",
            "repeated_supplement yellow 多次补正",
            "dual_intake red 两头受理",
            "unregistered_case red 体外循环",
            "backdated_entry yellow 补录 / 倒签",
            "overcharge red 超标准收费",
            "denial_without_reason yellow 不予许可未说明理由",
            "bad_rating_unrectified yellow 差评未整改",
            "complaint_overdue red 投诉超时",
            "notice_overdue red 督办超时",
            // follow-up.md's new rules, after rules.md's.
            "step_overdue yellow 环节超时",
            "unlisted_item red 清单外事项",
        ]
    );
}

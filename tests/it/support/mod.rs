//! A small harness over the engine: events written as JSON with defaults
//! filled in, applied through the real decoder, the watermark following event
//! time (lateness 0) as in `replay`, and alert records collected as short
//! strings for assertions.

use jiancha::alert::AlertRecord;
use jiancha::config::RulesConfig;
use jiancha::deadletter::Rejection;
use jiancha::engine::{CaseView, Effect, Engine, Outcome};
use jiancha::event::Decoder;
use jiancha::reference::{Calendar, Catalog, RefData, Regions};
use jiancha::time::{parse_cli_time, Zone};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Catalogue used by the rule tests.
pub const CATALOG: &str = "item_code,name,department,kind,statutory_days,promised_days,fee_yuan,in_hall
A,Item A,tax,promised,10,3,0,
I,Item I,tax,immediate,0,0,10,
B,One-day item,market,promised,20,1,0,
R,Report-up item,natres,report_up,20,5,0,true
J,Joint item,civil,joint,20,5,0,
S,Sub item,health,promised,20,5,0,
O,Out-of-hall item,tax,promised,10,3,0,false
F,Fee item,tax,promised,10,3,10,
";

pub mod broker;
pub mod demo;
pub mod fake_am;

/// Polls `done` every 200 ms until it holds or `within` has passed;
/// whether it held. For a wait that fails with a message of its own (the
/// last value seen, a log); else [`wait_until`].
pub fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `done` holds; panics naming `what` once `within` has passed.
pub fn wait_until(what: &str, within: Duration, done: impl FnMut() -> bool) {
    assert!(poll_until(within, done), "timed out after {within:?} waiting for {what}");
}

/// A free loopback port (bound, then released for the caller).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn refdata(catalog_csv: &str) -> Arc<RefData> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("catalog.csv");
    std::fs::write(&p, catalog_csv).unwrap();
    Arc::new(RefData {
        catalog: Catalog::load(&p).unwrap(),
        calendar: Calendar::load_dir(&root().join("config/calendar")).unwrap(),
        regions: Regions::load(&root().join("config/regions.csv")).unwrap(),
        steps: Default::default(),
        departments: Default::default(),
        deductions: Default::default(),
    })
}

pub fn zone() -> Zone {
    Zone::new("Asia/Shanghai").unwrap()
}

/// `2026-02-13T10:00` → full RFC 3339 in +08:00; full forms pass through.
pub fn ts(s: &str) -> String {
    match s.len() {
        16 => format!("{s}:00+08:00"),
        19 => format!("{s}+08:00"),
        _ => s.to_string(),
    }
}

pub struct H {
    #[allow(dead_code)]
    pub rd: Arc<RefData>,
    pub engine: Engine,
    decoder: Decoder,
    pub records: Vec<AlertRecord>,
    pub dead: Vec<(u64, Rejection)>,
    seq: u64,
}

impl H {
    pub fn new() -> H {
        H::with_rules(RulesConfig::default())
    }

    pub fn with_rules(rules: RulesConfig) -> H {
        H::with_refdata(refdata(CATALOG), rules)
    }

    pub fn with_refdata(rd: Arc<RefData>, rules: RulesConfig) -> H {
        // Items outside the catalogue as the shells treat them.
        let decoder = Decoder::new(rd.clone(), zone(), "test-key").with_unlisted_items(rules.unlisted_item);
        H { engine: Engine::new(rd.clone(), zone(), rules), decoder, rd, records: Vec::new(), dead: Vec::new(), seq: 0 }
    }

    fn take(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Alert(r) => self.records.push(r),
                Effect::DeadLetter { origin, rejection } => self.dead.push((origin, rejection)),
            }
        }
    }

    /// Applies an event: `case`, `type`, `at` (short or full time) and extra
    /// fields. `submitted`/`accepted` get region, department, applicant
    /// defaults; every event gets an id and `source: center` unless given.
    pub fn ev(&mut self, case: &str, kind: &str, at: &str, extra: Value) -> Outcome {
        self.seq += 1;
        let mut v = json!({"event_id": format!("ev{}", self.seq), "case_id": case, "type": kind,
                           "occurred_at": ts(at), "source": "center"});
        if kind == "submitted" || kind == "accepted" {
            v["region"] = json!("220421");
            v["department"] = json!("tax");
            v["applicant"] = json!("p1");
        }
        for (k, x) in extra.as_object().cloned().unwrap_or_default() {
            if k == "recorded_at" {
                v[k] = json!(ts(x.as_str().unwrap()));
            } else {
                v[k] = x;
            }
        }
        self.raw(&v.to_string())
    }

    /// Applies one raw line through the decoder; panics on a rejection.
    pub fn raw(&mut self, line: &str) -> Outcome {
        let ev = self.decoder.decode(line.as_bytes()).unwrap_or_else(|r| panic!("rejected {line}: {r:?}"));
        let at = ev.occurred_at;
        let mut eff = Vec::new();
        let outcome = self.engine.apply(ev, self.seq, &mut eff);
        if outcome == Outcome::Applied {
            self.engine.advance_watermark(at, &mut eff);
        }
        self.take(eff);
        outcome
    }

    /// Judges every case again on new reference data (a calendar file
    /// dropped in), as the shells do when the folder changes.
    pub fn set_refdata(&mut self, rd: Arc<RefData>) {
        let mut eff = Vec::new();
        self.engine.set_refdata(rd.clone(), &mut eff);
        self.decoder.set_refdata(rd.clone());
        self.rd = rd;
        self.take(eff);
    }

    /// Advances the watermark.
    pub fn until(&mut self, at: &str) {
        let t = parse_cli_time(&ts(at), &zone()).unwrap();
        let mut eff = Vec::new();
        self.engine.advance_watermark(t, &mut eff);
        self.take(eff);
    }

    /// Records as `id state at [due]`, in publication order.
    pub fn log(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| {
                let mut s = format!("{} {} {}", r.alert_id, r.state.as_str(), &r.at[..16]);
                if let Some(d) = &r.due_date {
                    s += &format!(" due {d}");
                }
                if let Some(e) = &r.detail.earlier_case_id {
                    s += &format!(" earlier {e}");
                }
                if r.detail.provisional_calendar {
                    s += " provisional";
                }
                s
            })
            .collect()
    }

    /// Records of one case, sorted.
    pub fn of(&self, case: &str) -> Vec<String> {
        let mut v: Vec<String> = self.log().into_iter().filter(|l| l.starts_with(&format!("{case}/"))).collect();
        v.sort();
        v
    }

    pub fn case(&self, id: &str) -> CaseView {
        self.engine.case_view(id).unwrap_or_else(|| panic!("no case {id}"))
    }
}

/// Sorted list of expected lines.
pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Property-test case count: `default`, or `PROPTEST_CASES` for a longer run.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

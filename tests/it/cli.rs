//! The `jiancha` binary over real files: replay outputs for bad input, exit
//! status and one-line reasons for bad invocations and bad reference data,
//! `check-config`, and `--until` as a plain date (interfaces.md, events.md).

use crate::support;
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// The binary, run in `cwd`, with no `JIANCHA__…` variable (nor `RUST_LOG`)
/// inherited.
fn jiancha(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jiancha"));
    c.current_dir(cwd).env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("JIANCHA__") {
            c.env_remove(k);
        }
    }
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("cannot start jiancha")
}

fn shipped(rel: &str) -> String {
    support::root().join(rel).display().to_string()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `--catalog … --calendar … --regions …` with a catalogue file, the shipped
/// calendar and regions.
fn refs(catalog: &Path) -> Vec<String> {
    vec![
        "--catalog".into(),
        catalog.display().to_string(),
        "--calendar".into(),
        shipped("config/calendar"),
        "--regions".into(),
        shipped("config/regions.csv"),
    ]
}

/// `jiancha replay --out out` with `refs(cat)`, run in `dir`; callers add the rest.
fn replay(dir: &Path, cat: &Path) -> Command {
    let mut c = jiancha(dir);
    c.args(["replay", "--out", "out"]).args(refs(cat));
    c
}

/// A temp dir holding `catalog.csv` = `support::CATALOG`.
fn fixture() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let cat = write(dir.path(), "catalog.csv", support::CATALOG);
    (dir, cat)
}

/// Insists on failure with exactly one non-empty line on stderr; returns it.
fn one_line_failure(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: exit status 0; stderr: {err}");
    assert_ne!(out.status.code(), Some(0), "{what}");
    let line = err.trim_end_matches('\n');
    assert!(!line.trim().is_empty(), "{what}: nothing on stderr");
    assert!(!line.contains('\n'), "{what}: more than one line on stderr:\n{err}");
    line.to_string()
}

fn succeed(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn event(id: &str, case: &str, kind: &str, at: &str, extra: Value) -> String {
    let mut v = json!({"event_id": id, "case_id": case, "type": kind,
                       "occurred_at": support::ts(at), "source": "center"});
    if kind == "submitted" || kind == "accepted" {
        for (k, x) in [("region", "220421"), ("department", "tax"), ("applicant", "p1")] {
            v[k] = json!(x);
        }
    }
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

// ------------------------------------------------------------ replay ---

#[test]
fn replay_dead_letters_keep_the_original_bytes() {
    let (dir, cat) = fixture();
    let non_utf8: Vec<u8> = [
        &br#"{"event_id":"E-2","case_id":"C-2","type":"submitted","applicant":"caf"#[..],
        &[0xe9, 0xff],
        &br#""}"#[..],
    ]
    .concat();
    let malformed = r#"{"event_id": "E-3", "case_id": "C-3", "#;
    let mut a = Vec::new();
    a.extend(event("E-1", "C-1", "submitted", "2026-03-02T09:00", json!({"item_code": "A"})).as_bytes());
    a.extend(b"\n\n"); // line 2 blank
    a.extend(&non_utf8); // line 3
    a.extend(b"\n   \t\n"); // line 4 whitespace only
    a.extend(malformed.as_bytes()); // line 5, CRLF
    a.extend(b"\r\n");
    a.extend(event("E-4", "C-1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"})).as_bytes());
    a.extend(b"\n");
    // line 7, no final line break
    a.extend(event("E-5", "C-1", "completed", "2026-03-03T10:00", json!({"result": "approved"})).as_bytes());
    let file_a = write(dir.path(), "in/a.jsonl", a);
    let file_b = write(
        dir.path(),
        "in/b.jsonl",
        "not json at all\n".to_string() + &event("E-6", "C-1", "reopened", "2026-03-04T10:00", json!({})) + "\n\n",
    );
    let out = dir.path().join("out");
    let o = run(jiancha(dir.path()).arg("replay").arg("--out").arg(&out).args(refs(&cat)).arg(&file_a).arg(&file_b));
    succeed(&o, "replay");

    let dead = jsonl(&out.join("dead-letter.jsonl"));
    assert_eq!(dead.len(), 4, "{dead:#?}");
    let find = |file: &Path, line: u64| {
        dead.iter()
            .find(|d| d["file"] == json!(file.display().to_string()) && d["line"] == json!(line))
            .unwrap_or_else(|| panic!("no dead letter for {}:{line} in {dead:#?}", file.display()))
    };
    let d = find(&file_a, 3);
    assert_eq!((&d["reason"], &d["field"]), (&json!("not_json"), &Value::Null), "{d}");
    assert!(d.as_object().unwrap().contains_key("field"), "field must be present as null: {d}");
    assert!(d.get("raw").is_none(), "non-UTF-8 line must not have raw: {d}");
    let b64 = d["raw_base64"].as_str().unwrap_or_else(|| panic!("no raw_base64: {d}"));
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), non_utf8);
    assert!(d["detail"].as_str().is_some_and(|s| !s.is_empty()), "{d}");

    let d = find(&file_a, 5);
    assert_eq!((&d["reason"], &d["field"]), (&json!("not_json"), &Value::Null), "{d}");
    assert_eq!(d["raw"], json!(malformed), "raw is the line without its CRLF: {d}");
    assert!(d.get("raw_base64").is_none(), "{d}");

    let d = find(&file_b, 1);
    assert_eq!((&d["reason"], &d["raw"]), (&json!("not_json"), &json!("not json at all")));
    let d = find(&file_b, 2);
    assert_eq!((&d["reason"], &d["field"]), (&json!("unknown_type"), &json!("type")), "{d}");

    let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["read"], json!(7), "{s:#}");
    assert_eq!(s["blank_lines"], json!(3), "{s:#}");
    assert_eq!(s["applied"], json!(3), "{s:#}");
    assert_eq!(s["duplicates"], json!(0), "{s:#}");
    assert_eq!(s["dead_lettered"], json!({"not_json": 3, "unknown_type": 1}), "{s:#}");
    assert!(out.join("alerts.jsonl").is_file());
}

#[test]
fn replay_outside_the_repository_uses_the_built_in_reference_data_and_says_so() {
    // Was: `cannot read config/regions.csv` for any command but the demo.
    let dir = TempDir::new().unwrap();
    let line = event("e1", "C1", "accepted", "2026-03-02T10:00", json!({"item_code": "TAX-003"}));
    let input = write(dir.path(), "in.jsonl", line + "\n");
    let o = run(jiancha(dir.path()).args(["replay", "--out", "out", "--until", "2026-04-01"]).arg(&input));
    succeed(&o, "replay with no config/ folder");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sample reference data built into the binary"), "{err}");
    // The same as a replay on the shipped files, from the repository.
    let shipped_run = run(jiancha(dir.path())
        .args(["replay", "--out", "out2", "--until", "2026-04-01"])
        .args(["--catalog", &shipped("config/catalog.csv"), "--calendar", &shipped("config/calendar")])
        .args(["--regions", &shipped("config/regions.csv")])
        .arg(&input));
    succeed(&shipped_run, "replay on the shipped files");
    let (a, b) = (jsonl(&dir.path().join("out/alerts.jsonl")), jsonl(&dir.path().join("out2/alerts.jsonl")));
    assert!(!a.is_empty() && a == b, "{a:?}\n{b:?}");
    // A path given explicitly must exist: no fallback for it.
    let o = run(jiancha(dir.path()).args(["replay", "--out", "out3", "--catalog", "mine.csv"]).arg(&input));
    let msg = one_line_failure(&o, "missing explicit catalogue");
    assert!(msg.contains("mine.csv"), "{msg}");
}

#[test]
fn log_format_json_writes_every_log_line_as_a_json_object() {
    // Outside the repository, `sql` says in a log line that it uses the
    // built-in reference data; the query's result stays on stdout.
    let dir = TempDir::new().unwrap();
    let sql = |c: &mut Command| run(c.args(["sql", "--data", "h", "--format", "csv", "SELECT 1 AS one"]));
    let o = sql(jiancha(dir.path()).args(["--log-format", "json"]));
    succeed(&o, "sql with --log-format json");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\n1\n");
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let said = lines
        .iter()
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("sample reference data built into")))
        .unwrap_or_else(|| panic!("no line about the reference data:\n{err}"));
    assert_eq!(said["level"], "WARN", "{said}");
    assert!(said["target"].as_str().is_some_and(|t| t.starts_with("jiancha")), "{said}");
    assert!(said["timestamp"].is_string(), "{said}");

    // Text by default; RUST_LOG sets what is logged.
    let o = sql(&mut jiancha(dir.path()));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(" WARN ") && err.contains("sample reference data built into"), "{err}");
    assert!(err.lines().all(|l| serde_json::from_str::<Value>(l).is_err()), "{err}");
    let o = sql(jiancha(dir.path()).env("RUST_LOG", "error"));
    succeed(&o, "sql with RUST_LOG=error");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn replay_refuses_a_missing_input_file() {
    let (dir, cat) = fixture();
    let o = run(replay(dir.path(), &cat).arg("no-such-file.jsonl"));
    let msg = one_line_failure(&o, "missing input");
    assert!(msg.contains("no-such-file.jsonl"), "{msg}");
}

#[test]
fn replay_refuses_a_nonsense_until() {
    let (dir, cat) = fixture();
    let input = write(dir.path(), "in.jsonl", "");
    let o = run(replay(dir.path(), &cat).args(["--until", "nonsense"]).arg(&input));
    let msg = one_line_failure(&o, "--until nonsense");
    assert!(msg.contains("--until") && msg.contains("nonsense"), "{msg}");
}

#[test]
fn replay_names_the_file_and_line_of_a_bad_catalogue_row() {
    let (dir, _) = fixture();
    let input = write(dir.path(), "in.jsonl", "");
    for (row, needle) in [
        ("X,x,tax,sometimes,10,3,0,", "sometimes"),
        ("X,x,tax,promised,ten,3,0,", "statutory_days"),
        ("X,x,tax,promised,10,3,-5,", "fee_yuan"),
        ("X,x,tax,promised,10,3,0,maybe", "in_hall"),
        ("A,again,tax,promised,10,3,0,", "twice"),
    ] {
        let csv = format!(
            "{}\n{row}\nB,b,tax,promised,10,3,0,\n",
            support::CATALOG.lines().take(2).collect::<Vec<_>>().join("\n")
        );
        let cat = write(dir.path(), "bad.csv", csv);
        let o = run(replay(dir.path(), &cat).arg(&input));
        let msg = one_line_failure(&o, row);
        assert!(msg.contains(&format!("{}:3:", cat.display())), "{row}: {msg}");
        assert!(msg.contains(needle), "{row}: {msg}");
    }
}

#[test]
fn replay_refuses_a_calendar_folder_without_year_files() {
    let (dir, cat) = fixture();
    let input = write(dir.path(), "in.jsonl", "");
    write(dir.path(), "cal/README.md", "holiday files go here");
    write(dir.path(), "cal/notes.txt", "2026");
    let cal = dir.path().join("cal");
    let mut args = refs(&cat);
    args[3] = cal.display().to_string();
    let o = run(jiancha(dir.path()).args(["replay", "--out", "out"]).args(&args).arg(&input));
    let msg = one_line_failure(&o, "empty calendar folder");
    assert!(msg.contains(&cal.display().to_string()) && msg.contains("YYYY.json"), "{msg}");
}

#[test]
fn unknown_config_keys_are_named() {
    let (dir, cat) = fixture();
    let input = write(dir.path(), "in.jsonl", "");
    for (toml, key) in [
        ("[kafka]\nbrokerz = \"x\"\n", "brokerz"),
        ("[kafkaz]\nbrokers = \"x\"\n", "kafkaz"),
        ("[rules]\nwarn_days = 2\nsilly_days = 3\n", "silly_days"),
    ] {
        let cfg = write(dir.path(), "c.toml", toml);
        let o = run(replay(dir.path(), &cat).arg("--config").arg(&cfg).arg(&input));
        let msg = one_line_failure(&o, toml);
        assert!(msg.contains(key) && msg.contains("c.toml"), "{toml}: {msg}");
        let o = run(jiancha(dir.path()).args(["check-config", "--config"]).arg(&cfg));
        let msg = one_line_failure(&o, toml);
        assert!(msg.contains(key), "check-config {toml}: {msg}");
    }
}

#[test]
fn unknown_environment_keys_are_named() {
    let (dir, cat) = fixture();
    let input = write(dir.path(), "in.jsonl", "");
    let o = run(replay(dir.path(), &cat).env("JIANCHA__RULES__WARN_DAYZ", "1").arg(&input));
    let msg = one_line_failure(&o, "JIANCHA__RULES__WARN_DAYZ");
    assert!(msg.to_lowercase().contains("warn_dayz"), "{msg}");
    // A known key through the environment is fine.
    let o = run(replay(dir.path(), &cat).env("JIANCHA__RULES__WARN_DAYS", "3").arg(&input));
    succeed(&o, "JIANCHA__RULES__WARN_DAYS=3");
}

#[test]

fn numeric_environment_values_for_string_keys() {
    for (var, val) in [("JIANCHA__KAFKA__GROUP_ID", "42"), ("JIANCHA__PRIVACY__APPLICANT_KEY", "20260101")] {
        let o = run(jiancha(support::root()).env(var, val).arg("check-config"));
        succeed(&o, &format!("{var}={val}"));
    }
}

#[test]

fn bad_config_values_are_named_on_one_line() {
    let dir = TempDir::new().unwrap();
    for (toml, needle) in [
        ("[rules]\nwarn_days = \"two\"\n", "warn_days"),
        ("[kafka]\ngroup_id = 42\n", "group_id"),
        ("[time]\nallowed_lateness = \"10 minutes\"\n", "allowed_lateness"),
        ("[rules\nwarn_days = 2\n", "1"),
    ] {
        let cfg = write(dir.path(), "c.toml", toml);
        let o = run(jiancha(dir.path()).args(["check-config", "--config"]).arg(&cfg));
        let msg = one_line_failure(&o, toml);
        assert!(msg.contains(needle), "{toml}: {msg}");
    }
}

#[test]

fn catalogue_errors_give_the_file_line() {
    let dir = TempDir::new().unwrap();
    let input = write(dir.path(), "in.jsonl", "");
    let header = support::CATALOG.lines().next().unwrap();
    for csv in [
        format!("{header}\nA,a,tax,promised,10,3,0,\n\nX,x,tax,sometimes,10,3,0,\n"),
        format!("{header}\nA,\"two\nlines\",tax,promised,10,3,0,\nX,x,tax,sometimes,10,3,0,\n"),
    ] {
        let cat = write(dir.path(), "cat.csv", csv);
        let o = run(replay(dir.path(), &cat).arg(&input));
        let msg = one_line_failure(&o, "catalogue");
        assert!(msg.contains(&format!("{}:4:", cat.display())), "{msg}");
    }
}

#[test]

fn io_errors_say_it_once() {
    let (dir, cat) = fixture();
    let o = run(replay(dir.path(), &cat).arg("gone.jsonl"));
    let msg = one_line_failure(&o, "missing input");
    assert_eq!(msg.matches("os error").count(), 1, "{msg}");
}

// ------------------------------------------------------- check-config ---

#[test]
fn check_config_accepts_the_shipped_configuration() {
    let o = run(jiancha(support::root()).arg("check-config"));
    let year = chrono::Datelike::year(&chrono::Local::now().date_naive());
    if support::root().join(format!("config/calendar/{year}.json")).exists() {
        succeed(&o, "check-config on the shipped config");
        assert!(String::from_utf8_lossy(&o.stdout).contains("configuration is valid"));
    } else {
        // The shipped calendar has run out: check-config must say so.
        let msg = one_line_failure(&o, "check-config without a calendar for this year");
        assert!(msg.contains(&year.to_string()), "{msg}");
    }
}

/// A config file whose `[reference]` uses the shipped files except those given.
fn config_with(dir: &Path, catalog: Option<&Path>, calendar: Option<&Path>, regions: Option<&Path>) -> PathBuf {
    let pick = |p: Option<&Path>, rel: &str| p.map(|p| p.display().to_string()).unwrap_or_else(|| shipped(rel));
    let toml = format!(
        "[reference]\ncatalog = {:?}\ncalendar = {:?}\nregions = {:?}\n",
        pick(catalog, "config/catalog.csv"),
        pick(calendar, "config/calendar"),
        pick(regions, "config/regions.csv")
    );
    write(dir, "jiancha.toml", toml)
}

/// Runs check-config and insists it fails naming all of `needles`.
fn check_config_fails(dir: &Path, cfg: &Path, needles: &[&str]) {
    let o = run(jiancha(dir).args(["check-config", "--config"]).arg(cfg));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "check-config passed; stdout:\n{}", String::from_utf8_lossy(&o.stdout));
    for n in needles {
        assert!(err.contains(n), "stderr does not name {n:?}:\n{err}");
    }
}

#[test]
fn check_config_names_a_missing_parent_region() {
    let dir = TempDir::new().unwrap();
    let reg = write(
        dir.path(),
        "regions.csv",
        "code,name,parent\n220000,吉林省,\n220400,辽源市,220000\n220421,东丰县,220499\n",
    );
    let cfg = config_with(dir.path(), None, None, Some(&reg));
    check_config_fails(dir.path(), &cfg, &[&format!("{}:4:", reg.display()), "220499"]);
}

#[test]
fn check_config_names_promised_beyond_statutory() {
    let dir = TempDir::new().unwrap();
    let cat = write(dir.path(), "catalog.csv", format!("{}X,x,tax,promised,5,8,0,\n", support::CATALOG));
    let cfg = config_with(dir.path(), Some(&cat), None, None);
    check_config_fails(dir.path(), &cfg, &[&format!("{}:10:", cat.display()), "promised_days", "statutory_days"]);
}

#[test]
fn check_config_names_an_immediate_item_with_promised_days() {
    let dir = TempDir::new().unwrap();
    for row in ["X,x,tax,immediate,0,3,0,", "X,x,tax,immediate,5,3,0,"] {
        let cat = write(dir.path(), "catalog.csv", format!("{}{row}\n", support::CATALOG));
        let cfg = config_with(dir.path(), Some(&cat), None, None);
        check_config_fails(dir.path(), &cfg, &[&format!("{}:10:", cat.display()), "immediate", "promised_days"]);
    }
}

#[test]
fn check_config_names_the_line_of_a_bad_steps_row() {
    // steps.csv against the shipped catalogue: an unknown item, a step named
    // twice for one item, a limit below 1 — each named with file and line.
    let dir = TempDir::new().unwrap();
    for (rows, line, needle) in [
        ("TAX-014,承办,2\nXX-999,审核,1\n", 3, "XX-999"),
        ("TAX-014,承办,2\nTAX-014,承办,1\n", 3, "twice"),
        ("TAX-014,承办,0\n", 2, "limit_days"),
    ] {
        let steps = write(dir.path(), "steps.csv", format!("item_code,step,limit_days\n{rows}"));
        let cfg = config_with(dir.path(), None, None, None);
        let toml = std::fs::read_to_string(&cfg).unwrap() + &format!("steps = {:?}\n", steps.display().to_string());
        std::fs::write(&cfg, toml).unwrap();
        check_config_fails(dir.path(), &cfg, &[&format!("{}:{line}:", steps.display()), needle]);
    }
}

#[test]
fn check_config_names_a_date_both_off_and_working() {
    let dir = TempDir::new().unwrap();
    let mut y2026: Value =
        serde_json::from_slice(&std::fs::read(support::root().join("config/calendar/2026.json")).unwrap()).unwrap();
    y2026["days"].as_array_mut().unwrap().push(json!({"name": "国庆节", "date": "2026-10-02", "isOffDay": false}));
    let f = write(dir.path(), "cal/2026.json", y2026.to_string());
    let cfg = config_with(dir.path(), None, Some(&dir.path().join("cal")), None);
    check_config_fails(dir.path(), &cfg, &[&f.display().to_string(), "2026-10-02", "both"]);
}

/// `config_with` the shipped files, plus departments and deductions files.
fn config_with_report_files(dir: &Path, departments: &Path, deductions: &Path) -> PathBuf {
    let base = std::fs::read_to_string(config_with(dir, None, None, None)).unwrap();
    let toml = format!("{base}departments = {:?}\ndeductions = {:?}\n", departments.display(), deductions.display());
    write(dir, "jiancha.toml", toml)
}

#[test]
fn check_config_names_bad_rows_of_departments_and_deductions() {
    let dir = TempDir::new().unwrap();
    let good_dept = write(dir.path(), "departments.csv", "code,name\ntax,税务局\nmarket,市场监管局\n");
    let good_ded = write(
        dir.path(),
        "deductions.csv",
        "date,region,department,window,points,reason\n2026-03-12,220421,tax,W01,2,明查暗访：脱岗\n2026-03-20,220421100,market,,1.5,考勤\n",
    );
    let cfg = config_with_report_files(dir.path(), &good_dept, &good_ded);
    let o = run(jiancha(dir.path()).args(["check-config", "--config"]).arg(&cfg));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ok  departments") && out.contains("2 departments"), "{out}");
    assert!(out.contains("ok  deductions") && out.contains("2 deductions, 3.5 points"), "{out}");
    // The shipped catalogue has departments the file does not name.
    assert!(
        out.contains("warn departments") && out.contains("no name for") && out.contains("public-security"),
        "{out}"
    );

    for (what, text, needles) in [
        ("a repeated code", "code,name\ntax,税务局\ntax,税务\n", vec![":3:", "twice"]),
        ("a code without a name", "code,name\ntax,\n", vec![":2:", "no name"]),
        ("a wrong header", "department,name\ntax,税务局\n", vec![":1:", "code,name"]),
    ] {
        let f = write(dir.path(), "bad-departments.csv", text);
        let cfg = config_with_report_files(dir.path(), &f, &good_ded);
        let mut n: Vec<&str> = needles.clone();
        let shown = f.display().to_string();
        n.push(&shown);
        check_config_fails(dir.path(), &cfg, &n);
        let _ = what;
    }
    let header = "date,region,department,window,points,reason\n";
    for (row, needles) in [
        ("2026-02-30,220421,tax,,2,x", vec!["date", "2026-02-30"]),
        ("2026-3-5,220421,tax,,2,x", vec!["date"]),
        ("2026-03-05,2204,tax,,2,x", vec!["region", "2204"]),
        ("2026-03-05,220423,tax,,2,x", vec!["220423", "not in the regions file"]),
        ("2026-03-05,220421,,,2,x", vec!["department"]),
        ("2026-03-05,220421,tax,,0,x", vec!["points"]),
        ("2026-03-05,220421,tax,,-1,x", vec!["points"]),
        ("2026-03-05,220421,tax,,two,x", vec!["points", "two"]),
        ("2026-03-05,220421,tax,,2,", vec!["reason"]),
        ("2026-03-05,220421,tax,2,x", vec!["6 fields"]),
    ] {
        let f = write(dir.path(), "bad-deductions.csv", format!("{header}{row}\n"));
        let cfg = config_with_report_files(dir.path(), &good_dept, &f);
        let line = format!("{}:2:", f.display());
        let mut n: Vec<&str> = needles.clone();
        n.push(&line);
        check_config_fails(dir.path(), &cfg, &n);
    }
    // Missing files are no error: no names, no deductions.
    let cfg = config_with_report_files(dir.path(), &dir.path().join("none.csv"), &dir.path().join("none2.csv"));
    let o = run(jiancha(dir.path()).args(["check-config", "--config"]).arg(&cfg));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("warn departments") && out.contains("codes as names"), "{out}");
    assert!(out.contains("no such file, so no deductions"), "{out}");
    // A file named on the command line must exist.
    let o = run(jiancha(dir.path())
        .args(["sql", "--data", "d", "--deductions"])
        .arg(dir.path().join("none.csv"))
        .arg("SELECT 1"));
    let msg = one_line_failure(&o, "sql --deductions none.csv");
    assert!(msg.contains("--deductions") && msg.contains("none.csv"), "{msg}");
}

// -------------------------------------------------------------- until ---

#[test]
fn until_as_a_plain_date_is_local_midnight() {
    let (dir, cat) = fixture();
    // Item B (1 day), accepted Friday 2026-03-06: due Monday 03-09, overdue at
    // 2026-03-10T00:00+08:00 exactly, so a watermark one second earlier differs.
    let input = [
        event("E-1", "C-1", "submitted", "2026-03-06T09:00", json!({"item_code": "B"})),
        event("E-2", "C-1", "accepted", "2026-03-06T10:00", json!({"item_code": "B"})),
    ]
    .join("\n");
    let input = write(dir.path(), "in.jsonl", input + "\n");
    let replay_until = |until: &str| -> (String, Value) {
        let out = dir.path().join(format!("out-{}", until.replace(':', "_")));
        let o = run(jiancha(dir.path())
            .args(["replay", "--out"])
            .arg(&out)
            .args(["--until", until])
            .args(refs(&cat))
            .arg(&input));
        succeed(&o, until);
        let mut s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        s.as_object_mut().unwrap().remove("seconds");
        (std::fs::read_to_string(out.join("alerts.jsonl")).unwrap(), s)
    };
    let by_date = replay_until("2026-03-10");
    assert!(by_date.0.contains(r#""alert_id":"C-1/overdue""#), "{}", by_date.0);
    assert_eq!(by_date.1["watermark"], json!("2026-03-10T00:00:00+08:00"));
    for same in ["2026-03-10T00:00:00+08:00", "2026-03-09T16:00:00Z"] {
        assert_eq!(replay_until(same), by_date, "--until {same} differs from --until 2026-03-10");
    }
    let before = replay_until("2026-03-09T23:59:59+08:00");
    assert!(!before.0.contains("C-1/overdue"), "{}", before.0);
}

//! The PostgreSQL endpoint with the real `psql` client: passwords, region
//! scoping whatever the SQL, read-only, and 20 concurrent briefings.

use crate::support::demo::Demo;
use std::process::Command;
use std::time::Duration;

/// A township of 东丰县 with villages below it, and a sibling township (the
/// demo's cases are all in 东丰县).
const COUNTY: &str = "220421101";
const OTHER: &str = "220421106";

pub fn hash(password: &str) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), format!("{password}\n").as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn config() -> String {
    format!(
        "[[users]]\nname = \"admin\"\npassword = \"{}\"\nrole = \"admin\"\n\n\
         [[users]]\nname = \"county\"\npassword = \"{}\"\nrole = \"reader\"\nregion = \"{COUNTY}\"\n",
        hash("admin-pw"),
        hash("county-pw")
    )
}

/// Runs psql: (success, stdout, stderr).
pub fn psql(addr: &str, user: &str, password: &str, sql: &str) -> (bool, String, String) {
    psql_ssl(addr, user, password, sql, "prefer")
}

/// Runs psql with `PGSSLMODE`.
fn psql_ssl(addr: &str, user: &str, password: &str, sql: &str, sslmode: &str) -> (bool, String, String) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("psql")
        .env("PGSSLMODE", sslmode)
        .args(["-h", host, "-p", port, "-U", user, "-d", "jiancha", "-X", "--csv", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed (scripts/test.sh installs postgresql-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub fn ok(addr: &str, user: &str, password: &str, sql: &str) -> Vec<String> {
    let (success, out, err) = psql(addr, user, password, sql);
    assert!(success, "{user}: {sql}: {err}");
    out.lines().skip(1).map(str::to_string).collect()
}

fn finished_demo() -> Demo {
    let cfg = config();
    let demo = Demo::start(&["--days-per-minute", "600", "--cases-per-day", "60", "--days", "20"], Some(&cfg));
    assert!(demo.wait_for_line("the simulated span is over", Duration::from_secs(120)), "demo did not finish");
    demo
}

#[test]
fn psql_logs_in_lists_tables_runs_the_briefing_and_refuses_bad_logins_and_writes() {
    let demo = finished_demo();
    let sql = demo.sql.clone().expect("SQL endpoint served");
    let tables = ok(
        &sql,
        "admin",
        "admin-pw",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    for t in ["alerts", "cases", "events", "items", "regions"] {
        assert!(tables.iter().any(|x| x == t), "{t} in {tables:?}");
    }
    // psql's own catalog query behind \dt.
    let (success, out, err) = psql(&sql, "admin", "admin-pw", "\\dt");
    assert!(success && out.contains("cases"), "\\dt: {out} {err}");
    let rows = ok(
        &sql,
        "admin",
        "admin-pw",
        "SELECT department, on_time_rate, rank FROM monthly_briefing('2026-03', '') ORDER BY rank, department",
    );
    assert!(!rows.is_empty(), "briefing rows");

    let (success, _, err) = psql(&sql, "admin", "wrong", "SELECT 1");
    assert!(!success && err.to_lowercase().contains("password authentication failed"), "{err}");
    let (success, _, err) = psql(&sql, "nobody", "admin-pw", "SELECT 1");
    assert!(!success && err.to_lowercase().contains("authentication failed"), "{err}");

    for stmt in [
        "INSERT INTO cases (case_id) VALUES ('x')",
        "CREATE TABLE t AS SELECT 1 AS a",
        "DROP TABLE cases",
        "CREATE VIEW v AS SELECT * FROM cases",
        "DELETE FROM events",
    ] {
        let (success, _, err) = psql(&sql, "admin", "admin-pw", stmt);
        assert!(!success && err.contains("read-only"), "{stmt}: {err}");
    }
    // Still serving, and nothing was created.
    let n =
        ok(&sql, "admin", "admin-pw", "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('t', 'v')");
    assert_eq!(n, vec!["0"]);
}

#[test]
fn a_county_user_reads_only_its_county_whatever_the_sql() {
    let demo = finished_demo();
    let sql = demo.sql.clone().expect("SQL endpoint served");
    let admin = |q: &str| ok(&sql, "admin", "admin-pw", q);
    let county = |q: &str| ok(&sql, "county", "county-pw", q);
    let other_cases = admin(&format!("SELECT count(*) FROM cases WHERE region = '{OTHER}'"));
    assert_ne!(other_cases, vec!["0"], "the other county has cases to hide");
    let own = admin(&format!("SELECT count(*) FROM cases WHERE region = '{COUNTY}'"));
    assert_ne!(own, vec!["0"], "the county has cases to see");
    // The county's own rows: the same count as the admin sees for it.
    assert_eq!(county(&format!("SELECT count(*) FROM cases WHERE region = '{COUNTY}'")), own);

    let probes = [
        "SELECT DISTINCT region FROM cases".to_string(),
        "SELECT DISTINCT region FROM events".to_string(),
        "SELECT DISTINCT region FROM alerts WHERE region IS NOT NULL".to_string(),
        "SELECT DISTINCT region FROM case_versions".to_string(),
        "SELECT DISTINCT region FROM event_log".to_string(),
        "SELECT DISTINCT c.region FROM cases c JOIN events e ON e.case_id = c.case_id".to_string(),
        format!("SELECT DISTINCT e.region FROM events e WHERE e.case_id IN (SELECT case_id FROM cases WHERE region = '{OTHER}')"),
        format!("WITH x AS (SELECT * FROM cases WHERE region = '{OTHER}') SELECT DISTINCT region FROM x"),
        format!("SELECT region FROM cases WHERE region = '{OTHER}' UNION SELECT region FROM events WHERE region = '{OTHER}'"),
        "SELECT DISTINCT region FROM jiancha.public.cases".to_string(),
        "SELECT DISTINCT code AS region FROM regions".to_string(),
        format!("SELECT DISTINCT region FROM monthly_briefing('2026-03', '{OTHER}') WHERE accepted > 0"),
    ];
    for q in &probes {
        let regions = county(q);
        assert!(regions.iter().all(|r| r.is_empty() || r == COUNTY || r.starts_with(COUNTY)), "{q} leaked {regions:?}");
        assert!(!regions.iter().any(|r| r == OTHER), "{q}: {regions:?}");
    }
    // The other county's briefing is empty for the county user, not for admins.
    let b = |who: &dyn Fn(&str) -> Vec<String>| {
        who(&format!("SELECT sum(accepted) FROM monthly_briefing('2026-03', '{OTHER}')"))
    };
    assert!(b(&county) == vec![""] || b(&county) == vec!["0"], "{:?}", b(&county));
    assert_ne!(b(&admin), vec![""]);
    // The catalog names tables but holds none of their rows; the hidden
    // stored table of dead-letter positions is not there at all.
    let names = county("SELECT table_name FROM information_schema.tables ORDER BY 1");
    assert!(!names.iter().any(|n| n == "rejected_events"), "{names:?}");
    let (success, _, err) = psql(&sql, "county", "county-pw", "SELECT count(*) FROM rejected_events");
    assert!(!success, "{err}");
    let (success, out, _) = psql(&sql, "county", "county-pw", "SELECT relname FROM pg_catalog.pg_class");
    assert!(success && !out.contains(OTHER));
}

/// The reports of follow-up.md are table functions too; the staff
/// briefing names officials and is for admins only: a reader is refused
/// it, and reads the officials' codes (`staff`) as NULL in every table.
#[test]
fn new_reports_are_table_functions_and_the_staff_briefing_is_for_admins_only() {
    let demo = finished_demo();
    let sql = demo.sql.clone().expect("SQL endpoint served");
    let admin = |q: &str| ok(&sql, "admin", "admin-pw", q);
    let county = |q: &str| ok(&sql, "county", "county-pw", q);
    let windows = admin("SELECT department_name, \"window\", rank FROM window_briefing('2026-03', '') ORDER BY rank");
    assert!(windows.len() > 5, "{windows:?}");
    let grades =
        admin("SELECT grade, count(*) FROM annual_assessment('2026', '') WHERE unit = 'department' GROUP BY grade");
    assert!(!grades.is_empty(), "{grades:?}");
    let honoured = admin("SELECT count(*) FROM annual_assessment('2026', '', 3) WHERE honour = '优秀窗口'");
    assert!(honoured[0].parse::<u32>().unwrap() >= 3, "{honoured:?}");
    let staff = admin("SELECT staff, completed FROM staff_briefing('2026-03', '') ORDER BY staff");
    assert!(!staff.is_empty(), "the demo's officials: {staff:?}");
    assert_ne!(admin("SELECT count(staff) FROM cases"), vec!["0"], "admins read staff");

    // A reader: refused, with the reason; its own window briefing works.
    let (success, _, err) = psql(&sql, "county", "county-pw", "SELECT * FROM staff_briefing('2026-03', '')");
    assert!(!success && err.contains("admins only"), "{err}");
    let (success, _, err) =
        psql(&sql, "county", "county-pw", &format!("SELECT * FROM staff_briefing('2026-03', '{COUNTY}')"));
    assert!(!success && err.contains("admins only"), "{err}");
    for table in ["cases", "events", "case_versions", "event_log"] {
        assert_eq!(county(&format!("SELECT count(staff) FROM {table}")), vec!["0"], "{table}");
    }
    assert_ne!(county("SELECT count(*) FROM cases"), vec!["0"]);
    let mine = county(&format!("SELECT DISTINCT region FROM window_briefing('2026-03', '{COUNTY}')"));
    assert_eq!(mine, vec![COUNTY.to_string()]);
}

#[test]
fn twenty_concurrent_psql_sessions_get_the_same_briefing_as_the_cli() {
    // Twenty statements at once, all admitted (the defaults let four of
    // one user run and queue the rest for five seconds).
    let cfg = config() + "\n[sql]\nmax_concurrent_queries = 20\nmax_concurrent_queries_per_user = 20\n";
    let demo = Demo::start(&["--days-per-minute", "600", "--cases-per-day", "60", "--days", "20"], Some(&cfg));
    assert!(demo.wait_for_line("the simulated span is over", Duration::from_secs(120)), "demo did not finish");
    let sql = demo.sql.clone().expect("SQL endpoint served");
    let query = "SELECT department, accepted, completed, on_time_rate, score, rank FROM monthly_briefing('2026-03', '') ORDER BY rank, department";
    let cli = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .current_dir(demo.dir.path())
        .args(["report", "monthly-briefing", "--data", "data", "--month", "2026-03", "--format", "csv"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let text = String::from_utf8_lossy(&cli.stdout).to_string();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let expected: Vec<Vec<String>> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ["department", "accepted", "completed", "on_time_rate", "score", "rank"]
                .iter()
                .map(|c| f[col(c)].to_string())
                .collect()
        })
        .collect();
    assert!(!expected.is_empty());
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let sql = sql.clone();
            std::thread::spawn(move || ok(&sql, "admin", "admin-pw", query))
        })
        .collect();
    for h in handles {
        let rows = h.join().unwrap();
        assert_eq!(rows.len(), expected.len());
        for (row, want) in rows.iter().zip(&expected) {
            let got: Vec<&str> = row.split(',').collect();
            assert_eq!(got[0], want[0]);
            for i in 1..6 {
                let (a, b) = (got[i], want[i].as_str());
                if a == b {
                    continue;
                }
                let (x, y): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
                assert!((x - y).abs() < 1e-9, "{} {a} vs {b}", header[i]);
            }
        }
    }
}

/// What psql, DBeaver, Power BI and Grafana's PostgreSQL data source ask on
/// connect and when browsing, as a scoped user.
#[test]
fn client_catalog_queries_work_for_a_scoped_user() {
    let demo = finished_demo();
    let sql = demo.sql.clone().expect("SQL endpoint served");
    for q in [
        "SELECT version()",
        "SELECT current_database(), current_schema()",
        "SHOW search_path",
        "SET application_name = 'DBeaver 24.1'",
        "SHOW TRANSACTION ISOLATION LEVEL",
        "SELECT n.nspname FROM pg_catalog.pg_namespace n ORDER BY 1",
        "SELECT c.relname, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1",
        "SELECT a.attname, a.atttypid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relname = 'cases'",
        "SELECT t.oid, t.typname FROM pg_catalog.pg_type t LIMIT 5",
        "SELECT table_name FROM information_schema.tables WHERE table_schema NOT IN ('information_schema', 'pg_catalog')",
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'cases'",
        "BEGIN; SELECT count(*) FROM alerts; COMMIT",
    ] {
        let (success, _, err) = psql(&sql, "county", "county-pw", q);
        assert!(success, "{q}: {err}");
    }
    // The SQL panels of the Grafana dashboards, with their variables set.
    let mut raw = Vec::new();
    for name in ["supervision-overview.json", "windows.json"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards").join(name);
        let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut panels: Vec<serde_json::Value> = dash["panels"].as_array().unwrap().clone();
        while let Some(p) = panels.pop() {
            panels.extend(p["panels"].as_array().cloned().unwrap_or_default());
            for t in p["targets"].as_array().cloned().unwrap_or_default() {
                if let Some(q) = t["rawSql"].as_str() {
                    let q = q.replace("$month", "2026-03").replace("$year", "2026").replace("$top", "3");
                    raw.push(q.replace("$region", ""));
                }
            }
        }
    }
    for f in ["monthly_briefing", "window_briefing", "annual_assessment"] {
        assert!(raw.iter().any(|q| q.contains(f)), "no panel runs {f}: {raw:?}");
    }
    for q in &raw {
        let (success, out, err) = psql(&sql, "county", "county-pw", q);
        assert!(success, "{q}: {err}");
        let report = ["monthly_briefing", "window_briefing(", "annual_assessment("].iter().any(|f| q.contains(f));
        assert!(!report || out.lines().count() > 1, "{q}: no rows");
    }
    let (success, out, err) = psql(&sql, "county", "county-pw", "\\d cases");
    assert!(success && out.contains("due_date"), "\\d cases: {out} {err}");
    // No TLS configured: a client that insists on it is told so.
    let (success, _, err) = psql_ssl(&sql, "county", "county-pw", "SELECT 1", "require");
    assert!(!success, "TLS without a certificate configured: {err}");
}

#[test]
fn tls_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = format!("[sql]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n{}", cert.display(), key.display(), config());
    let demo = Demo::start(&["--days-per-minute", "600", "--cases-per-day", "20", "--days", "5"], Some(&cfg));
    let sql = demo.sql.clone().expect("SQL endpoint served");
    let started = std::time::Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(30) {
        let (success, out, err) = psql_ssl(&sql, "admin", "admin-pw", "SELECT count(*) FROM items", "require");
        if success {
            assert_ne!(out.lines().nth(1), Some("0"));
            return;
        }
        last = err;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("no TLS connection: {last}");
}

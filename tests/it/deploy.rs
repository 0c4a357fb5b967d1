//! `deploy/`: every file parses; the dashboards are consistent with the
//! provisioned data sources; Prometheus and Alertmanager accept their files
//! (`promtool`, `amtool`) and the rule unit tests pass; compose and the
//! Kubernetes manifests use the ports and configuration keys the code knows.
//!
//! [`metric_names_used`] lists the metrics the dashboards and rules need, for
//! the scrape test in `metrics.rs`.

use jiancha::config::Config;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Files under `dir` (recursively) whose extension is one of `exts`, sorted.
fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(dir, &mut all);
    all.retain(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)));
    all.sort();
    all
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every YAML document in a file (`---` separated).
fn yaml_docs(path: &Path) -> Vec<Yaml> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The one YAML document of a file.
fn yaml(path: &Path) -> Yaml {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold exactly one YAML document", path.display());
    docs.remove(0)
}

fn json(path: &Path) -> Json {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// A YAML scalar as text (numbers and booleans as written).
fn scalar(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Null => String::new(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

/// The port of a `host:port` listen address.
fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{addr:?} is not host:port"))
}

/// The HTTP and SQL ports of the built-in defaults.
fn default_ports() -> (u16, u16) {
    let d = Config::default();
    (port_of(&d.http.listen), port_of(&d.sql.listen))
}

/// Checks one `JIANCHA__…` override the way jiancha reads it.
fn assert_override_accepted(origin: &str, key: &str, value: &str) {
    if let Err(e) = Config::load(None, [(key.to_string(), value.to_string())]) {
        panic!("{origin}: {key}={value:?} is rejected by Config::load: {e}");
    }
}

/// A tool from Debian's prometheus / prometheus-alertmanager packages.
fn tool(name: &str, package: &str) -> PathBuf {
    let usual = Path::new("/usr/bin").join(name);
    if usual.is_file() {
        return usual;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{name} is not in /usr/bin nor on PATH: install the Debian package {package} (scripts/test.sh does)")
}

/// Runs a tool, failing with everything it said unless it succeeds.
fn run_ok(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(deploy())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`{} {}` failed ({}):\n{said}", tool.display(), args.join(" "), out.status);
    said
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

// ---------------------------------------------------------------- parsing

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let yamls = files_under(&deploy(), &["yml", "yaml"]);
    assert!(yamls.len() >= 10, "expected the YAML files of deploy/, found {yamls:?}");
    for p in &yamls {
        let docs = yaml_docs(p);
        assert!(!docs.is_empty(), "{} holds no YAML document", p.display());
        for doc in &docs {
            assert!(doc.is_mapping(), "{}: every document should be a mapping, found {doc:?}", p.display());
        }
    }
    let jsons = files_under(&deploy(), &["json"]);
    assert!(jsons.len() >= 2, "expected the dashboards, found {jsons:?}");
    for p in &jsons {
        assert!(json(p).is_object(), "{} should be a JSON object", p.display());
    }
}

// ---------------------------------------------------------------- Grafana

/// Provisioned data sources: uid → type.
fn provisioned_datasources() -> BTreeMap<String, String> {
    let p = deploy().join("grafana/provisioning/datasources/datasources.yaml");
    let doc = yaml(&p);
    let list = doc["datasources"].as_sequence().unwrap_or_else(|| panic!("{}: no datasources list", p.display()));
    let mut out = BTreeMap::new();
    for ds in list {
        let uid = ds["uid"].as_str().unwrap_or_else(|| panic!("{}: a data source without uid: {ds:?}", p.display()));
        let ty = ds["type"].as_str().unwrap_or_else(|| panic!("{}: data source {uid} has no type", p.display()));
        assert!(out.insert(uid.to_string(), ty.to_string()).is_none(), "{}: uid {uid} given twice", p.display());
    }
    out
}

fn dashboards() -> Vec<(PathBuf, Json)> {
    let found: Vec<(PathBuf, Json)> = files_under(&deploy().join("grafana/dashboards"), &["json"])
        .into_iter()
        .map(|p| {
            let d = json(&p);
            (p, d)
        })
        .collect();
    assert!(found.len() >= 2, "expected at least two dashboards in deploy/grafana/dashboards");
    found
}

/// Every panel of a dashboard, including those nested in (collapsed) rows.
fn all_panels(dashboard: &Json) -> Vec<&Json> {
    fn collect<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(inner) = panel.get("panels") {
                collect(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    collect(&dashboard["panels"], &mut out);
    out
}

fn assert_known_datasource(what: &str, ds: &Json, known: &BTreeMap<String, String>) {
    let uid = ds["uid"].as_str().unwrap_or_else(|| panic!("{what}: datasource {ds} has no uid"));
    let ty = ds["type"].as_str().unwrap_or_else(|| panic!("{what}: datasource {ds} has no type"));
    let Some(provisioned) = known.get(uid) else {
        panic!(
            "{what}: datasource uid {uid:?} is not provisioned (provisioned: {:?})",
            known.keys().collect::<Vec<_>>()
        )
    };
    assert_eq!(ty, provisioned, "{what}: datasource {uid} has type {ty}, but is provisioned as {provisioned}");
}

#[test]
fn dashboards_have_unique_uids_and_panel_ids_and_use_provisioned_datasources() {
    let known = provisioned_datasources();
    for uid in ["jiancha-prometheus", "jiancha-sql"] {
        assert!(known.contains_key(uid), "data source {uid} is not provisioned");
    }
    let mut uids = BTreeSet::new();
    let mut sql_briefing = false;
    // The report functions the SQL panels call, by dashboard title.
    let mut calls: Vec<(String, String)> = Vec::new();
    for (path, d) in dashboards() {
        let name = path.display().to_string();
        let uid = d["uid"].as_str().unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(!uid.is_empty() && uid.len() <= 40, "{name}: uid {uid:?} must be 1-40 characters");
        assert!(uids.insert(uid.to_string()), "{name}: dashboard uid {uid} is used by another dashboard too");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: no title");
        assert!(d["schemaVersion"].as_u64().is_some(), "{name}: no schemaVersion");

        let panels = all_panels(&d);
        assert!(panels.len() >= 5, "{name}: only {} panels", panels.len());
        let mut ids = BTreeSet::new();
        for panel in &panels {
            let id = panel["id"].as_u64().unwrap_or_else(|| panic!("{name}: panel without a numeric id: {panel}"));
            let title = panel["title"].as_str().unwrap_or("");
            let what = format!("{name}: panel {id} {title:?}");
            assert!(ids.insert(id), "{what}: panel id {id} is used twice in this dashboard");
            assert!(panel["gridPos"].is_object(), "{what}: no gridPos");
            if panel["type"] == "row" {
                continue;
            }
            assert_known_datasource(&what, &panel["datasource"], &known);
            let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{what}: no targets"));
            assert!(!targets.is_empty(), "{what}: no targets");
            for target in targets {
                let ds = &target["datasource"];
                assert!(ds.is_object(), "{what}: target {} names no datasource", target["refId"]);
                assert_known_datasource(&what, ds, &known);
                let query = match ds["uid"].as_str() {
                    Some("jiancha-sql") => target["rawSql"].as_str(),
                    _ => target["expr"].as_str(),
                };
                assert!(query.is_some_and(|q| !q.trim().is_empty()), "{what}: target {} has no query", target["refId"]);
                if target["rawSql"].as_str().is_some_and(|q| q.contains("monthly_briefing(") && q.contains("$month")) {
                    sql_briefing = true;
                }
                if let Some(q) = target["rawSql"].as_str() {
                    for (report, _) in jiancha::sql::report::BUILT_IN {
                        let f = format!("{}(", report.replace('-', "_"));
                        if q.contains(&f) {
                            calls.push((d["title"].as_str().unwrap_or("").to_string(), q.to_string()));
                        }
                    }
                }
            }
        }
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            if var.get("datasource").is_some_and(|ds| !ds.is_null()) {
                assert_known_datasource(&format!("{name}: variable {}", var["name"]), &var["datasource"], &known);
            }
        }
    }
    assert!(sql_briefing, "no dashboard has a SQL panel running monthly_briefing('$month', …)");
    // The Windows dashboard: the window ranking and on-time rate by window
    // over the PostgreSQL data source, and the annual grades and top windows.
    let windows: Vec<&(String, String)> = calls.iter().filter(|(t, _)| t.contains("Windows")).collect();
    assert!(
        windows.iter().filter(|(_, q)| q.contains("window_briefing('$month', '$region')")).count() >= 2,
        "the Windows dashboard should rank windows and chart their on-time rate from window_briefing: {windows:?}"
    );
    assert!(
        windows.iter().any(|(_, q)| q.contains("on_time_rate") && q.contains("window_briefing(")),
        "no on-time rate by window: {windows:?}"
    );
    for (what, needle) in [("grades", "grade"), ("top windows", "honour")] {
        assert!(
            windows.iter().any(|(_, q)| q.contains("annual_assessment('$year'") && q.contains(needle)),
            "the Windows dashboard has no {what} from annual_assessment('$year', …): {windows:?}"
        );
    }
    // Windows and grades are shown by department name (departments.csv), not by code alone.
    for (title, q) in &windows {
        if q.contains("\"window\"") || q.contains("grade AS") && q.contains("rank") {
            assert!(q.contains("department_name"), "{title}: {q}");
        }
    }

    // The provider reads the folder compose mounts the dashboards into.
    let provider = yaml(&deploy().join("grafana/provisioning/dashboards/dashboards.yaml"));
    let folder = provider["providers"][0]["options"]["path"].as_str().expect("providers[0].options.path");
    let compose = yaml(&deploy().join("compose.yaml"));
    let mounts: Vec<String> =
        compose["services"]["grafana"]["volumes"].as_sequence().expect("grafana volumes").iter().map(scalar).collect();
    assert!(
        mounts.iter().any(|m| m.starts_with("./grafana/dashboards:") && m.contains(&format!(":{folder}"))),
        "compose should mount ./grafana/dashboards at {folder} (the provider's path); mounts: {mounts:?}"
    );
}

// ---------------------------------------------------------------- Prometheus

fn rule_files() -> Vec<PathBuf> {
    let found = files_under(&deploy().join("prometheus/rules"), &["yml", "yaml"]);
    assert!(!found.is_empty(), "no rule files in deploy/prometheus/rules");
    found
}

#[test]
fn prometheus_config_and_rules_pass_promtool_and_their_unit_tests() {
    let promtool = tool("promtool", "prometheus");
    let config = deploy().join("prometheus/prometheus.yml");
    let said = run_ok(&promtool, &["check", "config", path_str(&config)]);
    for rules in rule_files() {
        let file = rules.file_name().unwrap().to_str().unwrap();
        assert!(said.contains(file), "prometheus.yml does not load {file} (promtool said: {said})");
        run_ok(&promtool, &["check", "rules", path_str(&rules)]);
    }
    let tests = files_under(&deploy().join("prometheus/tests"), &["yml", "yaml"]);
    assert!(!tests.is_empty(), "no rule unit tests in deploy/prometheus/tests");
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(|p| path_str(p)));
    run_ok(&promtool, &args);

    // Every alert has at least one unit test.
    let mut tested = BTreeSet::new();
    for t in &tests {
        for group in yaml(t)["tests"].as_sequence().into_iter().flatten() {
            for case in group["alert_rule_test"].as_sequence().into_iter().flatten() {
                tested.insert(scalar(&case["alertname"]));
            }
        }
    }
    for rules in rule_files() {
        for group in yaml(&rules)["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                if let Some(alert) = rule["alert"].as_str() {
                    assert!(tested.contains(alert), "alert {alert} has no unit test in deploy/prometheus/tests");
                }
            }
        }
    }
}

#[test]
fn alertmanager_config_passes_amtool_and_inhibits_yellow_by_red_on_the_same_case() {
    let amtool = tool("amtool", "prometheus-alertmanager");
    let path = deploy().join("alertmanager/alertmanager.yml");
    run_ok(&amtool, &["check-config", path_str(&path)]);
    let doc = yaml(&path);
    let group_by: Vec<String> =
        doc["route"]["group_by"].as_sequence().expect("route.group_by").iter().map(scalar).collect();
    for label in ["rule", "region", "department"] {
        assert!(group_by.iter().any(|g| g == label), "the route should group by {label}: {group_by:?}");
    }
    let inhibits = doc["inhibit_rules"].as_sequence().expect("inhibit_rules");
    let red_over_yellow = inhibits.iter().any(|r| {
        let matchers =
            |k: &str| r[k].as_sequence().map(|s| s.iter().map(scalar).collect::<Vec<_>>()).unwrap_or_default();
        let equal = matchers("equal");
        matchers("source_matchers").iter().any(|m| m.replace(' ', "") == "level=\"red\"")
            && matchers("target_matchers").iter().any(|m| m.replace(' ', "") == "level=\"yellow\"")
            && (equal.iter().any(|e| e == "case_id") || equal.iter().any(|e| e == "alert_id"))
    });
    assert!(red_over_yellow, "no inhibit rule lets a red card silence the yellow of the same case");
}

// ---------------------------------------------------------------- compose, Kubernetes, config

/// The container port of a compose port entry ("9898:9898", "127.0.0.1:5433:5433/tcp", 9898, {target: 9898}).
fn compose_container_port(entry: &Yaml) -> u16 {
    if let Some(target) = entry.get("target") {
        return scalar(target).parse().unwrap_or_else(|_| panic!("port target {target:?}"));
    }
    let text = scalar(entry);
    let last = text.rsplit(':').next().unwrap();
    let last = last.split('/').next().unwrap();
    last.parse().unwrap_or_else(|_| panic!("compose port {text:?} has no container port"))
}

/// `environment:` of a compose service, as a mapping or a list of `K=V`.
fn compose_env(service: &Yaml) -> Vec<(String, String)> {
    match &service["environment"] {
        Yaml::Null => Vec::new(),
        Yaml::Mapping(m) => m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Yaml::Sequence(list) => list
            .iter()
            .map(|x| {
                let s = scalar(x);
                let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        other => panic!("environment should be a mapping or a list, found {other:?}"),
    }
}

/// Listen-address overrides must keep the default port.
fn assert_listen_ports(origin: &str, env: &[(String, String)]) {
    let (http, sql) = default_ports();
    for (k, v) in env {
        if k == "JIANCHA__HTTP__LISTEN" {
            assert_eq!(port_of(v), http, "{origin}: {k}={v} is not on the HTTP port {http}");
        }
        if k == "JIANCHA__SQL__LISTEN" {
            assert_eq!(port_of(v), sql, "{origin}: {k}={v} is not on the SQL port {sql}");
        }
    }
}

#[test]
fn compose_publishes_the_default_ports_creates_the_topics_and_sets_valid_overrides() {
    let (http, sql) = default_ports();
    let path = deploy().join("compose.yaml");
    let doc = yaml(&path);
    let services = doc["services"].as_mapping().expect("compose services");
    for name in ["kafka", "kafka-init", "jiancha", "prometheus", "alertmanager", "grafana"] {
        assert!(doc["services"].get(name).is_some(), "compose.yaml has no service {name}");
    }

    let jiancha = &doc["services"]["jiancha"];
    let ports: Vec<u16> =
        jiancha["ports"].as_sequence().expect("jiancha ports").iter().map(compose_container_port).collect();
    assert!(ports.contains(&http), "compose does not publish jiancha's HTTP port {http}: {ports:?}");
    assert!(ports.contains(&sql), "compose does not publish jiancha's SQL port {sql}: {ports:?}");

    let mut overrides = 0;
    for (name, service) in services {
        let name = scalar(name);
        let env = compose_env(service);
        assert_listen_ports(&format!("compose service {name}"), &env);
        for (k, v) in &env {
            if k.starts_with("JIANCHA__") {
                assert_override_accepted(&format!("compose service {name}"), k, v);
                overrides += 1;
            }
        }
    }
    assert!(overrides >= 3, "expected the jiancha service to set its overrides, found {overrides}");

    // Prometheus scrapes the port compose gives jiancha.
    let prometheus = read(&deploy().join("prometheus/prometheus.yml"));
    assert!(prometheus.contains(&format!("jiancha:{http}")), "prometheus.yml does not scrape jiancha:{http}");

    // kafka-init creates the topics the code uses, the facts topic compacted.
    let init = &doc["services"]["kafka-init"];
    let script: String = match &init["command"] {
        Yaml::Sequence(parts) => parts.iter().map(scalar).collect::<Vec<_>>().join("\n"),
        other => scalar(other),
    };
    let k = Config::default().kafka;
    for topic in [&k.events_topic, &k.alerts_topic, &k.dead_letter_topic, &k.facts_topic] {
        assert!(
            script.lines().any(|l| l.contains("--create") && l.contains(&format!("--topic {topic} "))),
            "kafka-init does not create topic {topic}"
        );
    }
    let facts =
        script.lines().find(|l| l.contains("--create") && l.contains(&format!("--topic {} ", k.facts_topic))).unwrap();
    assert!(facts.contains("cleanup.policy=compact"), "the facts topic must be created compacted: {facts}");
    // The changelog: compacted, with as many partitions as the events topic.
    let created = |topic: &str| {
        script
            .lines()
            .find(|l| l.contains("--create") && l.contains(&format!("--topic {topic} ")))
            .unwrap_or_else(|| panic!("kafka-init does not create topic {topic}"))
            .to_string()
    };
    let partitions =
        |line: &str| line.split("--partitions ").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string);
    let changelog = created(&k.changelog_topic);
    assert!(changelog.contains("cleanup.policy=compact"), "the changelog must be created compacted: {changelog}");
    assert_eq!(partitions(&changelog), partitions(&created(&k.events_topic)), "changelog and events partitions");
}

/// Every document of every manifest in deploy/k8s.
fn k8s_docs() -> Vec<(PathBuf, Yaml)> {
    let mut out = Vec::new();
    for p in files_under(&deploy().join("k8s"), &["yml", "yaml"]) {
        for doc in yaml_docs(&p) {
            out.push((p.clone(), doc));
        }
    }
    out
}

fn k8s_find<'a>(docs: &'a [(PathBuf, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/k8s has no {kind} {name}"))
}

#[test]
fn kubernetes_manifests_use_the_default_ports_probes_and_valid_configuration() {
    let (http, sql) = default_ports();
    let docs = k8s_docs();
    for (p, d) in &docs {
        assert!(d["kind"].as_str().is_some(), "{}: a document without kind", p.display());
        assert!(d["apiVersion"].as_str().is_some(), "{}: a document without apiVersion", p.display());
    }

    // The workload: Deployment or StatefulSet named jiancha.
    let workload = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| (d["kind"] == "Deployment" || d["kind"] == "StatefulSet") && d["metadata"]["name"] == "jiancha")
        .expect("deploy/k8s has no Deployment or StatefulSet named jiancha");
    assert_eq!(workload["spec"]["replicas"].as_u64(), Some(2), "jiancha should run 2 replicas in one consumer group");
    let pod = &workload["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"), "pods should carry prometheus.io/scrape");
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(http.to_string().as_str()), "prometheus.io/port");
    let container = pod["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "jiancha")
        .expect("a container named jiancha");
    let named_ports: BTreeMap<String, u16> = container["ports"]
        .as_sequence()
        .expect("container ports")
        .iter()
        .map(|p| (scalar(&p["name"]), scalar(&p["containerPort"]).parse().expect("containerPort")))
        .collect();
    let ports: BTreeSet<u16> = named_ports.values().copied().collect();
    assert!(ports.contains(&http) && ports.contains(&sql), "container ports {ports:?} should be {http} and {sql}");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} should GET {path}");
        let port = match &get["port"] {
            Yaml::String(name) => *named_ports.get(name).unwrap_or_else(|| panic!("{probe}: no port named {name}")),
            other => scalar(other).parse().expect("probe port"),
        };
        assert_eq!(port, http, "{probe} should use the HTTP port {http}");
    }

    // Environment overrides: each accepted; secrets stand in as placeholders.
    let mut env = Vec::new();
    for e in container["env"].as_sequence().into_iter().flatten() {
        let k = scalar(&e["name"]);
        if !k.starts_with("JIANCHA__") {
            continue;
        }
        let v = if e["valueFrom"].is_mapping() { "placeholder-from-a-secret".to_string() } else { scalar(&e["value"]) };
        assert_override_accepted("deploy/k8s jiancha container", &k, &v);
        env.push((k, v));
    }
    assert_listen_ports("deploy/k8s jiancha container", &env);
    assert!(
        env.iter().any(|(k, _)| k == "JIANCHA__PRIVACY__APPLICANT_KEY"),
        "the applicant key should come from the Secret through JIANCHA__PRIVACY__APPLICANT_KEY"
    );

    // No volume is shared between the replicas: state moves through the
    // changelog topic, history through object storage.
    for (p, d) in &docs {
        let modes: Vec<String> = d["spec"]["accessModes"].as_sequence().into_iter().flatten().map(scalar).collect();
        assert!(
            !(d["kind"] == "PersistentVolumeClaim" && modes.iter().any(|m| m == "ReadWriteMany")),
            "{}: a ReadWriteMany volume",
            p.display()
        );
    }
    let volumes = pod["spec"]["volumes"].as_sequence().expect("volumes");
    assert!(
        volumes.iter().all(|v| v["persistentVolumeClaim"].is_null()),
        "the pod mounts a claim every replica shares: {volumes:?}"
    );
    let data_mount = container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == "/var/lib/jiancha")
        .map(|m| scalar(&m["name"]))
        .expect("a volume at the data dir, /var/lib/jiancha");
    let per_pod = workload["spec"]["volumeClaimTemplates"].as_sequence().into_iter().flatten().any(|t| {
        scalar(&t["metadata"]["name"]) == data_mount
            && t["spec"]["accessModes"].as_sequence().is_some_and(|m| m.iter().all(|m| m == "ReadWriteOnce"))
    });
    let empty = volumes.iter().any(|v| scalar(&v["name"]) == data_mount && v["emptyDir"].is_mapping());
    assert!(per_pod || empty, "the data dir should be each pod's own (a ReadWriteOnce claim template or an emptyDir)");
    let cm = k8s_find(&docs, "ConfigMap", "jiancha-config");
    let toml_text = scalar(&cm["data"]["jiancha.toml"]);
    let cfg: toml::Value = toml::from_str(&toml_text).expect("the ConfigMap's jiancha.toml parses");
    let history_url = cfg["storage"]["history_url"].as_str().unwrap_or_default();
    assert!(history_url.starts_with("s3://"), "storage.history_url should be an object store, is {history_url:?}");
    assert!(cfg["kafka"]["changelog_topic"].as_str().is_some_and(|t| !t.is_empty()), "kafka.changelog_topic");
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let e = container["env"].as_sequence().into_iter().flatten().find(|e| e["name"] == key);
        assert!(e.is_some_and(|e| e["valueFrom"]["secretKeyRef"].is_mapping()), "{key} from the Secret");
    }

    // The Service exposes both ports.
    let service = docs.iter().map(|(_, d)| d).find(|d| d["kind"] == "Service").expect("a Service");
    let service_ports: BTreeSet<u16> = service["spec"]["ports"]
        .as_sequence()
        .expect("service ports")
        .iter()
        .map(|p| scalar(&p["port"]).parse().expect("service port"))
        .collect();
    assert!(
        service_ports.contains(&http) && service_ports.contains(&sql),
        "the Service should expose {http} and {sql}, exposes {service_ports:?}"
    );

    // The configuration jiancha starts with: the ConfigMap's jiancha.toml
    // followed by the Secret's users.toml (what the init container writes).
    let config = k8s_find(&docs, "ConfigMap", "jiancha-config");
    let toml_text = config["data"]["jiancha.toml"].as_str().expect("ConfigMap data jiancha.toml");
    assert_documents_every_key("the ConfigMap's jiancha.toml", toml_text);
    let secret = docs.iter().map(|(_, d)| d).find(|d| d["kind"] == "Secret").expect("a Secret");
    let users = secret["stringData"]["users.toml"].as_str().expect("Secret stringData users.toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jiancha.toml");
    std::fs::write(&file, format!("{toml_text}\n{users}")).unwrap();
    let cfg = Config::load(Some(&file), env.clone())
        .unwrap_or_else(|e| panic!("the ConfigMap's jiancha.toml + the Secret's users.toml do not load: {e}"));
    assert!(!cfg.users.is_empty(), "the Secret's users.toml should define at least one [[users]] entry");
    assert_eq!(port_of(&cfg.http.listen), http);
    assert_eq!(port_of(&cfg.sql.listen), sql);

    // kustomization.yaml lists every other manifest.
    let kustomization = yaml(&deploy().join("k8s/kustomization.yaml"));
    let listed: BTreeSet<String> =
        kustomization["resources"].as_sequence().expect("resources").iter().map(scalar).collect();
    for (p, _) in &docs {
        let file = p.file_name().unwrap().to_str().unwrap().to_string();
        if file != "kustomization.yaml" {
            assert!(listed.contains(&file), "kustomization.yaml does not list {file}");
        }
    }
}

/// A configuration file must name every key of the built-in defaults.
fn assert_documents_every_key(what: &str, text: &str) {
    let file: toml::Table = text.parse().unwrap_or_else(|e| panic!("{what} is not TOML: {e}"));
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    for (section, keys) in &defaults {
        let Some(keys) = keys.as_table() else { continue };
        let present = file.get(section).and_then(|s| s.as_table()).unwrap_or_else(|| panic!("{what}: no [{section}]"));
        for key in keys.keys() {
            assert!(present.contains_key(key), "{what}: {section}.{key} is missing");
        }
    }
}

#[test]
fn container_config_loads_and_points_into_the_container() {
    let (http, sql) = default_ports();
    let path = deploy().join("jiancha.toml");
    assert_documents_every_key("deploy/jiancha.toml", &read(&path));
    // Config::load parses; it does not look at the (container) paths.
    let cfg = Config::load(Some(&path), Vec::new()).unwrap_or_else(|e| panic!("deploy/jiancha.toml: {e}"));
    assert_eq!(cfg.storage.data_dir, Path::new("/var/lib/jiancha"));
    for p in [&cfg.reference.catalog, &cfg.reference.calendar, &cfg.reference.regions] {
        assert!(p.starts_with("/etc/jiancha"), "reference path {} should be under /etc/jiancha", p.display());
    }
    assert_eq!(cfg.http.listen, format!("0.0.0.0:{http}"), "in a container HTTP must listen on all interfaces");
    assert_eq!(cfg.sql.listen, format!("0.0.0.0:{sql}"), "in a container SQL must listen on all interfaces");
    assert!(!cfg.users.is_empty(), "Grafana's SQL data source needs a [[users]] entry");
    let grafana_user = cfg.users.iter().any(|u| u.name == "grafana");
    assert!(grafana_user, "compose gives Grafana the SQL user \"grafana\"; deploy/jiancha.toml should define it");

    // The image: ports, entry point and where the config goes.
    let dockerfile = read(&deploy().join("Dockerfile"));
    let expose = dockerfile.lines().find(|l| l.starts_with("EXPOSE")).expect("EXPOSE in deploy/Dockerfile");
    for port in [http, sql] {
        assert!(expose.split_whitespace().any(|w| w == port.to_string()), "deploy/Dockerfile does not EXPOSE {port}");
    }
    assert!(dockerfile.contains("COPY deploy/jiancha.toml /etc/jiancha/jiancha.toml"), "image config path");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["jiancha"]"#), "deploy/Dockerfile ENTRYPOINT");
    assert!(dockerfile.contains(r#"CMD ["run", "--config", "/etc/jiancha/jiancha.toml"]"#), "deploy/Dockerfile CMD");
}

// ---------------------------------------------------------------- metric names

/// Identifiers of a PromQL expression (metric and label names, functions,
/// recording-rule names with `:`), skipping strings and `#` comments.
fn promql_identifiers(expr: &str) -> Vec<String> {
    fn flush(cur: &mut String, out: &mut Vec<String>) {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut cur, &mut out);
                while let Some(d) = chars.next() {
                    if d == '\\' && c != '`' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '#' => {
                flush(&mut cur, &mut out);
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => cur.push(c),
            _ => flush(&mut cur, &mut out),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Strings under the keys holding PromQL in dashboard JSON (`expr`, and a
/// variable's `definition` / `query`).
fn dashboard_queries(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("expr" | "definition" | "query", Json::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(x, out),
                }
            }
        }
        Json::Array(list) => list.iter().for_each(|x| dashboard_queries(x, out)),
        _ => {}
    }
}

/// The jiancha metric names the dashboards and the Prometheus rules use:
/// histogram series (`_bucket`, `_sum`, `_count`) as their base name,
/// recording rules (names with `:`) left out.
pub fn metric_names_used() -> BTreeSet<String> {
    let mut exprs = Vec::new();
    for (_, d) in dashboards() {
        dashboard_queries(&d, &mut exprs);
    }
    for p in rule_files() {
        for group in yaml(&p)["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                if let Some(e) = rule["expr"].as_str() {
                    exprs.push(e.to_string());
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    for e in &exprs {
        for token in promql_identifiers(e) {
            if !token.starts_with("jiancha_") || token.contains(':') {
                continue;
            }
            let base =
                ["_bucket", "_sum", "_count"].iter().find_map(|s| token.strip_suffix(*s)).unwrap_or(token.as_str());
            names.insert(base.to_string());
        }
    }
    names
}

#[test]
fn promql_identifiers_skip_strings_and_comments() {
    let ids = promql_identifiers(
        "sum by (le) (rate(jiancha_x_bucket{reason=\"jiancha_not_a_metric\", a=~'jiancha_q'}[5m])) # jiancha_comment\n+ jiancha:rec:rate5m",
    );
    assert_eq!(ids, ["sum", "by", "le", "rate", "jiancha_x_bucket", "reason", "a", "5m", "jiancha:rec:rate5m"]);
}

#[test]
fn metric_names_used_by_dashboards_and_rules() {
    let names = metric_names_used();
    for want in [
        "jiancha_briefing_on_time_rate",
        "jiancha_events_applied_total",
        "jiancha_processing_latency_seconds",
        "jiancha_calendar_last_year",
        "jiancha_alerts_firing",
    ] {
        assert!(names.contains(want), "{want} is not among the metrics used: {names:?}");
    }
    for n in &names {
        assert!(!n.contains(':'), "{n}: recording rules are not exported metrics");
        assert!(!n.ends_with("_bucket") && !n.ends_with("_count"), "{n}: histogram series not mapped to their base");
    }
}

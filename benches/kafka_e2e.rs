//! The live service against a real broker (tansu, started here on a free
//! loopback port): `cargo bench --bench kafka_e2e [-- --events N]
//! [--open N] [--partitions P]`.
//!
//! 1. Throughput: N simulated events (default 1,000,000) are published;
//!    the raw rdkafka consume rate of the same broker is measured (a plain
//!    consumer reading them all), then `jiancha run` (event time) consumes
//!    them from the start; events/s from its start to its last alert on
//!    the broker (the alerts topic's end read every 100 ms) and until its
//!    group's committed offsets reach the ends, beside the raw rate; its
//!    CPU per event beside `jiancha replay`'s on the same events.
//! 2. Alert latency under live traffic: `--open` cases (default 1,000,000)
//!    accepted and left open in wall-clock mode, 1,000 of them with a red
//!    card (`unregistered_case`, grace 1 h) falling due over `--minutes`
//!    (default 10) once all are loaded, while 100 events/s of live traffic
//!    (cases accepted and completed) keep checkpoints coming (interval
//!    2 s); the delay from each card's instant to its record's broker
//!    timestamp, p50 / p99 / max; the checkpoints taken meanwhile and how
//!    long they held the consuming loop (its `/metrics` histogram, and the
//!    longest, which it logs above 100 ms); the bytes it wrote per second
//!    (`/proc/<pid>/io`: checkpoints and history) and the checkpoint
//!    files' growth.
//! 3. Restart: SIGTERM (final checkpoint), start again, and the seconds
//!    until it has restored every partition's checkpoint.
//! 4. Restart on a fresh host: the same, with an empty data folder, every
//!    partition restored from the changelog topic.
//!
//! `--events 0` skips 1, `--open 0` skips 2, 3 and 4. `JIANCHA_BIN`
//! names another `jiancha` binary to run instead of this build's (to
//! compare two builds on the same machine, one run after the other).

use jiancha::kafka::client;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    events: usize,
    open: usize,
    partitions: i32,
    minutes: i64,
}

fn args() -> Args {
    let mut a = Args { events: 1_000_000, open: 1_000_000, partitions: 4, minutes: 10 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--events" => a.events = v().parse().expect("--events N"),
            "--open" => a.open = v().parse().expect("--open N"),
            "--partitions" => a.partitions = v().parse().expect("--partitions P"),
            "--minutes" => a.minutes = v().parse().expect("--minutes M"),
            _ => {}
        }
    }
    a
}

fn tansu() -> PathBuf {
    std::env::var_os("JIANCHA_TANSU").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".cache/jiancha/tansu-0.6.0/bin/tansu")
    })
}

/// The `jiancha` binary run: `JIANCHA_BIN`, else this build's.
fn jiancha() -> PathBuf {
    std::env::var_os("JIANCHA_BIN").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_jiancha").into())
}

fn main() {
    let a = args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(tansu())
        .current_dir(dir.path())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu (scripts/test.sh installs it)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let brokers = format!("127.0.0.1:{port}");
    let rd = jiancha::reference::RefData::embedded();
    let zone = jiancha::time::Zone::new("Asia/Shanghai").unwrap();

    let data = dir.path().join("data");
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = |group: &str, mode: &str| -> Vec<(String, String)> {
        let r = |s: &str| root.join("config").join(s).display().to_string();
        vec![
            ("JIANCHA__KAFKA__BROKERS".into(), brokers.clone()),
            ("JIANCHA__HTTP__LISTEN".into(), http.to_string()),
            ("JIANCHA__KAFKA__GROUP_ID".into(), group.into()),
            ("JIANCHA__KAFKA__EVENTS_TOPIC".into(), format!("{group}-in")),
            ("JIANCHA__KAFKA__ALERTS_TOPIC".into(), format!("{group}-alerts")),
            ("JIANCHA__KAFKA__DEAD_LETTER_TOPIC".into(), format!("{group}-dlq")),
            ("JIANCHA__KAFKA__FACTS_TOPIC".into(), format!("{group}-facts")),
            ("JIANCHA__TIME__WATERMARK".into(), mode.into()),
            ("JIANCHA__TIME__IDLE_TIMEOUT".into(), "2s".into()),
            ("JIANCHA__STORAGE__CHECKPOINT_INTERVAL".into(), "2s".into()),
            ("JIANCHA__STORAGE__DATA_DIR".into(), data.join(group).display().to_string()),
            ("JIANCHA__PRIVACY__APPLICANT_KEY".into(), "bench".into()),
            ("JIANCHA__RULES__GRACE_HOURS".into(), "1".into()),
            ("JIANCHA__REFERENCE__CATALOG".into(), r("catalog.csv")),
            ("JIANCHA__REFERENCE__CALENDAR".into(), r("calendar")),
            ("JIANCHA__REFERENCE__REGIONS".into(), r("regions.csv")),
        ]
    };
    // 1. Throughput.
    if a.events > 0 {
        let topic = "bench-events";
        client::ensure_topics(&brokers, &[(topic, a.partitions)], &|| false).unwrap();
        let opts = jiancha::synth::SynthOptions {
            cases: a.events / 3,
            seed: 3,
            start: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
            days: 200,
            ..Default::default()
        };
        let lines: Vec<String> = jiancha::synth::Simulator::new(&rd, zone.clone(), opts)
            .filter_map(|i| match i {
                jiancha::synth::SimItem::Line(l) => Some(l),
                _ => None,
            })
            .take(a.events)
            .collect();
        let n = lines.len();
        // The same events in a file, for replay's CPU per event beside run's.
        let file = dir.path().join("tput.jsonl");
        std::fs::write(&file, lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect::<String>()).unwrap();
        let t = Instant::now();
        jiancha::kafka::publish::lines(&brokers, topic, a.partitions, None, lines.into_iter()).unwrap();
        println!("published {n} events in {:.1} s", t.elapsed().as_secs_f64());
        let (broker_cpu, own_cpu) = (cpu_seconds(broker.id()), cpu_seconds(std::process::id()));
        let raw = raw_consume(&brokers, topic, n);
        println!("raw rdkafka consume: {n} messages in {raw:.2} s = {:.0} msg/s", n as f64 / raw);
        println!(
            "  CPU during it: broker {:.1} s, consumer {:.1} s",
            cpu_seconds(broker.id()) - broker_cpu,
            cpu_seconds(std::process::id()) - own_cpu
        );

        // The service reads `<group>-in`: publish the same events there.
        let group = "tput";
        client::ensure_topics(&brokers, &[(&format!("{group}-in"), a.partitions)], &|| false).unwrap();
        copy_topic(&brokers, topic, &format!("{group}-in"), n);
        let broker_cpu = cpu_seconds(broker.id());
        let t = Instant::now();
        let child = start(&env(group, "event"), dir.path().join("tput.log"));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (done, brokers) = (done.clone(), brokers.clone());
            std::thread::spawn(move || sample_alerts(&brokers, &format!("{group}-alerts"), &done))
        };
        wait_committed(&brokers, group, &format!("{group}-in"), a.partitions, n, Duration::from_secs(3600));
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(child.id());
        let peak = peak_memory(child.id());
        let broker_cpu = cpu_seconds(broker.id()) - broker_cpu;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = sampler.join().unwrap();
        // Every alert is on the broker before the offsets are committed.
        let reader: BaseConsumer = client::reader(&brokers).create().unwrap();
        let alerts_end = topic_end(&reader, &format!("{group}-alerts"));
        stop(child);
        // Kept for a look at its checkpoints and rebalances.
        let _ = std::fs::copy(dir.path().join("tput.log"), root.join("target/kafka_e2e-tput.log"));
        let log = std::fs::read_to_string(dir.path().join("tput.log")).unwrap_or_default();
        let holds = log.lines().filter(|l| l.contains("a checkpoint held the loop")).count();
        match log.lines().find_map(|l| l.split("the longest held the loop ").nth(1)?.split(" ms").next()) {
            Some(ms) => println!(
                "RESULT checkpoint stalls: the longest held the loop {ms} ms; {holds} held it over 100 ms (target: ~100 ms)"
            ),
            None => println!("RESULT checkpoint stalls: the run did not say (see target/kafka_e2e-tput.log)"),
        }
        println!("jiancha run used {cpu:.1} s of CPU: {:.1} µs an event", cpu * 1e6 / n as f64);
        println!("  its peak resident memory: {peak}");
        println!("  the broker used {broker_cpu:.1} s of CPU meanwhile");
        // The last alert: the first sample of the alerts topic's end at its
        // final value (or the commit, if no sample before it saw that).
        let to_alerts = alerts_end.map(|end| {
            samples.iter().find(|&&(_, e)| e >= end).map_or(secs, |&(at, _)| at.duration_since(t).as_secs_f64())
        });
        println!("all offsets committed after {secs:.2} s = {:.0} events/s", n as f64 / secs);
        match to_alerts {
            Some(s) => {
                println!(
                    "RESULT throughput: jiancha run {n} events from start to their last alert in {s:.2} s = {:.0} events/s; raw consume {:.0} msg/s; ratio {:.0} % (target ≥ 80 %)",
                    n as f64 / s,
                    n as f64 / raw,
                    100.0 * raw / s
                );
            }
            None => println!("RESULT throughput: the alerts topic's end could not be read"),
        }
        // Replay of the same events, with the same configuration.
        let before = children_cpu();
        let t = Instant::now();
        let status = Command::new(jiancha())
            .args(["replay", "--out"])
            .arg(dir.path().join("tput-replay"))
            .arg(&file)
            .envs(env(group, "event"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "jiancha replay failed");
        let replay_cpu = children_cpu() - before;
        println!(
            "RESULT CPU per event: jiancha run {:.2} µs, jiancha replay {:.2} µs ({:.2} s wall) on the same {n} events: run/replay = {:.2} (target ≤ 1.5)",
            cpu * 1e6 / n as f64,
            replay_cpu * 1e6 / n as f64,
            t.elapsed().as_secs_f64(),
            cpu / replay_cpu
        );
    }

    if a.open == 0 {
        let _ = broker.kill();
        let _ = broker.wait();
        return;
    }
    // 2. Latency with many open cases (wall clock).
    let group = "wall";
    let input = format!("{group}-in");
    client::ensure_topics(&brokers, &[(&input, a.partitions)], &|| false).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let load_window = 60_000 + (a.open as i64) / 5; // time to load them all, generously
    let first_due = now + load_window;
    let spread = a.minutes * 60_000;
    let due: Vec<i64> = (0..1000).map(|i| first_due + i * spread / 1000).collect();
    let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let ts = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().with_timezone(&tz).to_rfc3339();
    let open_lines = (0..a.open).map(|i| {
        // 1,000 cases taken in by the department's own system, whose red
        // card (unregistered_case, grace 1 h) falls due over 20 s once all
        // are loaded; the rest registered at the centre, open with their
        // clocks' timers days ahead.
        let (at, source) = if i < 1000 { (due[i] - 3_600_000, "tax-sys") } else { (now - 60_000, "center") };
        format!(
            r#"{{"event_id":"o{i}","case_id":"O{i}","type":"accepted","occurred_at":"{}","source":"{source}","region":"220421","department":"tax","item_code":"TAX-003","applicant":"a{i}"}}"#,
            ts(at)
        )
    });
    let child = start(&env(group, "wall"), dir.path().join("wall.log"));
    let t = Instant::now();
    jiancha::kafka::publish::lines(&brokers, &input, a.partitions, None, open_lines).unwrap();
    wait_committed(&brokers, group, &input, a.partitions, a.open, Duration::from_secs(3600));
    let loaded = chrono::Utc::now().timestamp_millis();
    println!("loaded {} open cases in {:.1} s", a.open, t.elapsed().as_secs_f64());
    assert!(loaded < first_due, "loading took longer than the window; raise load_window");
    let pid = child.id();
    let ckpt_dir = data.join(group).join("checkpoints");
    let before = (written(pid), dir_bytes(&ckpt_dir), stalls(http), Instant::now());
    let log_from = std::fs::metadata(dir.path().join("wall.log")).map_or(0, |m| m.len() as usize);
    // Live traffic until the last card is due: cases accepted, then
    // completed, at 100 events/s, stamped as they are sent.
    let window_ms = (due[999] - loaded + 3000).max(0);
    let live_n = (window_ms / 10) as usize;
    let live = {
        let (brokers, input) = (brokers.clone(), input.clone());
        let parts = a.partitions;
        std::thread::spawn(move || {
            let lines = (0..live_n).map(move |k| {
                let at = chrono::Utc::now().with_timezone(&tz).to_rfc3339();
                let case = k / 2;
                if k % 2 == 0 {
                    format!(
                        r#"{{"event_id":"l{k}","case_id":"L{case}","type":"accepted","occurred_at":"{at}","source":"center","region":"220421","department":"tax","item_code":"TAX-003","applicant":"l{case}"}}"#
                    )
                } else {
                    format!(
                        r#"{{"event_id":"l{k}","case_id":"L{case}","type":"completed","occurred_at":"{at}","source":"center","result":"approved"}}"#
                    )
                }
            });
            jiancha::kafka::publish::lines(&brokers, &input, parts, Some(100.0), lines).unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(window_ms as u64));
    let sent = live.join().unwrap();
    let after = (written(pid), dir_bytes(&ckpt_dir), stalls(http), Instant::now());
    let secs = (after.3 - before.3).as_secs_f64();
    let (n0, sum0, over0) = before.2;
    let (n1, sum1, over1) = after.2;
    // The checkpoints of the window only (the log's lines after its start).
    let longest = std::fs::read(dir.path().join("wall.log"))
        .map(|b| String::from_utf8_lossy(b.get(log_from..).unwrap_or_default()).into_owned())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("held the loop ").nth(1)?.split(" ms").next()?.parse::<f64>().ok())
        .fold(0.0f64, f64::max);
    println!(
        "RESULT checkpoints over {secs:.0} s of {sent} live events: {} taken, holding the loop {:.1} ms on average, {} over 100 ms (longest {})",
        n1 - n0,
        (sum1 - sum0) * 1000.0 / (n1 - n0).max(1) as f64,
        over1 - over0,
        if longest > 0.0 { format!("{longest:.0} ms") } else { "none logged, so ≤ 100 ms".into() },
    );
    println!(
        "RESULT bytes written at 100 events/s over {} open cases: {:.0} KB/s by the process (checkpoints and history), checkpoint files grew {:.0} KB/s",
        a.open,
        (after.0 - before.0) as f64 / secs / 1000.0,
        (after.1 as f64 - before.1 as f64) / secs / 1000.0,
    );
    let mut lat: Vec<i64> = Vec::new();
    client::read_after(&brokers, &format!("{group}-alerts"), &Default::default(), |m| {
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or(b"{}")).unwrap_or_default();
        if v["rule"] == "unregistered_case" && v["state"] == "firing" {
            let at = jiancha::time::parse_rfc3339(v["at"].as_str().unwrap_or("")).unwrap_or(0);
            if let Some(t) = m.timestamp().to_millis() {
                lat.push(t - at);
            }
        }
    })
    .unwrap();
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(-1);
    println!(
        "RESULT latency with {} open cases: {} cards, delay after the deadline p50 {} ms, p99 {} ms, max {} ms (target p99 ≤ 1000 ms)",
        a.open,
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(-1)
    );

    // 3. Restart with those open cases.
    let t = Instant::now();
    stop(child);
    println!("stopped (final checkpoint) in {:.1} s", t.elapsed().as_secs_f64());
    let log = dir.path().join("wall2.log");
    let t = Instant::now();
    let child = start(&env(group, "wall"), log.clone());
    wait_restored(&log, "restored checkpoint", a.partitions, t);
    println!(
        "RESULT restart with {} open cases: every partition restored {:.2} s after start",
        a.open,
        t.elapsed().as_secs_f64()
    );
    stop(child);

    // 4. The same partitions taken up on a fresh host: an empty data
    // folder, so every partition's state comes from the changelog topic.
    let mut fresh = env(group, "wall");
    let fresh_dir = dir.path().join("fresh-host");
    for (k, v) in fresh.iter_mut() {
        if k == "JIANCHA__STORAGE__DATA_DIR" {
            *v = fresh_dir.display().to_string();
        }
    }
    let log = dir.path().join("wall3.log");
    let t = Instant::now();
    let child = start(&fresh, log.clone());
    wait_restored(&log, "from the changelog", a.partitions, t);
    println!(
        "RESULT restart on a fresh host (empty data folder) with {} open cases: every partition restored from the changelog {:.2} s after start",
        a.open,
        t.elapsed().as_secs_f64()
    );
    stop(child);
    // The service's logs, for a look at what a figure hides.
    for f in ["wall.log", "wall2.log", "wall3.log"] {
        let _ = std::fs::copy(dir.path().join(f), std::env::temp_dir().join(format!("kafka_e2e-{f}")));
    }
    let _ = broker.kill();
    let _ = broker.wait();
}

/// Bytes a process has written to storage (`/proc/<pid>/io`).
fn written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Bytes of the files under a folder.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The checkpoint stall histogram of a `/metrics` scrape: (count, sum in
/// seconds, checkpoints over 100 ms).
fn stalls(http: std::net::SocketAddr) -> (u64, f64, u64) {
    use std::io::{Read, Write};
    let mut text = String::new();
    if let Ok(mut c) = std::net::TcpStream::connect(http) {
        let _ = write!(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let _ = c.read_to_string(&mut text);
    }
    let value =
        |name: &str| -> f64 { text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0) };
    let count = value("jiancha_checkpoint_stall_seconds_count") as u64;
    let within = value("jiancha_checkpoint_stall_seconds_bucket{le=\"0.1\"}") as u64;
    (count, value("jiancha_checkpoint_stall_seconds_sum"), count - within.min(count))
}

fn start(env: &[(String, String)], log: PathBuf) -> Child {
    Command::new(jiancha())
        .arg("run")
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// User + system CPU seconds a process has used so far (Linux `/proc`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here,
    // in clock ticks (USER_HZ, 100 on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// User + system CPU seconds used by the children this process has waited
/// for (`getrusage(RUSAGE_CHILDREN)`).
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// A process's peak resident memory, as `/proc` gives it.
fn peak_memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).map_or("unknown".into(), |v| v.trim().to_string())
}

/// Waits until `log` has `partitions` lines saying `restored` (no more
/// than 30 min from `t`); a partition that found no state fails the bench.
fn wait_restored(log: &Path, restored: &str, partitions: i32, t: Instant) {
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(restored).count() >= partitions as usize {
            return;
        }
        assert!(!text.contains("no checkpoint; starting"), "a partition found no state:\n{text}");
        assert!(t.elapsed() < Duration::from_secs(1800), "no restore within 30 min");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// Samples the end of the alerts topic every 100 ms until `done`:
/// `(when it was read, alert records on the broker)`.
fn sample_alerts(brokers: &str, topic: &str, done: &std::sync::atomic::AtomicBool) -> Vec<(Instant, i64)> {
    let c: BaseConsumer = client::reader(brokers).create().unwrap();
    let mut out = Vec::new();
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(end) = topic_end(&c, topic) {
            out.push((Instant::now(), end));
        }
    }
    out
}

/// The sum of a topic's end offsets (`None` while it cannot be read).
fn topic_end(c: &BaseConsumer, topic: &str) -> Option<i64> {
    client::ends_on(c, topic).ok().map(|ends| ends.values().sum())
}

fn raw_consume(brokers: &str, topic: &str, n: usize) -> f64 {
    let c: BaseConsumer = client::reader(brokers).create().unwrap();
    let parts = client::partitions(&c, topic).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    let t = Instant::now();
    c.assign(&tpl).unwrap();
    let mut got = 0;
    let mut bytes = 0usize;
    while got < n {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            bytes += m.payload().map_or(0, |p| p.len());
            got += 1;
        }
    }
    std::hint::black_box(bytes);
    t.elapsed().as_secs_f64()
}

fn copy_topic(brokers: &str, from: &str, to: &str, n: usize) {
    let mut lines = Vec::with_capacity(n);
    client::read_after(brokers, from, &Default::default(), |m| {
        lines.push(String::from_utf8_lossy(m.payload().unwrap_or(b"")).to_string())
    })
    .unwrap();
    jiancha::kafka::publish::lines(brokers, to, 1, None, lines.into_iter()).unwrap();
}

/// Waits until the group's committed offsets add up to `n` (offsets are
/// contiguous from 0, so that is every message read).
fn wait_committed(brokers: &str, group: &str, topic: &str, partitions: i32, n: usize, limit: Duration) {
    let c: BaseConsumer = client::base(brokers).set("group.id", group).create().unwrap();
    let t = Instant::now();
    loop {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        if let Ok(got) = c.committed_offsets(tpl, Duration::from_secs(10)) {
            let sum: i64 = got
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum();
            if sum >= n as i64 {
                return;
            }
        }
        assert!(t.elapsed() < limit, "not caught up within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

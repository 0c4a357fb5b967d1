//! The command line: parsing, the log subscriber and dispatch. `anyhow`
//! lives here and in `main` only; everything below returns typed errors.

use crate::config::Config;
use crate::reference::{Catalog, RefData, Regions};
use crate::sql::format::Format;
use crate::time::{parse_cli_time, Zone};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// jiancha (监察): electronic supervision of government approval services.
#[derive(Parser, Debug)]
#[command(name = "jiancha", version, about)]
pub struct Cli {
    /// Log lines on stderr as text or as JSON objects, one a line; RUST_LOG
    /// sets what is logged (default: warn,jiancha=info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Time, level, module and message (colours on a terminal).
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`
    /// (`fields.message` the message).
    Json,
}

/// What is logged when `RUST_LOG` does not say: our info lines, and only
/// warnings and errors of the libraries.
pub const DEFAULT_LOG_FILTER: &str = "warn,jiancha=info";

impl Cli {
    /// A service (`run`, `demo`) rather than a command that ends.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Run { .. } | Command::Demo { .. })
    }

    /// Sets up the process's log subscriber once: lines on stderr in
    /// `--log-format`, filtered by `RUST_LOG` (a filter that does not parse
    /// is said in a warning, and the default used). A second call does
    /// nothing.
    pub fn init_logging(&self) {
        use std::io::IsTerminal;
        use tracing_subscriber::EnvFilter;
        let given = std::env::var("RUST_LOG").ok().filter(|s| !s.trim().is_empty());
        let (filter, refused) = match given.as_deref().map(EnvFilter::try_new) {
            Some(Ok(f)) => (f, None),
            Some(Err(e)) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some(e)),
            None => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
        };
        let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        let set = match self.log_format {
            LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).try_init(),
            LogFormat::Json => fmt.json().with_ansi(false).try_init(),
        };
        if let (Ok(()), Some(e)) = (set, refused) {
            tracing::warn!(
                rust_log = given.as_deref().unwrap_or_default(),
                error = %e,
                "RUST_LOG is not a filter; logging with {DEFAULT_LOG_FILTER}"
            );
        }
    }
}

/// The reference files only reports read, given on the command line.
#[derive(clap::Args, Debug, Default)]
struct ReportFiles {
    /// Departments' names CSV, code,name (overrides reference.departments).
    #[arg(long)]
    departments: Option<PathBuf>,
    /// Deductions CSV, date,region,department,window,points,reason
    /// (overrides reference.deductions).
    #[arg(long)]
    deductions: Option<PathBuf>,
}

impl ReportFiles {
    /// Sets the files given into `cfg`; a file given on the command line
    /// must exist (one left to the configuration may be missing: none).
    fn apply(self, cfg: &mut Config) -> Result<()> {
        for (given, slot, what) in [
            (self.departments, &mut cfg.reference.departments, "--departments"),
            (self.deductions, &mut cfg.reference.deductions, "--deductions"),
        ] {
            if let Some(p) = given {
                if !p.is_file() {
                    bail!("{what} {}: no such file", p.display());
                }
                *slot = p;
            }
        }
        Ok(())
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Event-time replay of JSON Lines event files, in file order.
    Replay {
        /// Output folder for alerts.jsonl, dead-letter.jsonl and summary.json.
        #[arg(long)]
        out: PathBuf,
        /// Configuration file (TOML); defaults and JIANCHA__… variables apply.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Item catalogue CSV (overrides reference.catalog).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Calendar folder (overrides reference.calendar).
        #[arg(long)]
        calendar: Option<PathBuf>,
        /// Regions CSV (overrides reference.regions).
        #[arg(long)]
        regions: Option<PathBuf>,
        /// Steps of items CSV (overrides reference.steps).
        #[arg(long)]
        steps: Option<PathBuf>,
        #[command(flatten)]
        report_files: ReportFiles,
        /// Advance the watermark to this instant at the end of the input
        /// (RFC 3339, or a local YYYY-MM-DD meaning its 00:00).
        #[arg(long)]
        until: Option<String>,
        /// Event files (JSON Lines).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The live service: case events from Kafka, alerts and dead letters to
    /// Kafka, history under storage.data_dir.
    Run {
        /// Configuration file (TOML); defaults and JIANCHA__… variables apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Simulated departmental systems: a synthetic event stream with
    /// anomalies of every rule, written as JSON Lines or published to Kafka.
    Simulate {
        /// Output file for the events (JSON Lines).
        #[arg(long, required_unless_present = "kafka", conflicts_with = "kafka")]
        out: Option<PathBuf>,
        /// Publish to Kafka instead: bootstrap brokers.
        #[arg(long, requires = "topic")]
        kafka: Option<String>,
        /// The topic to publish to (created with --partitions if missing).
        #[arg(long)]
        topic: Option<String>,
        /// Partitions of the topic when it is created.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Events per second (default: as fast as the broker takes them).
        #[arg(long)]
        rate: Option<f64>,
        /// Number of cases.
        #[arg(long, default_value_t = 10_000)]
        cases: usize,
        /// Seed: the same seed gives the same stream.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the ground truth (one JSON object per case: its plan,
        /// figures and injected anomalies) to this file.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// First day cases start (YYYY-MM-DD).
        #[arg(long, default_value = "2026-01-05")]
        start: String,
        /// Cases start over this many calendar days.
        #[arg(long, default_value_t = 240)]
        days: u32,
        /// Configuration file (for the reference data and zone).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The embedded default: simulated departmental systems feed the whole
    /// pipeline on a compressed clock; history lands in ./data.
    Demo {
        /// Data folder.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Simulated days per wall-clock minute.
        #[arg(long, default_value_t = 10.0)]
        days_per_minute: f64,
        /// Cases started per simulated working day.
        #[arg(long, default_value_t = 120)]
        cases_per_day: usize,
        /// Simulated calendar days of arrivals.
        #[arg(long, default_value_t = 120)]
        days: u32,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// One SQL query over the history tables.
    Sql {
        /// Data folder (history written by replay, run or demo).
        #[arg(long)]
        data: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Configuration file (for the reference tables and zone).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        report_files: ReportFiles,
        /// The query.
        query: String,
    },
    /// A named report from sql/reports/NAME.sql, e.g. monthly-briefing.
    Report {
        /// Report name.
        name: String,
        /// Data folder.
        #[arg(long)]
        data: PathBuf,
        /// The month, YYYY-MM (a quarterly report takes any month of its
        /// quarter), for a report of a month.
        #[arg(long)]
        month: Option<String>,
        /// The year, YYYY, for a report of a year (annual-assessment).
        #[arg(long)]
        year: Option<String>,
        /// How many windows a report of a year honours (优秀窗口).
        #[arg(long, default_value_t = crate::sql::report::DEFAULT_TOP)]
        top: i64,
        /// Region code: that region and every region below it (default: all).
        #[arg(long)]
        region: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Configuration file (for the reference tables and zone).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        report_files: ReportFiles,
    },
    /// Read a password on standard input and print the hash to put in a
    /// `[[users]]` table's `password`.
    HashPassword,
    /// Validate configuration and reference data, saying exactly what is wrong.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// The reference data of `cfg`; where a file is left at its default path
/// (`config/…`) and is not there — a command run outside the repository —
/// the sample copy built into the binary, said on stderr (the departments'
/// names and the deductions only with the sample catalogue: they are the
/// sample county's). A path set in the
/// configuration or on the command line must exist. (`run` never falls
/// back: a live service on the sample catalogue would judge wrongly.)
fn load_refdata_or_embedded(cfg: &Config) -> Result<RefData> {
    let (r, d) = (&cfg.reference, crate::config::ReferenceConfig::default());
    let built_in = |p: &std::path::Path, default: &std::path::Path| p == default && !p.exists();
    let (catalog, calendar, regions) =
        (built_in(&r.catalog, &d.catalog), built_in(&r.calendar, &d.calendar), built_in(&r.regions, &d.regions));
    // The sample's departments and deductions go with the sample catalogue
    // only: beside a catalogue of one's own, a missing file means none.
    let (departments, deductions) =
        (catalog && built_in(&r.departments, &d.departments), catalog && built_in(&r.deductions, &d.deductions));
    if !(catalog || calendar || regions || departments || deductions) {
        return load_refdata(cfg);
    }
    // The built-in steps go with the built-in catalogue they name.
    let steps_built_in = catalog && built_in(&r.steps, &d.steps);
    let e = RefData::embedded();
    let mut used = Vec::new();
    let catalog = match catalog {
        true => {
            used.push(r.catalog.display().to_string());
            e.catalog
        }
        false => Catalog::load(&r.catalog).context("reference data")?,
    };
    let calendar = match calendar {
        true => {
            used.push(r.calendar.display().to_string());
            e.calendar
        }
        false => crate::calendar::Calendar::load_dir(&r.calendar).context("reference data")?,
    };
    let regions = match regions {
        true => {
            used.push(r.regions.display().to_string());
            e.regions
        }
        false => Regions::load(&r.regions).context("reference data")?,
    };
    let steps = match steps_built_in {
        true => {
            used.push(r.steps.display().to_string());
            e.steps
        }
        false => load_steps(cfg, &catalog)?,
    };
    let departments = match departments {
        true => {
            used.push(r.departments.display().to_string());
            e.departments
        }
        false => Arc::new(crate::reference::departments_file(&r.departments).context("reference data")?),
    };
    let deductions = match deductions {
        true => {
            used.push(r.deductions.display().to_string());
            e.deductions
        }
        false => Arc::new(crate::reference::deductions_file(&r.deductions, &regions).context("reference data")?),
    };
    tracing::warn!(
        "{} not found here; using the sample reference data built into the binary for {}",
        used.join(", "),
        if used.len() == 1 { "it" } else { "them" }
    );
    provisional(cfg, RefData { catalog, calendar, regions, steps, departments, deductions })
}

/// The reference data of `cfg`, every file from its path (`run`): the
/// departments' names and the deductions are optional (a missing file
/// means none), the rest must be there.
fn load_refdata(cfg: &Config) -> Result<RefData> {
    let r = &cfg.reference;
    let rd = RefData::load(&r.catalog, &r.calendar, &r.regions)
        .and_then(|rd| rd.with_report_files(&r.departments, &r.deductions))
        .context("reference data")?;
    let steps = load_steps(cfg, &rd.catalog)?;
    provisional(cfg, rd.with_steps(steps))
}

/// The steps of `cfg` for `catalog`. The shipped `config/steps.csv` names
/// the shipped catalogue's items: left at its default path while the
/// catalogue is another one, it is not read (no steps), rather than fail on
/// items that catalogue does not have.
fn load_steps(cfg: &Config, catalog: &Catalog) -> Result<crate::reference::Steps> {
    let (r, d) = (&cfg.reference, crate::config::ReferenceConfig::default());
    if r.steps == d.steps && r.catalog != d.catalog {
        return Ok(Default::default());
    }
    crate::reference::Steps::load(&r.steps, catalog).context("reference data")
}

/// `rd` with the provisional calendars `time.provisional_calendar` asks for.
fn provisional(cfg: &Config, rd: RefData) -> Result<RefData> {
    if !cfg.time.provisional_calendar {
        return Ok(rd);
    }
    let today = crate::calendar::provisional::today(&cfg.time.zone)?;
    Ok(rd.with_provisional_calendar(today))
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay { out, config, catalog, calendar, regions, steps, report_files, until, files } => {
            let mut cfg = Config::load_env(config.as_deref())?;
            report_files.apply(&mut cfg)?;
            if let Some(c) = catalog {
                cfg.reference.catalog = c;
            }
            if let Some(c) = calendar {
                cfg.reference.calendar = c;
            }
            if let Some(r) = regions {
                cfg.reference.regions = r;
            }
            if let Some(s) = steps {
                cfg.reference.steps = s;
            }
            let zone = cfg.time.zone.clone();
            let until = match until {
                None => None,
                Some(s) => Some(
                    parse_cli_time(&s, &zone)
                        .with_context(|| format!("--until {s:?} is not an RFC 3339 instant or a YYYY-MM-DD date"))?,
                ),
            };
            let refdata = Arc::new(load_refdata_or_embedded(&cfg)?);
            let opts = crate::replay::ReplayOptions { out: out.clone(), files, until, progress: true };
            let summary = crate::replay::run(&cfg, refdata, &opts)?;
            print!("{}", summary.render(&out));
            Ok(())
        }
        Command::Simulate { out, kafka, topic, partitions, rate, cases, seed, truth, start, days, config } => {
            let cfg = Config::load_env(config.as_deref())?;
            let zone = cfg.time.zone.clone();
            let refdata = load_refdata_or_embedded(&cfg)?;
            let start = chrono::NaiveDate::parse_from_str(&start, "%Y-%m-%d")
                .with_context(|| format!("--start {start:?} is not a YYYY-MM-DD date"))?;
            let opts = crate::synth::SynthOptions { cases, seed, start, days, ..Default::default() };
            if let (Some(brokers), Some(topic)) = (kafka, topic) {
                if rate.is_some_and(|r| r.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)) {
                    bail!("--rate must be a positive number of events per second");
                }
                let (tx, rx) = std::sync::mpsc::sync_channel::<String>(4096);
                let n = std::thread::scope(|s| {
                    s.spawn(move || {
                        for item in crate::synth::Simulator::new(&refdata, zone, opts) {
                            if let crate::synth::SimItem::Line(l) = item {
                                if tx.send(l).is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    crate::kafka::publish::lines(&brokers, &topic, partitions, rate, rx.into_iter())
                })?;
                println!("published {n} events to {topic}");
                return Ok(());
            }
            let out = out.context("--out FILE or --kafka BROKERS --topic T")?;
            simulate(&refdata, zone, opts, &out, truth.as_deref())
        }
        Command::Run { config } => {
            let cfg = Config::load_env(config.as_deref())?;
            let refdata = Arc::new(load_refdata(&cfg)?);
            let stop = signals();
            crate::kafka::refuse_default_key(&cfg)?;
            let users = crate::serve::users::Users::new(&cfg.users, &refdata)?;
            let data = cfg.storage.data_dir.clone();
            std::fs::create_dir_all(&data).with_context(|| format!("{}", data.display()))?;
            // SQL reads history where the partitions' writers put it.
            let history = match cfg.storage.history_url.as_str() {
                "" => data.clone(),
                url => std::path::PathBuf::from(url),
            };
            let live = Arc::new(crate::pipeline::live::Live::new(&cfg, refdata.clone(), users, &history));
            let servers = crate::serve::start(&cfg, live.clone())?;
            crate::kafka::log(&format!(
                "http on {} (/metrics, /healthz, /readyz, /api/alerts, board at /); SQL {}",
                servers.http,
                servers.sql.map_or("not served (no [[users]] configured)".to_string(), |a| format!("on {a}"))
            ));
            crate::kafka::run(&cfg, refdata, &stop, live)?;
            drop(servers);
            Ok(())
        }
        Command::Demo { data, days_per_minute, cases_per_day, days, seed, config } => {
            let mut cfg = Config::load_env(config.as_deref())?;
            cfg.time.watermark = crate::config::WatermarkMode::Event;
            let refdata = Arc::new(load_refdata_or_embedded(&cfg)?);
            let stop = signals();
            // With no [[users]] configured, the demo has one SQL user of its
            // own and an open board; with users, both ask for them.
            let (users, demo_user, http_open) = if cfg.users.is_empty() {
                let hash = crate::serve::users::PasswordHash::new(DEMO_PASSWORD)?.to_string();
                let u = crate::config::UserConfig {
                    name: DEMO_USER.into(),
                    password: hash,
                    role: crate::config::Role::Admin,
                    region: String::new(),
                };
                (vec![u], Some((DEMO_USER, DEMO_PASSWORD)), true)
            } else {
                (cfg.users.clone(), None, false)
            };
            let users = crate::serve::users::Users::new(&users, &refdata)?;
            let mut live = crate::pipeline::live::Live::new(&cfg, refdata.clone(), users, &data);
            live.http_open = http_open;
            let opts = crate::demo::DemoOptions { data, days_per_minute, cases_per_day, days, seed };
            crate::demo::run(&cfg, refdata, &opts, &stop, Arc::new(live), demo_user)?;
            Ok(())
        }
        Command::Sql { data, format, config, report_files, query } => {
            if matches!(format, Format::Xlsx | Format::Html) {
                bail!("--format {} is for `jiancha report … --out FILE`", format.name());
            }
            let mut cfg = Config::load_env(config.as_deref())?;
            report_files.apply(&mut cfg)?;
            let refdata = load_refdata_or_embedded(&cfg)?;
            let out = runtime()?.block_on(async {
                let ctx = crate::sql::session(&data, &refdata, cfg.time.zone.name()).await?;
                let batches = ctx.sql(&query).await?.collect().await?;
                crate::sql::format::render(&batches, format)
            })?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(())
        }
        Command::Report { name, data, month, year, top, region, format, out, config, report_files } => {
            let mut cfg = Config::load_env(config.as_deref())?;
            report_files.apply(&mut cfg)?;
            let refdata = load_refdata_or_embedded(&cfg)?;
            if let Some(m) = &month {
                crate::sql::report::check_month(m)?;
            }
            if let Some(y) = &year {
                crate::sql::report::check_year(y)?;
            }
            let region = region.unwrap_or_default();
            if !region.is_empty() && refdata.regions.get(&region).is_none() {
                bail!("--region {region} is not in {}", cfg.reference.regions.display());
            }
            let sql = crate::sql::report::text(&name)?;
            let params = crate::sql::report::Params { month, year, region, top };
            params.check(&name, &sql)?;
            if matches!(format, Format::Xlsx | Format::Html) && out.is_none() {
                bail!("--format {} writes a file: give --out FILE", format.name());
            }
            let bytes = runtime()?.block_on(async {
                let ctx = crate::sql::session(&data, &refdata, cfg.time.zone.name()).await?;
                let batches = crate::sql::report::run_with(&ctx, &sql, &params).await?;
                match format {
                    Format::Table => {
                        let title = format!("{} {}", crate::sql::report::title(&name), params.period());
                        let width = crate::sql::text::terminal_width();
                        Ok(crate::sql::text::report_table(&batches, &title, width)?.into_bytes())
                    }
                    Format::Html => crate::sql::html::briefing(&ctx, &refdata, &name, &params, &batches).await,
                    _ => crate::sql::format::render_named(&batches, format, &name),
                }
            })?;
            match out {
                Some(p) => std::fs::write(&p, bytes).with_context(|| format!("{}", p.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
            Ok(())
        }
        Command::CheckConfig { config } => check_config(config),
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("give the password on standard input, e.g. `jiancha hash-password <<< 'secret'`");
            }
            println!("{}", crate::serve::users::PasswordHash::new(password)?);
            Ok(())
        }
    }
}

/// The demo's own SQL user when none are configured.
const DEMO_USER: &str = "jiancha";
/// Its password (the demo serves loopback by default).
const DEMO_PASSWORD: &str = "jiancha";

/// Counts SIGINT / SIGTERM (Ctrl-C) in the background: the first asks to
/// finish and flush, a second to stop waiting.
fn signals() -> Arc<std::sync::atomic::AtomicU32> {
    let stop = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                flag.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    });
    stop
}

fn simulate(
    refdata: &RefData,
    zone: Zone,
    opts: crate::synth::SynthOptions,
    out: &std::path::Path,
    truth: Option<&std::path::Path>,
) -> Result<()> {
    use std::io::Write;
    let create = |p: &std::path::Path| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        ))
    };
    let mut events = create(out)?;
    let mut truth_w = truth.map(create).transpose()?;
    let (mut lines, mut cases) = (0u64, 0u64);
    for item in crate::synth::Simulator::new(refdata, zone, opts) {
        match item {
            crate::synth::SimItem::Line(l) => {
                lines += 1;
                writeln!(events, "{l}").with_context(|| format!("{}", out.display()))?;
            }
            crate::synth::SimItem::Truth(t) => {
                cases += 1;
                if let Some(w) = truth_w.as_mut() {
                    serde_json::to_writer(&mut *w, &t)?;
                    w.write_all(b"\n")?;
                }
            }
        }
    }
    events.flush()?;
    if let Some(w) = truth_w.as_mut() {
        w.flush()?;
    }
    println!("simulated {cases} cases, {lines} lines → {}", out.display());
    Ok(())
}

fn check_config(config: Option<PathBuf>) -> Result<()> {
    let cfg = Config::load_env(config.as_deref())?;
    let mut problems = Vec::new();
    let r = &cfg.reference;
    match Catalog::load(&r.catalog) {
        Ok(c) => {
            println!("ok  catalogue {}: {} items", r.catalog.display(), c.items().len());
            match load_steps(&cfg, &c) {
                Ok(s) if s.rows() == 0 => println!("ok  steps {}: none, no step limits", r.steps.display()),
                Ok(s) => println!("ok  steps {}: {} steps of {} items", r.steps.display(), s.rows(), s.items()),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    let catalog = Catalog::load(&r.catalog).ok();
    let regions = match Regions::load(&r.regions) {
        Ok(g) => {
            println!("ok  regions {}: {} regions", r.regions.display(), g.rows().len());
            Some(g)
        }
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let departments = match r.departments.exists() {
        false => {
            println!(
                "warn departments {}: no such file; reports and the board show department codes as names",
                r.departments.display()
            );
            None
        }
        true => match crate::reference::Departments::load(&r.departments) {
            Ok(d) => {
                println!("ok  departments {}: {} departments", r.departments.display(), d.rows().len());
                if let Some(c) = &catalog {
                    let mut unnamed: Vec<&str> =
                        c.items().iter().map(|i| i.department.as_str()).filter(|d2| !d.contains(d2)).collect();
                    unnamed.sort();
                    unnamed.dedup();
                    if !unnamed.is_empty() {
                        println!(
                            "warn departments {}: no name for the catalogue's {}; shown as their codes",
                            r.departments.display(),
                            unnamed.join(", ")
                        );
                    }
                }
                Some(d)
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
    };
    match (r.deductions.exists(), &regions) {
        (false, _) => println!("ok  deductions {}: no such file, so no deductions", r.deductions.display()),
        (true, None) => {
            println!("warn deductions {}: not checked (the regions file does not load)", r.deductions.display())
        }
        (true, Some(g)) => match crate::reference::Deductions::load(&r.deductions, g) {
            Ok(d) => {
                let points: f64 = d.rows().iter().map(|x| x.points).sum();
                println!("ok  deductions {}: {} deductions, {points} points", r.deductions.display(), d.rows().len());
                let known = |code: &str| {
                    departments.as_ref().is_some_and(|x| x.contains(code))
                        || catalog.as_ref().is_some_and(|c| c.items().iter().any(|i| i.department == code))
                };
                let mut unknown: Vec<&str> =
                    d.rows().iter().map(|x| x.department.as_str()).filter(|c| !known(c)).collect();
                unknown.sort();
                unknown.dedup();
                if !unknown.is_empty() {
                    println!(
                        "warn deductions {}: department {} is in neither the catalogue nor the departments file",
                        r.deductions.display(),
                        unknown.join(", ")
                    );
                }
            }
            Err(e) => problems.push(e.to_string()),
        },
    }
    match crate::calendar::Calendar::load_dir(&r.calendar) {
        Ok(c) => {
            let years: Vec<String> = c.years().map(|y| y.to_string()).collect();
            println!("ok  calendar {}: years {}", r.calendar.display(), years.join(", "));
            let today = crate::calendar::provisional::today(&cfg.time.zone)?;
            use chrono::Datelike;
            let provisional = |y: i32| {
                format!(
                    "until it is added, {y} uses a provisional calendar (its statutory holidays only, no 调休 \
                     make-up days or bridging days); cards computed on it are marked provisional"
                )
            };
            if !c.has_year(today.year()) {
                let missing = format!("calendar has no file for the current year {}", today.year());
                match cfg.time.provisional_calendar {
                    true => println!("warn {missing}; {}", provisional(today.year())),
                    false => problems.push(missing),
                }
            }
            if today.month() == 12 && !c.has_year(today.year() + 1) {
                match cfg.time.provisional_calendar {
                    true => println!(
                        "warn calendar has no file for next year {} yet; {}",
                        today.year() + 1,
                        provisional(today.year() + 1)
                    ),
                    false => println!("warn calendar has no file for next year {} yet", today.year() + 1),
                }
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if cfg.privacy.applicant_key == crate::config::DEFAULT_APPLICANT_KEY {
        println!("warn privacy.applicant_key is the built-in default; `jiancha run` refuses it");
    }
    match problems.len() {
        0 => {
            println!("configuration is valid");
            Ok(())
        }
        1 => bail!("{}", problems[0]),
        n => {
            for p in &problems {
                println!("error {p}");
            }
            bail!("{n} problems, the first: {}", problems[0])
        }
    }
}

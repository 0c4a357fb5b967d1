//! Configuration: one TOML file over built-in defaults, every key overridable
//! by an environment variable `JIANCHA__SECTION__KEY`. Unknown keys, in the
//! file or in the environment, are errors.

use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka connection and topics.
    pub kafka: KafkaConfig,
    /// Time zone and watermark.
    pub time: TimeConfig,
    /// Reference data files.
    pub reference: ReferenceConfig,
    /// Where history and checkpoints live.
    pub storage: StorageConfig,
    /// HTTP endpoint (metrics, health, alert feed).
    pub http: HttpConfig,
    /// PostgreSQL wire-protocol endpoint.
    pub sql: SqlConfig,
    /// Personal-data protection.
    pub privacy: PrivacyConfig,
    /// Alert rule thresholds.
    pub rules: RulesConfig,
    /// Pushing alerts to a Prometheus Alertmanager.
    pub alertmanager: AlertmanagerConfig,
    /// Live figures exported to Prometheus.
    pub metrics: MetricsConfig,
    /// Who may read SQL and the alert feed: `[[users]]` tables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
}

/// `[alertmanager]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Base URL of an Alertmanager (`http://host:9093` or
    /// `https://host:9093`); empty: push nothing.
    pub url: String,
    /// How often firing alerts are sent again, so Alertmanager keeps them.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub resend: Duration,
    /// PEM file of CA certificates trusted for an `https://` URL besides
    /// the system's roots (a private CA); empty: the system's roots only.
    pub tls_ca: String,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig { url: String::new(), resend: Duration::from_secs(60), tls_ca: String::new() }
    }
}

/// `[metrics]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// How often the briefing figures are recomputed from history.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub figures_interval: Duration,
    /// The on-time rate target dashboards draw against (0–1).
    pub on_time_target: f64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { figures_interval: Duration::from_secs(15), on_time_target: 0.95 }
    }
}

/// What a user may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every region.
    Admin,
    /// The user's region and the regions below it.
    Reader,
    /// A reader of its region who may also issue supervision notices (督办)
    /// and record their answers.
    Supervisor,
}

/// One `[[users]]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Password hash from `jiancha hash-password` (never the password).
    pub password: String,
    /// `admin` (sees everything), `reader` (sees `region` and below) or
    /// `supervisor` (a reader who may also issue notices).
    pub role: Role,
    /// Region code the user is scoped to (readers must have one).
    #[serde(default)]
    pub region: String,
}

/// `[kafka]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma separated.
    pub brokers: String,
    /// Consumer group id.
    pub group_id: String,
    /// Topic the departmental systems publish case events to.
    pub events_topic: String,
    /// Topic alert records are published to.
    pub alerts_topic: String,
    /// Topic bad events are published to, byte for byte.
    pub dead_letter_topic: String,
    /// Internal topic through which the partitions share what `dual_intake`
    /// and joint cases need across them (compacted; read whole by every
    /// instance).
    pub facts_topic: String,
    /// Internal topic carrying each partition's checkpoints (compacted; as
    /// many partitions as the events topic), from which an instance that
    /// shares no volume with the last owner takes a partition up.
    pub changelog_topic: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "jiancha".into(),
            events_topic: "case-events".into(),
            alerts_topic: "supervision-alerts".into(),
            dead_letter_topic: "case-events.dlq".into(),
            facts_topic: "case-events.facts".into(),
            changelog_topic: "case-events.changelog".into(),
        }
    }
}

/// How the watermark advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatermarkMode {
    /// Wall clock minus the allowed lateness (the live service).
    Wall,
    /// Event time of the input (backfills, replay, the demo).
    Event,
}

/// What an event whose `item_code` is not in the catalogue (清单外事项) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlistedItem {
    /// Its case is followed (no time limit) and raises `unlisted_item`.
    #[default]
    Card,
    /// It is dead-lettered `unknown_item`.
    DeadLetter,
}

/// `[time]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeConfig {
    /// IANA time zone in which dates and 00:00 are reckoned (parsed once,
    /// here: an unknown name is an error at load).
    pub zone: crate::time::Zone,
    /// `wall` or `event`.
    pub watermark: WatermarkMode,
    /// How far the watermark trails the newest time (e.g. `0s`, `10m`).
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub allowed_lateness: Duration,
    /// Event mode: a partition idle this long does not hold the watermark back.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    /// The current and the next year, when their calendar file is missing,
    /// get a provisional calendar of their statutory holidays (cards on it
    /// are marked provisional, and judged again when the file comes).
    pub provisional_calendar: bool,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            zone: crate::time::Zone::new("Asia/Shanghai").expect("a zone of the tz database"),
            watermark: WatermarkMode::Wall,
            allowed_lateness: Duration::ZERO,
            idle_timeout: Duration::from_secs(30),
            provisional_calendar: true,
        }
    }
}

/// `[reference]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// Item catalogue CSV.
    pub catalog: PathBuf,
    /// Folder of `YYYY.json` calendar files.
    pub calendar: PathBuf,
    /// Regions CSV.
    pub regions: PathBuf,
    /// Steps of items CSV (`item_code,step,limit_days`); a missing file means
    /// no step limits.
    pub steps: PathBuf,
    /// Departments' names CSV (`code,name`); missing: codes are shown as names.
    pub departments: PathBuf,
    /// The performance office's deductions CSV
    /// (`date,region,department,window,points,reason`); missing: none.
    pub deductions: PathBuf,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            catalog: "config/catalog.csv".into(),
            calendar: "config/calendar".into(),
            regions: "config/regions.csv".into(),
            steps: "config/steps.csv".into(),
            departments: "config/departments.csv".into(),
            deductions: "config/deductions.csv".into(),
        }
    }
}

/// `[storage]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Data directory for history and checkpoints.
    pub data_dir: PathBuf,
    /// `run`: the object store history parts are moved to once complete,
    /// for instances that share no volume (`s3://bucket/prefix`, with the
    /// `AWS_*` environment variables, or `file:///path`); SQL reads history
    /// there. Empty: history stays in `data_dir`.
    pub history_url: String,
    /// `run`: how often the open cases, their timers and the input offsets
    /// are checkpointed (and the offsets committed). A crash loses no event;
    /// what came after the last checkpoint is read again on restart.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub checkpoint_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: "data".into(),
            history_url: String::new(),
            checkpoint_interval: Duration::from_secs(5),
        }
    }
}

/// `[http]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address for `/metrics`, `/healthz`, the alert feed and board.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: "127.0.0.1:9898".into() }
    }
}

/// `[sql]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// Listen address of the PostgreSQL wire protocol.
    pub listen: String,
    /// PEM certificate chain for TLS; empty: no TLS.
    pub tls_cert: String,
    /// PEM private key (PKCS#8) for TLS; empty: no TLS.
    pub tls_key: String,
    /// The longest a statement may run over the PostgreSQL endpoint; a
    /// connection may lower it (`SET statement_timeout`), never raise it.
    #[serde(deserialize_with = "de_duration", serialize_with = "ser_duration")]
    pub statement_timeout: Duration,
    /// Memory the endpoint's queries may hold together (sorts, joins and
    /// aggregations spill to disk before they fail), e.g. `2GiB`; empty: a
    /// quarter of the machine's memory.
    pub memory_limit: String,
    /// Statements running at once over the endpoint, all users together;
    /// the next waits up to five seconds, then is refused.
    pub max_concurrent_queries: u32,
    /// Statements running at once for one user.
    pub max_concurrent_queries_per_user: u32,
    /// Worker threads of the endpoint's own runtime, run at a lower CPU
    /// priority than the pipeline; 0: half the cores, at least one.
    pub threads: u32,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            listen: "127.0.0.1:5433".into(),
            tls_cert: String::new(),
            tls_key: String::new(),
            statement_timeout: Duration::from_secs(60),
            memory_limit: String::new(),
            max_concurrent_queries: 8,
            max_concurrent_queries_per_user: 4,
            threads: 0,
        }
    }
}

impl SqlConfig {
    /// `memory_limit` in bytes (a quarter of the machine's memory when empty).
    pub fn memory_limit_bytes(&self) -> Result<usize, ValueError> {
        if self.memory_limit.trim().is_empty() {
            return Ok(machine_memory().map_or(2 << 30, |m| m / 4));
        }
        parse_size(&self.memory_limit).map_err(ValueError::MemoryLimit)
    }

    /// `threads`, with 0 resolved to half the cores.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => (std::thread::available_parallelism().map_or(2, |n| n.get()) / 2).max(1),
            n => n as usize,
        }
    }
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`).
fn machine_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A size that does not parse; the configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// No number where the size should start.
    #[error("{0:?} is not a size like 512MiB or 2GiB")]
    NotASize(String),
    /// A unit other than the ones listed.
    #[error("{size:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB or GB)")]
    Unit {
        /// The size as given.
        size: String,
        /// The unit as given.
        unit: String,
    },
    /// More bytes than the machine can address.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a size such as `512MiB`, `2GiB`, `1.5GB` or `1048576` (bytes).
pub fn parse_size(s: &str) -> Result<usize, SizeError> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| SizeError::NotASize(s.to_string()))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => return Err(SizeError::Unit { size: s.to_string(), unit: u.to_string() }),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes >= usize::MAX as f64 {
        return Err(SizeError::TooLarge(s.to_string()));
    }
    Ok(bytes as usize)
}

/// The built-in applicant key, refused by `jiancha run`.
pub const DEFAULT_APPLICANT_KEY: &str = "change-me";

/// `[privacy]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// HMAC-SHA256 key for applicant ids.
    pub applicant_key: String,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig { applicant_key: DEFAULT_APPLICANT_KEY.into() }
    }
}

/// `[rules]`: thresholds of the alert rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// `due_soon` fires this many charged days before the due date (clamped to 1…N).
    pub warn_days: u32,
    /// `dual_intake` looks back this many calendar days.
    pub dual_intake_days: u32,
    /// `unregistered_case`: hours after the first event for a `center` event.
    pub grace_hours: u32,
    /// `backdated_entry`: allowed hours between `occurred_at` and `recorded_at`.
    pub backdate_hours: u32,
    /// `bad_rating_unrectified`: working days to rectify a bad rating.
    pub rectify_days: u32,
    /// An invalid event is held this many hours of event time before it is dead-lettered.
    pub orphan_hours: u32,
    /// A repeated `event_id` within this many days is a duplicate.
    pub dedupe_days: u32,
    /// A closed case is kept in memory this many days after its last event (for
    /// ratings and late events), then left to history.
    pub retain_closed_days: u32,
    /// `complaint_overdue`: working days after its filing date to answer a
    /// complaint.
    pub complaint_days: u32,
    /// An event for an item outside the catalogue: `card` (followed, raises
    /// `unlisted_item`) or `dead_letter` (`unknown_item`).
    pub unlisted_item: UnlistedItem,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            warn_days: 2,
            dual_intake_days: 30,
            grace_hours: 24,
            backdate_hours: 24,
            rectify_days: 15,
            orphan_hours: 168,
            dedupe_days: 30,
            retain_closed_days: 90,
            complaint_days: 5,
            unlisted_item: UnlistedItem::Card,
        }
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        cause: std::io::Error,
    },
    /// The TOML or a key is wrong.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file, or `environment`.
        origin: String,
        /// What is wrong, naming the key (TOML's and serde's messages,
        /// which carry no error of their own worth keeping).
        message: String,
    },
    /// A value the types accept but the service cannot run with.
    #[error("{origin}: {problem}")]
    Value {
        /// The file, or `built-in defaults`.
        origin: String,
        /// What is wrong.
        #[source]
        problem: ValueError,
    },
}

/// A configuration value out of its range; the configuration is refused
/// and nothing starts.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// `rules.complaint_days` is 0.
    #[error("rules.complaint_days must be at least 1")]
    ComplaintDays,
    /// `rules.warn_days` is 0.
    #[error("rules.warn_days must be at least 1")]
    WarnDays,
    /// `rules.orphan_hours` or `rules.dedupe_days` is 0.
    #[error("rules.orphan_hours and rules.dedupe_days must be at least 1")]
    OrphanOrDedupe,
    /// `sql.statement_timeout` is below a second.
    #[error("sql.statement_timeout must be at least 1s")]
    StatementTimeout,
    /// `sql.memory_limit` is not a size.
    #[error("sql.memory_limit: {0}")]
    MemoryLimit(#[source] SizeError),
    /// `sql.memory_limit` is below 16 MiB.
    #[error("sql.memory_limit {0:?} is below 16MiB")]
    MemoryLimitTooSmall(String),
    /// A concurrency limit is 0.
    #[error("sql.max_concurrent_queries and sql.max_concurrent_queries_per_user must be at least 1")]
    Concurrency,
    /// `metrics.on_time_target` is not a fraction.
    #[error("metrics.on_time_target must be between 0 and 1")]
    OnTimeTarget,
    /// `alertmanager.url` is neither HTTP nor HTTPS.
    #[error("alertmanager.url {0:?} must start with http:// or https://")]
    AlertmanagerUrl(String),
    /// `alertmanager.tls_ca` is set for a URL that is not HTTPS.
    #[error("alertmanager.tls_ca is set but alertmanager.url {0:?} is not https://")]
    AlertmanagerCaWithoutHttps(String),
    /// A user name is empty or repeated.
    #[error("users: name {0:?} is empty or given twice")]
    UserName(String),
    /// A reader has no region.
    #[error("users: reader or supervisor {0:?} needs a region")]
    ReaderRegion(String),
    /// A user's password is not a hash from `jiancha hash-password`.
    #[error("users: {user:?}: password: {source}")]
    Password {
        /// The user's name.
        user: String,
        /// What is wrong with the hash.
        #[source]
        source: crate::serve::users::HashError,
    },
    /// `privacy.applicant_key` is empty.
    #[error("privacy.applicant_key must not be empty")]
    ApplicantKey,
}

fn one_line(s: &str) -> String {
    s.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Reads one section, naming the offending key on error.
fn section<T: serde::de::DeserializeOwned + Default>(
    origin: &str,
    name: &str,
    table: &toml::Table,
) -> Result<T, ConfigError> {
    let Some(v) = table.get(name) else { return Ok(T::default()) };
    let err = |message: String| ConfigError::Invalid { origin: origin.to_string(), message };
    let Some(t) = v.as_table() else { return Err(err(format!("{name} must be a section [{name}]"))) };
    T::deserialize(v.clone()).map_err(|e| {
        for (k, x) in t {
            let one: toml::Table = [(k.clone(), x.clone())].into_iter().collect();
            if let Err(e) = T::deserialize(toml::Value::Table(one)) {
                return err(format!("{name}.{k}: {}", one_line(e.message())));
            }
        }
        err(format!("[{name}]: {}", one_line(e.message())))
    })
}

/// A duration that does not parse; the configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    /// Nothing given.
    #[error("empty duration")]
    Empty,
    /// Spaces inside (`10 minutes`).
    #[error("{0:?} is not a duration like 30s, 10m, 2h or 1h30m (no spaces)")]
    Spaces(String),
    /// Not humantime's syntax.
    #[error("{text:?} is not a duration like 30s, 10m or 2h: {source}")]
    Syntax {
        /// The duration as given.
        text: String,
        /// humantime's reason.
        #[source]
        source: humantime::DurationError,
    },
}

/// Parses `0s`, `500ms`, `30s`, `10m`, `2h`, `1d` and combinations like
/// `1h30m` (humantime's units, written without spaces).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.contains(char::is_whitespace) {
        return Err(DurationError::Spaces(s.to_string()));
    }
    humantime::parse_duration(s).map_err(|source| DurationError::Syntax { text: s.to_string(), source })
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

impl Config {
    /// Loads `path` (or only the defaults) and applies `JIANCHA__…` variables
    /// from `env`. Every error names the file or variable and the key.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let invalid = |origin: &str, message: String| ConfigError::Invalid { origin: origin.to_string(), message };
        let (origin, mut table) = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|cause| ConfigError::Io { path: p.to_path_buf(), cause })?;
                let origin = p.display().to_string();
                let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                    let line = e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                    invalid(&origin, format!("line {line}: {}", one_line(e.message())))
                })?;
                (origin, table)
            }
            None => ("built-in defaults".to_string(), toml::Table::new()),
        };
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("JIANCHA__") else { continue };
            let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let [section, key] = parts.as_slice() else {
                return Err(invalid("environment", format!("{k} must have the form JIANCHA__SECTION__KEY")));
            };
            // The default tells the type: a numeric string stays a string for string keys.
            let value = match defaults.get(section).and_then(|t| t.get(key)) {
                None => return Err(invalid("environment", format!("{k}: there is no key {section}.{key}"))),
                Some(toml::Value::Integer(_)) => toml::Value::Integer(
                    v.trim()
                        .parse()
                        .map_err(|_| invalid("environment", format!("{k}: {v:?} is not a whole number")))?,
                ),
                Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
                    v.trim().parse().map_err(|_| invalid("environment", format!("{k}: {v:?} is not true or false")))?,
                ),
                Some(_) => toml::Value::String(v),
            };
            match table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                toml::Value::Table(t) => {
                    t.insert(key.clone(), value);
                }
                _ => return Err(invalid("environment", format!("{k}: {section} is not a section in {origin}"))),
            }
        }
        for name in table.keys() {
            if !defaults.contains_key(name) && name != "users" {
                return Err(invalid(&origin, format!("unknown section [{name}]")));
            }
        }
        let t = &table;
        let cfg = Config {
            kafka: section(&origin, "kafka", t)?,
            time: section(&origin, "time", t)?,
            reference: section(&origin, "reference", t)?,
            storage: section(&origin, "storage", t)?,
            http: section(&origin, "http", t)?,
            sql: section(&origin, "sql", t)?,
            privacy: section(&origin, "privacy", t)?,
            rules: section(&origin, "rules", t)?,
            alertmanager: section(&origin, "alertmanager", t)?,
            metrics: section(&origin, "metrics", t)?,
            users: match t.get("users") {
                None => Vec::new(),
                Some(v) => Vec::<UserConfig>::deserialize(v.clone())
                    .map_err(|e| invalid(&origin, format!("[[users]]: {}", one_line(e.message()))))?,
            },
        };
        cfg.validate().map_err(|problem| ConfigError::Value { origin: origin.clone(), problem })?;
        Ok(cfg)
    }

    /// Loads with the process environment.
    pub fn load_env(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(path, std::env::vars())
    }

    /// Checks values that types alone do not.
    pub fn validate(&self) -> Result<(), ValueError> {
        let r = &self.rules;
        if r.warn_days == 0 {
            return Err(ValueError::WarnDays);
        }
        if r.complaint_days == 0 {
            return Err(ValueError::ComplaintDays);
        }
        if r.orphan_hours == 0 || r.dedupe_days == 0 {
            return Err(ValueError::OrphanOrDedupe);
        }
        let q = &self.sql;
        if q.statement_timeout < Duration::from_secs(1) {
            return Err(ValueError::StatementTimeout);
        }
        if q.memory_limit_bytes()? < 16 << 20 {
            return Err(ValueError::MemoryLimitTooSmall(q.memory_limit.clone()));
        }
        if q.max_concurrent_queries == 0 || q.max_concurrent_queries_per_user == 0 {
            return Err(ValueError::Concurrency);
        }
        if !(0.0..=1.0).contains(&self.metrics.on_time_target) {
            return Err(ValueError::OnTimeTarget);
        }
        let am = &self.alertmanager;
        if !am.url.is_empty() && !am.url.starts_with("http://") && !am.url.starts_with("https://") {
            return Err(ValueError::AlertmanagerUrl(am.url.clone()));
        }
        if !am.tls_ca.is_empty() && !am.url.starts_with("https://") {
            return Err(ValueError::AlertmanagerCaWithoutHttps(am.url.clone()));
        }
        let mut seen = std::collections::HashSet::new();
        for u in &self.users {
            if u.name.is_empty() || !seen.insert(u.name.as_str()) {
                return Err(ValueError::UserName(u.name.clone()));
            }
            if u.role != Role::Admin && u.region.is_empty() {
                return Err(ValueError::ReaderRegion(u.name.clone()));
            }
            crate::serve::users::PasswordHash::parse(&u.password)
                .map_err(|source| ValueError::Password { user: u.name.clone(), source })?;
        }
        if self.privacy.applicant_key.is_empty() {
            return Err(ValueError::ApplicantKey);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.kafka.events_topic, "case-events");
        assert_eq!(c.kafka.dead_letter_topic, "case-events.dlq");
        assert_eq!(c.time.zone.name(), "Asia/Shanghai");
        assert_eq!(c.time.watermark, WatermarkMode::Wall);
        assert_eq!(c.time.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.rules, RulesConfig::default());
        assert_eq!(c.rules.orphan_hours, 168);
        assert_eq!(c.http.listen, "127.0.0.1:9898");
    }

    #[test]
    fn environment_overrides_file_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[rules]\nwarn_days = 3\n[time]\nallowed_lateness = \"10m\"\n").unwrap();
        let c = Config::load(
            Some(&p),
            env(&[("JIANCHA__KAFKA__BROKERS", "k1:9092"), ("JIANCHA__RULES__GRACE_HOURS", "12")]),
        )
        .unwrap();
        assert_eq!(c.rules.warn_days, 3);
        assert_eq!(c.rules.grace_hours, 12);
        assert_eq!(c.kafka.brokers, "k1:9092");
        assert_eq!(c.time.allowed_lateness, Duration::from_secs(600));

        let e = Config::load(None, env(&[("JIANCHA__RULES__WARN_DAYZ", "1")])).unwrap_err();
        assert!(e.to_string().contains("warn_dayz"), "{e}");
        std::fs::write(&p, "[kafka]\nbrokerz = \"x\"\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err();
        assert!(e.to_string().contains("brokerz"), "{e}");
        std::fs::write(&p, "[time]\nzone = \"Nowhere/City\"\n").unwrap();
        assert!(Config::load(Some(&p), env(&[])).unwrap_err().to_string().contains("time.zone"));
    }

    #[test]
    fn alertmanager_url_is_http_or_https_and_its_ca_needs_https() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs));
        let https = ("JIANCHA__ALERTMANAGER__URL", "https://am.example:9093");
        let ca = ("JIANCHA__ALERTMANAGER__TLS_CA", "/etc/jiancha/ca.pem");
        assert_eq!(load(&[https, ca]).unwrap().alertmanager.tls_ca, "/etc/jiancha/ca.pem");
        assert!(load(&[("JIANCHA__ALERTMANAGER__URL", "http://am:9093")]).is_ok());
        let e = load(&[("JIANCHA__ALERTMANAGER__URL", "ftp://am:9093")]).unwrap_err();
        assert!(e.to_string().contains("alertmanager.url"), "{e}");
        let e = load(&[("JIANCHA__ALERTMANAGER__URL", "http://am:9093"), ca]).unwrap_err();
        assert!(e.to_string().contains("alertmanager.tls_ca"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("2 gigabytes").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("1e400GiB").is_err());
    }
}

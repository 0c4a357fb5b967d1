//! Reference data: the item catalogue (事项目录), the regions, the calendar
//! and the steps of items (环节时限), loaded and checked once at start; and
//! the two files only reports read —
//! the departments' names and the performance office's deductions — which
//! a running service reads again when they change ([`Watched`]).

pub use crate::calendar::{Calendar, CalendarError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kind of an approval item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// 即办件: completed the day it is accepted.
    Immediate,
    /// 承诺件: a promised number of working days.
    Promised,
    /// 联办件: a parent case with sub-cases of other departments.
    Joint,
    /// 上报件: goes to a higher authority.
    ReportUp,
}

impl ItemKind {
    /// The name used in files and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Immediate => "immediate",
            ItemKind::Promised => "promised",
            ItemKind::Joint => "joint",
            ItemKind::ReportUp => "report_up",
        }
    }
    fn parse(s: &str) -> Option<ItemKind> {
        Some(match s {
            "immediate" => ItemKind::Immediate,
            "promised" => ItemKind::Promised,
            "joint" => ItemKind::Joint,
            "report_up" => ItemKind::ReportUp,
            _ => return None,
        })
    }
}

/// One catalogue row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    /// 事项编码.
    pub item_code: String,
    /// Item name.
    pub name: String,
    /// Owning department code.
    pub department: String,
    /// Item kind.
    pub kind: ItemKind,
    /// 法定时限, working days.
    pub statutory_days: u32,
    /// 承诺时限, working days (the clock's limit N).
    pub promised_days: u32,
    /// Standard fee in yuan; 0 = free.
    pub fee_yuan: f64,
    /// Handled in the service hall (进厅办理).
    pub in_hall: bool,
}

/// The item catalogue, addressed by dense index.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    items: Vec<Item>,
    by_code: HashMap<String, u32>,
}

/// A problem in a reference-data file, with its place.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        cause: std::io::Error,
    },
    /// The CSV itself is malformed.
    #[error("{path}:{line}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// The CSV reader's reason.
        #[source]
        source: csv::Error,
    },
    /// A row or header is wrong.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The calendar folder is wrong.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

const CATALOG_COLUMNS: [&str; 8] =
    ["item_code", "name", "department", "kind", "statutory_days", "promised_days", "fee_yuan", "in_hall"];

fn read_csv(path: &Path) -> Result<Vec<u8>, RefError> {
    std::fs::read(path).map_err(|cause| RefError::Io { path: path.to_path_buf(), cause })
}

fn csv_reader(text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text)
}

/// The file line on which the record starting at `pos` begins (blank lines
/// before a record are skipped by the CSV reader but count as lines).
fn line_at(text: &[u8], pos: Option<&csv::Position>) -> u64 {
    let Some(pos) = pos else { return 0 };
    let mut b = (pos.byte() as usize).min(text.len());
    while b < text.len() && matches!(text[b], b'\n' | b'\r') {
        b += 1;
    }
    1 + text[..b].iter().filter(|&&c| c == b'\n').count() as u64
}

impl Catalog {
    /// Loads and checks a catalogue CSV.
    pub fn load(path: &Path) -> Result<Catalog, RefError> {
        Catalog::parse(&read_csv(path)?, path)
    }

    /// Parses catalogue CSV text; `path` names it in messages.
    pub fn parse(text: &[u8], path: &Path) -> Result<Catalog, RefError> {
        let mut rdr = csv_reader(text);
        let row_err = |line: u64, message: String| RefError::Row { path: path.to_path_buf(), line, message };
        let csv_err = |line: u64| move |source| RefError::Csv { path: path.to_path_buf(), line, source };
        let headers = rdr.headers().map_err(csv_err(1))?.clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let mut idx = [usize::MAX; 8];
        for (i, name) in CATALOG_COLUMNS.iter().enumerate() {
            match col(name) {
                Some(c) => idx[i] = c,
                None if *name == "in_hall" => {}
                None => {
                    return Err(row_err(
                        1,
                        format!("missing column {name:?}; expected header {}", CATALOG_COLUMNS.join(",")),
                    ))
                }
            }
        }
        if let Some(extra) = headers.iter().find(|h| !CATALOG_COLUMNS.contains(h)) {
            return Err(row_err(1, format!("unknown column {extra:?}")));
        }
        let mut cat = Catalog::default();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| csv_err(line_at(text, e.position()))(e))?;
            let line = line_at(text, rec.position());
            let get = |i: usize| {
                if idx[i] == usize::MAX {
                    ""
                } else {
                    rec.get(idx[i]).unwrap_or("")
                }
            };
            let item_code = get(0).to_string();
            if item_code.is_empty() || item_code.chars().count() > 128 {
                return Err(row_err(line, "item_code must be 1–128 characters".into()));
            }
            let kind = ItemKind::parse(get(3)).ok_or_else(|| {
                row_err(line, format!("kind {:?} is not one of immediate, promised, joint, report_up", get(3)))
            })?;
            let days = |i: usize, name: &str| {
                get(i)
                    .parse::<u32>()
                    .map_err(|_| row_err(line, format!("{name} {:?} is not a whole number of days", get(i))))
            };
            let statutory_days = days(4, "statutory_days")?;
            let promised_days = days(5, "promised_days")?;
            if kind == ItemKind::Immediate && promised_days != 0 {
                return Err(row_err(line, "an immediate item must have promised_days 0".into()));
            }
            if promised_days > statutory_days {
                return Err(row_err(
                    line,
                    format!("promised_days {promised_days} exceeds statutory_days {statutory_days}"),
                ));
            }
            let fee_yuan = match get(6) {
                "" => 0.0,
                s => match s.parse::<f64>() {
                    Ok(f) if f.is_finite() && f >= 0.0 => f,
                    _ => return Err(row_err(line, format!("fee_yuan {s:?} is not a number ≥ 0"))),
                },
            };
            let in_hall = match get(7) {
                "" | "true" => true,
                "false" => false,
                s => return Err(row_err(line, format!("in_hall {s:?} must be true, false or empty"))),
            };
            let department = get(2).to_string();
            if department.is_empty() {
                return Err(row_err(line, "department is empty".into()));
            }
            if cat.by_code.contains_key(&item_code) {
                return Err(row_err(line, format!("item_code {item_code:?} appears twice")));
            }
            cat.by_code.insert(item_code.clone(), cat.items.len() as u32);
            cat.items.push(Item {
                item_code,
                name: get(1).to_string(),
                department,
                kind,
                statutory_days,
                promised_days,
                fee_yuan,
                in_hall,
            });
        }
        if cat.items.is_empty() {
            return Err(row_err(1, "the catalogue has no items".into()));
        }
        Ok(cat)
    }

    /// Builds a catalogue from rows (tests, benchmarks).
    pub fn from_items(items: Vec<Item>) -> Catalog {
        let by_code = items.iter().enumerate().map(|(i, it)| (it.item_code.clone(), i as u32)).collect();
        Catalog { items, by_code }
    }

    /// The index of an item code.
    pub fn lookup(&self, code: &str) -> Option<u32> {
        self.by_code.get(code).copied()
    }

    /// The item at an index.
    pub fn item(&self, idx: u32) -> &Item {
        &self.items[idx as usize]
    }

    /// The item at an index, None for an index outside the catalogue (an
    /// unlisted item's, see `engine::case::UNLISTED_ITEM`, or a complaint's
    /// `NO_ITEM`).
    pub fn get(&self, idx: u32) -> Option<&Item> {
        self.items.get(idx as usize)
    }

    /// All items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }
}

/// One administrative division.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Region {
    /// 6, 9 or 12 digit code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Parent code; empty at the top.
    pub parent: String,
}

/// The regions and their parent chain.
#[derive(Clone, Debug, Default)]
pub struct Regions {
    rows: Vec<Region>,
    by_code: HashMap<String, usize>,
}

/// Whether a string is a region code of 6, 9 or 12 digits.
pub fn is_region_code(s: &str) -> bool {
    matches!(s.len(), 6 | 9 | 12) && s.bytes().all(|b| b.is_ascii_digit())
}

impl Regions {
    /// Loads and checks a regions CSV (`code,name,parent`).
    pub fn load(path: &Path) -> Result<Regions, RefError> {
        Regions::parse(&read_csv(path)?, path)
    }

    /// Parses regions CSV text; `path` names it in messages.
    pub fn parse(text: &[u8], path: &Path) -> Result<Regions, RefError> {
        let mut rdr = csv_reader(text);
        let row_err = |line: u64, message: String| RefError::Row { path: path.to_path_buf(), line, message };
        let csv_err = |line: u64| move |source| RefError::Csv { path: path.to_path_buf(), line, source };
        let headers = rdr.headers().map_err(csv_err(1))?.clone();
        if headers.iter().collect::<Vec<_>>() != ["code", "name", "parent"] {
            return Err(row_err(1, "expected header code,name,parent".into()));
        }
        let mut regions = Regions::default();
        let mut lines = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| csv_err(line_at(text, e.position()))(e))?;
            let line = line_at(text, rec.position());
            let code = rec.get(0).unwrap_or("").to_string();
            if !is_region_code(&code) {
                return Err(row_err(line, format!("code {code:?} is not 6, 9 or 12 digits")));
            }
            let parent = rec.get(2).unwrap_or("").to_string();
            if !parent.is_empty() && !is_region_code(&parent) {
                return Err(row_err(line, format!("parent {parent:?} is not 6, 9 or 12 digits")));
            }
            if regions.by_code.contains_key(&code) {
                return Err(row_err(line, format!("code {code} appears twice")));
            }
            regions.by_code.insert(code.clone(), regions.rows.len());
            lines.push(line);
            regions.rows.push(Region { code, name: rec.get(1).unwrap_or("").to_string(), parent });
        }
        for (i, r) in regions.rows.iter().enumerate() {
            if !r.parent.is_empty() && !regions.by_code.contains_key(&r.parent) {
                return Err(row_err(lines[i], format!("parent {} of {} is not in the file", r.parent, r.code)));
            }
        }
        // Reject cycles: every chain must reach the top within the row count.
        for r in &regions.rows {
            if regions.ancestors(&r.code).count() > regions.rows.len() {
                return Err(row_err(1, format!("region {} is its own ancestor", r.code)));
            }
        }
        Ok(regions)
    }

    /// All regions.
    pub fn rows(&self) -> &[Region] {
        &self.rows
    }

    /// A region by code.
    pub fn get(&self, code: &str) -> Option<&Region> {
        self.by_code.get(code).map(|&i| &self.rows[i])
    }

    /// The code itself, then its parent, grandparent … (stops on a cycle).
    pub fn ancestors<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let mut next = Some(code);
        let mut steps = 0usize;
        std::iter::from_fn(move || {
            let cur = next?;
            steps += 1;
            if steps > self.rows.len() + 1 {
                return None;
            }
            next = self.get(cur).map(|r| r.parent.as_str()).filter(|p| !p.is_empty());
            Some(cur)
        })
    }
}

/// One step of an item (`steps.csv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step's name, as `step_completed` names it (承办, 审核, 批准 …).
    pub name: String,
    /// Its limit in working days (≥ 1).
    pub limit_days: u32,
}

/// The steps of the items that have them (环节时限), each item's in file
/// order. Items without rows have no step limits.
#[derive(Clone, Debug, Default)]
pub struct Steps {
    by_item: HashMap<u32, Vec<Step>>,
    names: std::collections::HashSet<String>,
    rows: usize,
}

const STEPS_COLUMNS: [&str; 3] = ["item_code", "step", "limit_days"];

impl Steps {
    /// Loads and checks a steps CSV against the catalogue; a missing file
    /// means no steps.
    pub fn load(path: &Path, cat: &Catalog) -> Result<Steps, RefError> {
        match std::fs::read(path) {
            Ok(text) => Steps::parse(&text, path, cat),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Steps::default()),
            Err(cause) => Err(RefError::Io { path: path.to_path_buf(), cause }),
        }
    }

    /// Parses steps CSV text (`item_code,step,limit_days`); `path` names it
    /// in messages. An item not in the catalogue, a step named twice for
    /// one item and a limit below 1 are errors.
    pub fn parse(text: &[u8], path: &Path, cat: &Catalog) -> Result<Steps, RefError> {
        let mut rdr = csv_reader(text);
        let row_err = |line: u64, message: String| RefError::Row { path: path.to_path_buf(), line, message };
        let csv_err = |line: u64| move |source| RefError::Csv { path: path.to_path_buf(), line, source };
        let headers = rdr.headers().map_err(csv_err(1))?.clone();
        if headers.iter().collect::<Vec<_>>() != STEPS_COLUMNS {
            return Err(row_err(1, format!("expected header {}", STEPS_COLUMNS.join(","))));
        }
        let mut steps = Steps::default();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| csv_err(line_at(text, e.position()))(e))?;
            let line = line_at(text, rec.position());
            let code = rec.get(0).unwrap_or("");
            let item =
                cat.lookup(code).ok_or_else(|| row_err(line, format!("item_code {code:?} is not in the catalogue")))?;
            let name = rec.get(1).unwrap_or("").to_string();
            if name.is_empty() || name.chars().count() > 64 {
                return Err(row_err(line, "step must be 1–64 characters".into()));
            }
            let limit = rec.get(2).unwrap_or("");
            let limit_days = match limit.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(row_err(line, format!("limit_days {limit:?} is not a whole number of days ≥ 1"))),
            };
            let list = steps.by_item.entry(item).or_default();
            if list.iter().any(|s| s.name == name) {
                return Err(row_err(line, format!("step {name:?} of item {code} appears twice")));
            }
            steps.names.insert(name.clone());
            list.push(Step { name, limit_days });
            steps.rows += 1;
        }
        Ok(steps)
    }

    /// The steps of a catalogue item, in order (empty when it has none).
    pub fn of(&self, item: u32) -> &[Step] {
        self.by_item.get(&item).map_or(&[], |v| v.as_slice())
    }

    /// Whether any item has a step of this name.
    pub fn knows(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Rows (steps of all items).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Items that have steps.
    pub fn items(&self) -> usize {
        self.by_item.len()
    }
}

/// One department: its code and the name every report shows beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Department {
    /// Department code (as events and the catalogue give it).
    pub code: String,
    /// Its name (文化旅游局 …).
    pub name: String,
}

/// The departments' names (`departments.csv`: `code,name`). A code not in
/// the file shows as itself.
#[derive(Clone, Debug, Default)]
pub struct Departments {
    rows: Vec<Department>,
    by_code: HashMap<String, usize>,
}

fn exact_header(
    rdr: &mut csv::Reader<&[u8]>,
    want: &[&str],
    row_err: impl Fn(u64, String) -> RefError,
) -> Result<(), RefError> {
    let got = rdr.headers().map_err(|e| row_err(1, e.to_string()))?.clone();
    if got.iter().collect::<Vec<_>>() != want {
        return Err(row_err(1, format!("expected header {}", want.join(","))));
    }
    Ok(())
}

impl Departments {
    /// Loads and checks a departments CSV.
    pub fn load(path: &Path) -> Result<Departments, RefError> {
        Departments::parse(&read_csv(path)?, path)
    }

    /// Parses departments CSV text; `path` names it in messages.
    pub fn parse(text: &[u8], path: &Path) -> Result<Departments, RefError> {
        let mut rdr = csv_reader(text);
        let row_err = |line: u64, message: String| RefError::Row { path: path.to_path_buf(), line, message };
        let csv_err = |line: u64| move |source| RefError::Csv { path: path.to_path_buf(), line, source };
        exact_header(&mut rdr, &["code", "name"], row_err)?;
        let mut d = Departments::default();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| csv_err(line_at(text, e.position()))(e))?;
            let line = line_at(text, rec.position());
            if rec.len() != 2 {
                return Err(row_err(line, format!("expected 2 fields (code,name), found {}", rec.len())));
            }
            let (code, name) = (rec.get(0).unwrap_or(""), rec.get(1).unwrap_or(""));
            if code.is_empty() || code.chars().count() > 128 {
                return Err(row_err(line, "code must be 1–128 characters".into()));
            }
            if name.is_empty() {
                return Err(row_err(line, format!("department {code:?} has no name")));
            }
            if d.by_code.contains_key(code) {
                return Err(row_err(line, format!("code {code:?} appears twice")));
            }
            d.by_code.insert(code.to_string(), d.rows.len());
            d.rows.push(Department { code: code.to_string(), name: name.to_string() });
        }
        Ok(d)
    }

    /// Every department, in file order.
    pub fn rows(&self) -> &[Department] {
        &self.rows
    }

    /// The name of a code, or the code itself when the file has none.
    pub fn name<'a>(&'a self, code: &'a str) -> &'a str {
        self.by_code.get(code).map_or(code, |&i| self.rows[i].name.as_str())
    }

    /// Whether the file names the code.
    pub fn contains(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }
}

/// One deduction of the performance office (明查暗访, 考勤, 通报批评 …).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Deduction {
    /// The day it is dated (counts in that day's month, quarter and year).
    pub date: chrono::NaiveDate,
    /// Region code of the finding.
    pub region: String,
    /// Department code.
    pub department: String,
    /// Window, when the finding is about one.
    pub window: Option<String>,
    /// Points deducted (> 0).
    pub points: f64,
    /// Why.
    pub reason: String,
}

/// The most points one row may deduct.
pub const MAX_DEDUCTION_POINTS: f64 = 100.0;

/// Points deducted for findings outside the event stream
/// (`deductions.csv`: `date,region,department,window,points,reason`).
#[derive(Clone, Debug, Default)]
pub struct Deductions {
    rows: Vec<Deduction>,
}

const DEDUCTION_COLUMNS: [&str; 6] = ["date", "region", "department", "window", "points", "reason"];

impl Deductions {
    /// Loads and checks a deductions CSV; every region must be in `regions`.
    pub fn load(path: &Path, regions: &Regions) -> Result<Deductions, RefError> {
        Deductions::parse(&read_csv(path)?, path, regions)
    }

    /// Parses deductions CSV text; `path` names it in messages.
    pub fn parse(text: &[u8], path: &Path, regions: &Regions) -> Result<Deductions, RefError> {
        let mut rdr = csv_reader(text);
        let row_err = |line: u64, message: String| RefError::Row { path: path.to_path_buf(), line, message };
        let csv_err = |line: u64| move |source| RefError::Csv { path: path.to_path_buf(), line, source };
        exact_header(&mut rdr, &DEDUCTION_COLUMNS, row_err)?;
        let mut d = Deductions::default();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| csv_err(line_at(text, e.position()))(e))?;
            let line = line_at(text, rec.position());
            if rec.len() != 6 {
                return Err(row_err(
                    line,
                    format!("expected 6 fields ({}), found {}", DEDUCTION_COLUMNS.join(","), rec.len()),
                ));
            }
            let get = |i: usize| rec.get(i).unwrap_or("");
            let date = chrono::NaiveDate::parse_from_str(get(0), "%Y-%m-%d")
                .ok()
                .filter(|_| get(0).len() == 10)
                .ok_or_else(|| row_err(line, format!("date {:?} is not a YYYY-MM-DD date", get(0))))?;
            let region = get(1);
            if !is_region_code(region) {
                return Err(row_err(line, format!("region {region:?} is not 6, 9 or 12 digits")));
            }
            if regions.get(region).is_none() {
                return Err(row_err(line, format!("region {region} is not in the regions file")));
            }
            let department = get(2);
            if department.is_empty() {
                return Err(row_err(line, "department is empty".into()));
            }
            let window = Some(get(3)).filter(|w| !w.is_empty());
            let points = match get(4).parse::<f64>() {
                Ok(p) if p.is_finite() && p > 0.0 && p <= MAX_DEDUCTION_POINTS => p,
                _ => {
                    return Err(row_err(
                        line,
                        format!("points {:?} is not a number above 0 and at most {MAX_DEDUCTION_POINTS}", get(4)),
                    ))
                }
            };
            let reason = get(5);
            if reason.is_empty() {
                return Err(row_err(line, "reason is empty: say what was found".into()));
            }
            d.rows.push(Deduction {
                date,
                region: region.to_string(),
                department: department.to_string(),
                window: window.map(str::to_string),
                points,
                reason: reason.to_string(),
            });
        }
        Ok(d)
    }

    /// Every deduction, in file order.
    pub fn rows(&self) -> &[Deduction] {
        &self.rows
    }
}

/// How often a [`Watched`] file is looked at.
pub const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

type Loader<T> = Box<dyn Fn(&Path) -> Result<T, RefError> + Send + Sync>;

/// A reference file a running service reads again when it changes: each
/// [`Watched::get`] looks at the file (at most every [`LOOK_EVERY`]) and
/// loads it again when its size or modification time moved. A file that
/// no longer loads keeps the last good data (and says so); a file that is
/// gone means none (the contract's reading of a missing file), until it
/// comes back.
pub struct Watched<T> {
    path: Option<PathBuf>,
    load: Option<Loader<T>>,
    state: std::sync::Mutex<WatchState<T>>,
}

/// What a look at a file sees: its size and modification time.
type Stamp = Option<(u64, Option<std::time::SystemTime>)>;

struct WatchState<T> {
    current: Arc<T>,
    stamp: Stamp,
    looked: Option<std::time::Instant>,
}

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()))
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("path", &self.path).finish_non_exhaustive()
    }
}

impl<T: Default + Send + Sync + 'static> Default for Watched<T> {
    /// None, for good.
    fn default() -> Self {
        Watched::fixed(T::default())
    }
}

impl<T: Default + Send + Sync + 'static> Watched<T> {
    /// Data that never changes (built in, or none).
    pub fn fixed(value: T) -> Watched<T> {
        Watched {
            path: None,
            load: None,
            state: std::sync::Mutex::new(WatchState { current: Arc::new(value), stamp: None, looked: None }),
        }
    }

    /// The file at `path`, loaded now with `load` (a missing file is none;
    /// a file that does not load is the error).
    pub fn file(
        path: &Path,
        load: impl Fn(&Path) -> Result<T, RefError> + Send + Sync + 'static,
    ) -> Result<Watched<T>, RefError> {
        let seen = stamp(path);
        let value = match seen {
            Some(_) => load(path)?,
            None => T::default(),
        };
        Ok(Watched {
            path: Some(path.to_path_buf()),
            load: Some(Box::new(load)),
            state: std::sync::Mutex::new(WatchState {
                current: Arc::new(value),
                stamp: seen,
                looked: Some(std::time::Instant::now()),
            }),
        })
    }

    /// The file's path (`None`: built in or none).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The data as the file has it now.
    pub fn get(&self) -> Arc<T> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(path), Some(load)) = (&self.path, &self.load) else { return st.current.clone() };
        if st.looked.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return st.current.clone();
        }
        st.looked = Some(std::time::Instant::now());
        let seen = stamp(path);
        if seen == st.stamp {
            return st.current.clone();
        }
        st.stamp = seen;
        match seen {
            None => {
                tracing::info!(path = %path.display(), "reference file is gone: none from now on");
                st.current = Arc::new(T::default());
            }
            Some(_) => match load(path) {
                Ok(v) => {
                    tracing::info!(path = %path.display(), "reference file changed: read again");
                    st.current = Arc::new(v);
                }
                Err(e) => tracing::warn!(error = %e, "reference file changed but does not load; keeping what it was"),
            },
        }
        st.current.clone()
    }
}

/// `departments.csv` at `path`, watched (missing: codes are shown as names).
pub fn departments_file(path: &Path) -> Result<Watched<Departments>, RefError> {
    Watched::file(path, Departments::load)
}

/// `deductions.csv` at `path`, watched (missing: no deductions); its
/// regions are checked against `regions`.
pub fn deductions_file(path: &Path, regions: &Regions) -> Result<Watched<Deductions>, RefError> {
    let regions = regions.clone();
    Watched::file(path, move |p| Deductions::load(p, &regions))
}

/// Everything the rules need besides the events.
#[derive(Clone, Debug)]
pub struct RefData {
    /// The item catalogue.
    pub catalog: Catalog,
    /// The working-day calendar.
    pub calendar: Calendar,
    /// The regions.
    pub regions: Regions,
    /// The steps of items (none unless loaded: see [`RefData::with_steps`]).
    pub steps: Steps,
    /// The departments' names (reports, the board).
    pub departments: Arc<Watched<Departments>>,
    /// The performance office's deductions (reports).
    pub deductions: Arc<Watched<Deductions>>,
}

impl RefData {
    /// The reference data shipped in `config/`, as built into the binary
    /// (the demo's fallback when there is no `config/` folder).
    pub fn embedded() -> RefData {
        let calendar: Vec<(i32, &Path, &str)> = vec![
            (2024, Path::new("2024.json"), include_str!("../config/calendar/2024.json")),
            (2025, Path::new("2025.json"), include_str!("../config/calendar/2025.json")),
            (2026, Path::new("2026.json"), include_str!("../config/calendar/2026.json")),
        ];
        let catalog = Catalog::parse(include_bytes!("../config/catalog.csv"), Path::new("catalog.csv"))
            .expect("built-in catalogue is valid");
        let steps = Steps::parse(include_bytes!("../config/steps.csv"), Path::new("steps.csv"), &catalog)
            .expect("built-in steps are valid");
        RefData {
            catalog,
            calendar: Calendar::from_json_files(&calendar).expect("built-in calendar is valid"),
            regions: Regions::parse(include_bytes!("../config/regions.csv"), Path::new("regions.csv"))
                .expect("built-in regions are valid"),
            steps,
            departments: Arc::new(Watched::fixed(RefData::embedded_departments())),
            deductions: Arc::new(Watched::fixed(RefData::embedded_deductions())),
        }
    }

    /// The same data with these steps.
    pub fn with_steps(mut self, steps: Steps) -> RefData {
        self.steps = steps;
        self
    }

    /// The departments' names shipped in `config/`, built in.
    pub fn embedded_departments() -> Departments {
        Departments::parse(include_bytes!("../config/departments.csv"), Path::new("departments.csv"))
            .expect("built-in departments are valid")
    }

    /// The sample county's deductions shipped in `config/`, built in.
    pub fn embedded_deductions() -> Deductions {
        let regions = Regions::parse(include_bytes!("../config/regions.csv"), Path::new("regions.csv"))
            .expect("built-in regions are valid");
        Deductions::parse(include_bytes!("../config/deductions.csv"), Path::new("deductions.csv"), &regions)
            .expect("built-in deductions are valid")
    }

    /// The same data, with a provisional calendar for the current and the
    /// next year (seen on `today`) where their file is missing.
    pub fn with_provisional_calendar(mut self, today: chrono::NaiveDate) -> RefData {
        self.calendar = self.calendar.with_provisional(crate::calendar::provisional::years_for(today));
        self
    }

    /// The same data with another calendar (a calendar folder that changed
    /// while serving).
    pub fn with_calendar(&self, calendar: Calendar) -> RefData {
        RefData { calendar, ..self.clone() }
    }

    /// Loads the three sources the rules read; no steps (see
    /// [`RefData::with_steps`]), no department names and no deductions (see
    /// [`RefData::with_report_files`]).
    pub fn load(catalog: &Path, calendar: &Path, regions: &Path) -> Result<RefData, RefError> {
        Ok(RefData {
            catalog: Catalog::load(catalog)?,
            calendar: Calendar::load_dir(calendar)?,
            regions: Regions::load(regions)?,
            steps: Steps::default(),
            departments: Arc::new(Watched::fixed(Departments::default())),
            deductions: Arc::new(Watched::fixed(Deductions::default())),
        })
    }

    /// The same data with the departments' names and the deductions read
    /// (and watched) from these files; a missing file means none.
    pub fn with_report_files(mut self, departments: &Path, deductions: &Path) -> Result<RefData, RefError> {
        self.departments = Arc::new(departments_file(departments)?);
        self.deductions = Arc::new(deductions_file(deductions, &self.regions)?);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Regions {
        Regions::parse(b"code,name,parent\n220421,x,\n220421100,y,220421\n", Path::new("r.csv")).unwrap()
    }

    #[test]
    fn names_fall_back_to_the_code() {
        let d = Departments::parse("code,name\ntax,税务局\n".as_bytes(), Path::new("d.csv")).unwrap();
        assert_eq!(d.name("tax"), "税务局");
        assert_eq!(d.name("market"), "market");
    }

    #[test]
    fn a_watched_file_is_read_again_when_it_changes_and_a_bad_edit_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deductions.csv");
        let w = deductions_file(&p, &regions()).unwrap();
        assert!(w.get().rows().is_empty(), "missing: none");
        let head = "date,region,department,window,points,reason\n";
        std::fs::write(&p, format!("{head}2026-03-02,220421,tax,,2,a\n")).unwrap();
        // Looked at no more often than LOOK_EVERY.
        std::thread::sleep(LOOK_EVERY + std::time::Duration::from_millis(100));
        assert_eq!(w.get().rows().len(), 1);
        std::fs::write(&p, format!("{head}2026-03-02,220421,tax,,2,a\n2026-03-03,220421100,tax,W1,1.5,b\n")).unwrap();
        std::thread::sleep(LOOK_EVERY + std::time::Duration::from_millis(100));
        let rows = w.get();
        assert_eq!(rows.rows().len(), 2);
        assert_eq!(rows.rows()[1].window.as_deref(), Some("W1"));
        // A bad edit: the last good rows stay.
        std::fs::write(&p, format!("{head}2026-03-02,999999,tax,,2,a\n")).unwrap();
        std::thread::sleep(LOOK_EVERY + std::time::Duration::from_millis(100));
        assert_eq!(w.get().rows().len(), 2);
        // Gone: none.
        std::fs::remove_file(&p).unwrap();
        std::thread::sleep(LOOK_EVERY + std::time::Duration::from_millis(100));
        assert!(w.get().rows().is_empty());
    }
}

//! The HTTP endpoint: `/metrics`, `/healthz`, `/readyz`, the alert feed
//! (`/api/alerts`, `/api/alerts/stream`), one case (`/api/cases/{id}`), the
//! region and department lists, the rule table, the caller (`/api/me`),
//! supervision notices and complaints (see `notices.rs`), the named reports
//! as JSON (`/api/reports/{name}`) and the board page at `/`.
//!
//! When users are configured, everything but `/metrics` and the health
//! checks asks for HTTP Basic credentials, and a reader sees only the alerts
//! and cases of its region and the regions below it. Errors are JSON
//! `{"error": "…"}` with 400 (bad parameter), 401, 403 (a reader issuing
//! a notice, or a report not for this user), 404 (unknown case or report),
//! 409 (a case with an open notice), 500 or 503 (a notice the pipeline
//! could not take).

use super::users::Scope;
use super::Live;
use crate::alert::{AlertRecord, AlertState, Level, Rule};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use datafusion::prelude::{col, lit, SessionContext};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The board page, served as is.
const BOARD: &str = include_str!("board.html");

#[derive(Clone)]
pub(super) struct App {
    pub(super) live: Arc<Live>,
    pub(super) sql: SessionContext,
}

/// The routes over the shared state and the history session.
pub fn router(live: Arc<Live>, sql: SessionContext) -> Router {
    Router::new()
        .route("/", get(board))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/stream", get(stream))
        .route("/api/cases/{case_id}", get(case))
        .route("/api/regions", get(regions))
        .route("/api/departments", get(departments))
        .route("/api/reports/{name}", get(report))
        .route("/api/calendar", get(calendar))
        .route("/api/rules", get(rules))
        .route("/api/me", get(me))
        .route("/api/notices", get(super::notices::notices).post(super::notices::issue))
        .route("/api/notices/{notice_id}/answer", post(super::notices::answer))
        .route("/api/complaints", get(super::notices::complaints))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such path".into()) })
        .with_state(App { live, sql })
}

/// An error answered as JSON.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"jiancha\", charset=\"UTF-8\"".parse().expect("header"),
            );
        }
        r
    }
}

pub(super) fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

/// Who calls: the scope, the region ("" for all), the name posted events
/// carry as `staff`, whether the caller is an admin and whether it may
/// issue notices.
pub(super) struct Caller {
    /// The regions visible.
    pub(super) scope: Scope,
    /// The scope's region code, "" for all.
    pub(super) region: String,
    /// The user's name (`board` when the board is open to all).
    pub(super) name: String,
    /// Sees every region.
    pub(super) admin: bool,
    /// May issue and answer supervision notices.
    pub(super) supervise: bool,
}

/// The caller: an admin (who may supervise) when no users are configured,
/// else the Basic-authenticated user.
pub(super) fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if app.live.http_open {
        return Ok(Caller { scope: None, region: String::new(), name: "board".into(), admin: true, supervise: true });
    }
    let denied = || ApiError(StatusCode::UNAUTHORIZED, "log in with a configured user (HTTP Basic)".into());
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(denied)?;
    let b64 = value.strip_prefix("Basic ").ok_or_else(denied)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| denied())?;
    let text = String::from_utf8(raw).map_err(|_| denied())?;
    let (name, password) = text.split_once(':').ok_or_else(denied)?;
    let user = app.live.users.check(name, password).ok_or_else(denied)?;
    Ok(Caller {
        scope: user.scope.clone(),
        region: user.region.clone(),
        name: user.name.clone(),
        admin: user.scope.is_none(),
        supervise: user.may_supervise(),
    })
}

/// The caller's scope: everything when no users are configured, else the
/// Basic-authenticated user's.
fn who(app: &App, headers: &HeaderMap) -> Result<Scope, ApiError> {
    caller(app, headers).map(|c| c.scope)
}

pub(super) fn visible(scope: &Scope, region: Option<&str>) -> bool {
    match scope {
        None => true,
        Some(s) => region.is_some_and(|r| s.contains(r)),
    }
}

async fn board(State(app): State<App>, headers: HeaderMap) -> Result<Html<&'static str>, ApiError> {
    who(&app, &headers)?;
    Ok(Html(BOARD))
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let live = &app.live;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], live.metrics.encode())
}

async fn readyz(State(app): State<App>) -> impl IntoResponse {
    if app.live.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Filters of the alert list and stream.
#[derive(Default)]
struct Filter {
    regions: Option<std::collections::BTreeSet<String>>,
    department: Option<String>,
    rule: Option<Rule>,
    level: Option<Level>,
    state: Option<AlertState>,
}

impl Filter {
    fn parse(app: &App, q: &HashMap<String, String>, allowed: &[&str]) -> Result<Filter, ApiError> {
        let mut f = Filter::default();
        for (k, v) in q {
            match k.as_str() {
                "region" if !v.is_empty() => {
                    if app.live.refdata.regions.get(v).is_none() {
                        return Err(bad(format!("region {v:?} is not a known region code")));
                    }
                    f.regions = Some(super::users::region_and_below(&app.live.refdata, v));
                }
                "department" if !v.is_empty() => f.department = Some(v.clone()),
                "rule" if !v.is_empty() => {
                    f.rule = Some(Rule::ALL.into_iter().find(|r| r.as_str() == v).ok_or_else(|| {
                        let names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
                        bad(format!("rule {v:?} is not one of {}", names.join(", ")))
                    })?)
                }
                "level" if !v.is_empty() => {
                    f.level = Some(match v.as_str() {
                        "red" => Level::Red,
                        "yellow" => Level::Yellow,
                        _ => return Err(bad(format!("level {v:?} is not red or yellow"))),
                    })
                }
                "state" if !v.is_empty() => {
                    f.state = Some(match v.as_str() {
                        "firing" => AlertState::Firing,
                        "resolved" => AlertState::Resolved,
                        "retracted" => AlertState::Retracted,
                        _ => return Err(bad(format!("state {v:?} is not firing, resolved or retracted"))),
                    })
                }
                "region" | "department" | "rule" | "level" | "state" => {}
                other if allowed.contains(&other) => {}
                other => return Err(bad(format!("unknown parameter {other:?}"))),
            }
        }
        Ok(f)
    }

    fn keep(&self, scope: &Scope, r: &AlertRecord) -> bool {
        visible(scope, r.region.as_deref())
            && self.regions.as_ref().is_none_or(|s| r.region.as_ref().is_some_and(|x| s.contains(x)))
            && self.department.as_ref().is_none_or(|d| r.department.as_ref() == Some(d))
            && self.rule.is_none_or(|x| x == r.rule)
            && self.level.is_none_or(|x| x == r.level)
            && self.state.is_none_or(|x| x == r.state)
    }
}

/// `limit` (1–1000, default 100) and `offset` of a paged list.
pub(super) fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let limit = number(q, "limit", 100, 1000)?;
    if limit == 0 {
        return Err(bad("limit must be at least 1"));
    }
    Ok((limit, number(q, "offset", 0, usize::MAX)?))
}

fn number(q: &HashMap<String, String>, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(bad(format!("{key} {v:?} must be a whole number from 0 to {max}"))),
        },
    }
}

/// Who asks, the query parameters, and the alert filter they give
/// (`extra`: the other parameters the endpoint takes).
fn ask(
    app: &App,
    headers: &HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    extra: &[&str],
) -> Result<(Scope, HashMap<String, String>, Filter), ApiError> {
    let scope = who(app, headers)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let f = Filter::parse(app, &q, extra)?;
    Ok((scope, q, f))
}

async fn alerts(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (scope, q, f) = ask(&app, &headers, q, &["limit", "offset"])?;
    let (limit, offset) = paging(&q)?;
    let all = app.live.feed.current(|r| f.keep(&scope, r));
    let page: Vec<&str> = all.iter().skip(offset).take(limit).map(|e| e.json.as_str()).collect();
    // The records are JSON already: splice them in rather than re-encoding.
    let body =
        format!("{{\"total\":{},\"offset\":{offset},\"limit\":{limit},\"alerts\":[{}]}}", all.len(), page.join(","));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn stream(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (scope, q, f) = ask(&app, &headers, q, &["since"])?;
    let feed_live = app.live.clone();
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("since").cloned());
    // No id: start from now. An id: resume right after it.
    let from = match &last_id {
        Some(id) => feed_live.feed.resume_point(id),
        None => feed_live.feed.last_seq(),
    };
    struct St {
        live: Arc<Live>,
        rx: tokio::sync::watch::Receiver<u64>,
        at: u64,
        buf: VecDeque<Event>,
        f: Filter,
        scope: Scope,
    }
    let rx = feed_live.feed.subscribe();
    let st = St { live: feed_live, rx, at: from, buf: VecDeque::new(), f, scope };
    let events = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.buf.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(e), st));
            }
            let since = st.live.feed.since(st.at, 512);
            if since.gap {
                st.buf.push_back(Event::default().event("gap").data("records were missed: reload the list"));
            }
            for e in &since.entries {
                st.at = e.seq;
                if st.f.keep(&st.scope, &e.record) {
                    st.buf.push_back(Event::default().event("alert").id(st.live.feed.id_of(e)).data(e.json.clone()));
                }
            }
            if since.entries.is_empty() && st.buf.is_empty() {
                st.rx.borrow_and_update();
                if st.live.feed.last_seq() > st.at {
                    continue;
                }
                if st.rx.changed().await.is_err() {
                    return None;
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

async fn regions(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let scope = who(&app, &headers)?;
    let rows: Vec<serde_json::Value> = app
        .live
        .refdata
        .regions
        .rows()
        .iter()
        .filter(|r| visible(&scope, Some(&r.code)))
        .map(|r| {
            serde_json::json!({
                "code": r.code, "name": r.name,
                "parent": if r.parent.is_empty() { None } else { Some(&r.parent) },
            })
        })
        .collect();
    Ok(Json(rows).into_response())
}

/// The departments' names (`departments.csv`, as it is now): the board
/// and API clients show these beside the codes.
async fn departments(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    who(&app, &headers)?;
    let d = app.live.refdata.departments.get();
    let rows: Vec<serde_json::Value> =
        d.rows().iter().map(|r| serde_json::json!({ "code": r.code, "name": r.name })).collect();
    Ok(Json(rows).into_response())
}

/// A named report as JSON rows (the `json` format of `jiancha report`):
/// `?month=YYYY-MM` (or `?year=YYYY[&top=N]` for a report of a year) and
/// `region` (default: the caller's region). It runs in the caller's
/// scoped session, so a reader gets the rows of its regions only; a region
/// outside them is refused (403), and so is an admin-only report
/// (`staff-briefing`) to a reader.
async fn report(
    State(app): State<App>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::sql::report;
    let c = caller(&app, &headers)?;
    let Path(name) = name.map_err(|e| bad(e.body_text()))?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    if !report::BUILT_IN.iter().any(|(n, _)| *n == name) {
        let names: Vec<&str> = report::BUILT_IN.iter().map(|(n, _)| *n).collect();
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no report {name:?} (reports: {})", names.join(", "))));
    }
    if report::admin_only(&name) && !c.admin {
        return Err(ApiError(StatusCode::FORBIDDEN, format!("{name} is for admins only (it names officials)")));
    }
    for k in q.keys() {
        if !["month", "year", "region", "top"].contains(&k.as_str()) {
            return Err(bad(format!("unknown parameter {k:?}")));
        }
    }
    let region = match q.get("region").filter(|r| !r.is_empty()) {
        None => c.region.clone(),
        Some(r) if app.live.refdata.regions.get(r).is_none() => {
            return Err(bad(format!("region {r:?} is not a known region code")))
        }
        Some(r) if !visible(&c.scope, Some(r)) => {
            return Err(ApiError(StatusCode::FORBIDDEN, format!("region {r} is outside this user's regions")))
        }
        Some(r) => r.clone(),
    };
    let top = match q.get("top") {
        None => report::DEFAULT_TOP,
        Some(t) => t.parse().map_err(|_| bad(format!("top {t:?} is not a whole number")))?,
    };
    let params = report::Params { month: q.get("month").cloned(), year: q.get("year").cloned(), region, top };
    let sql = report::text(&name).map_err(|e| bad(e.to_string()))?;
    params.check(&name, &sql).map_err(|e| bad(e.to_string()))?;
    let ctx = crate::sql::scope::scoped(&app.sql, c.scope.as_deref()).await.map_err(internal)?;
    let batches = report::run_with(&ctx, &sql, &params).await.map_err(internal)?;
    let body = crate::sql::format::render(&batches, crate::sql::format::Format::Json).map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The rule table — name, card colour, label — in the order of rules.md:
/// the board and API clients read it here rather than keep a copy.
async fn rules(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    who(&app, &headers)?;
    let rows: Vec<serde_json::Value> = crate::alert::Rule::ALL
        .iter()
        .map(|r| {
            serde_json::json!({
                "rule": r.as_str(), "level": r.level().as_str(), "label": r.label(), "short_label": r.short_label(),
            })
        })
        .collect();
    Ok(Json(rows).into_response())
}

/// Who the caller is and what it may do: the board shows the 督办 action
/// only to those who may issue notices.
async fn me(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let c = caller(&app, &headers)?;
    Ok(Json(serde_json::json!({ "name": c.name, "supervise": c.supervise })).into_response())
}

/// The calendar in use: the last year with its file, and the last judged
/// on a provisional calendar (`null`: none), for the board's warning.
async fn calendar(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    who(&app, &headers)?;
    let m = &app.live.metrics;
    let provisional = m.calendar_provisional_year.get();
    Ok(Json(serde_json::json!({
        "last_official_year": m.calendar_last_year.get(),
        "provisional_year": (provisional > 0).then_some(provisional),
    }))
    .into_response())
}

/// The rows of `table` matching `filter`, ordered by `order`, as JSON
/// objects (as `jiancha sql --format json` gives them).
pub(super) async fn rows(
    ctx: &SessionContext,
    table: &str,
    filter: datafusion::prelude::Expr,
    order: &str,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let batches = ctx
        .table(table)
        .await
        .map_err(internal)?
        .filter(filter)
        .map_err(internal)?
        .sort(vec![col(order).sort(true, true)])
        .map_err(internal)?
        .collect()
        .await
        .map_err(internal)?;
    let bytes = crate::sql::format::render(&batches, crate::sql::format::Format::Json).map_err(internal)?;
    serde_json::from_slice(&bytes).map_err(internal)
}

/// A 500 carrying the error's message.
pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn case(
    State(app): State<App>,
    headers: HeaderMap,
    case_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Caller { scope, admin, .. } = caller(&app, &headers)?;
    let Path(case_id) = case_id.map_err(|e| bad(e.body_text()))?;
    if case_id.is_empty() || case_id.len() > 128 {
        return Err(bad("case id must be 1 to 128 characters"));
    }
    let this_case = col("case_id").eq(lit(case_id.as_str()));
    let mut cases = rows(&app.sql, "cases", this_case.clone(), "case_id").await?;
    let mut events = rows(&app.sql, "events", this_case.clone(), "occurred_at").await?;
    // What officials did is for admins (as over SQL): a reader sees no staff codes.
    if !admin {
        for row in cases.iter_mut().chain(events.iter_mut()) {
            if let Some(o) = row.as_object_mut() {
                o.insert("staff".into(), serde_json::Value::Null);
            }
        }
    }
    let alerts = rows(&app.sql, "alert_records", this_case, "at").await?;
    let region =
        cases.first().or(events.first()).and_then(|r| r.get("region")).and_then(|v| v.as_str()).map(str::to_string);
    if (cases.is_empty() && events.is_empty()) || !visible(&scope, region.as_deref()) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no case {case_id:?}")));
    }
    Ok(Json(serde_json::json!({
        "case": cases.into_iter().next(),
        "events": events,
        "alerts": alerts,
    }))
    .into_response())
}

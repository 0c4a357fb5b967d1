//! Supervision from the board: issuing a notice (督办) on a case and
//! recording its answer (`POST /api/notices`, `POST
//! /api/notices/{notice_id}/answer`), and the lists of notices and
//! complaints (`GET /api/notices`, `GET /api/complaints`).
//!
//! A posted notice is an event like any other: it goes through the
//! pipeline's [`Inbox`](crate::pipeline::inbox::Inbox) — the events topic in
//! `run`, the simulated stream in the demo — so the engine judges it, history
//! stores it and a replay of the topic gives it again. Issuing needs the
//! `supervisor` or `admin` role (403 otherwise); a case outside the user's
//! region is a 404, as an unknown one is; a bad body a 400 with a JSON error.

use super::http::{bad, caller, internal, paging, rows, visible, ApiError, App};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use datafusion::prelude::{col, lit, Expr};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Longest `reason` taken.
const MAX_REASON: usize = 500;

fn body(b: Result<Json<Value>, JsonRejection>) -> Result<serde_json::Map<String, Value>, ApiError> {
    match b.map_err(|e| bad(format!("the body must be a JSON object: {}", e.body_text())))? {
        Json(Value::Object(m)) => Ok(m),
        Json(_) => Err(bad("the body must be a JSON object")),
    }
}

fn reason(m: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match m.get("reason") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_REASON => Ok(s.clone()),
        Some(Value::String(_)) => Err(bad(format!("reason must be 1 to {MAX_REASON} characters"))),
        None | Some(Value::Null) => Err(bad("reason is required")),
        Some(_) => Err(bad("reason must be a string")),
    }
}

fn only(m: &serde_json::Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    match m.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(bad(format!("unknown field {k:?} (expected {})", keys.join(", ")))),
        None => Ok(()),
    }
}

/// A fresh random id: `prefix` and 16 hex digits.
fn fresh_id(prefix: &str) -> Result<String, ApiError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(internal)?;
    Ok(format!("{prefix}{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

fn region_of(row: &Value) -> Option<String> {
    row.get("region").and_then(Value::as_str).map(str::to_string)
}

/// The pipeline's inbox (503 where nothing can be posted).
fn inbox(app: &App) -> Result<&std::sync::Arc<dyn crate::pipeline::inbox::Inbox>, ApiError> {
    app.live
        .inbox
        .get()
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "this pipeline takes no posted events".into()))
}

/// Posts a notice event through the pipeline's inbox.
async fn post(app: &App, case_id: &str, event: Value) -> Result<(), ApiError> {
    let inbox = inbox(app)?.clone();
    let case_id = case_id.to_string();
    let line = event.to_string().into_bytes();
    tokio::task::spawn_blocking(move || inbox.post(&case_id, line))
        .await
        .map_err(internal)?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// The present of the pipeline, as the events carry it.
fn now(app: &App) -> Result<String, ApiError> {
    Ok(app.live.zone.format(inbox(app)?.now()))
}

/// `POST /api/notices` `{"case_id", "deadline_days", "reason"}`.
pub(super) async fn issue(
    State(app): State<App>,
    headers: HeaderMap,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&app, &headers)?;
    if !who.supervise {
        return Err(ApiError(StatusCode::FORBIDDEN, "issuing a notice needs the supervisor or admin role".into()));
    }
    let m = body(b)?;
    only(&m, &["case_id", "deadline_days", "reason"])?;
    let case_id = match m.get("case_id") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 128 => s.clone(),
        Some(Value::String(_)) => return Err(bad("case_id must be 1 to 128 characters")),
        None | Some(Value::Null) => return Err(bad("case_id is required")),
        Some(_) => return Err(bad("case_id must be a string")),
    };
    let deadline_days = match m.get("deadline_days") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|d| (1..=60).contains(&d)) => n.as_u64().unwrap_or(0),
        None | Some(Value::Null) => return Err(bad("deadline_days is required")),
        Some(_) => return Err(bad("deadline_days must be a whole number from 1 to 60")),
    };
    let reason = reason(&m)?;
    // The case as the pipeline has it if it changed since the last flush,
    // else as history has it.
    let (known, region, open) = match app.live.pending.get(&case_id) {
        Some(v) => {
            let open = v.summary.open_notice.then(|| v.notices.last().cloned().unwrap_or_default());
            (true, v.region.clone(), open)
        }
        None => {
            let versions = rows(&app.sql, "case_versions", col("case_id").eq(lit(case_id.as_str())), "version").await?;
            let open = rows(
                &app.sql,
                "notices",
                col("case_id").eq(lit(case_id.as_str())).and(col("status").eq(lit("open"))),
                "issued_at",
            )
            .await?;
            let open = open.first().map(|n| n.get("notice_id").and_then(Value::as_str).unwrap_or("").to_string());
            (!versions.is_empty(), versions.last().and_then(region_of), open)
        }
    };
    if !known || !visible(&who.scope, region.as_deref()) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no case {case_id:?}")));
    }
    if let Some(id) = open {
        return Err(ApiError(StatusCode::CONFLICT, format!("case {case_id:?} has an open notice {id:?}")));
    }
    let occurred_at = now(&app)?;
    let notice_id = fresh_id(&format!("DB-{}-", &occurred_at[..10].replace('-', "")))?;
    let event_id = fresh_id("notice-")?;
    let event = json!({
        "event_id": event_id, "case_id": case_id, "type": "notice_issued", "occurred_at": occurred_at,
        "source": "bureau", "notice_id": notice_id, "deadline_days": deadline_days, "reason": reason,
        "staff": who.name,
    });
    post(&app, &case_id, event).await?;
    if let Ok(mut p) = app.live.posted_notices.lock() {
        p.insert(notice_id.clone(), (case_id.clone(), region));
    }
    let out = json!({"notice_id": notice_id, "event_id": event_id, "case_id": case_id,
                     "occurred_at": occurred_at, "deadline_days": deadline_days});
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}

/// `POST /api/notices/{notice_id}/answer` `{"reason"}`.
pub(super) async fn answer(
    State(app): State<App>,
    headers: HeaderMap,
    notice_id: Result<Path<String>, PathRejection>,
    b: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&app, &headers)?;
    if !who.supervise {
        return Err(ApiError(StatusCode::FORBIDDEN, "answering a notice needs the supervisor or admin role".into()));
    }
    let Path(notice_id) = notice_id.map_err(|e| bad(e.body_text()))?;
    if notice_id.is_empty() || notice_id.chars().count() > 128 {
        return Err(bad("notice id must be 1 to 128 characters"));
    }
    let m = body(b)?;
    only(&m, &["reason"])?;
    let reason = reason(&m)?;
    let posted = app.live.posted_notices.lock().ok().and_then(|p| p.get(&notice_id).cloned());
    let (case_id, region) = match posted {
        Some(x) => x,
        None => {
            let found = rows(&app.sql, "notices", col("notice_id").eq(lit(notice_id.as_str())), "issued_at").await?;
            let Some(row) = found.last() else {
                return Err(ApiError(StatusCode::NOT_FOUND, format!("no notice {notice_id:?}")));
            };
            (row.get("case_id").and_then(Value::as_str).unwrap_or("").to_string(), region_of(row))
        }
    };
    if !visible(&who.scope, region.as_deref()) {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no notice {notice_id:?}")));
    }
    let occurred_at = now(&app)?;
    let event_id = fresh_id("notice-")?;
    let event = json!({
        "event_id": event_id, "case_id": case_id, "type": "notice_answered", "occurred_at": occurred_at,
        "source": "bureau", "notice_id": notice_id, "reason": reason, "staff": who.name,
    });
    post(&app, &case_id, event).await?;
    let out = json!({"notice_id": notice_id, "event_id": event_id, "case_id": case_id, "occurred_at": occurred_at});
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}

/// The filters and paging of a list: region (and below), department,
/// status, limit and offset, as for alerts.
fn list_filter(app: &App, q: &HashMap<String, String>, statuses: &[&str]) -> Result<(Expr, usize, usize), ApiError> {
    let mut f = lit(true);
    for (k, v) in q {
        match k.as_str() {
            "region" if !v.is_empty() => {
                if app.live.refdata.regions.get(v).is_none() {
                    return Err(bad(format!("region {v:?} is not a known region code")));
                }
                let below = super::users::region_and_below(&app.live.refdata, v);
                f = f.and(col("region").in_list(below.into_iter().map(lit).collect(), false));
            }
            "department" if !v.is_empty() => f = f.and(col("department").eq(lit(v.as_str()))),
            "status" if !v.is_empty() => {
                if !statuses.contains(&v.as_str()) {
                    return Err(bad(format!("status {v:?} is not one of {}", statuses.join(", "))));
                }
                f = f.and(col("status").eq(lit(v.as_str())));
            }
            "region" | "department" | "status" | "limit" | "offset" => {}
            other => return Err(bad(format!("unknown parameter {other:?}"))),
        }
    }
    let (limit, offset) = paging(q)?;
    Ok((f, limit, offset))
}

async fn list(
    app: App,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    table: &str,
    order: &str,
) -> Result<Response, ApiError> {
    let who = caller(&app, &headers)?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let (f, limit, offset) = list_filter(&app, &q, &["open", "answered"])?;
    let listed: Vec<Value> = rows(&app.sql, table, f, order)
        .await?
        .into_iter()
        .filter(|r| visible(&who.scope, region_of(r).as_deref()))
        .collect();
    let page: Vec<&Value> = listed.iter().skip(offset).take(limit).collect();
    let body = json!({"total": listed.len(), "offset": offset, "limit": limit, table: page});
    Ok(([(header::CONTENT_TYPE, "application/json")], Json(body)).into_response())
}

/// `GET /api/notices`: notices, latest issued last.
pub(super) async fn notices(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    list(app, headers, q, "notices", "issued_at").await
}

/// `GET /api/complaints`: complaints, latest filed last.
pub(super) async fn complaints(
    State(app): State<App>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    list(app, headers, q, "complaints", "filed_at").await
}

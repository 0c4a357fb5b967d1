//! What was published: each case's published alerts reconciled with what
//! its judgement says now (only the difference goes out), and the records
//! found already published after a restart (recovered, then settled).

use super::case::{Attrs, Interner, Published};
use super::judgement::Summary;
use super::state::Case;
use super::walk::Spec;
use super::{Effect, Engine, Stats};
use crate::alert::{AlertRecord, AlertState, Detail};
use crate::reference::RefData;
use crate::time::{Day, Instant, Zone};
use std::sync::Arc;

impl Engine {
    /// Ends the grace of recovered records (see
    /// [`Engine::recover_published`]) that the input processed again should
    /// have given by now — those up to the watermark — judging their cases
    /// again: a record the engine no longer stands by is retracted. Call it
    /// once the input that was processed before the restart has been
    /// processed again; returns how many recovered records still wait (their
    /// instant is past the watermark).
    pub fn settle_recovered(&mut self, out: &mut Vec<Effect>) -> usize {
        self.st.recovered.clear();
        let wm = self.st.watermark.unwrap_or(i64::MIN);
        let mut waiting = 0;
        let mut again = Vec::new();
        for (key, case) in self.st.cases.iter_mut_untracked() {
            // Looked at shared first: changing a case a cut holds copies it.
            if !case.published.iter().any(|p| p.recovered) {
                continue;
            }
            let mut touched = false;
            for p in case.published.iter_mut().filter(|p| p.recovered) {
                if p.at <= wm && p.resolved.is_none_or(|(r, _)| r <= wm) {
                    p.recovered = false;
                    touched = true;
                } else {
                    waiting += 1;
                }
            }
            if touched {
                again.push(key.clone());
            }
        }
        again.sort();
        for k in &again {
            self.st.cases.mark(&**k);
            self.rejudge(k, super::Cause::Other, out);
        }
        waiting
    }

    /// Tells the engine that `rec` was already published, though the state
    /// it was restored from does not know it (a record published after the
    /// last checkpoint, before a crash). The case's published alerts take it
    /// in, so that processing the same input again publishes only what is
    /// still missing — and, should it judge differently this time, retracts
    /// what it no longer stands by — instead of publishing a record twice.
    pub fn recover_published(&mut self, rec: &AlertRecord) {
        match self.st.cases.get_mut(rec.case_id.as_str()) {
            Some(case) => merge_published(case, rec),
            None => self.st.recovered.entry(Arc::from(rec.case_id.as_str())).or_default().push(rec.clone()),
        }
    }
}

/// Takes a published record into a case's published alerts.
pub(super) fn merge_published(case: &mut Case, rec: &AlertRecord) {
    let n = rec.alert_id.rsplit_once('#').and_then(|(_, n)| n.parse::<u32>().ok()).unwrap_or(1);
    let at = crate::time::parse_rfc3339(&rec.at).unwrap_or(rec.at_ms);
    let due =
        rec.due_date.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()).map(Day::from_date);
    let i = match case.published.iter().position(|p| p.rule == rec.rule && p.n == n) {
        Some(i) => i,
        None => {
            let attrs = case.events.iter().rev().find_map(|e| e.attrs.clone());
            let mut v = std::mem::take(&mut case.published).into_vec();
            v.push(Published {
                rule: rec.rule,
                n,
                at,
                due,
                detail: rec.detail.earlier_case_id.as_deref().map(Arc::from),
                attrs,
                resolved: None,
                retracted: false,
                recovered: true,
                provisional: rec.detail.provisional_calendar,
            });
            case.published = v.into_boxed_slice();
            case.published.len() - 1
        }
    };
    let p = &mut case.published[i];
    p.recovered = true;
    match rec.state {
        AlertState::Firing => {}
        AlertState::Resolved => p.resolved = Some((at, due)),
        AlertState::Retracted => p.retracted = true,
    }
}

/// Publishes the difference between the published alerts of a case and what
/// its judgement says.
#[allow(clippy::too_many_arguments)]
pub(super) fn reconcile(
    case: &mut Case,
    case_id: &str,
    specs: &[Spec],
    summary: &Summary,
    strings: &Interner,
    refdata: &RefData,
    zone: &Zone,
    stats: &mut Stats,
    out: &mut Vec<Effect>,
) {
    let mut matched = vec![false; case.published.len()];
    let mut to_resolve = Vec::new();
    let mut to_fire = Vec::new();
    // A card counted in working days whose instant or due date lies in a
    // year with a provisional calendar was computed on it (the years
    // without a file are always the latest, so a clock reaching one ends
    // in one). Not a reason to fire again when the file comes and says
    // the same: only what it changes is retracted and fired anew.
    let cal = &refdata.calendar;
    let provisional = |spec: &Spec| {
        spec.rule.uses_calendar()
            && (spec.due.is_some_and(|d| cal.is_provisional(d)) || cal.is_provisional(zone.day_of(spec.at)))
    };
    for spec in specs {
        let found = case.published.iter().enumerate().position(|(i, p)| {
            !matched[i]
                && (!p.retracted || p.recovered)
                && p.rule == spec.rule
                && p.at == spec.at
                && p.due == spec.due
                && p.detail == spec.detail
        });
        match found {
            // Retracted before a restart, at a point not reached again yet.
            Some(i) if case.published[i].retracted => matched[i] = true,
            Some(i) => match (case.published[i].resolved, spec.resolved) {
                (None, None) => {
                    matched[i] = true;
                    case.published[i].recovered = false;
                    case.published[i].provisional = provisional(spec);
                }
                (None, Some(r)) => {
                    matched[i] = true;
                    case.published[i].recovered = false;
                    case.published[i].provisional = provisional(spec);
                    to_resolve.push((i, r));
                }
                (Some(a), Some(b)) if a == b => {
                    matched[i] = true;
                    case.published[i].recovered = false;
                    case.published[i].provisional = provisional(spec);
                }
                // A resolution already published before a restart, not
                // reached again yet.
                (Some(_), None) if case.published[i].recovered => matched[i] = true,
                _ => to_fire.push(spec),
            },
            None => to_fire.push(spec),
        }
    }
    let mk = |p: &Published, state: AlertState, at: Instant, due: Option<Day>, attrs: Option<&Arc<Attrs>>| {
        let alert_id = if p.n <= 1 {
            format!("{}/{}", case_id, p.rule.as_str())
        } else {
            format!("{}/{}#{}", case_id, p.rule.as_str(), p.n)
        };
        AlertRecord {
            alert_id,
            rule: p.rule,
            level: p.rule.level(),
            state,
            at: zone.format(at),
            case_id: case_id.to_string(),
            region: attrs.map(|a| strings.name(a.region).to_string()),
            department: attrs.map(|a| strings.name(a.department).to_string()),
            window: attrs.and_then(|a| a.window()).map(|w| strings.name(w).to_string()),
            item_code: attrs.and_then(|a| a.item_code(&refdata.catalog, strings)).map(str::to_string),
            due_date: due.map(|d| d.to_string()),
            retracted: state == AlertState::Retracted,
            detail: Detail {
                earlier_case_id: p.detail.as_deref().map(str::to_string),
                provisional_calendar: p.provisional,
            },
            at_ms: at,
        }
    };
    let mut emit = |stats: &mut Stats, rec: AlertRecord| {
        *stats.alerts.entry(format!("{}/{}", rec.rule.as_str(), rec.state.as_str())).or_default() += 1;
        out.push(Effect::Alert(rec));
    };
    for (i, p) in case.published.iter_mut().enumerate() {
        if !matched[i] && !p.retracted && !p.recovered && !to_resolve.iter().any(|(j, _)| *j == i) {
            p.retracted = true;
            emit(stats, mk(p, AlertState::Retracted, p.at, p.due, p.attrs.as_ref()));
        }
    }
    for (i, (at, due)) in to_resolve {
        let p = &mut case.published[i];
        p.resolved = Some((at, due));
        emit(stats, mk(p, AlertState::Resolved, at, due, summary.attrs.as_ref()));
    }
    if to_fire.is_empty() {
        return;
    }
    let mut published = std::mem::take(&mut case.published).into_vec();
    published.reserve_exact(to_fire.len());
    for spec in to_fire {
        let provisional = provisional(spec);
        let n = published.iter().filter(|p| p.rule == spec.rule).map(|p| p.n).max().unwrap_or(0) + 1;
        let p = Published {
            rule: spec.rule,
            n,
            at: spec.at,
            due: spec.due,
            detail: spec.detail.clone(),
            attrs: spec.attrs.clone(),
            resolved: spec.resolved,
            retracted: false,
            recovered: false,
            provisional,
        };
        emit(stats, mk(&p, AlertState::Firing, p.at, p.due, p.attrs.as_ref()));
        if let Some((at, due)) = p.resolved {
            emit(stats, mk(&p, AlertState::Resolved, at, due, summary.attrs.as_ref()));
        }
        published.push(p);
    }
    case.published = published.into_boxed_slice();
}

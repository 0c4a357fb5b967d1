//! Judging a case again when something it depends on changed, and
//! publishing only the difference: its new events continue its kept walk
//! where they can, a closed case leaves memory once nothing can change it,
//! and the cases that depend on it (its sub-cases, its dual-intake group)
//! are judged again in turn.

use super::*;

impl Engine {
    /// Judges a case again and publishes the difference. What it was judged
    /// again for decides whether its kept walk can be continued: not when
    /// something the walk read besides its own events changed.
    pub(super) fn rejudge(&mut self, key: &Arc<str>, cause: Cause, out: &mut Vec<Effect>) {
        if !self.st.cases.contains_key(key) {
            return;
        }
        // (A case keeps no walk while the engine is not incremental.)
        let mut kept = self.walks.remove(key).filter(|_| cause != Cause::Other);
        if !self.st.changed.contains(key) {
            self.st.changed.insert(key.clone());
        }
        let case = self.st.cases.get(key).expect("case present");
        let mut pc = self.parent_center(case.parent.as_deref());
        let ctx = self.ctx(key, &pc, false);
        // The walk goes on in place: in the kept one, else in a new one.
        let mut fresh = Resume::default();
        let r: &mut Resume = kept.as_deref_mut().unwrap_or(&mut fresh);
        let start = r.walked();
        walk_events(&case.events, &ctx, r);
        let mut count = r.walked() - start;
        let mut j = conclude(r, &ctx);
        if j.parent != case.parent {
            pc = self.parent_center(j.parent.as_deref());
            let ctx = self.ctx(key, &pc, false);
            *r = Resume::default();
            walk_events(&case.events, &ctx, r);
            count += r.walked();
            j = conclude(r, &ctx);
        }
        self.walked += count as u64;
        // A closed case rarely gets another event (a rating): it walks
        // again then, rather than keep its walk in memory until it leaves.
        // A short case walks again too: a few events cost less than the
        // memory of a kept walk.
        if self.incremental && !j.summary.status.closed() && r.walked() >= KEEP_WALK_FROM {
            let keep = kept.unwrap_or_else(|| Box::new(fresh));
            self.walks.insert(key.clone(), keep);
        }
        let wm = self.st.watermark.unwrap_or(i64::MIN);
        // A joint parent is judged again at 00:00 after its due date, when
        // its open sub-cases make it late (its row changes then).
        let joint_at = self.joint_deadline(key).filter(|&t| t > wm);
        let orphan_ms = self.rules.orphan_hours as i64 * HOUR_MS;
        let mut expired: Vec<(usize, &'static str)> = Vec::new();
        {
            let case = self.st.cases.get_mut(key).expect("case present");
            let mut inv = j.invalid.iter().peekable();
            for (i, e) in case.events.iter_mut().enumerate() {
                match inv.peek() {
                    Some(&&(j, why)) if j == i => {
                        inv.next();
                        if !e.is_held() {
                            e.hold_until = e.at.max(wm).saturating_add(orphan_ms);
                        }
                        if e.hold_until <= wm {
                            expired.push((i, why));
                        }
                    }
                    _ => e.hold_until = NOT_HELD,
                }
            }
        }
        let zone = self.zone.clone();
        let keep_closed = self.keep_closed_ms();
        if !expired.is_empty() {
            // Removing events ends the kept walk.
            self.walks.remove(key);
        }
        let case = self.st.cases.get_mut(key).expect("case present");
        for &(i, why) in expired.iter().rev() {
            let e = case.remove(i);
            self.st.dedupe.remove(&e.id);
            let reason =
                if j.summary.status == Status::None { DeadReason::Orphan } else { DeadReason::InvalidTransition };
            *self.st.stats.dead_letters.entry(reason).or_default() += 1;
            out.push(Effect::DeadLetter {
                origin: e.origin,
                rejection: Rejection::field(
                    reason,
                    if reason == DeadReason::Orphan { "case_id" } else { "type" },
                    format!(
                        "{} of case {} at {}: {}; still invalid after {} hours",
                        e.kind.as_str(),
                        key,
                        zone.format(e.at),
                        why,
                        self.rules.orphan_hours
                    ),
                ),
            });
        }
        if let Some(y) = j.summary.missing_calendar {
            self.st.stats.missing_calendar_years.insert(y);
        }
        reconcile(case, key, &j.alerts, &j.summary, &self.st.strings, &self.refdata, &zone, &mut self.st.stats, out);
        // A notice outlives its case: a closed case stays while one waits.
        case.closed = j.summary.status.closed() && !j.summary.open_notice;
        if self.share
            && j.summary
                .attrs
                .as_ref()
                .is_some_and(|a| self.refdata.catalog.get(a.item).is_some_and(|i| i.kind == ItemKind::Joint))
        {
            let at: Vec<Instant> =
                case.events.iter().filter(|e| e.has(F_CENTER) && !e.is_held()).map(|e| e.at).collect();
            if self.st.shared_center.get(key) != Some(&at) {
                self.shared.push(SharedFact::Center { case_id: key.to_string(), at: at.clone() });
                self.st.shared_center.insert(key.clone(), at);
            }
        }

        // Wake-up: the next timer, the first hold to end, or, for a closed
        // case with nothing pending, the time to leave memory.
        let hold = case.events.iter().filter_map(CaseEvent::held_until).min();
        let mut wake = match (j.wake, hold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = joint_at {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
        if case.closed && wake.is_none() {
            let evict_at = case.last_at().map_or(wm, |t| t.saturating_add(keep_closed));
            if evict_at > wm {
                wake = Some(evict_at);
            } else if self.st.children.contains_key(key) {
                // A parent stays while its sub-cases are held: they read its events.
                wake = Some(wm.saturating_add(DAY_MS));
            } else if case.published.iter().any(|p| p.recovered) {
                // Records recovered after a restart stay until they are
                // judged again ([`Engine::settle_recovered`]): leaving
                // now would leave one the engine no longer stands by
                // unretracted.
                wake = Some(wm.saturating_add(DAY_MS));
            } else {
                self.evict(key);
                return;
            }
        }
        let wake = wake.filter(|&t| t > wm);
        if case.wake() != wake {
            if let Some(old) = case.wake() {
                self.st.timers.remove(&(old, key.clone()));
            }
            if let Some(new) = wake {
                self.st.timers.insert((new, key.clone()));
            }
            case.wake = wake.unwrap_or(NO_WAKE);
        }

        // Cross-case links.
        let empty = case.events.is_empty();
        let new_accept = if empty { None } else { j.accept.take() };
        let mut again = std::mem::take(&mut self.scratch);
        again.clear();
        if case.accept.and_then(|h| self.st.dual.current(h, key)) != new_accept.as_ref() {
            if self.share {
                let acceptance = new_accept.as_ref().map(|a| AcceptanceFact {
                    applicant: crate::privacy::hex(&a.attrs.applicant),
                    item_code: a
                        .attrs
                        .item_code(&self.refdata.catalog, &self.st.strings)
                        .unwrap_or_default()
                        .to_string(),
                    at: a.at,
                    source: self.st.strings.name(a.source).to_string(),
                    withdrawn_at: (a.withdrawn_at != case::NEVER).then_some(a.withdrawn_at),
                });
                self.shared.push(SharedFact::Acceptance { case_id: key.to_string(), acceptance });
            }
            case.accept = self.st.dual.update(key, case.accept, new_accept, &mut again);
        }
        let old_parent = std::mem::replace(&mut case.parent, if empty { None } else { j.parent.clone() });
        let new_parent = case.parent.clone();
        if empty {
            if let Some(w) = case.wake() {
                self.st.timers.remove(&(w, key.clone()));
            }
            self.st.cases.remove(key);
            self.walks.remove(key);
            self.st.departed.remove(key);
        }
        if old_parent != new_parent {
            if let Some(p) = &old_parent {
                if let Some(v) = self.st.children.get_mut(p) {
                    v.retain(|c| c != key);
                    if v.is_empty() {
                        self.st.children.remove(p);
                    }
                }
            }
            if let Some(p) = &new_parent {
                let v = self.st.children.entry(p.clone()).or_default();
                if !v.contains(key) {
                    v.push(key.clone());
                }
                // Back in memory (a late event): counted from memory again.
                if let Some(d) = self.st.departed.get_mut(p) {
                    d.retain(|d| d.case_id != *key);
                }
            }
        }
        // A parent's first sub-case: the parent now wakes at 00:00 after its
        // due date (as a timer would: its walk stays as it is).
        let first_kid = new_parent.as_ref().filter(|p| {
            old_parent.as_ref() != Some(*p)
                && self.st.children.get(*p).is_some_and(|v| v.len() == 1)
                && self.st.cases.contains_key(*p)
        });
        let first_kid = first_kid.cloned();
        // A sub-case's close (or its still being open) is in its parent's row.
        if let Some(p) = new_parent.as_ref().or(old_parent.as_ref()) {
            if self.st.cases.contains_key(p) && !self.st.changed.contains(p) {
                self.st.changed.insert(p.clone());
            }
        }
        if cause == Cause::Event {
            if let Some(kids) = self.st.children.get(key) {
                again.extend(kids.iter().cloned());
            }
        }
        again.retain(|k| k != key);
        for k in &again {
            self.rejudge(k, Cause::Other, out);
        }
        again.clear();
        self.scratch = again;
        if let Some(p) = first_kid {
            self.rejudge(&p, Cause::Timer, out);
        }
    }

    /// How long a closed case stays in memory after its last event: long
    /// enough for ratings, late events, the duplicate window and dual intake.
    pub(super) fn keep_closed_ms(&self) -> i64 {
        let r = &self.rules;
        r.retain_closed_days.max(r.dual_intake_days + 1).max(r.dedupe_days) as i64 * DAY_MS
    }

    /// Leaves a closed case to history: forgets its ids, links and wake-up.
    /// Its acceptance stays indexed while another case of its group is held,
    /// so that case is judged the same if it is judged again.
    pub(super) fn evict(&mut self, key: &Arc<str>) {
        let view = if self.st.changed.remove(key) { self.case_view(key) } else { None };
        // A sub-case leaving before its parent stays among the parent's
        // sub-cases in the parent's row (judged once: its final view, when
        // it has one, has what the parent needs).
        let departed = self.st.cases.get(key).and_then(|case| {
            let p = case.parent.as_ref().filter(|p| self.st.cases.contains_key(&***p))?;
            let s = match &view {
                Some(v) => std::borrow::Cow::Borrowed(&v.summary),
                None => std::borrow::Cow::Owned(self.judge(key, case, &self.parent_center(Some(p)), false).summary),
            };
            let department = s.attrs.as_ref()?.department;
            Some((p.clone(), Departed { case_id: key.clone(), department, closed_at: s.closed_at }))
        });
        self.evicted_views.extend(view);
        if let Some((p, d)) = departed {
            self.st.departed.entry(p).or_default().push(d);
        }
        self.st.departed.remove(key);
        self.walks.remove(key);
        let Some(case) = self.st.cases.remove(key) else { return };
        self.st.shared_center.remove(key);
        if let Some(w) = case.wake() {
            self.st.timers.remove(&(w, key.clone()));
        }
        for e in &case.events {
            self.st.dedupe.remove(&e.id);
        }
        if let Some(p) = &case.parent {
            if let Some(v) = self.st.children.get_mut(p) {
                v.retain(|c| c != key);
                if v.is_empty() {
                    self.st.children.remove(p);
                }
            }
        }
        if let Some(h) = case.accept {
            if let Some(attrs) = self.st.dual.current(h, key).map(|s| s.attrs.clone()) {
                let cases = &self.st.cases;
                self.st.dual.forget_group_if_unheld(h, &attrs, |c| cases.contains_key(c));
            }
        }
        self.st.stats.evicted += 1;
    }
}

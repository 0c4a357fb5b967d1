//! The checkpoint store of `run`: a base snapshot and a log of deltas,
//! written by a thread of their own, folded when the log outgrows the
//! base, and read back after a crash that cut a frame short.

use crate::support::{refdata, root, zone};
use jiancha::config::RulesConfig;
use jiancha::engine::{Engine, Outcome};
use jiancha::event::Decoder;
use jiancha::kafka::checkpoint::{self, Meta};
use jiancha::kafka::saver::{Report, Saver};
use jiancha::reference::RefData;
use jiancha::synth::{generate, SynthOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn shipped() -> Arc<RefData> {
    refdata(&std::fs::read_to_string(root().join("config/catalog.csv")).unwrap())
}

fn lines(seed: u64) -> Vec<String> {
    let opts = SynthOptions {
        cases: 300,
        seed,
        start: chrono::NaiveDate::from_ymd_opt(2026, 2, 2).unwrap(),
        days: 25,
        ..SynthOptions::default()
    };
    generate(&shipped(), &zone(), &opts)
}

/// Feeds `lines` (numbered from `from`) to the engine.
fn feed(e: &mut Engine, rd: &Arc<RefData>, lines: &[String], from: usize) {
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    let mut eff = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Ok(ev) = decoder.decode(l.as_bytes()) {
            let at = ev.occurred_at;
            if e.apply(ev, (from + i) as u64, &mut eff) == Outcome::Applied {
                e.advance_watermark(at, &mut eff);
            }
        }
    }
}

fn restore(rd: &Arc<RefData>, path: &Path) -> (Engine, checkpoint::Loaded) {
    let c = checkpoint::load(path).unwrap().expect("a checkpoint");
    let deltas = c.deltas.iter().map(|d| d.as_slice());
    let e = Engine::restore_with_deltas(rd.clone(), zone(), RulesConfig::default(), &c.base, deltas).unwrap();
    (e, c)
}

/// Saves a delta of `e` as the checkpoint at `offset` and waits for it.
fn save(s: &mut Saver, e: &mut Engine, offset: i64) {
    let meta = Meta { version: 1, offset, ..Meta::default() };
    s.save(meta, e.take_delta().unwrap());
    s.sync();
    let r = s.durable();
    assert!(matches!(r.as_slice(), [Report::Durable(m)] if m.offset == offset));
}

#[test]
fn deltas_after_a_base_restore_the_state_and_a_frame_cut_short_is_cut_off() {
    let rd = shipped();
    let lines = lines(7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events-0.ckpt");
    let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
    feed(&mut e, &rd, &lines[..100], 0);
    checkpoint::write(&path, &Meta { version: 1, ..Meta::default() }, |w| e.write_snapshot(w)).unwrap();
    e.track_changes();
    let base_len = std::fs::metadata(&path).unwrap().len();
    // Never folded here.
    let mut s = Saver::start(&path, 0, base_len, 0, u64::MAX);
    let third = lines.len() / 3;
    feed(&mut e, &rd, &lines[100..third], 100);
    save(&mut s, &mut e, third as i64);
    feed(&mut e, &rd, &lines[third..2 * third], third);
    save(&mut s, &mut e, 2 * third as i64);
    drop(s);
    let (back, c) = restore(&rd, &path);
    assert_eq!((c.deltas.len(), c.meta.offset, c.cut), (2, 2 * third as i64, 0));
    assert!(back.snapshot() == e.snapshot(), "base and deltas give the state");

    // A crash while a frame was written: its first bytes only.
    let log = checkpoint::log_path(&path, 0);
    let whole = std::fs::metadata(&log).unwrap().len();
    feed(&mut e, &rd, &lines[2 * third..], 2 * third);
    let mut frame = Vec::new();
    checkpoint::frame(
        &Meta { version: 1, offset: 99_999, ..Meta::default() },
        &e.take_delta().unwrap().encode(),
        &mut frame,
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&frame[..frame.len() - 3]).unwrap();
    drop(f);
    let (mut back, c) = restore(&rd, &path);
    assert_eq!((c.deltas.len(), c.meta.offset), (2, 2 * third as i64), "the checkpoint before the torn frame");
    assert_eq!(c.cut, frame.len() as u64 - 3);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), whole, "the torn frame is cut off");
    // The state goes on from there, and its next frames read back.
    back.track_changes();
    let mut s = Saver::start(&path, 0, base_len, c.log_len, u64::MAX);
    feed(&mut back, &rd, &lines[2 * third..], 2 * third);
    save(&mut s, &mut back, lines.len() as i64);
    drop(s);
    let (again, c) = restore(&rd, &path);
    assert_eq!((c.deltas.len(), c.meta.offset), (3, lines.len() as i64));
    assert!(again.snapshot() == back.snapshot());
    assert!(again.snapshot() == e.snapshot(), "the same as the engine never interrupted");
}

#[test]
fn a_log_larger_than_its_base_is_folded_into_the_next_generation() {
    let rd = shipped();
    let lines = lines(8);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events-3.ckpt");
    let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
    checkpoint::write(&path, &Meta { version: 1, ..Meta::default() }, |w| e.write_snapshot(w)).unwrap();
    e.track_changes();
    let base_len = std::fs::metadata(&path).unwrap().len();
    // A log left by a fold cut short after its rename, and another
    // partition's log, which stays.
    std::fs::write(checkpoint::log_path(&path, 7), b"stale").unwrap();
    let other = dir.path().join("events-30.0.log");
    std::fs::write(&other, b"not ours").unwrap();
    let mut s = Saver::start(&path, 0, base_len, 0, 0);
    assert!(!checkpoint::log_path(&path, 7).exists(), "a log of another generation goes");
    assert!(other.exists());
    let tenth = lines.len() / 10;
    for k in 0..10 {
        feed(&mut e, &rd, &lines[k * tenth..(k + 1) * tenth], k * tenth);
        save(&mut s, &mut e, ((k + 1) * tenth) as i64);
    }
    drop(s);
    let (back, c) = restore(&rd, &path);
    assert!(c.meta.generation > 0, "folded at least once");
    assert!(c.log_len <= c.base_len, "a log is folded once it outgrows its base");
    assert_eq!(c.meta.offset, (10 * tenth) as i64);
    assert!(back.snapshot() == e.snapshot(), "the folded base and its log give the state");
    let logs: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events-3.") && n.ends_with(".log"))
        .collect();
    assert!(logs.len() <= 1, "only the current generation's log: {logs:?}");
}

#[test]
fn a_log_that_cannot_be_written_is_reported_not_dropped() {
    let rd = shipped();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events-0.ckpt");
    let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
    checkpoint::write(&path, &Meta { version: 1, ..Meta::default() }, |w| e.write_snapshot(w)).unwrap();
    e.track_changes();
    // The log's name is taken by a folder.
    std::fs::create_dir(checkpoint::log_path(&path, 0)).unwrap();
    let mut s = Saver::start(&path, 0, 1, 0, u64::MAX);
    feed(&mut e, &rd, &lines(9)[..50], 0);
    s.save(Meta { version: 1, offset: 50, ..Meta::default() }, e.take_delta().unwrap());
    s.sync();
    let r = s.durable();
    assert!(matches!(r.as_slice(), [Report::Failed(_)]), "a failure is reported");
    if let [Report::Failed(err)] = r.as_slice() {
        assert!(err.to_string().contains("events-0.0.log"), "{err}");
    }
}

/// What taking a partition up does with the changelog's head: the local
/// log cut back to the head's last frame (frames after it never reached
/// the changelog), and a checkpoint from the changelog installed over a
/// local one of the same generation but another history.
#[test]
fn a_log_kept_up_to_a_frame_and_a_checkpoint_installed_over_another_restore_their_states() {
    let rd = shipped();
    let lines = lines(11);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events-1.ckpt");
    let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
    feed(&mut e, &rd, &lines[..50], 0);
    checkpoint::write(&path, &Meta { version: 1, ..Meta::default() }, |w| e.write_snapshot(w)).unwrap();
    e.track_changes();
    let base_len = std::fs::metadata(&path).unwrap().len();
    let mut s = Saver::start(&path, 0, base_len, 0, u64::MAX);
    let half = lines.len() / 2;
    feed(&mut e, &rd, &lines[50..half], 50);
    save(&mut s, &mut e, half as i64);
    let at_first = e.snapshot();
    feed(&mut e, &rd, &lines[half..], half);
    save(&mut s, &mut e, lines.len() as i64);
    drop(s);

    // Kept up to the first frame: its state, and the log cut on disk.
    let mut c = checkpoint::load(&path).unwrap().unwrap();
    assert_eq!(c.frames.len(), 2);
    let (first_end, first_sum) = (c.frames[0].end, c.frames[0].sum);
    c.keep_frames(&path, 1).unwrap();
    assert_eq!((c.meta.offset, c.log_len, c.last_sum()), (half as i64, first_end, first_sum));
    let deltas = c.deltas.iter().map(|d| d.as_slice());
    let back = Engine::restore_with_deltas(rd.clone(), zone(), RulesConfig::default(), &c.base, deltas).unwrap();
    assert!(back.snapshot() == at_first, "the state of the first frame");
    assert_eq!(std::fs::metadata(checkpoint::log_path(&path, 0)).unwrap().len(), first_end);
    let (again, c) = restore(&rd, &path);
    assert_eq!(c.frames.len(), 1);
    assert!(again.snapshot() == at_first);

    // Installed over another checkpoint of generation 0 (an empty engine
    // and a log of its own): the installed one is what loads.
    let base = std::fs::read(&path).unwrap();
    let log = std::fs::read(checkpoint::log_path(&path, 0)).unwrap();
    let elsewhere = dir.path().join("elsewhere").join("events-1.ckpt");
    let mut other = Engine::new(rd.clone(), zone(), RulesConfig::default());
    checkpoint::write(&elsewhere, &Meta { version: 1, ..Meta::default() }, |w| other.write_snapshot(w)).unwrap();
    other.track_changes();
    let mut s = Saver::start(&elsewhere, 0, 1, 0, u64::MAX);
    feed(&mut other, &rd, &lines[..10], 0);
    save(&mut s, &mut other, 10);
    drop(s);
    checkpoint::install(&elsewhere, 0, &base, &log).unwrap();
    let (installed, c) = restore(&rd, &elsewhere);
    assert_eq!((c.meta.offset, c.frames.len()), (half as i64, 1));
    assert!(installed.snapshot() == at_first, "the installed checkpoint, not the one it replaced");
    assert_eq!(checkpoint::last_frame_sum(&log), first_sum);
}

/// A core over a fresh engine (tracking changes) and a history under `dir`,
/// fed `lines`.
fn core_fed(dir: &Path, rd: &Arc<RefData>, lines: &[String]) -> jiancha::pipeline::Core {
    let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
    e.track_changes();
    let h = jiancha::history::History::open(dir, zone(), rd.clone()).unwrap();
    let mut core = jiancha::pipeline::Core::new(e, h);
    feed_core(&mut core, rd, lines, 0);
    core
}

/// Hands `lines` (numbered from `from`) to the core.
fn feed_core(core: &mut jiancha::pipeline::Core, rd: &Arc<RefData>, lines: &[String], from: usize) {
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    for (i, l) in lines.iter().enumerate() {
        if let Ok(ev) = decoder.decode(l.as_bytes()) {
            core.apply(ev, None, (from + i) as u64);
        }
    }
}

/// A core fed `lines` over a history under `hist`, the base of its state
/// written under `ckpt`, and the writer of its checkpoint's log.
fn fed_and_saved(
    hist: &Path,
    ckpt: &Path,
    rd: &Arc<RefData>,
    lines: &[String],
) -> (jiancha::pipeline::Core, Saver, std::path::PathBuf) {
    let path = ckpt.join("events-0.ckpt");
    let mut core = core_fed(hist, rd, lines);
    checkpoint::write(&path, &Meta { version: 1, ..Meta::default() }, |w| core.engine.write_snapshot(w)).unwrap();
    // The deltas from here on follow this base.
    core.engine.track_changes();
    (core, Saver::start(&path, 0, 1, 0, u64::MAX), path)
}

/// The `.parquet` files under `dir`, by name relative to it.
fn parts_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A checkpoint no longer waits on the loop for its history parts: the
/// flush hands them to the history thread, the rows that follow go to
/// parts of the next number, and the checkpoint writer reports the
/// checkpoint durable only once its parts are complete.
#[test]
fn history_parts_complete_in_the_background_before_their_checkpoint_is_durable() {
    let rd = shipped();
    let lines = lines(13);
    let (hist, ckpt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut core, mut s, _) = fed_and_saved(hist.path(), ckpt.path(), &rd, &lines[..200]);
    assert_eq!(core.history.next_part(), 0);
    let first = core.flush_in_background(None);
    assert_eq!(core.history.next_part(), 1, "rows handed in from now on go to the next part");
    let meta = Meta { version: 1, offset: 200, next_part: 1, ..Meta::default() };
    s.save_after(meta, core.engine.take_delta().unwrap(), first);
    feed_core(&mut core, &rd, &lines[200..400], 200);
    s.sync();
    let r = s.durable();
    assert!(matches!(r.as_slice(), [Report::Durable(m)] if m.offset == 200));
    let complete = parts_under(hist.path());
    assert!(complete.iter().any(|p| p.starts_with("events/") && p.ends_with("part-00000000.parquet")), "{complete:?}");
    assert!(complete.iter().any(|p| p.starts_with("case_versions/")), "{complete:?}");
    assert!(!complete.iter().any(|p| p.contains("part-00000001")), "the second flush has not happened: {complete:?}");
    core.flush().unwrap();
    let complete = parts_under(hist.path());
    assert!(complete.iter().any(|p| p.starts_with("events/") && p.ends_with("part-00000001.parquet")), "{complete:?}");
}

/// A history flush that fails fails its checkpoint: it is reported, and
/// no frame reaches the log (the offset is not committed past rows that
/// were never written).
#[test]
fn a_history_flush_that_fails_fails_its_checkpoint() {
    let rd = shipped();
    let lines = lines(13);
    let (hist, ckpt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut core, mut s, path) = fed_and_saved(hist.path(), ckpt.path(), &rd, &lines[..200]);
    // Where the case rows' month folders would go is taken by a file.
    std::fs::remove_dir_all(hist.path().join("case_versions")).unwrap();
    std::fs::write(hist.path().join("case_versions"), b"in the way").unwrap();
    let flushing = core.flush_in_background(None);
    s.save_after(Meta { version: 1, offset: 200, ..Meta::default() }, core.engine.take_delta().unwrap(), flushing);
    s.sync();
    let r = s.durable();
    match r.as_slice() {
        [Report::HistoryFailed(e)] => assert!(e.to_string().contains("case_versions"), "{e}"),
        _ => panic!("the history failure is reported, and nothing is durable"),
    }
    let c = checkpoint::load(&path).unwrap().expect("the base");
    assert!(c.deltas.is_empty(), "no frame was written");
}

/// A checkpoint of `run` leaves the rows of the cases judged since the
/// last one for the ticks that follow (so it holds the loop for the cut of
/// the state, not for thousands of views): its cut keeps them among the
/// changed cases, so a restart from it writes them; the ticks write each
/// once, as it stands when taken.
#[test]
fn a_checkpoint_leaves_the_case_rows_to_the_ticks_and_its_cut_keeps_them() {
    let rd = shipped();
    let lines = lines(17);
    let (hist, ckpt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut core, mut s, path) = fed_and_saved(hist.path(), ckpt.path(), &rd, &lines[..200]);
    let flushed = core.flush_in_background(None);
    s.save_after(
        Meta { version: 1, offset: 200, next_part: 1, ..Meta::default() },
        core.engine.take_delta().unwrap(),
        flushed,
    );
    feed_core(&mut core, &rd, &lines[200..400], 200);
    let at_first: std::collections::HashMap<String, String> =
        core.engine.pending_views().into_iter().map(|v| (v.case_id, format!("{:?}", v.summary))).collect();
    let mut changed: Vec<String> = at_first.keys().cloned().collect();
    changed.sort();
    assert!(changed.len() > 100, "{} cases changed", changed.len());
    let mut at_cut = Vec::new();
    let flushing = core.flush_deferring_cases(Some(&mut at_cut));
    assert!(at_cut.is_empty(), "no case left memory in 25 days: no row at the cut");
    assert_eq!(core.engine.deferred(), changed.len());
    s.save_after(
        Meta { version: 1, offset: 400, next_part: 2, ..Meta::default() },
        core.engine.take_delta().unwrap(),
        flushing,
    );
    s.sync();
    assert!(
        matches!(s.durable().as_slice(), [Report::Durable(a), Report::Durable(b)] if a.offset == 200 && b.offset == 400)
    );

    // A crash now: the restored state still has every one of them to write.
    let (restored, _) = restore(&rd, &path);
    let mut pending: Vec<String> = restored.pending_views().into_iter().map(|v| v.case_id).collect();
    pending.sort();
    assert_eq!(pending, changed);

    // Without one: the ticks write them, a slice at a time, while events go on.
    let mut taken = Vec::new();
    assert_eq!(core.take_deferred(50, Some(&mut taken)), 50);
    assert_eq!(taken.len(), 50);
    feed_core(&mut core, &rd, &lines[400..600], 400);
    let rest = core.take_deferred(usize::MAX, Some(&mut taken));
    assert_eq!(core.engine.deferred(), 0);
    let mut ids: Vec<String> = taken.iter().map(|v| v.case_id.clone()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "each case written once");
    assert!(changed.iter().all(|c| ids.binary_search(c).is_ok()), "every case left at the cut is written");
    assert!(50 + rest <= changed.len(), "{rest}");
    // Each as it stands when taken, the events after the cut included.
    let mut moved_on = 0;
    for v in &taken[50..] {
        let now = format!("{:?}", v.summary);
        if let Some(current) = core.engine.case_view(&v.case_id) {
            assert_eq!(now, format!("{:?}", current.summary), "{}", v.case_id);
        }
        moved_on += usize::from(at_first.get(&v.case_id).is_some_and(|cut| *cut != now));
    }
    assert!(moved_on > 0, "some cases changed after the cut, and their rows show it");
}

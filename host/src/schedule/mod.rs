//! Scheduled runs: a task, a cron expression (UTC) and an optional
//! profile, kept in `schedules.json` in a user's data directory and run
//! by `boram serve` (or at once with `boram schedule run-now`). Every run is
//! a normal agent session.
//!
//! Rules, decided by [`Scheduler::tick`] against an injectable [`Clock`]:
//! - a schedule is due when its next cron slot after its last run (or its
//!   creation) has come;
//! - **no overlap**: while a schedule's run is still going, its due slots
//!   are skipped (and counted), never queued;
//! - **missed runs** (the service was down over one or more slots): they are
//!   coalesced into one catch-up run at the first tick after start, and the
//!   schedule continues from then — a week of downtime does not fire a
//!   week of runs.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File of a user's schedules, in its data directory.
pub const FILE: &str = "schedules.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    /// Five fields, minute first, in UTC: `0 8 * * 1` is Mondays 08:00 UTC.
    pub cron: String,
    pub profile: Option<String>,
    pub task: String,
    pub created: DateTime<Utc>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_session: Option<String>,
    /// How the last run ended (`answered`, `error`, …) or `running`.
    pub last_status: Option<String>,
    /// Slots skipped because the previous run was still going.
    #[serde(default)]
    pub skipped: u64,
}

impl Schedule {
    /// A schedule created at `created` that has not run yet.
    pub fn new(name: String, cron: String, profile: Option<String>, task: String, created: DateTime<Utc>) -> Self {
        Self {
            name,
            cron,
            profile,
            task,
            created,
            last_run: None,
            last_session: None,
            last_status: None,
            skipped: 0,
        }
    }

    /// A usable name and a valid cron expression, or what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !crate::policy::is_tool_name(&self.name) {
            return Err(format!(
                "`{}` is not a valid schedule name: use lowercase letters, digits and `_`",
                self.name
            ));
        }
        parse_cron(&self.cron).map(|_| ())
    }

    /// The first cron slot after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        parse_cron(&self.cron).ok()?.find_next_occurrence(&after, false).ok()
    }
}

/// Parses a five-field cron expression; the error says what is wrong.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    if expr.split_whitespace().count() != 5 {
        return Err(format!(
            "`{expr}` is not a five-field cron expression (minute hour day-of-month month day-of-week), \
             e.g. \"0 8 * * 1\" for Mondays at 08:00 UTC"
        ));
    }
    expr.parse::<Cron>().map_err(|e| format!("`{expr}`: {e}"))
}

/// The schedules of one user, in one JSON file written atomically.
pub struct ScheduleStore {
    path: PathBuf,
}

impl ScheduleStore {
    pub fn open(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE),
        }
    }

    pub fn list(&self) -> anyhow::Result<Vec<Schedule>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is not valid", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    fn save(&self, schedules: &[Schedule]) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(schedules)?;
        crate::store::atomic::write(&self.path, &[text.as_bytes()], None)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Changes the list under the file's lock, which every handle and
    /// process takes (the HTTP API opens its own handle per request, the
    /// scheduler has one, `boram schedule` runs in another process).
    pub fn update<T>(&self, change: impl FnOnce(&mut Vec<Schedule>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut outcome = None;
        crate::store::atomic::locked(&self.path, || {
            outcome = Some(self.list().and_then(|mut schedules| {
                let out = change(&mut schedules)?;
                self.save(&schedules)?;
                Ok(out)
            }));
            Ok(())
        })
        .with_context(|| format!("cannot lock {}", self.path.display()))?;
        outcome.unwrap_or_else(|| Err(anyhow::anyhow!("the schedules were not changed")))
    }

    /// Adds a schedule; the name must be new, the cron valid.
    pub fn add(&self, schedule: Schedule) -> anyhow::Result<()> {
        schedule.validate().map_err(anyhow::Error::msg)?;
        self.update(|list| {
            if list.iter().any(|s| s.name == schedule.name) {
                anyhow::bail!("a schedule named `{}` exists; remove it first", schedule.name);
            }
            list.push(schedule);
            Ok(())
        })
    }

    /// Removes `name`; false when there was none.
    pub fn remove(&self, name: &str) -> anyhow::Result<bool> {
        self.update(|list| {
            let before = list.len();
            list.retain(|s| s.name != name);
            Ok(list.len() != before)
        })
    }
}

/// Where the scheduler gets the time (tests inject one).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Starts a schedule's run; calls `finished(status, session)` when it ends.
pub type Starter = Arc<dyn Fn(&Schedule, Finished) -> anyhow::Result<String> + Send + Sync>;
/// Reports the end of a run: its stop word.
pub type Finished = Box<dyn FnOnce(String) + Send>;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// Schedules started, with the number of slots the run covers (more
    /// than 1 for a catch-up after downtime).
    pub started: Vec<(String, usize)>,
    /// Schedules due but still running: skipped.
    pub skipped: Vec<String>,
}

pub struct Scheduler {
    store: Arc<ScheduleStore>,
    clock: Arc<dyn Clock>,
    start: Starter,
    running: Arc<Mutex<BTreeSet<String>>>,
}

impl Scheduler {
    pub fn new(store: Arc<ScheduleStore>, clock: Arc<dyn Clock>, start: Starter) -> Self {
        Self {
            store,
            clock,
            start,
            running: Arc::default(),
        }
    }

    /// What a run of schedule `name` calls when it ends: the schedule is
    /// free again and its last status is the run's.
    fn finisher(&self, name: &str) -> Finished {
        let (name, store, running) = (name.to_string(), self.store.clone(), self.running.clone());
        Box::new(move |status| {
            running.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
            let _ = store.update(|list| {
                if let Some(s) = list.iter_mut().find(|s| s.name == name) {
                    s.last_status = Some(status);
                }
                Ok(())
            });
        })
    }

    /// Schedules whose last run a previous process started and did not see
    /// end (it was killed, or stopped with the run given back to the queue):
    /// `(name, run id)`. Call before the first [`Self::tick`] and
    /// [`Self::adopt`] each; call the callback at once for a run that ended.
    pub fn unfinished(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .store
            .list()?
            .into_iter()
            .filter(|s| s.last_status.as_deref() == Some("running"))
            .filter_map(|s| s.last_session.map(|run| (s.name, run)))
            .collect())
    }

    /// Schedule `name`'s run is still going (resumed by this process): the
    /// schedule counts as running, so a due slot is skipped rather than
    /// overlapped; the returned callback records the run's end.
    pub fn adopt(&self, name: &str) -> Finished {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        self.finisher(name)
    }

    /// Starts every due schedule (see the module's rules).
    pub fn tick(&self) -> anyhow::Result<TickReport> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        let schedules = self.store.list()?;
        for schedule in schedules {
            let since = schedule.last_run.unwrap_or(schedule.created);
            let Some(next) = schedule.next_after(since) else {
                continue;
            };
            if next > now {
                continue;
            }
            let slots = missed_slots(&schedule, since, now);
            if self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&schedule.name)
            {
                report.skipped.push(schedule.name.clone());
                // The slot passes: the next one is due after now.
                self.store.update(|list| {
                    if let Some(s) = list.iter_mut().find(|s| s.name == schedule.name) {
                        s.skipped += 1;
                        s.last_run = Some(now);
                    }
                    Ok(())
                })?;
                continue;
            }
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(schedule.name.clone());
            let finished = self.finisher(&schedule.name);
            match (self.start)(&schedule, finished) {
                Ok(session) => {
                    self.store.update(|list| {
                        if let Some(s) = list.iter_mut().find(|s| s.name == schedule.name) {
                            s.last_run = Some(now);
                            s.last_session = Some(session.clone());
                            s.last_status = Some("running".into());
                        }
                        Ok(())
                    })?;
                    report.started.push((schedule.name.clone(), slots));
                }
                Err(e) => {
                    self.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&schedule.name);
                    tracing::error!(schedule = %schedule.name, error = %e, "cannot start a scheduled run");
                    self.store.update(|list| {
                        if let Some(s) = list.iter_mut().find(|s| s.name == schedule.name) {
                            s.last_run = Some(now);
                            s.last_status = Some(format!("not started: {e:#}"));
                        }
                        Ok(())
                    })?;
                }
            }
        }
        Ok(report)
    }
}

/// Slots between `since` (exclusive) and `now` (inclusive), counted up to 1000.
fn missed_slots(schedule: &Schedule, since: DateTime<Utc>, now: DateTime<Utc>) -> usize {
    let mut count = 0;
    let mut at = since;
    while let Some(next) = schedule.next_after(at) {
        if next > now || count >= 1000 {
            break;
        }
        count += 1;
        at = next;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    struct FixedClock(Mutex<DateTime<Utc>>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("clock")
        }
    }

    impl FixedClock {
        fn set(&self, t: DateTime<Utc>) {
            *self.0.lock().expect("clock") = t;
        }
    }

    #[test]
    fn updates_through_separate_handles_are_never_lost_issue_16() {
        // The HTTP API opens a handle per request while the scheduler holds
        // its own: each read-modify-write must see the one before it.
        let dir = tempfile::tempdir().expect("tempdir");
        ScheduleStore::open(dir.path())
            .add(Schedule::new(
                "tick".into(),
                "* * * * *".into(),
                None,
                "t".into(),
                at(8, 0),
            ))
            .expect("add");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let store = ScheduleStore::open(&dir);
                    for _ in 0..50 {
                        store
                            .update(|list| {
                                list[0].skipped += 1;
                                Ok(())
                            })
                            .expect("update");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("join");
        }
        assert_eq!(ScheduleStore::open(dir.path()).list().expect("list")[0].skipped, 200);
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).single().expect("time")
    }

    fn schedule(name: &str, cron: &str) -> Schedule {
        Schedule::new(name.into(), cron.into(), None, "t".into(), at(8, 0))
    }

    /// Runs started and not yet finished by the test.
    type Pending = Arc<Mutex<Vec<(String, Finished)>>>;

    /// A scheduler whose runs last until the test ends them.
    fn setup(schedules: &[Schedule]) -> (tempfile::TempDir, Arc<FixedClock>, Scheduler, Pending) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(ScheduleStore::open(dir.path()));
        for s in schedules {
            store.add(s.clone()).expect("add");
        }
        let clock = Arc::new(FixedClock(Mutex::new(at(8, 0))));
        let runs: Pending = Arc::default();
        let start: Starter = {
            let runs = runs.clone();
            let started = std::sync::atomic::AtomicUsize::new(0);
            Arc::new(move |s: &Schedule, finished: Finished| {
                runs.lock().expect("runs").push((s.name.clone(), finished));
                let n = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                Ok(format!("session-{n}"))
            })
        };
        let scheduler = Scheduler::new(store, clock.clone(), start);
        (dir, clock, scheduler, runs)
    }

    fn finish_all(runs: &Mutex<Vec<(String, Finished)>>) {
        for (_, finished) in runs.lock().expect("runs").drain(..) {
            finished("answered".into());
        }
    }

    #[test]
    fn fires_on_time_and_not_before() {
        let (_dir, clock, scheduler, runs) = setup(&[schedule("every_five", "*/5 * * * *")]);
        clock.set(at(8, 4));
        assert_eq!(scheduler.tick().expect("tick"), TickReport::default());
        clock.set(at(8, 5));
        let report = scheduler.tick().expect("tick");
        assert_eq!(report.started, vec![("every_five".to_string(), 1)]);
        finish_all(&runs);
        clock.set(at(8, 9));
        assert!(scheduler.tick().expect("tick").started.is_empty());
        clock.set(at(8, 10));
        assert_eq!(scheduler.tick().expect("tick").started.len(), 1);
    }

    #[test]
    fn a_running_schedule_is_skipped_not_overlapped() {
        let (dir, clock, scheduler, runs) = setup(&[schedule("minutely", "* * * * *")]);
        clock.set(at(8, 1));
        assert_eq!(scheduler.tick().expect("tick").started.len(), 1);
        clock.set(at(8, 2));
        let report = scheduler.tick().expect("tick");
        assert_eq!(
            (report.started.len(), report.skipped),
            (0, vec!["minutely".to_string()])
        );
        assert_eq!(
            runs.lock().expect("runs").len(),
            1,
            "no second run while the first goes on"
        );
        finish_all(&runs);
        clock.set(at(8, 3));
        assert_eq!(scheduler.tick().expect("tick").started.len(), 1);
        let saved = ScheduleStore::open(dir.path()).list().expect("list");
        assert_eq!(saved[0].skipped, 1);
        assert_eq!(saved[0].last_session.as_deref(), Some("session-2"));
    }

    #[test]
    fn missed_slots_after_downtime_make_one_catch_up_run() {
        let mut s = schedule("every_five", "*/5 * * * *");
        s.last_run = Some(at(8, 0));
        let (_dir, clock, scheduler, runs) = setup(&[s]);
        // Down from 08:00 to 09:02: twelve slots (08:05 … 09:00) missed.
        clock.set(at(9, 2));
        assert_eq!(
            scheduler.tick().expect("tick").started,
            vec![("every_five".to_string(), 12)]
        );
        assert_eq!(runs.lock().expect("runs").len(), 1);
        finish_all(&runs);
        // Then it continues from now: 09:05 is the next slot.
        clock.set(at(9, 4));
        assert!(scheduler.tick().expect("tick").started.is_empty());
        clock.set(at(9, 5));
        assert_eq!(scheduler.tick().expect("tick").started.len(), 1);
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ScheduleStore::open(dir.path());
        let e = store.add(schedule("x", "0 8 * *")).expect_err("four fields");
        assert!(e.to_string().contains("five-field"), "{e}");
        let e = store.add(schedule("x", "0 25 * * *")).expect_err("hour 25");
        assert!(e.to_string().contains("0 25 * * *"), "{e}");
        let e = store.add(schedule("Bad Name", "* * * * *")).expect_err("name");
        assert!(e.to_string().contains("not a valid schedule name"), "{e}");
        store.add(schedule("ok", "0 8 * * 1")).expect("valid");
        assert!(store.add(schedule("ok", "0 8 * * 1")).is_err(), "duplicate");
        assert!(store.remove("ok").expect("remove"));
        assert!(!store.remove("ok").expect("remove"));
    }
}

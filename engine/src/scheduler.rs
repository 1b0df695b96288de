//! The cron scheduler's pure core: for one schedule entry, its durable state,
//! the facts about the run it last started and the time `now`, what happens
//! next — fire, queue, skip (with the reason) or wait. No clock reads, no IO:
//! `now` and the moment the daemon came up are parameters, so every rule is
//! tested with explicit times.
//!
//! The rules, in the order they apply to a scheduled time that is up:
//! - several times up at once (the daemon was down, or busy) fold into one,
//!   the latest: never a storm of runs;
//! - a time that passed before the daemon came up was missed: `catch_up:
//!   once` fires it (once, for the whole missed window), `catch_up: none`
//!   skips it;
//! - a fire later than `starting_deadline` after its time is dropped;
//! - `pause_while_escalated`: no fire while the last run (or a child of it)
//!   is escalated and not acknowledged; `cooldown`: none for that long after
//!   the escalation;
//! - `overlap`, when the last run is still going: `skip`, `queue_one` (one
//!   fire waits and starts when the run ends), `allow`, `cancel_previous`.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::duration::format_duration;
use crate::ids::RunId;
use crate::model::ScheduleSpec;
use crate::schedule::{parse_cron, parse_timezone};

/// What a fire does when the run this entry started last is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    QueueOne,
    Allow,
    CancelPrevious,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::QueueOne => "queue_one",
            Overlap::Allow => "allow",
            Overlap::CancelPrevious => "cancel_previous",
        }
    }
}

/// What happens to the times that passed while the daemon was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// One run for the whole missed window, as of its latest time.
    Once,
    /// Nothing: the next fire is the next time still ahead.
    None,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Once => "once",
            CatchUp::None => "none",
        }
    }
}

/// A validated schedule entry, ready to compute fire times.
#[derive(Debug, Clone)]
pub struct Entry {
    pub cron: Cron,
    pub timezone: Tz,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    pub starting_deadline: Option<TimeDelta>,
    pub pause_while_escalated: bool,
    pub cooldown: Option<TimeDelta>,
}

/// Counting missed times stops here: the number is for people, and a
/// seconds schedule over a week of downtime must not cost a second of CPU.
pub const MISSED_COUNT_CAP: u32 = 1_000;

impl Entry {
    /// The entry of a schedule the validator accepted; the error names what is wrong otherwise.
    pub fn from_spec(spec: &ScheduleSpec) -> Result<Entry, String> {
        let cron = parse_cron(&spec.cron)?;
        let timezone = match &spec.timezone {
            Some(name) => parse_timezone(name)?,
            None => Tz::UTC,
        };
        let overlap = match spec.overlap.as_deref() {
            None | Some("skip") => Overlap::Skip,
            Some("queue_one") => Overlap::QueueOne,
            Some("allow") => Overlap::Allow,
            Some("cancel_previous") => Overlap::CancelPrevious,
            Some(other) => return Err(format!("`{other}` is not an overlap policy")),
        };
        let catch_up = match spec.catch_up.as_deref() {
            None | Some("once") => CatchUp::Once,
            Some("none") => CatchUp::None,
            Some(other) => return Err(format!("`{other}` is not a catch-up policy")),
        };
        let delta = |ms: u64| TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000));
        Ok(Entry {
            cron,
            timezone,
            overlap,
            catch_up,
            starting_deadline: spec.starting_deadline_ms.map(delta),
            pause_while_escalated: spec.pause_while_escalated,
            cooldown: spec.cooldown_ms.map(delta),
        })
    }

    /// The first scheduled time strictly after `t`, in the entry's time zone (DST included).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_seconds(t).with_timezone(&self.timezone);
        self.cron.find_next_occurrence(&local, false).ok().map(|next| next.with_timezone(&Utc))
    }

    /// The last scheduled time at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = whole_seconds(t).with_timezone(&self.timezone);
        self.cron.find_previous_occurrence(&local, true).ok().map(|previous| previous.with_timezone(&Utc))
    }

    /// The next `count` scheduled times after `t`.
    pub fn next_fires(&self, t: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(count);
        let mut cursor = t;
        while times.len() < count {
            let Some(next) = self.next_after(cursor) else { break };
            times.push(next);
            cursor = next;
        }
        times
    }

    /// Scheduled times in `[first, until)`, counted up to [`MISSED_COUNT_CAP`].
    fn count_from(&self, first: DateTime<Utc>, until: DateTime<Utc>) -> u32 {
        let mut count = 0;
        let mut cursor = first;
        while cursor < until && count < MISSED_COUNT_CAP {
            count += 1;
            match self.next_after(cursor) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        count
    }
}

/// Cron works in whole seconds; a `now` with nanoseconds would make "at or before" ambiguous.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The key of an entry's state in the `schedules` namespace: the workflow's
/// name, the entry's position, its time zone and its cron text, so that
/// editing the cron or the zone starts the entry afresh.
pub fn entry_key(workflow: &str, index: usize, spec: &ScheduleSpec) -> String {
    let timezone = spec.timezone.as_deref().unwrap_or("UTC");
    format!("{workflow}#{index}#{timezone}#{}", spec.cron.trim())
}

/// The key/value namespace of schedule state.
pub const SCHEDULES_NAMESPACE: &str = "schedules";

/// A decision worth keeping: which scheduled time, when it was decided, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The scheduled time it is about.
    pub at: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
    pub reason: String,
}

/// An entry's durable state, one JSON value in the `schedules` namespace.
/// Written (durably) before the run a fire starts, so that a crash after a
/// fire never fires the same time again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// When the daemon first saw the entry: times before it are not this entry's to fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The latest scheduled time handled (fired, queued or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fire: Option<DateTime<Utc>>,
    /// The run the last fire started (its id is allocated before the state is written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunId>,
    /// The scheduled time `last_run` was fired for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_for: Option<DateTime<Utc>>,
    /// `queue_one`: a fire waiting for the last run to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<DateTime<Utc>>,
    /// Why the last skipped time was not fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skip: Option<Note>,
    /// What else the last fire or queue did (a catch-up, a cancelled run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_note: Option<Note>,
    #[serde(default)]
    pub fires: u64,
    #[serde(default)]
    pub skips: u64,
}

/// What the daemon knows about the run an entry last started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Previous {
    pub run: Option<RunId>,
    /// Executing now (or about to be resumed) in the daemon.
    pub running: bool,
    /// The run, or one of its child runs, escalated: a bundle was written for support.
    pub escalation: Option<Escalated>,
}

/// An escalation in the run tree an entry last started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalated {
    /// The run (the last run or a child of it) that wrote the bundle.
    pub run: RunId,
    /// When the bundle was recorded.
    pub at: DateTime<Utc>,
    /// Every escalated run of the tree was acknowledged (`runbook ack`).
    pub acknowledged: bool,
}

/// Why a scheduled time was not fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Passed while the daemon was down, with `catch_up: none`.
    Missed { times: u32 },
    /// Later than the starting deadline.
    PastDeadline { late: TimeDelta, deadline: TimeDelta },
    /// `overlap: skip` and the last run is still going.
    StillRunning { run: RunId },
    /// `pause_while_escalated` and the escalation is not acknowledged.
    Escalated { run: RunId },
    /// Within the `cooldown` after an escalation.
    CoolingDown { run: RunId, until: DateTime<Utc> },
}

fn human(delta: TimeDelta) -> String {
    format_duration(delta.to_std().unwrap_or_default())
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Missed { times } => {
                let count = if *times >= MISSED_COUNT_CAP { format!("{times} or more") } else { times.to_string() };
                let plural = if *times == 1 { "time" } else { "times" };
                write!(f, "missed {count} scheduled {plural} while the daemon was down (catch_up: none)")
            }
            SkipReason::PastDeadline { late, deadline } => write!(
                f,
                "{} late, past the starting deadline of {} (starting_deadline)",
                human(*late),
                human(*deadline)
            ),
            SkipReason::StillRunning { run } => write!(f, "run {run} of this schedule is still going (overlap: skip)"),
            SkipReason::Escalated { run } => write!(
                f,
                "paused: run {run} escalated and is not acknowledged; `runbook ack {run}` resumes the schedule (pause_while_escalated)"
            ),
            SkipReason::CoolingDown { run, until } => write!(
                f,
                "cooling down after the escalation of run {run} until {} (cooldown)",
                // Rounded up: "until 10:30:20" must not be said at 10:30:20.4 of a skip.
                whole_seconds(*until + TimeDelta::nanoseconds(999_999_999))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// What to do about an entry now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is up; look again at `until` (`None`: the cron has no future time).
    Wait { until: Option<DateTime<Utc>> },
    /// Start a run for scheduled time `at`.
    Fire {
        at: DateTime<Utc>,
        /// `cancel_previous`: cancel this run first.
        cancel: Option<RunId>,
        /// Earlier times that were up too and are folded into this fire.
        folded: u32,
        /// `at` passed while the daemon was down: this fire is the catch-up.
        catch_up: bool,
    },
    /// `queue_one`: remember the fire and start it when `behind` ends.
    Queue { at: DateTime<Utc>, behind: RunId },
    /// Do not fire `at`.
    Skip { at: DateTime<Utc>, reason: SkipReason },
}

/// A scheduled time that is up, before the rules.
struct Candidate {
    at: DateTime<Utc>,
    folded: u32,
    missed: bool,
}

/// Decides what happens to an entry at `now`. `online_since` is when the
/// daemon came up: a time before it passed while nobody was firing.
pub fn decide(
    entry: &Entry,
    state: &ScheduleState,
    previous: &Previous,
    online_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decision {
    let cursor = state.last_fire.or(state.since);
    let first_due = cursor.and_then(|c| entry.next_after(c)).filter(|first| *first <= now);
    let candidate = match (first_due, state.pending) {
        (Some(first), _) => {
            let latest = entry.latest_at_or_before(now).filter(|l| *l >= first).unwrap_or(first);
            Candidate { at: latest, folded: entry.count_from(first, latest), missed: latest < online_since }
        }
        (None, Some(pending)) if !previous.running => Candidate { at: pending, folded: 0, missed: false },
        (None, _) => return Decision::Wait { until: wake_at(entry, state, previous.running) },
    };
    let at = candidate.at;
    if candidate.missed && entry.catch_up == CatchUp::None {
        return Decision::Skip {
            at,
            reason: SkipReason::Missed { times: candidate.folded.saturating_add(1).min(MISSED_COUNT_CAP) },
        };
    }
    if let Some(deadline) = entry.starting_deadline {
        let late = now - at;
        if late > deadline {
            return Decision::Skip { at, reason: SkipReason::PastDeadline { late, deadline } };
        }
    }
    if let Some(reason) = pause_reason(entry, previous, now) {
        return Decision::Skip { at, reason };
    }
    let fire = |cancel| Decision::Fire { at, cancel, folded: candidate.folded, catch_up: candidate.missed };
    match (previous.run, previous.running) {
        (Some(run), true) => match entry.overlap {
            Overlap::Skip => Decision::Skip { at, reason: SkipReason::StillRunning { run } },
            Overlap::QueueOne => Decision::Queue { at, behind: run },
            Overlap::Allow => fire(None),
            Overlap::CancelPrevious => fire(Some(run)),
        },
        _ => fire(None),
    }
}

/// Why the entry would not fire now because of an escalation, if it would not.
pub fn pause_reason(entry: &Entry, previous: &Previous, now: DateTime<Utc>) -> Option<SkipReason> {
    let escalated = previous.escalation.as_ref()?;
    if entry.pause_while_escalated && !escalated.acknowledged {
        return Some(SkipReason::Escalated { run: escalated.run });
    }
    let until = escalated.at + entry.cooldown?;
    (now < until).then_some(SkipReason::CoolingDown { run: escalated.run, until })
}

/// When to call [`decide`] for the entry next: its next scheduled time, or
/// at once for a queued fire whose run has ended. `None` for an entry never
/// seen (give it a state with [`ScheduleState::first_seen`]) or a cron with
/// no future time.
pub fn wake_at(entry: &Entry, state: &ScheduleState, previous_running: bool) -> Option<DateTime<Utc>> {
    let next = entry.next_after(state.last_fire.or(state.since)?);
    match state.pending {
        Some(pending) if !previous_running => Some(next.map_or(pending, |n| n.min(pending))),
        _ => next,
    }
}

impl ScheduleState {
    /// The state of an entry the daemon sees for the first time at `now`.
    pub fn first_seen(now: DateTime<Utc>) -> ScheduleState {
        ScheduleState { since: Some(whole_seconds(now)), ..ScheduleState::default() }
    }

    /// The state after a decision; `run` is the run a `Fire` starts.
    pub fn after(&self, decision: &Decision, run: Option<RunId>, now: DateTime<Utc>) -> ScheduleState {
        let mut next = self.clone();
        let note = |at, reason: String| Some(Note { at, decided_at: now, reason });
        let handled = |next: &mut ScheduleState, at: DateTime<Utc>| {
            next.last_fire = Some(next.last_fire.map_or(at, |last| last.max(at)));
            if next.pending.is_some_and(|p| p <= at) {
                next.pending = None;
            }
        };
        match decision {
            Decision::Wait { .. } => {}
            Decision::Fire { at, cancel, folded, catch_up } => {
                handled(&mut next, *at);
                next.last_run = run;
                next.last_run_for = Some(*at);
                next.fires += 1;
                let mut parts = Vec::new();
                if *catch_up {
                    parts.push("catch-up for times missed while the daemon was down".to_owned());
                }
                if *folded > 0 {
                    let plural = if *folded == 1 { "time" } else { "times" };
                    parts.push(format!("{folded} earlier {plural} folded into this fire"));
                }
                if let Some(previous) = cancel {
                    parts.push(format!("cancelled run {previous}, still going (overlap: cancel_previous)"));
                }
                next.last_note = if parts.is_empty() { None } else { note(*at, parts.join("; ")) };
            }
            Decision::Queue { at, behind } => {
                let replaced = self.pending;
                handled(&mut next, *at);
                next.pending = Some(*at);
                let mut reason = format!("queued behind run {behind}, still going (overlap: queue_one)");
                if let Some(old) = replaced {
                    reason.push_str(&format!(
                        "; replaces the fire queued for {}",
                        old.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ));
                }
                next.last_note = note(*at, reason);
            }
            Decision::Skip { at, reason } => {
                handled(&mut next, *at);
                next.skips += 1;
                next.last_skip = note(*at, reason.to_string());
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("an RFC 3339 time").with_timezone(&Utc)
    }

    fn entry(cron: &str, timezone: Option<&str>) -> Entry {
        entry_with(cron, timezone, |_| {})
    }

    fn entry_with(cron: &str, timezone: Option<&str>, edit: impl FnOnce(&mut ScheduleSpec)) -> Entry {
        let mut spec = ScheduleSpec {
            cron: cron.to_owned(),
            timezone: timezone.map(str::to_owned),
            inputs: Default::default(),
            overlap: None,
            catch_up: None,
            starting_deadline_ms: None,
            pause_while_escalated: false,
            cooldown_ms: None,
        };
        edit(&mut spec);
        Entry::from_spec(&spec).expect("a valid entry")
    }

    /// The next `n` fire times after `after`, as RFC 3339 UTC texts.
    #[track_caller]
    fn check_next(cron: &str, timezone: Option<&str>, after: &str, expected: &[&str]) {
        let times = entry(cron, timezone).next_fires(utc(after), expected.len());
        let texts: Vec<String> = times.iter().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).collect();
        assert_eq!(texts, expected, "{cron} in {timezone:?} after {after}");
    }

    #[test]
    fn fire_times() {
        // Every second, every 2 seconds, the standard 5-field form.
        check_next("* * * * * *", None, "2026-03-02T10:00:00Z", &["2026-03-02T10:00:01Z", "2026-03-02T10:00:02Z"]);
        check_next("*/2 * * * * *", None, "2026-03-02T10:00:01Z", &["2026-03-02T10:00:02Z", "2026-03-02T10:00:04Z"]);
        check_next("*/5 * * * *", None, "2026-03-02T10:01:00Z", &["2026-03-02T10:05:00Z", "2026-03-02T10:10:00Z"]);
        // `1-5` is Monday to Friday: from Friday 2026-03-06 after 09:00 the next is Monday the 9th.
        check_next("0 9 * * 1-5", None, "2026-03-06T09:00:00Z", &["2026-03-09T09:00:00Z", "2026-03-10T09:00:00Z"]);
        // From Saturday: Monday, not Sunday (the `cron` crate would say Sunday).
        check_next("0 9 * * 1-5", None, "2026-03-07T12:00:00Z", &["2026-03-09T09:00:00Z"]);
        // 0 and 7 are both Sunday.
        check_next("0 9 * * 0", None, "2026-03-02T00:00:00Z", &["2026-03-08T09:00:00Z"]);
        check_next("0 9 * * 7", None, "2026-03-02T00:00:00Z", &["2026-03-08T09:00:00Z"]);
        // A time zone: 06:00 in Paris is 05:00 UTC in winter, 04:00 in summer.
        check_next(
            "0 6 * * *",
            Some("Europe/Paris"),
            "2026-03-28T12:00:00Z",
            &["2026-03-29T04:00:00Z", "2026-03-30T04:00:00Z"],
        );
        // Weekdays in New York across the spring-forward night (Sunday 2026-03-08):
        // 09:00 EST on Friday is 14:00 UTC, 09:00 EDT on Monday is 13:00 UTC.
        check_next(
            "0 9 * * 1-5",
            Some("America/New_York"),
            "2026-03-06T13:00:00Z",
            &["2026-03-06T14:00:00Z", "2026-03-09T13:00:00Z"],
        );
    }

    #[test]
    fn daylight_saving_in_new_york() {
        // Spring forward, 2026-03-08: 02:00 EST becomes 03:00 EDT, so 02:30 does
        // not exist; a daily 02:30 job runs once, at the first instant after the gap.
        check_next(
            "30 2 * * *",
            Some("America/New_York"),
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        );
        // Fall back, 2026-11-01: 01:30 happens twice; a daily 01:30 job runs once (EDT, 05:30 UTC).
        check_next(
            "30 1 * * *",
            Some("America/New_York"),
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        );
        // An hourly job follows elapsed time: 01:00 EDT, 01:00 EST, 02:00 EST.
        check_next(
            "0 * * * *",
            Some("America/New_York"),
            "2026-11-01T04:30:00Z",
            &["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"],
        );
        // Across spring forward, hourly: 01:00 EST, then 03:00 EDT (02:00 does not exist).
        check_next(
            "0 * * * *",
            Some("America/New_York"),
            "2026-03-08T05:30:00Z",
            &["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"],
        );
    }

    /// The time the daemon came up in the decision tables, unless a case says otherwise.
    const UP: &str = "2026-03-02T09:00:00Z";

    fn state(last_fire: Option<&str>) -> ScheduleState {
        ScheduleState { since: Some(utc("2026-03-01T00:00:00Z")), last_fire: last_fire.map(utc), ..Default::default() }
    }

    fn run(n: u64) -> RunId {
        RunId::new(n).expect("non-zero")
    }

    fn going(n: u64) -> Previous {
        Previous { run: Some(run(n)), running: true, escalation: None }
    }

    fn done(n: u64) -> Previous {
        Previous { run: Some(run(n)), running: false, escalation: None }
    }

    #[track_caller]
    fn check(entry: &Entry, state: &ScheduleState, previous: &Previous, up: &str, now: &str, expected: &str) {
        let decision = decide(entry, state, previous, utc(up), utc(now));
        let text = match &decision {
            Decision::Wait { until } => {
                format!("wait {}", until.map_or("never".to_owned(), |t| t.format("%H:%M:%S").to_string()))
            }
            Decision::Fire { at, cancel, folded, catch_up } => format!(
                "fire {}{}{}{}",
                at.format("%H:%M:%S"),
                cancel.map(|r| format!(" cancel {r}")).unwrap_or_default(),
                if *folded > 0 { format!(" folded {folded}") } else { String::new() },
                if *catch_up { " catch-up" } else { "" },
            ),
            Decision::Queue { at, behind } => format!("queue {} behind {behind}", at.format("%H:%M:%S")),
            Decision::Skip { at, reason } => format!("skip {}: {reason}", at.format("%H:%M:%S")),
        };
        assert_eq!(text, expected);
    }

    #[test]
    fn decisions() {
        let every_minute = entry("* * * * *", None);
        let none = Previous::default();
        // Not yet, then on time, then a little late: the same fire.
        check(&every_minute, &state(Some("2026-03-02T10:00:00Z")), &none, UP, "2026-03-02T10:00:59Z", "wait 10:01:00");
        check(&every_minute, &state(Some("2026-03-02T10:00:00Z")), &none, UP, "2026-03-02T10:01:00Z", "fire 10:01:00");
        check(
            &every_minute,
            &state(Some("2026-03-02T10:00:00Z")),
            &none,
            UP,
            "2026-03-02T10:01:00.300Z",
            "fire 10:01:00",
        );
        // Fired already: nothing until the next minute (no double fire after a restart).
        check(&every_minute, &state(Some("2026-03-02T10:01:00Z")), &none, UP, "2026-03-02T10:01:30Z", "wait 10:02:00");
        // A busy daemon that woke up three minutes late fires once, for the latest time.
        check(
            &every_minute,
            &state(Some("2026-03-02T10:00:00Z")),
            &none,
            UP,
            "2026-03-02T10:03:10Z",
            "fire 10:03:00 folded 2",
        );
        // Never seen: nothing to fire, nothing to wait for until given a first-seen state.
        check(&every_minute, &ScheduleState::default(), &none, UP, "2026-03-02T10:03:10Z", "wait never");
        let seen = ScheduleState::first_seen(utc("2026-03-02T10:00:30.5Z"));
        check(&every_minute, &seen, &none, UP, "2026-03-02T10:00:31Z", "wait 10:01:00");
        // A cron with no future time (30 February) never fires.
        check(&entry("0 0 30 2 *", None), &seen, &none, UP, "2026-03-02T10:00:31Z", "wait never");
    }

    #[test]
    fn catch_up_after_downtime() {
        let once = entry("*/5 * * * *", None);
        let none = entry_with("*/5 * * * *", None, |s| s.catch_up = Some("none".to_owned()));
        let last = state(Some("2026-03-02T08:00:00Z"));
        let nobody = Previous::default();
        // Down from 08:02 to 09:00: eleven times missed (08:05 .. 08:55); `once` fires one run for the latest.
        check(&once, &last, &nobody, UP, "2026-03-02T09:00:00.200Z", "fire 09:00:00 folded 11");
        check(
            &once,
            &last,
            &nobody,
            "2026-03-02T08:57:00Z",
            "2026-03-02T08:57:00Z",
            "fire 08:55:00 folded 10 catch-up",
        );
        // `none` skips the missed window and says why.
        check(
            &none,
            &last,
            &nobody,
            "2026-03-02T08:57:00Z",
            "2026-03-02T08:57:00Z",
            "skip 08:55:00: missed 11 scheduled times while the daemon was down (catch_up: none)",
        );
        // ... but a time that comes up while the daemon runs fires, folding the missed ones in.
        check(&none, &last, &nobody, "2026-03-02T08:57:00Z", "2026-03-02T09:00:00Z", "fire 09:00:00 folded 11");
        // After the skip, the next time is the next one ahead.
        let skipped = last.after(
            &decide(&none, &last, &nobody, utc("2026-03-02T08:57:00Z"), utc("2026-03-02T08:57:00Z")),
            None,
            utc("2026-03-02T08:57:00Z"),
        );
        assert_eq!(skipped.last_fire, Some(utc("2026-03-02T08:55:00Z")));
        assert_eq!(skipped.skips, 1);
        check(&none, &skipped, &nobody, "2026-03-02T08:57:00Z", "2026-03-02T08:58:00Z", "wait 09:00:00");
        // A seconds schedule down for a week: the count stops at the cap, one fire still.
        let every_second = entry_with("* * * * * *", None, |s| s.catch_up = Some("none".to_owned()));
        check(
            &every_second,
            &state(Some("2026-02-23T09:00:00Z")),
            &nobody,
            UP,
            "2026-03-02T08:59:59Z",
            "skip 08:59:59: missed 1000 or more scheduled times while the daemon was down (catch_up: none)",
        );
    }

    #[test]
    fn starting_deadline() {
        let deadline = entry_with("0 * * * *", None, |s| s.starting_deadline_ms = Some(120_000));
        let last = state(Some("2026-03-02T08:00:00Z"));
        let nobody = Previous::default();
        check(&deadline, &last, &nobody, "2026-03-02T09:01:00Z", "2026-03-02T09:01:00Z", "fire 09:00:00 catch-up");
        check(
            &deadline,
            &last,
            &nobody,
            "2026-03-02T09:05:00Z",
            "2026-03-02T09:05:00Z",
            "skip 09:00:00: 5m late, past the starting deadline of 2m (starting_deadline)",
        );
    }

    #[test]
    fn overlap_policies() {
        let with = |policy: &str| entry_with("* * * * *", None, |s| s.overlap = Some(policy.to_owned()));
        let last = state(Some("2026-03-02T10:00:00Z"));
        let now = "2026-03-02T10:01:00Z";
        check(
            &with("skip"),
            &last,
            &going(7),
            UP,
            now,
            "skip 10:01:00: run 7 of this schedule is still going (overlap: skip)",
        );
        check(&with("skip"), &last, &done(7), UP, now, "fire 10:01:00");
        check(&with("allow"), &last, &going(7), UP, now, "fire 10:01:00");
        check(&with("cancel_previous"), &last, &going(7), UP, now, "fire 10:01:00 cancel 7");
        check(&with("cancel_previous"), &last, &done(7), UP, now, "fire 10:01:00");
        check(&with("queue_one"), &last, &going(7), UP, now, "queue 10:01:00 behind 7");
        // Default: skip.
        check(
            &entry("* * * * *", None),
            &last,
            &going(7),
            UP,
            now,
            "skip 10:01:00: run 7 of this schedule is still going (overlap: skip)",
        );
    }

    #[test]
    fn queue_one_starts_the_queued_fire_when_the_run_ends() {
        let queue = entry_with("* * * * *", None, |s| s.overlap = Some("queue_one".to_owned()));
        let now = utc("2026-03-02T10:01:00Z");
        let last = state(Some("2026-03-02T10:00:00Z"));
        let queued = last.after(&decide(&queue, &last, &going(7), utc(UP), now), None, now);
        assert_eq!(queued.pending, Some(now));
        assert_eq!(
            queued.last_note.as_ref().map(|n| n.reason.as_str()),
            Some("queued behind run 7, still going (overlap: queue_one)")
        );
        // While run 7 goes on, nothing until the next minute; once it ended, the queued fire at once.
        assert_eq!(wake_at(&queue, &queued, true), Some(utc("2026-03-02T10:02:00Z")));
        assert_eq!(wake_at(&queue, &queued, false), Some(now));
        check(&queue, &queued, &going(7), UP, "2026-03-02T10:01:30Z", "wait 10:02:00");
        check(&queue, &queued, &done(7), UP, "2026-03-02T10:01:30Z", "fire 10:01:00");
        // A second time while it still goes: one fire waits, the latest.
        let again = queued.after(
            &decide(&queue, &queued, &going(7), utc(UP), utc("2026-03-02T10:02:00Z")),
            None,
            utc("2026-03-02T10:02:00Z"),
        );
        assert_eq!(again.pending, Some(utc("2026-03-02T10:02:00Z")));
        assert!(
            again
                .last_note
                .as_ref()
                .is_some_and(|n| n.reason.contains("replaces the fire queued for 2026-03-02T10:01:00Z"))
        );
        // Fired: nothing waits any more.
        let decision = decide(&queue, &again, &done(7), utc(UP), utc("2026-03-02T10:02:10Z"));
        let fired = again.after(&decision, Some(run(8)), utc("2026-03-02T10:02:10Z"));
        assert_eq!((fired.pending, fired.last_run, fired.fires), (None, Some(run(8)), 1));
        check(&queue, &fired, &going(8), UP, "2026-03-02T10:02:20Z", "wait 10:03:00");
    }

    #[test]
    fn escalations_pause_and_cool_down() {
        let paused = entry_with("* * * * *", None, |s| {
            s.pause_while_escalated = true;
            s.cooldown_ms = Some(30 * 60_000);
        });
        let pause_only = entry_with("* * * * *", None, |s| s.pause_while_escalated = true);
        let cooldown_only = entry_with("* * * * *", None, |s| s.cooldown_ms = Some(30 * 60_000));
        let last = state(Some("2026-03-02T10:00:00Z"));
        let escalated = |acknowledged| Previous {
            run: Some(run(7)),
            running: false,
            escalation: Some(Escalated { run: run(9), at: utc("2026-03-02T10:00:20Z"), acknowledged }),
        };
        let now = "2026-03-02T10:01:00Z";
        let paused_text = "skip 10:01:00: paused: run 9 escalated and is not acknowledged; `runbook ack 9` resumes the schedule (pause_while_escalated)";
        check(&paused, &last, &escalated(false), UP, now, paused_text);
        check(&pause_only, &last, &escalated(false), UP, now, paused_text);
        // Acknowledged: the cooldown from the escalation time still applies.
        check(
            &paused,
            &last,
            &escalated(true),
            UP,
            now,
            "skip 10:01:00: cooling down after the escalation of run 9 until 2026-03-02T10:30:20Z (cooldown)",
        );
        check(
            &paused,
            &state(Some("2026-03-02T10:30:00Z")),
            &escalated(true),
            UP,
            "2026-03-02T10:31:00Z",
            "fire 10:31:00",
        );
        check(&pause_only, &last, &escalated(true), UP, now, "fire 10:01:00");
        // A cooldown alone applies whether or not anyone acknowledged.
        check(
            &cooldown_only,
            &last,
            &escalated(false),
            UP,
            now,
            "skip 10:01:00: cooling down after the escalation of run 9 until 2026-03-02T10:30:20Z (cooldown)",
        );
        // Without either key, an escalation changes nothing.
        check(&entry("* * * * *", None), &last, &escalated(false), UP, now, "fire 10:01:00");
        assert_eq!(pause_reason(&paused, &done(7), utc(now)), None);
    }

    #[test]
    fn state_after_decisions() {
        let every_minute = entry_with("* * * * *", None, |s| s.overlap = Some("cancel_previous".to_owned()));
        let last = state(Some("2026-03-02T10:00:00Z"));
        let now = utc("2026-03-02T10:01:00Z");
        let decision = decide(&every_minute, &last, &going(7), utc(UP), now);
        let fired = last.after(&decision, Some(run(8)), now);
        assert_eq!(fired.last_fire, Some(now));
        assert_eq!(fired.last_run, Some(run(8)));
        assert_eq!(fired.last_run_for, Some(now));
        assert_eq!(fired.fires, 1);
        assert_eq!(
            fired.last_note.map(|n| n.reason),
            Some("cancelled run 7, still going (overlap: cancel_previous)".to_owned())
        );
        // The state round-trips through its stored JSON.
        let text = serde_json::to_string(&last).expect("serialises");
        assert_eq!(serde_json::from_str::<ScheduleState>(&text).expect("parses"), last);
        // Entry keys change with the cron and the time zone.
        let spec = |cron: &str, tz: Option<&str>| ScheduleSpec {
            cron: cron.to_owned(),
            timezone: tz.map(str::to_owned),
            inputs: Default::default(),
            overlap: None,
            catch_up: None,
            starting_deadline_ms: None,
            pause_while_escalated: false,
            cooldown_ms: None,
        };
        assert_eq!(entry_key("diagnose", 0, &spec("*/5 * * * *", None)), "diagnose#0#UTC#*/5 * * * *");
        assert_ne!(
            entry_key("diagnose", 0, &spec("*/5 * * * *", None)),
            entry_key("diagnose", 0, &spec("*/10 * * * *", None))
        );
        assert_ne!(
            entry_key("diagnose", 0, &spec("0 6 * * *", None)),
            entry_key("diagnose", 0, &spec("0 6 * * *", Some("Europe/Paris")))
        );
    }
}

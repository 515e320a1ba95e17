//! Autoscaling on consumer lag and rates: how many instances an app needs, from what Kafka says
//! about its inputs. Pure: the controller feeds it samples and acts on its decisions, and the
//! unit tests feed it recorded series.
//!
//! The policy: the app needs enough instances to keep up with the input rate at
//! `target_utilization` of their capacity and to drain the current lag within `catch_up`.
//!
//! - **Lag** counts records: log-end minus committed offsets, less the tail offsets that hold no
//!   record (transaction markers and aborted records, found by the controller's read_committed
//!   probe). Without that, every partition written transactionally keeps a lag of one marker
//!   forever and the app never looks idle.
//! - **Capacity** per instance is learnt from intervals in which work waited: a run of at least
//!   three in which work waited throughout (outside a cooldown; one with no commit in it
//!   extends the run) measures it, over the whole run; one that drained the backlog, or ran
//!   during a cooldown's rebalance, shows the instances did at least that much and can only
//!   raise it. A measurement below the estimate is taken only once the whole rate window
//!   measured less (a stall of a few intervals would otherwise read as a tiny capacity and
//!   scale the app to its maximum). Until any is known, the most one instance was seen to do bounds scale-down, and
//!   lag per instance (`max_lag_per_replica`) bounds scale-up.
//! - **Input** is the rate over the window; while nothing waits, the last interval's rate when
//!   that is lower, so an app that has drained its burst is not held up by the burst's average.
//!
//! While lag grows it never scales down. The count is clamped to [min, min(max, max useful)]
//! and aligned so the tasks spread evenly over the threads (5 instances that leave two threads
//! with two tasks each run no faster than 3). Up at once (at most `max_step` more); down only
//! to the highest recommendation of the last `stabilization`, once that whole window
//! recommended less; no change during `cooldown` after one, so a rebalance is not read as load.
//! After a burst is drained the app is back at its minimum within cooldown + stabilisation + two
//! intervals (one for the drain to be measured, one for the window to be covered).

use std::collections::VecDeque;
use std::time::Duration;

/// The settings, with the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Fewest instances (`minReplicas`, default 1).
    pub min_replicas: u32,
    /// Most instances (`maxReplicas`, capped by what the tasks can use).
    pub max_replicas: u32,
    /// Share of the measured capacity the input may use (`targetUtilization`).
    pub target_utilization: f64,
    /// How soon the lag must be drained (`catchUpDuration`).
    pub catch_up: Duration,
    /// How long recommendations must stay lower before scaling down (`scaleDownStabilization`).
    pub stabilization: Duration,
    /// No change this long after one (`cooldown`).
    pub cooldown: Duration,
    /// Most instances added at once (`maxScaleUpStep`).
    pub max_step: u32,
    /// Before any capacity is measured: one instance per this much lag (`maxLagPerReplica`).
    pub max_lag_per_replica: u64,
    /// How far back rates are measured.
    pub window: Duration,
    /// The shortest span between two samples: committed offsets move only at commits, so a
    /// rate over less than the commit interval says more about when the commit fell than about
    /// the app. The controller uses the larger of `metricsInterval` and `commit.interval.ms`.
    pub interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_replicas: 1,
            max_replicas: u32::MAX,
            target_utilization: 0.7,
            catch_up: Duration::from_secs(300),
            stabilization: Duration::from_secs(300),
            cooldown: Duration::from_secs(60),
            max_step: 4,
            max_lag_per_replica: 10_000,
            window: Duration::from_secs(300),
            interval: Duration::from_secs(15),
        }
    }
}

/// One measurement of the app's inputs: summed over every input partition (sources and
/// repartition topics), at `at` seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When it was taken, in seconds on the operator's monotonic clock.
    pub at: f64,
    /// Log-end offsets summed.
    pub end: i64,
    /// Committed offsets summed (a partition without one counts from where the app would start).
    pub committed: i64,
    /// Offsets between committed and end that hold no record to process (transaction markers,
    /// aborted records).
    pub no_records: i64,
    /// Every instance was running and ready, none starting, stopping or rolling: an interval
    /// between two such samples shows what the instances do, one with a pod starting (its
    /// restore, the rebalance it causes) only that they did at least that much.
    pub settled: bool,
}

impl Sample {
    /// Records waiting: what the autoscaler scales on.
    pub fn lag(&self) -> i64 {
        (self.raw_lag() - self.no_records).max(0)
    }

    /// Log-end minus committed offsets, as Kafka's tools show it.
    pub fn raw_lag(&self) -> i64 {
        (self.end - self.committed).max(0)
    }
}

/// Why the autoscaler chose its count, for status and Events.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The instances to run.
    pub replicas: u32,
    /// The count before stabilisation and cooldown (what the load asks for now).
    pub recommended: u32,
    /// Records waiting (the lag used).
    pub lag: i64,
    /// Log-end minus committed offsets.
    pub raw_lag: i64,
    /// Records/s arriving, over the window; `None` until two samples span it.
    pub input_rate: Option<f64>,
    /// Records/s committed, over the window; `None` until two samples span it.
    pub processing_rate: Option<f64>,
    /// Why, in words, for the `Scaling` condition and the `Autoscaled` Event.
    pub reason: String,
}

/// The autoscaler's memory of one app.
#[derive(Clone, Debug, Default)]
pub struct Autoscaler {
    samples: VecDeque<Sample>,
    /// (time, recommendation) over the stabilisation window.
    recommendations: VecDeque<(f64, u32)>,
    last_change: Option<f64>,
    /// The count before the last change: an interval that spans a change is divided by the
    /// larger of the two, so a scale-down never inflates the figure per instance.
    before_change: u32,
    /// Records/s one instance processes, learnt while work was waiting (a rate measured while
    /// the app keeps up only says the input was that fast).
    capacity: Option<f64>,
    /// The sample that began the current run of intervals measuring capacity, with the count
    /// then: the rate over the whole run is steadier than one interval's (whose ends fall
    /// between commits).
    run_start: Option<(Sample, u32)>,
    /// Intervals in the current run.
    run_len: u32,
    /// The most records/s one instance was seen to process since `capacity` was last measured:
    /// a floor under capacity, from intervals that drained a backlog or ran during a cooldown,
    /// and from the window's average (what the instances kept up with).
    floor: Option<f64>,
    /// Capacity measurements below the estimate, from consecutive busy intervals: (time,
    /// records/s per instance). A stall of a few intervals reads as "busy throughout" at a
    /// fraction of the capacity, so a lower figure is taken only once it held for the whole
    /// rate window.
    below: VecDeque<(f64, f64)>,
    /// When the run that measured `capacity` began: later intervals of the same run refine
    /// the figure (more of the same work, fewer commit boundaries), they do not contradict it.
    capacity_run: Option<f64>,
}

/// Busy intervals a run needs before it measures a capacity. Committed offsets move only at
/// commits, and a throttled instance commits when its loop ends, not every `commit.interval.ms`:
/// one interval can read half or twice the rate (on the test node, 268/s measured against
/// 569/s drained, which scaled a 1.25× load to four instances). Over three intervals the
/// commit boundaries at its ends weigh a third as much; later intervals of the run refine it.
const MIN_RUN_INTERVALS: u32 = 3;

/// What one interval says about capacity per instance.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Measured {
    /// Work waited throughout: the instances did what they could.
    Capacity(f64),
    /// Everything processed had waited since its start, but not to its end (a drain), or a
    /// rebalance slowed it: at least this much.
    AtLeast(f64),
    /// Work waited throughout but no commit fell in the interval: a throttled instance's
    /// loop can take longer than the interval, so its commits land every other one. Part of
    /// a run of busy intervals, with no rate of its own (the next interval's commit covers
    /// both, and alone would read twice the capacity).
    Pending,
}

/// Seconds of `d`.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The smallest count at least `wanted` whose slowest thread carries no more tasks than needed:
/// with `tasks` tasks over `replicas × threads` threads the slowest carries
/// ceil(tasks / threads total), so the capacity is tasks / that many thread-equivalents.
pub fn align(wanted: u32, tasks: u32, threads: u32) -> u32 {
    let threads = threads.max(1);
    if tasks == 0 {
        return wanted;
    }
    let need = (u64::from(wanted) * u64::from(threads)).min(u64::from(tasks));
    (1..=tasks.div_ceil(threads).max(1))
        .find(|&r| {
            let per_thread = u64::from(tasks).div_ceil(u64::from(r) * u64::from(threads));
            u64::from(tasks) / per_thread >= need
        })
        .unwrap_or(wanted)
        .max(wanted.min(tasks.div_ceil(threads)))
}

impl Autoscaler {
    /// Records a sample (one that follows the last by less than half the interval is dropped:
    /// reconciles come more often than measurements should) and forgets those older than the
    /// window.
    pub fn observe(&mut self, sample: Sample, policy: &Policy) {
        if self
            .samples
            .back()
            .is_some_and(|last| sample.at - last.at < secs(policy.interval) / 2.0)
        {
            return;
        }
        self.samples.push_back(sample);
        while self
            .samples
            .front()
            .is_some_and(|s| sample.at - s.at > secs(policy.window))
        {
            self.samples.pop_front();
        }
    }

    /// Records/s of log-end growth and of committed growth over the window; `None` with fewer
    /// than two samples.
    fn rates(&self) -> Option<(f64, f64)> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let span = last.at - first.at;
        if span <= 0.0 {
            return None;
        }
        Some((
            (last.end - first.end).max(0) as f64 / span,
            (last.committed - first.committed).max(0) as f64 / span,
        ))
    }

    /// Lag grew over the last two samples.
    fn lag_growing(&self) -> bool {
        let n = self.samples.len();
        n >= 2 && self.samples[n - 1].lag() > self.samples[n - 2].lag()
    }

    /// What the last interval says about capacity per instance: nothing unless some work was
    /// done in it.
    fn measured(&self, current: u32, cooling: bool) -> Option<Measured> {
        let n = self.samples.len();
        if n < 2 || current == 0 {
            return None;
        }
        let (a, b) = (self.samples[n - 2], self.samples[n - 1]);
        let processed = (b.committed - a.committed).max(0);
        let span = b.at - a.at;
        if span <= 0.0 {
            return None;
        }
        if processed == 0 {
            // Records arrived and none was committed while some waited: an idle app whose
            // lag is stuck (markers nobody recognised) has no input, so it is not busy.
            let busy = a.lag() > 0
                && b.lag() > a.lag()
                && b.end > a.end
                && !cooling
                && a.settled
                && b.settled;
            return busy.then_some(Measured::Pending);
        }
        let instances = if self.last_change.is_some_and(|t| t >= a.at) {
            current.max(self.before_change)
        } else {
            current
        };
        let rate = processed as f64 / span / f64::from(instances);
        // Busy throughout only if what waited at the start could have kept them busy for the
        // whole interval: a lag of a commit interval's worth, then records arriving in a burst
        // (or a stall of the instances) would otherwise read as their capacity, far too low.
        if a.lag() >= processed && b.lag() >= processed && !cooling && a.settled && b.settled {
            Some(Measured::Capacity(rate))
        } else if a.lag() >= processed {
            // Everything it processed was already waiting at its start: it ran at full speed
            // for at least that long (a drain, or a rebalance in a cooldown).
            Some(Measured::AtLeast(rate))
        } else {
            None
        }
    }

    /// Records/s per instance processed over the whole window: what the instances kept up
    /// with, a floor under their capacity, smooth where one interval is not.
    fn window_rate(&self, current: u32) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let span = last.at - first.at;
        let instances = if self.last_change.is_some_and(|t| t >= first.at) {
            current.max(self.before_change)
        } else {
            current
        };
        let processed = (last.committed - first.committed).max(0);
        (span > 0.0 && processed > 0 && instances > 0)
            .then(|| processed as f64 / span / f64::from(instances))
    }

    /// Records/s per instance over the run of capacity-measuring intervals the last one
    /// continues (`None` when it begins one, or nothing was committed in it yet; with the same
    /// count throughout).
    fn over_the_run(&mut self, current: u32) -> Option<f64> {
        let n = self.samples.len();
        let (first, last) = (self.samples[n - 2], self.samples[n - 1]);
        let (start, count) = match self.run_start {
            Some((start, count))
                if count == current && self.last_change.is_none_or(|t| t < start.at) =>
            {
                (start, count)
            }
            _ => {
                self.run_start = Some((first, current));
                self.run_len = 1;
                return None;
            }
        };
        self.run_len += 1;
        let span = last.at - start.at;
        let processed = (last.committed - start.committed).max(0);
        // A run that has committed nothing yet measures nothing (its commit is pending).
        (span > 0.0 && count > 0 && processed > 0)
            .then(|| processed as f64 / span / f64::from(count))
    }

    /// Takes a capacity measured at `now`: at once when no estimate exists or it is not below
    /// it; otherwise once every interval over the rate window measured less, at the highest
    /// of those rates. Until then lag still drives the count up (`catchUpDuration`), so a real
    /// slowdown is met while it is being confirmed, and a stall is not mistaken for one.
    fn take_capacity(&mut self, now: f64, rate: f64, policy: &Policy) {
        let estimate = self.capacity.map(|c| self.floor.map_or(c, |f| c.max(f)));
        if estimate.is_some_and(|e| rate < e) {
            self.below.push_back((now, rate));
            let since = self.below.front().map_or(now, |(t, _)| *t);
            if now - since < secs(policy.window) {
                return;
            }
            let highest = self.below.iter().map(|(_, r)| *r).fold(rate, f64::max);
            self.set_capacity(highest);
        } else {
            self.set_capacity(rate);
        }
    }

    /// `rate` becomes the capacity, measured by the current run.
    fn set_capacity(&mut self, rate: f64) {
        self.capacity = Some(rate);
        self.capacity_run = self.run_start.map(|(s, _)| s.at);
        self.floor = None;
        self.below.clear();
    }

    fn raise_floor(&mut self, rate: f64) {
        self.floor = Some(self.floor.map_or(rate, |f| f.max(rate)));
    }

    /// Records/s of log-end growth over the last interval.
    fn recent_input(&self) -> Option<f64> {
        let n = self.samples.len();
        if n < 2 {
            return None;
        }
        let (a, b) = (self.samples[n - 2], self.samples[n - 1]);
        let span = b.at - a.at;
        (span > 0.0).then(|| (b.end - a.end).max(0) as f64 / span)
    }

    /// What the load asks for now, before stabilisation.
    fn recommend(
        &self,
        policy: &Policy,
        current: u32,
        cap: u32,
        tasks: u32,
        threads: u32,
    ) -> (u32, String) {
        let lag = self.samples.back().map_or(0, Sample::lag);
        let upper = policy.max_replicas.min(cap).max(1);
        let lower = policy.min_replicas.clamp(1, upper);
        let by_lag = (lag as u64)
            .div_ceil(policy.max_lag_per_replica.max(1))
            .max(1) as u32;
        if self.samples.is_empty() {
            return (
                current.clamp(lower, upper),
                "no offsets measured yet".to_owned(),
            );
        }
        // While nothing waits, a falling input is safe to follow at once (the stabilisation
        // window still guards the scale-down); the window's average alone would hold an app
        // that drained its burst at the burst's size until the window forgot it.
        let rates = self.rates().map(|(input, _)| match self.recent_input() {
            Some(recent) if lag == 0 => input.min(recent),
            _ => input,
        });
        // A floor above the last measurement means the instances did better since.
        let capacity = self.capacity.map(|c| self.floor.map_or(c, |f| c.max(f)));
        let (wanted, why) = match (rates, capacity) {
            (Some(input), Some(per_replica)) => {
                let for_input = input / (per_replica * policy.target_utilization);
                let for_lag = (input + lag as f64 / secs(policy.catch_up).max(1.0)) / per_replica;
                let wanted = for_input.max(for_lag).ceil().max(1.0);
                (
                    wanted.min(f64::from(u32::MAX)) as u32,
                    format!(
                        "input {input:.0}/s, capacity {per_replica:.0}/s per instance, lag {lag}"
                    ),
                )
            }
            // Idle: no input, nothing waiting.
            (Some(input), None) if input == 0.0 && lag == 0 => {
                (lower, "no input and no lag".to_owned())
            }
            // Keeping up, capacity not measured: fewer instances will do when the input is well
            // below what one was seen to process, never more than run now on that account (a
            // floor says nothing about headroom).
            (Some(input), None) => match self.floor {
                Some(shown) => {
                    let for_input = (input / (shown * policy.target_utilization)).ceil() as u32;
                    (
                        by_lag.max(for_input.min(current)),
                        format!(
                            "input {input:.0}/s, capacity not measured under load (at least {shown:.0}/s per instance seen); lag {lag}"
                        ),
                    )
                }
                None => (
                    by_lag.max(current),
                    format!(
                        "input {input:.0}/s kept up with, capacity not measured yet; lag {lag}"
                    ),
                ),
            },
            (None, _) => (
                by_lag,
                format!(
                    "no rates yet; lag {lag} at {} per instance",
                    policy.max_lag_per_replica
                ),
            ),
        };
        let mut wanted = wanted;
        let mut why = why;
        if self.lag_growing() && wanted < current {
            wanted = current;
            why.push_str("; lag growing, no scale-down");
        }
        let aligned = align(wanted.clamp(lower, upper), tasks, threads).clamp(lower, upper);
        (aligned, why)
    }

    /// The count to run now, given `current`; the caller applies it when it differs.
    pub fn decide(
        &mut self,
        now: f64,
        policy: &Policy,
        current: u32,
        cap: u32,
        tasks: u32,
        threads: u32,
    ) -> Decision {
        let cooling = self
            .last_change
            .is_some_and(|t| now - t < secs(policy.cooldown));
        let measured = self.measured(current, cooling);
        // A rebalance after a change slows processing for a while, and a drain leaves the
        // instances idle for part of the interval: both only show a floor under capacity.
        match measured {
            Some(busy @ (Measured::Capacity(_) | Measured::Pending)) => {
                let run_rate = self.over_the_run(current);
                // A commit-less interval extends the run; the rate is read where commits fell.
                match run_rate.filter(|_| matches!(busy, Measured::Capacity(_))) {
                    Some(run_rate)
                        if self.capacity_run.is_some()
                            && self.capacity_run == self.run_start.map(|(s, _)| s.at) =>
                    {
                        self.set_capacity(run_rate);
                    }
                    Some(run_rate) if self.run_len >= MIN_RUN_INTERVALS => {
                        self.take_capacity(now, run_rate, policy)
                    }
                    // Too short a run to say: its ends fall between commits.
                    _ => {}
                }
            }
            Some(Measured::AtLeast(rate)) => {
                self.run_start = None;
                self.below.clear();
                self.raise_floor(rate);
            }
            None => {
                self.run_start = None;
                self.below.clear();
            }
        }
        if let Some(rate) = self.window_rate(current) {
            self.raise_floor(rate);
        }
        let (recommended, why) = self.recommend(policy, current, cap, tasks, threads);
        // What each decision rests on, for a user asking why the app runs this many instances.
        tracing::debug!(
            ?measured,
            capacity = ?self.capacity,
            floor = ?self.floor,
            below = self.below.len(),
            lag = self.samples.back().map_or(0, Sample::lag),
            current,
            recommended,
            %why,
            "autoscaler interval"
        );
        self.recommendations.push_back((now, recommended));
        // Keep one recommendation from before the window: it proves the window is covered.
        let window = secs(policy.stabilization);
        while self.recommendations.len() >= 2 && now - self.recommendations[1].0 >= window {
            self.recommendations.pop_front();
        }
        let rates = self.rates();
        let lag = self.samples.back().map_or(0, Sample::lag);
        let raw_lag = self.samples.back().map_or(0, Sample::raw_lag);
        let decision = |replicas: u32, reason: String| Decision {
            replicas,
            recommended,
            lag,
            raw_lag,
            input_rate: rates.map(|r| r.0),
            processing_rate: rates.map(|r| r.1),
            reason,
        };
        if cooling && recommended != current {
            return decision(current, format!("cooldown after the last change; {why}"));
        }
        let replicas = if recommended > current {
            recommended.min(current.saturating_add(policy.max_step.max(1)))
        } else if recommended < current {
            // Down only once the whole window asked for less, to its highest ask.
            let covered = self
                .recommendations
                .front()
                .is_some_and(|(t, _)| now - t >= window);
            let highest = self
                .recommendations
                .iter()
                .filter(|(t, _)| now - t < window)
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(current);
            if covered && highest < current {
                highest
            } else {
                return decision(
                    current,
                    format!("waiting out the scale-down stabilisation; {why}"),
                );
            }
        } else {
            current
        };
        if replicas != current {
            self.last_change = Some(now);
            self.before_change = current;
        }
        decision(replicas, why)
    }
}

#[cfg(test)]
mod tests;

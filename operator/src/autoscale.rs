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
//! - **Capacity** per instance is learnt from intervals in which work waited: one in which work
//!   waited throughout (outside a cooldown) measures it; one that drained the backlog, or ran
//!   during a cooldown's rebalance, shows the instances did at least that much and can only
//!   raise it. Until any is known, the most one instance was seen to do bounds scale-down, and
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
    /// The most records/s one instance was seen to process since `capacity` was last measured:
    /// a floor under capacity, from intervals that drained a backlog or ran during a cooldown,
    /// and from the window's average (what the instances kept up with).
    floor: Option<f64>,
}

/// What one interval says about capacity per instance.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Measured {
    /// Work waited throughout: the instances did what they could.
    Capacity(f64),
    /// Everything processed had waited since its start, but not to its end (a drain), or a
    /// rebalance slowed it: at least this much.
    AtLeast(f64),
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
        if span <= 0.0 || processed == 0 {
            return None;
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
        // A rebalance after a change slows processing for a while, and a drain leaves the
        // instances idle for part of the interval: both only show a floor under capacity.
        match self.measured(current, cooling) {
            Some(Measured::Capacity(rate)) => {
                self.capacity = Some(rate);
                self.floor = None;
            }
            Some(Measured::AtLeast(rate)) => self.raise_floor(rate),
            None => {}
        }
        if let Some(rate) = self.window_rate(current) {
            self.raise_floor(rate);
        }
        let (recommended, why) = self.recommend(policy, current, cap, tasks, threads);
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
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min_replicas: 1,
            max_replicas: 10,
            target_utilization: 0.7,
            catch_up: Duration::from_secs(60),
            stabilization: Duration::from_secs(60),
            cooldown: Duration::from_secs(15),
            max_step: 4,
            max_lag_per_replica: 1000,
            window: Duration::from_secs(60),
            interval: Duration::from_secs(15),
        }
    }

    /// Simulates an app whose instances each process `per_replica` records/s, fed `input[i]`
    /// records/s during step i (15 s each), from `start` instances; the replicas after each
    /// step and the lag.
    fn simulate(input: &[i64], per_replica: i64, start: u32, cap: u32) -> (Vec<u32>, Vec<i64>) {
        let (p, mut a) = (policy(), Autoscaler::default());
        let (mut end, mut committed, mut current) = (0i64, 0i64, start);
        let (mut replicas, mut lags) = (Vec::new(), Vec::new());
        for (i, rate) in input.iter().enumerate() {
            end += rate * 15;
            committed = (committed + per_replica * i64::from(current) * 15).min(end);
            let at = i as f64 * 15.0;
            a.observe(
                Sample {
                    at,
                    end,
                    committed,
                    no_records: 0,
                    settled: true,
                },
                &p,
            );
            current = a.decide(at, &p, current, cap, 12, 2).replicas;
            replicas.push(current);
            lags.push(end - committed);
        }
        println!("replicas per 15 s step: {replicas:?}");
        (replicas, lags)
    }

    fn changes(replicas: &[u32]) -> Vec<usize> {
        (1..replicas.len())
            .filter(|&i| replicas[i] != replicas[i - 1])
            .collect()
    }

    #[test]
    fn aligning_spreads_tasks_evenly() {
        assert_eq!(align(5, 12, 2), 6);
        assert_eq!(align(3, 12, 2), 3);
        assert_eq!(align(4, 12, 2), 6);
        assert_eq!(align(1, 12, 2), 1);
        assert_eq!(
            align(2, 6, 2),
            3,
            "2 of 6 tasks per thread on one thread: as slow as 3 threads"
        );
        assert_eq!(align(7, 6, 1), 6, "never more than the tasks");
    }

    #[test]
    fn steady_load_changes_nothing() {
        let (replicas, lags) = simulate(&[1500; 30], 1000, 2, 6);
        assert!(replicas.iter().all(|&r| r == 2), "{replicas:?}");
        assert!(lags.iter().all(|&l| l == 0), "{lags:?}");
    }

    #[test]
    fn a_burst_scales_up_at_once_and_drained_load_comes_down_after_the_window() {
        // 500/s, then a 10-fold burst for a minute, then nothing.
        let mut input = vec![500; 4];
        input.extend([5000; 4]);
        input.extend([0; 30]);
        let (replicas, lags) = simulate(&input, 1000, 1, 6);
        let up = replicas.iter().position(|&r| r > 1).expect("scaled up");
        assert!(
            up <= 4 + 2,
            "scaled up {} steps after the burst: {replicas:?}",
            up - 4
        );
        assert!(
            replicas.iter().all(|&r| r <= 6),
            "above the cap: {replicas:?}"
        );
        let drained = (up..lags.len()).find(|&i| lags[i] == 0).expect("drained");
        let down = (drained..replicas.len())
            .find(|&i| replicas[i] < replicas[i - 1])
            .expect("scaled down");
        // The step before the drain still asked for more: the whole window since it asked for
        // fewer before the scale-down.
        assert!(
            (down - drained + 1) * 15 >= 60,
            "scaled down {} s after the last higher recommendation, inside the 60 s window: {replicas:?}",
            (down - drained + 1) * 15
        );
        assert_eq!(*replicas.last().expect("steps"), 1, "{replicas:?}");
    }

    #[test]
    fn oscillating_load_does_not_flap() {
        // 3000/s and nothing, alternating every 15 s, against 1000/s per instance.
        let input: Vec<i64> = (0..40).map(|i| if i % 2 == 0 { 3000 } else { 0 }).collect();
        let (replicas, _) = simulate(&input, 1000, 1, 6);
        let c = changes(&replicas);
        println!("scale changes under oscillating load: {}", c.len());
        for w in c.windows(2) {
            assert!(
                w[1] - w[0] >= 4,
                "two changes within a 60 s window: {replicas:?}"
            );
        }
        assert!(c.len() <= 3, "{} changes: {replicas:?}", c.len());
    }

    #[test]
    fn missing_offsets_change_nothing() {
        // Kafka did not answer: no sample, so the running count stays.
        let (p, mut a) = (policy(), Autoscaler::default());
        for i in 0..10 {
            let d = a.decide(f64::from(i) * 15.0, &p, 3, 6, 12, 2);
            assert_eq!(d.replicas, 3, "{d:?}");
        }
    }

    #[test]
    fn without_rates_lag_per_instance_decides() {
        let (p, mut a) = (policy(), Autoscaler::default());
        a.observe(
            Sample {
                at: 0.0,
                end: 3500,
                committed: 0,
                no_records: 0,
                settled: true,
            },
            &p,
        );
        let d = a.decide(0.0, &p, 1, 6, 6, 1);
        assert_eq!(d.recommended, 6, "4 by lag, aligned to 6 tasks");
        assert_eq!(d.replicas, 5, "one step of at most 4");
        assert!(d.reason.contains("no rates yet"), "{}", d.reason);
    }

    #[test]
    fn a_partition_nobody_reads_is_lag_not_progress() {
        // Committed offsets never move (no consumer reads): no capacity is measured, so lag per
        // instance decides, up to the cap.
        let (p, mut a) = (policy(), Autoscaler::default());
        let mut current = 1;
        for i in 0..6 {
            let at = f64::from(i) * 15.0;
            a.observe(
                Sample {
                    at,
                    end: i64::from(i) * 1000 + 5000,
                    committed: 0,
                    no_records: 0,
                    settled: true,
                },
                &p,
            );
            current = a.decide(at, &p, current, 3, 12, 2).replicas;
        }
        assert_eq!(current, 3, "lag of 10000 at 1000 per instance, capped at 3");
    }

    /// A closed loop on the settings (5 s interval, 30 s window, 20 s cooldown, 40 s
    /// stabilisation): instances each process `per_replica` records/s; a transactional writer
    /// leaves one marker per partition (12) at the tail that no commit passes.
    struct Loop {
        policy: Policy,
        scaler: Autoscaler,
        at: f64,
        end: i64,
        committed: i64,
        current: u32,
        per_replica: i64,
        transactional: bool,
        /// Whether the controller's tail probe reports the markers.
        probe: bool,
        /// Records processed but not committed yet while records arrive (a commit interval's
        /// worth): the committed offsets trail the processing.
        trail: i64,
        replicas: Vec<u32>,
        lags: Vec<i64>,
    }

    impl Loop {
        fn new(per_replica: i64, transactional: bool) -> Self {
            Loop {
                policy: Policy {
                    min_replicas: 1,
                    max_replicas: 4,
                    window: Duration::from_secs(30),
                    cooldown: Duration::from_secs(20),
                    stabilization: Duration::from_secs(40),
                    catch_up: Duration::from_secs(30),
                    max_lag_per_replica: 10_000,
                    interval: Duration::from_secs(5),
                    ..Policy::default()
                },
                scaler: Autoscaler::default(),
                at: 0.0,
                end: 0,
                committed: 0,
                current: 1,
                per_replica,
                transactional,
                probe: true,
                trail: 0,
                replicas: Vec::new(),
                lags: Vec::new(),
            }
        }

        /// One 5 s interval with `arriving` records, then the autoscaler's decision.
        fn step(&mut self, arriving: i64) {
            self.step_at_speed(arriving, 1.0);
        }

        /// [`Self::step`] with the instances processing at `speed` times their capacity (a
        /// stall: a compaction, a throttled period, a broker's pause).
        fn step_at_speed(&mut self, arriving: i64, speed: f64) {
            const MARKERS: i64 = 12;
            if arriving > 0 {
                self.end += arriving + if self.transactional { MARKERS } else { 0 };
            }
            // The last transaction's markers stay behind every commit.
            let tail = if self.transactional && self.end > 0 {
                MARKERS
            } else {
                0
            };
            let records_end = (self.end - tail).max(0);
            let processed = (self.per_replica as f64 * speed) as i64 * i64::from(self.current) * 5;
            self.committed = (self.committed + processed).min(records_end);
            let committed = if arriving > 0 {
                (self.committed - self.trail).max(0)
            } else {
                self.committed
            };
            let caught_up = committed == records_end;
            self.scaler.observe(
                Sample {
                    at: self.at,
                    end: self.end,
                    committed,
                    no_records: if self.probe && caught_up { tail } else { 0 },
                    settled: true,
                },
                &self.policy,
            );
            let d = self
                .scaler
                .decide(self.at, &self.policy, self.current, 4, 12, 1);
            self.current = d.replicas;
            self.replicas.push(self.current);
            self.lags.push(records_end - self.committed);
            self.at += 5.0;
        }

        /// How often the count turned from up to down or back.
        fn direction_changes(&self) -> usize {
            let moves: Vec<i64> = self
                .replicas
                .windows(2)
                .map(|w| i64::from(w[1]) - i64::from(w[0]))
                .filter(|d| *d != 0)
                .map(i64::signum)
                .collect();
            moves.windows(2).filter(|w| w[0] != w[1]).count()
        }
    }

    /// The defect users met: 1.5M records drained inside the cooldown after a scale-up, under
    /// exactly-once (markers at every tail). Back at the minimum within cooldown +
    /// stabilisation + 2 intervals of the drain, with or without markers.
    #[test]
    fn a_burst_drained_inside_the_cooldown_comes_back_to_the_minimum() {
        for transactional in [false, true] {
            let mut l = Loop::new(30_000, transactional);
            l.step(1_500_000);
            for _ in 0..40 {
                l.step(0);
            }
            println!("transactional {transactional}: {:?}", l.replicas);
            assert_eq!(l.replicas.iter().max(), Some(&4), "{:?}", l.replicas);
            let drained = l.lags.iter().position(|&x| x == 0).expect("drained");
            let back = (drained..l.replicas.len())
                .find(|&i| l.replicas[i] == 1)
                .unwrap_or_else(|| panic!("never back to 1: {:?}", l.replicas));
            let limit = (20.0 + 40.0 + 2.0 * 5.0) / 5.0;
            assert!(
                (back - drained) as f64 <= limit,
                "back to 1 {} s after the drain: {:?}",
                (back - drained) * 5,
                l.replicas
            );
            assert!(l.direction_changes() <= 2, "{:?}", l.replicas);
            let d = l.scaler.decide(l.at, &l.policy, 1, 4, 12, 1);
            assert_eq!(d.lag, 0, "{d:?}");
            assert_eq!(d.raw_lag, if transactional { 12 } else { 0 }, "{d:?}");
        }
    }

    /// An app that finished its input before the operator looked (nothing processed since, so
    /// neither capacity nor a floor is known) and whose partitions end in transaction markers:
    /// idle only when the markers are recognised as no records (what users met: held at its
    /// peak).
    #[test]
    fn markers_alone_are_not_lag() {
        for recognised in [false, true] {
            let (p, mut a) = (policy(), Autoscaler::default());
            let mut current = 3;
            for i in 0..10 {
                let at = f64::from(i) * 15.0;
                a.observe(
                    Sample {
                        at,
                        end: 1_000,
                        committed: 988,
                        no_records: if recognised { 12 } else { 0 },
                        settled: true,
                    },
                    &p,
                );
                let d = a.decide(at, &p, current, 6, 12, 2);
                assert_eq!(d.raw_lag, 12, "{d:?}");
                current = d.replicas;
            }
            assert_eq!(
                current,
                if recognised { 1 } else { 3 },
                "recognised {recognised}"
            );
        }
    }

    /// Kept up from the start, so capacity was never measured under load: when the input
    /// falls well below what the instances were seen to do, fewer are recommended.
    #[test]
    fn a_falling_input_scales_down_without_a_capacity_measurement() {
        let mut l = Loop::new(1_000, false);
        l.current = 4;
        for _ in 0..12 {
            l.step(2_000 * 5);
        }
        assert_eq!(l.current, 4, "steady input kept up with: {:?}", l.replicas);
        assert!(l.scaler.capacity.is_none(), "never saturated");
        for _ in 0..20 {
            l.step(200 * 5);
        }
        assert_eq!(l.current, 1, "{:?}", l.replicas);
        assert!(l.lags.iter().all(|&x| x == 0), "{:?}", l.lags);
    }

    /// Input above one instance's capacity: settles on a count that keeps up and stays there.
    #[test]
    fn steady_input_above_one_instance_settles_without_flapping() {
        let mut l = Loop::new(1_000, true);
        for _ in 0..120 {
            l.step(2_500 * 5);
        }
        println!("{:?}", l.replicas);
        let settled = l.replicas[20];
        assert!(settled >= 3, "{:?}", l.replicas);
        assert!(
            l.replicas[20..].iter().all(|&r| r == settled),
            "flapped after settling: {:?}",
            l.replicas
        );
        assert!(l.lags[20..].iter().all(|&x| x < 2_500 * 5), "{:?}", l.lags);
        assert!(l.direction_changes() == 0, "{:?}", l.replicas);
    }

    /// Settled under a steady input, the instances stall for one interval now and then (a
    /// compaction, a throttled period, a broker's pause) and catch up after, or the input comes
    /// in a burst: such an interval processes far less than the instances can, and the
    /// autoscaler, taking it for their capacity, scaled out to the maximum and stayed there
    /// (the estimate never rose again while the instances kept up).
    #[test]
    fn a_stall_of_one_interval_does_not_scale_out_a_settled_app() {
        // Two instances take the input at 57% of their capacity, and the most any window sees
        // (a burst's extra interval in it) at 66%, under the 70% target.
        let mut l = Loop::new(1_100, false);
        l.trail = 300;
        for _ in 0..40 {
            l.step(1_250 * 5);
        }
        let settled = l.current;
        assert_eq!(settled, 2, "{:?}", l.replicas);
        for _ in 0..3 {
            // The instances stall for an interval and catch up.
            l.step_at_speed(1_250 * 5, 0.1);
            for _ in 0..10 {
                l.step(1_250 * 5);
            }
            // The input pauses for an interval and arrives at twice its rate in the next.
            l.step(0);
            l.step(2 * 1_250 * 5);
            for _ in 0..10 {
                l.step(1_250 * 5);
            }
        }
        assert!(
            l.replicas[40..].iter().all(|&r| r == settled),
            "a stall scaled the app: {:?}",
            l.replicas
        );
    }

    /// While a pod starts (its restore, the rebalance it causes) the instances process less
    /// than they can: the interval only shows a floor, however much waits.
    #[test]
    fn an_interval_with_a_pod_starting_does_not_measure_capacity() {
        let (p, mut a) = (policy(), Autoscaler::default());
        let sample = |at: f64, committed: i64, settled: bool| Sample {
            at,
            end: 100_000,
            committed,
            no_records: 0,
            settled,
        };
        a.observe(sample(0.0, 0, false), &p);
        a.observe(sample(15.0, 15_000, true), &p);
        a.decide(15.0, &p, 1, 1, 12, 2);
        assert_eq!((a.capacity, a.floor), (None, Some(1_000.0)), "{a:?}");
        a.observe(sample(30.0, 45_000, true), &p);
        a.decide(30.0, &p, 1, 1, 12, 2);
        assert_eq!(a.capacity, Some(2_000.0), "settled throughout: {a:?}");
    }

    /// Reconciles come more often than measurements (a pod's status change triggers one): a
    /// sample a moment after the last, across a commit, would read as a huge rate.
    #[test]
    fn samples_closer_than_half_the_interval_are_not_measurements() {
        let (p, mut a) = (policy(), Autoscaler::default());
        let sample = |at: f64, committed: i64| Sample {
            at,
            end: 100_000,
            committed,
            no_records: 0,
            settled: true,
        };
        // One useful instance (cap 1), so no scale change and no cooldown.
        a.observe(sample(0.0, 0), &p);
        a.observe(sample(0.2, 20_000), &p);
        a.decide(0.2, &p, 1, 1, 12, 2);
        assert!(a.capacity.is_none() && a.floor.is_none(), "{a:?}");
        a.observe(sample(15.0, 30_000), &p);
        a.decide(15.0, &p, 1, 1, 12, 2);
        assert_eq!(a.capacity, Some(2_000.0), "30,000 records in 15 s");
    }
}

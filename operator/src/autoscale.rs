//! Autoscaling on consumer lag and rates: how many instances an app needs, from what Kafka says
//! about its inputs. Pure: the controller feeds it samples and acts on its decisions, and the
//! unit tests feed it recorded series.
//!
//! The policy (issue 8): capacity per instance is the processing rate measured now divided by
//! the instances running; the app needs enough instances to keep up with the input rate at
//! `target_utilization` and to drain the current lag within `catch_up`. While lag grows it
//! never scales down. The count is clamped to [min, min(max, max useful)] and aligned so the
//! tasks spread evenly over the threads (5 instances that leave two threads with two tasks each
//! run no faster than 3). Up at once (at most `max_step` more); down only to the highest
//! recommendation of the last `stabilization`, once that whole window recommended less; no
//! change during `cooldown` after one, so a rebalance is not read as load. Before any rate is
//! measured, lag per instance (`max_lag_per_replica`) decides.

use std::collections::VecDeque;
use std::time::Duration;

/// The settings, with the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub target_utilization: f64,
    pub catch_up: Duration,
    pub stabilization: Duration,
    pub cooldown: Duration,
    pub max_step: u32,
    pub max_lag_per_replica: u64,
    /// How far back rates are measured.
    pub window: Duration,
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
        }
    }
}

/// One measurement of the app's inputs: summed over every input partition (sources and
/// repartition topics), at `at` seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: f64,
    /// Log-end offsets summed.
    pub end: i64,
    /// Committed offsets summed (a partition without one counts from where the app would start).
    pub committed: i64,
}

impl Sample {
    pub fn lag(&self) -> i64 {
        (self.end - self.committed).max(0)
    }
}

/// Why the autoscaler chose its count, for status and Events.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub replicas: u32,
    /// The count before stabilisation and cooldown (what the load asks for now).
    pub recommended: u32,
    pub lag: i64,
    pub input_rate: Option<f64>,
    pub processing_rate: Option<f64>,
    pub reason: String,
}

/// The autoscaler's memory of one app.
#[derive(Clone, Debug, Default)]
pub struct Autoscaler {
    samples: VecDeque<Sample>,
    /// (time, recommendation) over the stabilisation window.
    recommendations: VecDeque<(f64, u32)>,
    last_change: Option<f64>,
    /// Records/s one instance processes, measured while work was waiting (a rate measured
    /// while the app keeps up only says the input was that fast).
    capacity: Option<f64>,
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
    /// Records a sample and forgets those older than the window.
    pub fn observe(&mut self, sample: Sample, policy: &Policy) {
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

    /// The processing rate of the last interval per instance, when work waited throughout it.
    fn saturated_rate(&self, current: u32) -> Option<f64> {
        let n = self.samples.len();
        if n < 2 || current == 0 {
            return None;
        }
        let (a, b) = (self.samples[n - 2], self.samples[n - 1]);
        let processed = (b.committed - a.committed).max(0);
        let span = b.at - a.at;
        (span > 0.0 && processed > 0 && b.lag() >= processed)
            .then(|| processed as f64 / span / f64::from(current))
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
        let (wanted, why) = match (self.rates(), self.capacity) {
            (Some((input, _)), Some(per_replica)) => {
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
            (Some((input, _)), None) if input == 0.0 && lag == 0 => {
                (lower, "no input and no lag".to_owned())
            }
            // Keeping up, capacity unknown: nothing says fewer would do.
            (Some((input, _)), None) => (
                by_lag.max(current),
                format!("input {input:.0}/s kept up with, capacity not measured yet; lag {lag}"),
            ),
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
        // A rebalance after a change slows processing for a while: not a capacity measurement.
        if !cooling && let Some(rate) = self.saturated_rate(current) {
            self.capacity = Some(rate);
        }
        let (recommended, why) = self.recommend(policy, current, cap, tasks, threads);
        self.recommendations.push_back((now, recommended));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - t > secs(policy.stabilization))
        {
            self.recommendations.pop_front();
        }
        let rates = self.rates();
        let lag = self.samples.back().map_or(0, Sample::lag);
        let decision = |replicas: u32, reason: String| Decision {
            replicas,
            recommended,
            lag,
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
                .is_some_and(|(t, _)| now - t >= secs(policy.stabilization) - 1e-6);
            let highest = self
                .recommendations
                .iter()
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
            a.observe(Sample { at, end, committed }, &p);
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
        assert!(
            (down - drained) * 15 >= 60,
            "scaled down {} s after draining, inside the 60 s window: {replicas:?}",
            (down - drained) * 15
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
    fn without_rates_lag_per_instance_decides() {
        let (p, mut a) = (policy(), Autoscaler::default());
        a.observe(
            Sample {
                at: 0.0,
                end: 3500,
                committed: 0,
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
                },
                &p,
            );
            current = a.decide(at, &p, current, 3, 12, 2).replicas;
        }
        assert_eq!(current, 3, "lag of 10000 at 1000 per instance, capped at 3");
    }
}

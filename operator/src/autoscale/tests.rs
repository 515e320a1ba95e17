//! The autoscaler's policy on simulated apps: bursts, steady and oscillating input, stalls,
//! transaction markers, starting pods.

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

/// A stall longer than one interval (a throttled pod, a broker's pause, a machine busy with
/// something else): from its second interval the lag at both ends exceeds what the
/// instances processed, so the interval reads as "busy throughout" at a tenth of the real
/// capacity. The defect CI met: settled at two, the app went to the maximum and stayed
/// there. A lower capacity needs the whole rate window to confirm it; lag drives the count
/// meanwhile.
#[test]
fn a_stall_of_several_intervals_does_not_replace_the_capacity() {
    let mut l = Loop::new(1_100, false);
    l.trail = 300;
    for _ in 0..40 {
        l.step(1_250 * 5);
    }
    let settled = l.current;
    assert_eq!(settled, 2, "{:?}", l.replicas);
    let known = l.scaler.capacity;
    for _ in 0..2 {
        for _ in 0..3 {
            l.step_at_speed(1_250 * 5, 0.1);
        }
        for _ in 0..20 {
            l.step(1_250 * 5);
        }
    }
    assert_eq!(l.scaler.capacity, known, "{:?}", l.scaler);
    assert!(
        l.replicas[40..].iter().all(|&r| r <= settled + 1),
        "a 15 s stall scaled the app out: {:?}",
        l.replicas
    );
    assert_eq!(l.current, settled, "{:?}", l.replicas);
}

/// The instances really became slower (heavier records): measured below the estimate over
/// the whole rate window, the lower capacity is taken, at the highest rate the window saw.
#[test]
fn a_lasting_drop_in_capacity_is_taken_after_the_window() {
    let mut l = Loop::new(1_100, false);
    for _ in 0..40 {
        l.step(1_250 * 5);
    }
    assert_eq!(l.current, 2, "{:?}", l.replicas);
    for _ in 0..30 {
        l.step_at_speed(1_250 * 5, 0.5);
    }
    let capacity = l.scaler.capacity.expect("measured");
    assert!(
        (500.0..=600.0).contains(&capacity),
        "capacity {capacity} after 150 s at 550/s per instance"
    );
    assert_eq!(
        l.current, 4,
        "1250/s at 550/s per instance: {:?}",
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
        end: 1_000_000,
        committed,
        no_records: 0,
        settled,
    };
    a.observe(sample(0.0, 0, false), &p);
    a.observe(sample(15.0, 15_000, true), &p);
    a.decide(15.0, &p, 1, 1, 12, 2);
    assert_eq!((a.capacity, a.floor), (None, Some(1_000.0)), "{a:?}");
    // A run of three settled intervals measures it.
    for (at, committed) in [(30.0, 45_000), (45.0, 75_000), (60.0, 105_000)] {
        a.observe(sample(at, committed, true), &p);
        a.decide(at, &p, 1, 1, 12, 2);
    }
    assert_eq!(a.capacity, Some(2_000.0), "settled throughout: {a:?}");
}

/// Under a backlog, interval ends fall between commits: one interval reads high, the next
/// low. The capacity is the rate over the whole run, not the last interval's.
#[test]
fn capacity_is_the_rate_over_the_run_of_busy_intervals() {
    let (p, mut a) = (policy(), Autoscaler::default());
    let mut committed = 0;
    for (i, processed) in [0, 40_000, 20_000, 40_000, 20_000].iter().enumerate() {
        committed += processed;
        a.observe(
            Sample {
                at: i as f64 * 15.0,
                end: 1_000_000,
                committed,
                no_records: 0,
                settled: true,
            },
            &p,
        );
        a.decide(i as f64 * 15.0, &p, 1, 1, 12, 2);
    }
    assert_eq!(a.capacity, Some(2_000.0), "120,000 records in 60 s: {a:?}");
}

/// Reconciles come more often than measurements (a pod's status change triggers one): a
/// sample a moment after the last, across a commit, would read as a huge rate.
#[test]
fn samples_closer_than_half_the_interval_are_not_measurements() {
    let (p, mut a) = (policy(), Autoscaler::default());
    let sample = |at: f64, committed: i64| Sample {
        at,
        end: 1_000_000,
        committed,
        no_records: 0,
        settled: true,
    };
    // One useful instance (cap 1), so no scale change and no cooldown.
    a.observe(sample(0.0, 0), &p);
    a.observe(sample(0.2, 20_000), &p);
    a.decide(0.2, &p, 1, 1, 12, 2);
    assert!(a.capacity.is_none() && a.floor.is_none(), "{a:?}");
    for (at, committed) in [(15.0, 30_000), (30.0, 60_000), (45.0, 90_000)] {
        a.observe(sample(at, committed), &p);
        a.decide(at, &p, 1, 1, 12, 2);
    }
    assert_eq!(
        a.capacity,
        Some(2_000.0),
        "30,000 records every 15 s from 0"
    );
}

/// A throttled instance (a CPU limit) whose processing loop outlasts the interval commits
/// every other interval: one interval reads nothing committed, the next twice its rate.
/// Measured alone, that second interval made the capacity twice the real one (and rising as
/// the loop's batches grew), and the app stayed at one instance under 1.3 times what one
/// processes (`autoscaling_steady` on a busy machine). The run of busy intervals, the
/// commit-less ones included, measures it.
#[test]
fn commits_every_other_interval_measure_the_capacity_over_the_run() {
    // As the end-to-end test: lag alone does not scale before a capacity is known.
    let p = Policy {
        max_lag_per_replica: 1_000_000,
        ..policy()
    };
    let mut a = Autoscaler::default();
    let (per_replica, input) = (540i64, 710i64);
    // Records waited when the input started (the pod was catching up).
    let (mut end, mut processed, mut committed, mut current) = (20_000i64, 0i64, 0i64, 1u32);
    let mut replicas = Vec::new();
    for i in 0..12 {
        let at = f64::from(i) * 15.0;
        if i > 0 {
            end += input * 15;
            processed = (processed + per_replica * i64::from(current) * 15).min(end);
            // The commit falls in every other interval while one instance runs.
            if current > 1 || i % 2 == 0 {
                committed = processed;
            }
        }
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
        current = a.decide(at, &p, current, 6, 12, 2).replicas;
        replicas.push(current);
        if current > 1 {
            break;
        }
    }
    let capacity = a.capacity.expect("measured");
    assert!(
        (per_replica as f64 * 0.9..=per_replica as f64 * 1.1).contains(&capacity),
        "capacity {capacity} for {per_replica}/s per instance"
    );
    assert!(
        replicas.last().is_some_and(|&r| r >= 2),
        "710/s at 540/s per instance: {replicas:?}"
    );
}

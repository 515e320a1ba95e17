//! Conditions of a StreamsApp, in the shape `kubectl wait --for=condition=...` reads, and which
//! status changes are worth a write.
//!
//! A condition keeps its `lastTransitionTime` while its status stays the same, so a reconcile
//! that changes nothing makes an identical status (and the operator writes nothing). One whose
//! only change is a measurement that moves under any traffic (the lag, rates) is written at most
//! once per refresh interval: every write is a new resourceVersion, sent to every watcher of
//! StreamsApps (the operator's own controller included).

use freshet_crds::StreamsAppStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// All instances run the specified topology and are ready.
pub const READY: &str = "Ready";
/// The topology compiles and its inputs can be joined as written.
pub const TOPOLOGY_VALID: &str = "TopologyValid";
/// The configuration resolves: every property known and valid, no secret in `spec.config`.
pub const CONFIG_VALID: &str = "ConfigValid";
/// Source topics exist and internal topics are created.
pub const TOPICS_READY: &str = "TopicsReady";
/// How the instance count was decided: as requested, capped at what the tasks can use, or
/// autoscaled.
pub const SCALING: &str = "Scaling";
/// True when the running topology is not the specified one (a change held).
pub const DEGRADED: &str = "Degraded";

/// The conditions of an app without a plan: a refused configuration (a property,
/// `spec.kafka` or `spec.schemaRegistry`) is `ConfigValid`'s, a topology that does not compile `TopologyValid`'s; the
/// message names the property and its field, never a secret's value.
pub fn plan_refused(error: &freshet_spec::PlanError) -> [Judged; 2] {
    let (type_, reason, what) = match error {
        freshet_spec::PlanError::Config(_)
        | freshet_spec::PlanError::Kafka(_)
        | freshet_spec::PlanError::Registry(_) => (
            CONFIG_VALID,
            "ConfigInvalid",
            "the configuration is refused",
        ),
        freshet_spec::PlanError::Topology(_) => (
            TOPOLOGY_VALID,
            "TopologyInvalid",
            "the topology does not compile",
        ),
    };
    [
        Judged::new(type_, false, reason, error.to_string()),
        Judged::new(
            READY,
            false,
            reason,
            format!("{what}; the running version (if any) is kept"),
        ),
    ]
}

/// One condition as the reconciler judges it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    /// The condition's type (`Ready`, `TopologyValid`, ...).
    pub type_: &'static str,
    /// The condition's status: True or False.
    pub status: bool,
    /// A CamelCase reason, also the Event's reason.
    pub reason: String,
    /// What a user should know, and do.
    pub message: String,
}

impl Judged {
    /// A condition as judged now.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Judged {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_text(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// The conditions to write: `judged`, with the transition times of `previous` kept where the
/// status did not change, and the previous conditions of types not judged now kept as they were.
pub fn merge(previous: &[Condition], judged: &[Judged], generation: Option<i64>) -> Vec<Condition> {
    let mut out: Vec<Condition> = judged
        .iter()
        .map(|j| {
            let status = status_text(j.status).to_owned();
            let since = previous
                .iter()
                .find(|p| p.type_ == j.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| Time(Timestamp::now()));
            Condition {
                type_: j.type_.to_owned(),
                status,
                reason: j.reason.clone(),
                message: j.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect();
    for p in previous {
        if !out.iter().any(|c| c.type_ == p.type_) {
            out.push(p.clone());
        }
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Whether `judged` differs from what `previous` says (status, reason or message): Events are
/// sent only then, so a steady state does not repeat them.
pub fn changed(previous: &[Condition], judged: &Judged) -> bool {
    !previous.iter().any(|p| {
        p.type_ == judged.type_
            && p.status == status_text(judged.status)
            && p.reason == judged.reason
            && p.message == judged.message
    })
}

/// The reason of the `Scaling` condition while the autoscaler decides; its message quotes the
/// autoscaler's reason, and so its measurements.
pub const AUTOSCALED: &str = "Autoscaled";

/// Whether `a` and `b` differ at most in measurements: `lag`, the autoscaler's lag, raw lag,
/// rates and reason (which quotes them), and the autoscaled `Scaling` condition's message.
/// Decisions (replicas, conditions' states and reasons) and everything else count.
pub fn same_but_measurements(a: &StreamsAppStatus, b: &StreamsAppStatus) -> bool {
    without_measurements(a) == without_measurements(b)
}

fn without_measurements(s: &StreamsAppStatus) -> StreamsAppStatus {
    let mut s = s.clone();
    s.lag = None;
    if let Some(a) = &mut s.autoscaling {
        a.lag = 0;
        a.raw_lag = 0;
        a.input_rate = None;
        a.processing_rate = None;
        a.reason.clear();
    }
    for c in &mut s.conditions {
        if c.type_ == SCALING && c.reason == AUTOSCALED {
            c.message.clear();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_and_rates_alone_are_measurements_decisions_are_not() {
        let conditions = merge(
            &[],
            &[
                Judged::new(READY, true, "InstancesReady", "1 of 1 instances ready"),
                Judged::new(SCALING, false, AUTOSCALED, "1 instances: lag 10"),
            ],
            Some(1),
        );
        let base = StreamsAppStatus {
            conditions,
            lag: Some(10),
            replicas: Some(1),
            autoscaling: Some(freshet_crds::AutoscalingStatus {
                lag: 10,
                raw_lag: 12,
                input_rate: Some(5.0),
                desired_replicas: 1,
                reason: "lag 10".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut moved = base.clone();
        moved.lag = Some(99);
        let a = moved.autoscaling.as_mut().expect("autoscaling");
        a.lag = 99;
        a.raw_lag = 100;
        a.input_rate = Some(50.0);
        a.reason = "lag 99".into();
        moved
            .conditions
            .iter_mut()
            .find(|c| c.type_ == SCALING)
            .expect("Scaling")
            .message = "1 instances: lag 99".into();
        assert!(same_but_measurements(&base, &moved));

        let mut scaled = moved.clone();
        scaled
            .autoscaling
            .as_mut()
            .expect("autoscaling")
            .desired_replicas = 2;
        assert!(!same_but_measurements(&base, &scaled));
        let mut not_ready = moved.clone();
        let ready = not_ready
            .conditions
            .iter_mut()
            .find(|c| c.type_ == READY)
            .expect("Ready");
        ready.message = "0 of 1 instances ready".into();
        assert!(!same_but_measurements(&base, &not_ready));
        let mut fewer = moved;
        fewer.replicas = Some(0);
        assert!(!same_but_measurements(&base, &fewer));
    }

    #[test]
    fn an_unchanged_status_keeps_its_transition_time() {
        let first = merge(
            &[],
            &[Judged::new(READY, false, "Starting", "0 of 1")],
            Some(1),
        );
        let old_time = Time(Timestamp::UNIX_EPOCH);
        let previous = vec![Condition {
            last_transition_time: old_time.clone(),
            ..first[0].clone()
        }];
        let again = merge(
            &previous,
            &[Judged::new(READY, false, "Starting", "0 of 2")],
            Some(2),
        );
        assert_eq!(again[0].last_transition_time, old_time);
        assert_eq!(again[0].message, "0 of 2");
        let flipped = merge(
            &previous,
            &[Judged::new(READY, true, "Running", "")],
            Some(2),
        );
        assert_ne!(flipped[0].last_transition_time, old_time);
        assert!(changed(&previous, &Judged::new(READY, true, "Running", "")));
        assert!(!changed(
            &previous,
            &Judged::new(READY, false, "Starting", "0 of 1")
        ));
    }

    #[test]
    fn conditions_not_judged_now_are_kept() {
        let previous = merge(&[], &[Judged::new(TOPICS_READY, true, "Created", "")], None);
        let now = merge(
            &previous,
            &[Judged::new(TOPOLOGY_VALID, false, "Invalid", "x")],
            None,
        );
        let types: Vec<&str> = now.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [TOPICS_READY, TOPOLOGY_VALID]);
    }
}

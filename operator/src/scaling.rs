//! How many instances an application can use, and what it asks for: the decisions the
//! reconciler takes on replicas that need no cluster, shared with `freshet-operator render`.

use std::time::Duration;

use freshet_crds::{AutoscalingSpec, StreamsAppSpec};
use k8s_openapi::api::apps::v1::StatefulSet;

use crate::autoscale::{Autoscaler, Policy};

/// The instances `spec` asks for: `spec.replicas`, 1 when unset (never negative).
pub fn requested_replicas(spec: &StreamsAppSpec) -> i32 {
    spec.replicas.unwrap_or(1).max(0)
}

/// `spec.autoscaling` when it is on.
pub fn autoscaling(spec: &StreamsAppSpec) -> Option<&AutoscalingSpec> {
    spec.autoscaling.as_ref().filter(|a| a.enabled)
}

/// An autoscaling setting the operator cannot use; the message starts with the field's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.autoscaling.{field}: {source}")]
pub struct AutoscalingError {
    /// The field, as the manifest spells it (`cooldown`).
    pub field: &'static str,
    /// Why its value is not a duration.
    #[source]
    pub source: freshet_spec::duration::DurationError,
}

fn duration_field(
    value: Option<&String>,
    default: Duration,
    field: &'static str,
) -> Result<Duration, AutoscalingError> {
    match value {
        None => Ok(default),
        Some(text) => {
            freshet_spec::duration::parse(text).map_err(|source| AutoscalingError { field, source })
        }
    }
}

/// How often the autoscaler measures (`metricsInterval`, default 15 s). `Err` names the field.
pub fn metrics_interval(spec: &AutoscalingSpec) -> Result<Duration, AutoscalingError> {
    duration_field(
        spec.metrics_interval.as_ref(),
        Duration::from_secs(15),
        "metricsInterval",
    )
}

/// The autoscaler's policy from `spec.autoscaling`, its defaults filling what is unset; a
/// measurement interval shorter than the app's `commit_interval` is raised to it. `Err` names
/// the unusable field.
pub fn autoscaling_policy(
    spec: &AutoscalingSpec,
    commit_interval: Duration,
) -> Result<Policy, AutoscalingError> {
    let defaults = Policy::default();
    Ok(Policy {
        min_replicas: spec.min_replicas.unwrap_or(1).max(1) as u32,
        max_replicas: spec.max_replicas.map_or(u32::MAX, |m| m.max(1) as u32),
        target_utilization: spec
            .target_utilization
            .unwrap_or(defaults.target_utilization),
        catch_up: duration_field(
            spec.catch_up_duration.as_ref(),
            defaults.catch_up,
            "catchUpDuration",
        )?,
        stabilization: duration_field(
            spec.scale_down_stabilization.as_ref(),
            defaults.stabilization,
            "scaleDownStabilization",
        )?,
        cooldown: duration_field(spec.cooldown.as_ref(), defaults.cooldown, "cooldown")?,
        max_step: spec
            .max_scale_up_step
            .map_or(defaults.max_step, |s| s.max(1) as u32),
        max_lag_per_replica: spec
            .max_lag_per_replica
            .map_or(defaults.max_lag_per_replica, |l| l.max(1) as u64),
        window: duration_field(spec.window.as_ref(), defaults.window, "window")?,
        interval: metrics_interval(spec)?.max(commit_interval),
    })
}

/// The replicas of a new app whose partitions are not known (`freshet-operator render`): what
/// it asks for; with autoscaling on, the autoscaler's first decision before any offsets are
/// measured: raised to `minReplicas` (at most `maxScaleUpStep` at once), while a request above
/// `maxReplicas` stays until the scale-down stabilisation has passed. The reconciler also caps
/// at what the partitions can use, which needs Kafka.
pub fn replicas_without_partitions(spec: &StreamsAppSpec, policy: Option<&Policy>) -> i32 {
    let requested = requested_replicas(spec);
    match policy {
        None => requested,
        Some(policy) => {
            let threads = spec.num_stream_threads.unwrap_or(1).max(1);
            // Unknown partitions: no cap, and as many tasks as the instances could want.
            Autoscaler::default()
                .decide(0.0, policy, requested as u32, u32::MAX, u32::MAX, threads)
                .replicas as i32
        }
    }
}

/// The most instances that can all hold work: each stream thread runs at least one task, and a
/// sub-topology has a task per input partition, so instances beyond
/// ceil(max tasks of any sub-topology / threads per instance) would sit idle.
pub fn max_useful_replicas(tasks_per_subtopology: &[u32], threads_per_instance: u32) -> u32 {
    let max_tasks = tasks_per_subtopology.iter().copied().max().unwrap_or(0);
    max_tasks.div_ceil(threads_per_instance.max(1))
}

/// Whether the app's instances are all up as specified: every replica ready and of the current
/// revision, none starting, stopping or rolling. A pod starting restores its stores and makes
/// the group rebalance, so what the instances process meanwhile is no measure of their
/// capacity.
pub fn settled(set: Option<&StatefulSet>) -> bool {
    let Some(set) = set else { return false };
    let wanted = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &set.status else {
        return false;
    };
    status.observed_generation == set.metadata.generation
        && status.replicas == wanted
        && status.ready_replicas.unwrap_or(0) == wanted
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.current_revision == status.update_revision
}

/// The input topic with the most partitions, which bounds the tasks (internal topics follow
/// the inputs, so only these can be widened).
pub fn widest_source(
    plan: &crate::kafka::Plan,
    partitions: &std::collections::BTreeMap<String, i32>,
) -> String {
    let app = &plan.config.application_id;
    plan.topology
        .source_topics()
        .iter()
        .filter(|t| matches!(t, freshet_spec::topology::TopicName::External(_)))
        .map(|t| t.resolve(app))
        .max_by_key(|t| partitions.get(t).copied().unwrap_or(0))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_partitions_the_request_or_the_autoscalers_first_look() {
        let spec = |yaml: &str| -> StreamsAppSpec {
            serde_yaml_ng::from_str(&format!(
                "applicationId: a\nbootstrapServers: k:9092\ntopology: {{}}\n{yaml}"
            ))
            .expect("spec")
        };
        assert_eq!(replicas_without_partitions(&spec(""), None), 1);
        assert_eq!(replicas_without_partitions(&spec("replicas: 4"), None), 4);
        let auto =
            spec("replicas: 1\nautoscaling: { enabled: true, minReplicas: 3, maxReplicas: 5 }");
        let policy =
            autoscaling_policy(autoscaling(&auto).expect("enabled"), Duration::from_secs(1))
                .expect("policy");
        assert_eq!(replicas_without_partitions(&auto, Some(&policy)), 3);
        let above = spec("replicas: 9\nautoscaling: { enabled: true, maxReplicas: 5 }");
        let policy = autoscaling_policy(autoscaling(&above).expect("enabled"), Duration::ZERO)
            .expect("policy");
        assert_eq!(
            replicas_without_partitions(&above, Some(&policy)),
            9,
            "down only after the stabilisation window"
        );
        let bad = spec("autoscaling: { enabled: true, cooldown: soon }");
        let err = autoscaling_policy(autoscaling(&bad).expect("enabled"), Duration::ZERO)
            .expect_err("a bad duration");
        assert_eq!(err.field, "cooldown");
        assert!(
            err.to_string()
                .starts_with("spec.autoscaling.cooldown: 'soon'"),
            "{err}"
        );
    }

    #[test]
    fn the_cap_is_tasks_over_threads_rounded_up() {
        assert_eq!(max_useful_replicas(&[6], 2), 3);
        assert_eq!(max_useful_replicas(&[6, 12], 2), 6);
        assert_eq!(max_useful_replicas(&[5], 2), 3);
        assert_eq!(max_useful_replicas(&[4], 1), 4);
        assert_eq!(max_useful_replicas(&[], 1), 0);
        assert_eq!(
            max_useful_replicas(&[3], 0),
            3,
            "zero threads is treated as one"
        );
    }
}

//! Conditions of a StreamsApp, in the shape `kubectl wait --for=condition=...` reads.
//!
//! A condition keeps its `lastTransitionTime` while its status stays the same, so a reconcile
//! that changes nothing writes an identical status (and the apiserver stores nothing new).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// All instances run the specified topology and are ready.
pub const READY: &str = "Ready";
/// The topology compiles and its inputs can be joined as written.
pub const TOPOLOGY_VALID: &str = "TopologyValid";
/// Source topics exist and internal topics are created.
pub const TOPICS_READY: &str = "TopicsReady";
/// How the instance count was decided: as requested, capped at what the tasks can use, or
/// autoscaled.
pub const SCALING: &str = "Scaling";
/// True when the running topology is not the specified one (a change held).
pub const DEGRADED: &str = "Degraded";

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

#[cfg(test)]
mod tests {
    use super::*;

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

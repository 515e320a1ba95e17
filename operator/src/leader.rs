//! Leader election on a `coordination.k8s.io` Lease, as client-go's leaderelection does it, so
//! two operator replicas never reconcile at once.
//!
//! The holder renews the Lease every retry period; a candidate takes it over once
//! `renewTime + leaseDurationSeconds` has passed. Every write carries the resourceVersion it
//! read, so of two candidates racing for an expired Lease only one wins.
//!
//! A leader that cannot renew for two thirds of the lease duration (client-go's renew deadline:
//! 10 s of 15) steps down: [`hold`] returns, and the caller stops its controller before the
//! Lease can expire and another replica take it. It then campaigns again like a new replica
//! rather than exiting: an apiserver that is restarted or briefly unreachable would otherwise
//! restart every operator pod, and on Kubernetes each restart lengthens the next one's
//! back-off. That is safe because nothing of the old term reconciles once `hold` has returned
//! (the caller drops the controller, cancelling its reconciles; a Kafka call already running
//! finishes, and every one is idempotent: creating topics that exist, reading offsets, the
//! reset of an app whose instances are stopped), and the new term takes the Lease only as a
//! new replica would, when it is free, expired or still its own, and starts from a fresh list
//! of every object.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Where the leader Lease lives and how it is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// The Lease's namespace (the operator's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// How long a leader's Lease lasts without renewal.
    pub duration: Duration,
    /// Between renewals, and between attempts to take the Lease.
    pub retry: Duration,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(lease: &Lease, settings: &LeaseSettings) -> bool {
    let spec = lease.spec.clone().unwrap_or_default();
    let seconds = spec
        .lease_duration_seconds
        .map_or(settings.duration.as_secs() as i64, i64::from);
    match spec.renew_time {
        Some(MicroTime(renewed)) => renewed + SignedDuration::from_secs(seconds) < Timestamp::now(),
        None => true,
    }
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

/// Tries once to take or renew the Lease; `Ok(true)` when this replica holds it afterwards.
async fn try_hold(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&s.name).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": { "name": s.name, "namespace": s.namespace },
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": s.duration.as_secs(),
                "acquireTime": now(),
                "renewTime": now(),
                "leaseTransitions": 0,
            },
        }))
        .map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let mine = holder(&lease).as_deref() == Some(s.identity.as_str());
    if !mine && !expired(&lease, s) {
        return Ok(false);
    }
    let spec = lease.spec.get_or_insert_with(Default::default);
    if !mine {
        spec.holder_identity = Some(s.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(s.duration.as_secs() as i32);
    spec.renew_time = Some(now());
    // replace() sends the resourceVersion read above: a concurrent writer makes it fail.
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(client: &Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    let mut waiting_logged = false;
    loop {
        match try_hold(&api, s).await {
            Ok(true) => {
                tracing::info!(lease = %s.name, identity = %s.identity, "became the leader");
                return;
            }
            Ok(false) if !waiting_logged => {
                tracing::info!(lease = %s.name, "another replica leads; standing by");
                waiting_logged = true;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %s.name, error = %e, "cannot read or take the leader Lease; retrying")
            }
        }
        tokio::time::sleep(s.retry).await;
    }
}

/// How long a leader may go without renewing before it steps down: two thirds of the lease
/// duration, at least a retry period.
pub fn renew_deadline(s: &LeaseSettings) -> Duration {
    (s.duration * 2 / 3).max(s.retry)
}

/// Renews the Lease until it cannot; returns when leadership is lost: another replica took the
/// Lease, or it could not be renewed within the [`renew_deadline`].
pub async fn hold(client: &Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    let deadline = renew_deadline(s);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(s.retry).await;
        // An apiserver that accepts the request and never answers must not hold the step-down
        // past the deadline.
        let left = deadline
            .saturating_sub(last_renewed.elapsed())
            .max(Duration::from_millis(100));
        let tried = tokio::time::timeout(left, try_hold(&api, s))
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(
                    format!("no answer within {left:?}").into(),
                ))
            });
        match tried {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(lease = %s.name, "another replica took the leader Lease");
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %s.name, error = %e, "renewing the leader Lease failed");
                if last_renewed.elapsed() >= deadline {
                    tracing::error!(lease = %s.name, deadline = ?deadline, "the leader Lease could not be renewed within the renew deadline");
                    return;
                }
            }
        }
    }
}

/// Gives the Lease up (on a clean stop), so a standby takes over at its next try rather than
/// after the lease duration.
pub async fn release(client: &Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&s.name).await else {
        return;
    };
    if holder(&lease).as_deref() != Some(s.identity.as_str()) {
        return;
    }
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = None;
    spec.renew_time = None;
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => tracing::info!(lease = %s.name, "released the leader Lease"),
        Err(e) => {
            tracing::warn!(lease = %s.name, error = %e, "cannot release the leader Lease; it expires by itself")
        }
    }
}

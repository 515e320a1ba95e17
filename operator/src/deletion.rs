//! Deleting a StreamsApp with `cleanupPolicy: Delete`, in the order that keeps its data deleted:
//! the StatefulSet scaled to 0, its pods gone, then the internal topics and the consumer group
//! (what Kafka's application reset tool deletes). A running instance would undo a reset done
//! under it: it re-joins the group and commits, and its producers recreate the topics they
//! write (the broker's `auto.create.topics.enable`).
//!
//! Each reconcile of a deleted app runs [`advance`], which does the next stage and returns;
//! waiting is a requeue, never a blocked reconcile. Each stage is told once in an Event. With
//! Kafka unreachable the reset is retried with a doubling delay, and a Warning names the
//! annotation [`SKIP_CLEANUP`], which lets the deletion finish without the reset.
//!
//! [`stop_instances`] and [`reset`] are the two halves, for an application reset of a live app.

use std::time::Duration;

use freshet_admin::AdminError;
use freshet_crds::{CleanupPolicy, StreamsApp};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use crate::context::{Context, Error, MANAGER, lock};
use crate::kafka;
use crate::render;
use crate::secrets::{AppSecrets, SecretsError};

/// Annotation on a StreamsApp: `"true"` lets its deletion finish without deleting its internal
/// topics and consumer group (they stay in Kafka), for when Kafka cannot be reached or the
/// instances cannot be stopped.
pub const SKIP_CLEANUP: &str = "freshet.dev/skip-cleanup";

/// How long the instances may take to go before a Warning says so. Longer than the pods'
/// termination grace (120 s), which a clean close may use.
const STUCK_AFTER: Duration = Duration::from_secs(150);

/// What the deletion needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the finalizer may go.
    Done,
    /// Look again after this long.
    Requeue(Duration),
}

/// Whether the app's instances are gone.
#[derive(Debug, PartialEq, Eq)]
pub enum Instances {
    /// These pods are still there (running or terminating).
    Running(Vec<String>),
    /// No pod of the app is left.
    Stopped,
}

/// The next stage of deleting `app`, whose finalizer is still on it.
pub async fn advance(app: &StreamsApp, ctx: &Context) -> Result<Next, Error> {
    if app.spec.cleanup_policy.unwrap_or_default() != CleanupPolicy::Delete {
        return Ok(Next::Done);
    }
    let id = &app.spec.application_id;
    if app.annotations().get(SKIP_CLEANUP).map(String::as_str) == Some("true") {
        ctx.event(
            app,
            EventType::Warning,
            "CleanupSkipped",
            format!("{SKIP_CLEANUP} is \"true\": deleted without the cleanup; the internal topics and the consumer group {id} stay in Kafka (once Kafka is back: kafka-streams-application-reset --application-id {id} deletes the topics, kafka-consumer-groups --delete --group {id} the group)"),
        )
        .await;
        return Ok(Next::Done);
    }
    let key = Context::key(app);
    match stop_instances(app, ctx, StopFor::Deletion).await? {
        Instances::Running(pods) => {
            let stuck = {
                let mut all = lock(&ctx.deleting);
                let d = all.entry(key).or_default();
                let since = *d.waiting_since.get_or_insert_with(std::time::Instant::now);
                let stuck = since.elapsed() >= STUCK_AFTER && !d.stuck_told;
                d.stuck_told |= stuck;
                stuck.then(|| since.elapsed())
            };
            if let Some(waited) = stuck {
                ctx.event(
                    app,
                    EventType::Warning,
                    "InstancesNotStopping",
                    format!(
                        "{} pods are still there {}s after the scale to 0: {}. The internal topics and the consumer group {id} are deleted once they are gone. A pod on a lost node stays until deleted by hand (kubectl delete pod --force); to finish the deletion without the cleanup: kubectl annotate streamsapp {} {SKIP_CLEANUP}=true",
                        pods.len(),
                        waited.as_secs(),
                        pods.join(", "),
                        app.name_any()
                    ),
                )
                .await;
            }
            // The StatefulSet's status changing as its pods go also triggers a reconcile (the
            // controller watches it); this is the fallback.
            Ok(Next::Requeue(
                ctx.settings.retry.min(Duration::from_secs(5)),
            ))
        }
        Instances::Stopped => {
            let first = {
                let mut all = lock(&ctx.deleting);
                let d = all.entry(key).or_default();
                !std::mem::replace(&mut d.stopped_told, true)
            };
            if first {
                ctx.event(
                    app,
                    EventType::Normal,
                    "InstancesStopped",
                    format!(
                        "no instance runs: deleting the internal topics and the consumer group {id}"
                    ),
                )
                .await;
            }
            reset(app, ctx).await
        }
    }
}

/// Why the instances are stopped, for the Event that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopFor {
    /// The app is deleted with `cleanupPolicy: Delete`.
    Deletion,
    /// `spec.suspend` is true.
    Suspend,
    /// An application reset (the reset annotation, or a reset-and-apply).
    Reset,
}

/// Scales the app's StatefulSet to 0 (an Event says so, once) and tells whether its pods are
/// gone. Does not wait: call it again until [`Instances::Stopped`].
pub async fn stop_instances(
    app: &StreamsApp,
    ctx: &Context,
    why: StopFor,
) -> Result<Instances, Error> {
    let ns = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(sts) = sets.get_opt(&name).await? {
        let ours = sts
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == app.metadata.uid.as_ref());
        let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        if ours && replicas != 0 {
            // A merge patch of the one field: an apply would have to restate the whole object.
            let pp = PatchParams {
                field_manager: Some(MANAGER.to_owned()),
                ..Default::default()
            };
            sets.patch(
                &name,
                &pp,
                &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
            )
            .await?;
            let then = match why {
                StopFor::Deletion => format!(
                    "the internal topics and the consumer group {} are deleted once its pods are gone (a running instance would recreate them)",
                    app.spec.application_id
                ),
                StopFor::Suspend => {
                    "spec.suspend is true; the state and the committed offsets are kept".to_owned()
                }
                StopFor::Reset => format!(
                    "the application {} is reset once its pods are gone",
                    app.spec.application_id
                ),
            };
            ctx.event(
                app,
                EventType::Normal,
                "ScalingToZero",
                format!("scaled the StatefulSet from {replicas} to 0 instances; {then}"),
            )
            .await;
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let left: Vec<String> = pods
        .list(&ListParams::default().labels(&render::selector(app)))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    Ok(if left.is_empty() {
        Instances::Stopped
    } else {
        Instances::Running(left)
    })
}

/// The application reset: deletes the internal topics and the consumer group of `app`, whose
/// instances must be stopped. `Done` when they are gone; a failure is a Warning Event naming
/// [`SKIP_CLEANUP`] and a retry with a doubling delay.
pub async fn reset(app: &StreamsApp, ctx: &Context) -> Result<Next, Error> {
    let spec = app.spec.clone();
    let (cache, key) = (ctx.kafka.clone(), Context::key(app));
    let ns = app.namespace().unwrap_or_default();
    // The credentials of spec.kafka, for the admin client that deletes; unreadable Secrets are
    // reported as the reset's failure (a Warning Event naming the Secret, and a retry).
    let secrets = AppSecrets::read(
        &Api::<Secret>::namespaced(ctx.client.clone(), &ns),
        &ns,
        &app.spec,
    )
    .await;
    let (policy, owned) = (ctx.settings.policy.clone(), app.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let secrets = secrets?;
        let plan =
            freshet_spec::plan_with_secrets(&spec, &secrets).map_err(ResetError::Topology)?;
        // The operator connects nowhere its policy does not allow, to delete either.
        policy.check(&owned, &plan.config)?;
        let clients = cache.get(&key, &plan.config)?;
        kafka::delete_app_data(&clients, &plan)?;
        Ok::<_, ResetError>(plan.internal_topics)
    })
    .await?;
    let id = &app.spec.application_id;
    match outcome {
        Ok(topics) => {
            ctx.waited_enough(app);
            ctx.event(
                app,
                EventType::Normal,
                "ApplicationReset",
                format!(
                    "deleted {} internal topics and the consumer group {id}",
                    topics.len()
                ),
            )
            .await;
            Ok(Next::Done)
        }
        Err(ResetError::Refused(refusal)) => {
            ctx.event(
                app,
                EventType::Warning,
                "CleanupSkipped",
                format!("deleted without the cleanup, since the operator's policy refuses the app: {refusal}. The internal topics and the consumer group {id}, if any, stay in Kafka"),
            )
            .await;
            Ok(Next::Done)
        }
        Err(e) => {
            let delay = ctx.backoff(app);
            let what = match &e {
                ResetError::Kafka(AdminError::Unreachable { .. }) => {
                    format!(
                        "Kafka is unreachable, so the internal topics and the consumer group {id} cannot be deleted: {e}"
                    )
                }
                _ => format!(
                    "the internal topics and the consumer group {id} cannot be deleted: {e}"
                ),
            };
            tracing::warn!(app = %app.name_any(), error = %e, retry_in = ?delay, "application reset failed");
            ctx.event(
                app,
                EventType::Warning,
                "ResetFailed",
                format!(
                    "{what}. Retrying in {}s. To finish deleting the StreamsApp without this cleanup (the topics and group stay in Kafka): kubectl annotate streamsapp {} {SKIP_CLEANUP}=true",
                    delay.as_secs(),
                    app.name_any()
                ),
            )
            .await;
            Ok(Next::Requeue(delay))
        }
    }
}

/// Why the reset could not run.
#[derive(Debug, thiserror::Error)]
enum ResetError {
    /// The topology does not compile, so its internal topics are unknown.
    #[error("the topology does not compile, so its internal topics are unknown: {0}")]
    Topology(#[source] freshet_spec::PlanError),
    /// Kafka refused or did not answer.
    #[error("{0}")]
    Kafka(#[from] AdminError),
    /// A Secret `spec.kafka` names cannot be read.
    #[error("{0}")]
    Secrets(#[from] SecretsError),
    /// The operator's policy refuses the app's servers or client settings.
    #[error("{0}")]
    Refused(#[from] crate::policy::Refusal),
}

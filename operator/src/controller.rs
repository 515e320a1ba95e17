//! The StreamsApp reconciler, on the kube-rs controller model: `reconcile` brings the cluster to
//! what the StreamsApp asks for, `error_policy` retries with a delay, a finalizer runs the
//! cleanup on delete, status goes through server-side apply and what happens is told in Events.
//!
//! One reconcile: compile the topology (the engine's compiler) → check the source topics and
//! co-partitioning against Kafka and create the internal topics → cap the replicas at what the
//! partitions can use → apply the ConfigMap, Service, StatefulSet and PodDisruptionBudget →
//! write the status. A topology that fails to compile leaves the running StatefulSet alone; a
//! topology whose internal topics or stores changed is held back until the change is accepted.
//! A deleted app goes through [`deletion`](crate::deletion) before its finalizer is removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freshet_admin::AdminError;
use freshet_crds::{AutoscalingStatus, StreamsApp, StreamsAppStatus};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::autoscale::Sample;
use crate::context::{Context, Error, MANAGER, Watched, lock};
use crate::deletion::{self, Next};
use crate::group;
use crate::kafka::{self, Plan, StateSignature as _};
use crate::policy;
use crate::render::{self, Decisions};
use crate::reset;
use crate::scaling::{self, max_useful_replicas};
use crate::secrets::{self, AppSecrets};
use crate::status::{self, Judged};
use crate::suspend;
use crate::tenancy::{self, Owner};
use crate::upgrade;

/// The finalizer that runs `cleanupPolicy` before a StreamsApp goes.
pub const FINALIZER: &str = "freshet.dev/cleanup";
pub use crate::upgrade::ACCEPT_STATE_CHANGE;

/// Runs the controller over `namespaces` (all when empty) until a shutdown signal.
pub async fn run(ctx: Arc<Context>, namespaces: Vec<String>) {
    let apis: Vec<(Api<StreamsApp>, Api<StatefulSet>)> = if namespaces.is_empty() {
        vec![(Api::all(ctx.client.clone()), Api::all(ctx.client.clone()))]
    } else {
        namespaces
            .iter()
            .map(|ns| {
                (
                    Api::namespaced(ctx.client.clone(), ns),
                    Api::namespaced(ctx.client.clone(), ns),
                )
            })
            .collect()
    };
    let controllers: Vec<_> = apis
        .into_iter()
        .map(|(apps, sets)| {
            Controller::new(apps, watcher::Config::default()).owns(sets, watcher::Config::default())
        })
        .collect();
    // Who owns an applicationId is decided over every watched namespace.
    let watched = Watched {
        stores: controllers.iter().map(Controller::store).collect(),
        namespaces,
    };
    if ctx.watched.set(watched).is_err() {
        tracing::warn!(
            "a context reused for a second run: its caches of StreamsApps are the first run's"
        );
    }
    let controllers = controllers.into_iter().map(|controller| {
        let ctx = ctx.clone();
        controller
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "reconcile result");
                }
            })
    });
    futures::future::join_all(controllers).await;
}

fn error_policy(app: Arc<StreamsApp>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(app = %app.name_any(), namespace = ?app.namespace(), %error, "reconcile failed; retrying");
    Action::requeue(ctx.settings.retry)
}

async fn reconcile(app: Arc<StreamsApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_app(app, &ctx).await;
    ctx.metrics.record(result.is_ok(), started.elapsed());
    result
}

async fn reconcile_app(app: Arc<StreamsApp>, ctx: &Context) -> Result<Action, Error> {
    // The deletion's stages come before the finalizer's cleanup: the finalizer helper removes
    // the finalizer as soon as its cleanup returns, and these stages wait (by requeue).
    let deleting = app.metadata.deletion_timestamp.is_some()
        && app.finalizers().iter().any(|f| f == FINALIZER);
    // An app whose applicationId another app owns gets nothing done for it, on deletion too:
    // its cleanup would delete the owner's topics and group.
    let other = tenancy::owner_elsewhere(ctx, &app).await?;
    if deleting {
        match &other {
            None => {
                if let Next::Requeue(after) = deletion::advance(&app, ctx).await? {
                    return Ok(Action::requeue(after));
                }
            }
            Some(owner) => {
                ctx.event(
                    &app,
                    EventType::Normal,
                    "CleanupSkipped",
                    format!(
                        "applicationId {} belongs to StreamsApp {owner}: its internal topics and consumer group are left alone",
                        app.spec.application_id
                    ),
                )
                .await;
            }
        }
    }
    let ns = app.namespace().unwrap_or_else(|| "default".into());
    let api: Api<StreamsApp> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, app, |event| async {
        match event {
            Finalizer::Apply(app) => match &other {
                None => apply(&app, ctx).await,
                Some(owner) => id_taken(&app, ctx, owner).await,
            },
            Finalizer::Cleanup(app) => {
                ctx.forget(&app);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(e.to_string()))
}

/// Writes the status: `judged` conditions merged into the previous ones, plus `fields`. Not
/// when nothing changed, nor when only measurements did and the last write is more recent than
/// the status refresh interval.
async fn write_status(
    ctx: &Context,
    app: &StreamsApp,
    judged: &[Judged],
    fields: StreamsAppStatus,
) -> Result<(), Error> {
    let previous = app.status.clone().unwrap_or_default();
    let status = StreamsAppStatus {
        observed_generation: app.metadata.generation,
        conditions: status::merge(&previous.conditions, judged, app.metadata.generation),
        ..fields
    };
    let key = Context::key(app);
    let measurements_only = status::same_but_measurements(&previous, &status);
    let due = status != previous
        && (!measurements_only
            || lock(&ctx.status_written)
                .get(&key)
                .is_none_or(|at| at.elapsed() >= ctx.settings.status_refresh));
    if !due {
        return Ok(());
    }
    tracing::debug!(app = %key, measurements_only, "writing the status");
    let api: Api<StreamsApp> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": StreamsApp::api_version(&()),
        "kind": StreamsApp::kind(&()),
        "status": status,
    });
    api.patch_status(
        &app.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    lock(&ctx.status_written).insert(key, Instant::now());
    ctx.metrics
        .status_writes
        .get_or_create(&crate::metrics::AppLabel {
            namespace: app.namespace().unwrap_or_default(),
            name: app.name_any(),
        })
        .inc();
    Ok(())
}

/// Sends the Events of conditions that changed.
async fn announce(ctx: &Context, app: &StreamsApp, judged: &[Judged]) {
    let previous = app.status.clone().unwrap_or_default().conditions;
    for j in judged {
        if !status::changed(&previous, j) {
            continue;
        }
        // Suspending and resuming are asked for: Normal Events, and no Ready warning.
        let kind = match j.type_ {
            suspend::SUSPENDED => Some(EventType::Normal),
            status::READY if j.reason == suspend::SUSPENDED => None,
            status::SCALING | status::DEGRADED | tenancy::CONFLICT => {
                j.status.then_some(EventType::Warning)
            }
            _ => (!j.status).then_some(EventType::Warning),
        };
        if let Some(kind) = kind {
            ctx.event(app, kind, &j.reason, j.message.clone()).await;
        }
    }
}

/// The status fields worth keeping from the last status when this reconcile cannot recompute
/// them (it stopped early).
fn kept(app: &StreamsApp) -> StreamsAppStatus {
    let s = app.status.clone().unwrap_or_default();
    StreamsAppStatus {
        conditions: Vec::new(),
        observed_generation: None,
        ..s
    }
}

/// Another app owns this app's applicationId: a `Conflict` condition naming it, nothing else.
/// Looked at again every resync, which notices the owner gone.
async fn id_taken(app: &StreamsApp, ctx: &Context, owner: &Owner) -> Result<Action, Error> {
    let judged = [
        Judged::new(
            tenancy::CONFLICT,
            true,
            tenancy::ID_TAKEN,
            format!(
                "applicationId {} belongs to StreamsApp {owner}, the first created with it; this app runs nothing (no topics, pods or group) while that one exists. Give this app another applicationId (a new StreamsApp: the id is immutable)",
                app.spec.application_id
            ),
        ),
        Judged::new(
            status::READY,
            false,
            tenancy::ID_TAKEN,
            format!(
                "applicationId {} belongs to StreamsApp {owner}",
                app.spec.application_id
            ),
        ),
    ];
    announce(ctx, app, &judged).await;
    write_status(ctx, app, &judged, kept(app)).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

/// Objects named like the app's exist and were not made for it: a `Conflict` condition naming
/// them, nothing applied. Looked at again every resync.
async fn objects_not_ours(
    app: &StreamsApp,
    ctx: &Context,
    foreign: &[String],
) -> Result<Action, Error> {
    let judged = [
        Judged::new(
            tenancy::CONFLICT,
            true,
            tenancy::NOT_OURS,
            format!(
                "{} already exist{} and {} not made by the operator for this StreamsApp (no owner reference to it): the operator neither takes over nor deletes them, and applies nothing while they are there. Delete or rename them, or rename the StreamsApp",
                foreign.join(", "),
                if foreign.len() == 1 { "s" } else { "" },
                if foreign.len() == 1 { "was" } else { "were" },
            ),
        ),
        Judged::new(
            status::READY,
            false,
            tenancy::NOT_OURS,
            format!("{} not made for this app", foreign.join(", ")),
        ),
    ];
    announce(ctx, app, &judged).await;
    write_status(ctx, app, &judged, kept(app)).await?;
    Ok(Action::requeue(ctx.settings.resync))
}

/// The operator's policy refuses the app: `Allowed=False` says why; no Kafka client is made.
/// Only a change of the app (or of the operator's flags, a restart) can fix it.
async fn refused(
    app: &StreamsApp,
    ctx: &Context,
    refusal: &crate::policy::Refusal,
) -> Result<Action, Error> {
    tracing::info!(app = %Context::key(app), reason = refusal.reason, "refused by the operator's policy");
    let judged = [
        Judged::new(
            policy::ALLOWED,
            false,
            refusal.reason,
            refusal.message.clone(),
        ),
        Judged::new(
            status::READY,
            false,
            refusal.reason,
            "refused by the operator's policy; the running version (if any) is kept",
        ),
    ];
    announce(ctx, app, &judged).await;
    write_status(ctx, app, &judged, kept(app)).await?;
    Ok(Action::await_change())
}

/// `Allowed=True`, when an earlier reconcile refused the app.
fn now_allowed(app: &StreamsApp) -> Option<Judged> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .any(|c| c.type_ == policy::ALLOWED)
        .then(|| {
            Judged::new(
                policy::ALLOWED,
                true,
                "Allowed",
                "the operator's policy allows this app's servers, image and client settings",
            )
        })
}

/// The `Conflict` condition cleared, when an earlier reconcile set it.
fn no_conflict(app: &StreamsApp) -> Option<Judged> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .any(|c| c.type_ == tenancy::CONFLICT)
        .then(|| {
            Judged::new(
                tenancy::CONFLICT,
                false,
                "NoConflict",
                "this app owns its applicationId and the objects it runs",
            )
        })
}

async fn apply(app: &StreamsApp, ctx: &Context) -> Result<Action, Error> {
    let overrides = tenancy::id_overrides(&app.spec);
    if !overrides.is_empty() {
        let judged = [
            Judged::new(
                status::TOPOLOGY_VALID,
                false,
                tenancy::ID_OVERRIDE,
                tenancy::id_override_message(&overrides),
            ),
            Judged::new(
                status::READY,
                false,
                tenancy::ID_OVERRIDE,
                "application.id is overridden; the running version (if any) is kept",
            ),
        ];
        announce(ctx, app, &judged).await;
        write_status(ctx, app, &judged, kept(app)).await?;
        return Ok(Action::await_change());
    }
    let foreign = tenancy::foreign_objects(app, ctx).await?;
    if !foreign.is_empty() {
        return objects_not_ours(app, ctx, &foreign).await;
    }
    let ns = app.namespace().unwrap_or_default();
    // The Secrets spec.kafka names, for the admin client's credentials and the pods' roll.
    let secrets = match AppSecrets::read(
        &Api::<Secret>::namespaced(ctx.client.clone(), &ns),
        &ns,
        &app.spec,
    )
    .await
    {
        Ok(s) => s,
        Err(error) => {
            let judged = secrets::unavailable(&error);
            announce(ctx, app, &judged).await;
            write_status(ctx, app, &judged, kept(app)).await?;
            // A Secret created after the app is picked up at the next resync.
            return Ok(if error.is_missing() {
                Action::requeue(ctx.settings.resync)
            } else {
                Action::requeue(ctx.backoff(app))
            });
        }
    };
    let secrets_digest = secrets.digest();
    let spec = app.spec.clone();
    let mut plan =
        match tokio::task::spawn_blocking(move || freshet_spec::plan_with_secrets(&spec, &secrets))
            .await?
        {
            Ok(plan) => plan,
            Err(error) => {
                let judged = status::plan_refused(&error);
                announce(ctx, app, &judged).await;
                write_status(ctx, app, &judged, kept(app)).await?;
                // Only a change of the StreamsApp can fix it.
                return Ok(Action::await_change());
            }
        };
    if let Err(refusal) = ctx.settings.policy.check(app, &plan.config) {
        return refused(app, ctx, &refusal).await;
    }
    let offsets: Option<kafka::InputOffsets>;
    let described_group: Option<group::GroupView>;
    let topics = {
        let (cache, key) = (ctx.kafka.clone(), Context::key(app));
        let (result, measured, described, plan_back) = tokio::task::spawn_blocking(move || {
            let r = cache
                .get(&key, &plan.config)
                .and_then(|clients| Ok((kafka::prepare(&clients, &mut plan)?, clients)));
            let offsets = r.as_ref().ok().and_then(|(t, clients)| {
                match kafka::offsets(clients, &plan, &t.partitions) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        tracing::warn!(error = %e, "offsets not measured this time");
                        None
                    }
                }
            });
            // Tasks per pod, from the streams group's coordinator.
            let described = r
                .as_ref()
                .ok()
                .and_then(|(_, clients)| group::read(clients, &plan.config));
            (r.map(|(t, _)| t), offsets, described, plan)
        })
        .await?;
        plan = plan_back;
        offsets = measured;
        described_group = described;
        match result {
            Ok(t) => t,
            Err(e) => return topics_failed(app, ctx, e).await,
        }
    };
    ctx.waited_enough(app);
    if let Some(request) = reset::requested(app) {
        return reset_step(app, ctx, &plan, request).await;
    }
    if !topics.created.is_empty() {
        let list: Vec<String> = topics
            .created
            .iter()
            .map(|(t, n)| format!("{t} ({n} partitions)"))
            .collect();
        ctx.event(
            app,
            EventType::Normal,
            "TopicCreated",
            format!("created internal topics {}", list.join(", ")),
        )
        .await;
    }
    let threads = plan.config.num_stream_threads.max(1) as u32;
    let tasks = plan.tasks_per_subtopology(&topics.partitions);
    let cap = max_useful_replicas(&tasks, threads).max(1) as i32;
    let desired = scaling::requested_replicas(&app.spec);
    let widest = scaling::widest_source(&plan, &topics.partitions);
    let ns = app.namespace().unwrap_or_default();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let running = sets.get_opt(&app.name_any()).await?;
    let (group, config) = (described_group.as_ref(), &plan.config);
    group::remove_departed(ctx, app, running.as_ref(), config, group).await?;
    let max_tasks = tasks.iter().max().copied().unwrap_or(0);
    let autoscaling = scaling::autoscaling(&app.spec).cloned();
    let (replicas, scaling, autoscaled, next) = match &autoscaling {
        // Suspended: 0, whatever was asked; the autoscaler neither measures nor decides.
        _ if suspend::is_suspended(app) => (
            0,
            suspend::scaling(),
            kept(app).autoscaling,
            ctx.settings.resync,
        ),
        Some(spec) => {
            let running_replicas = running
                .as_ref()
                .and_then(|s| s.spec.as_ref()?.replicas)
                .unwrap_or_else(|| desired.min(cap));
            match autoscale(
                ctx,
                app,
                spec,
                offsets.map(|o| (o, scaling::settled(running.as_ref()))),
                (running_replicas, cap, max_tasks, threads),
                plan.config.commit_interval,
            )
            .await
            {
                Ok(a) => a,
                Err(error) => {
                    let judged = [Judged::new(
                        status::SCALING,
                        false,
                        "InvalidAutoscaling",
                        error.to_string(),
                    )];
                    announce(ctx, app, &judged).await;
                    write_status(ctx, app, &judged, kept(app)).await?;
                    return Ok(Action::await_change());
                }
            }
        }
        None => {
            let replicas = desired.min(cap);
            let scaling = if desired > cap {
                Judged::new(
                    status::SCALING,
                    true,
                    "ReplicasCapped",
                    format!(
                        "spec.replicas is {desired} but only {cap} instances can hold work ({max_tasks} tasks at most in a sub-topology, {threads} stream threads each), so the StatefulSet runs {cap}. To use more instances, add partitions to {widest}{}",
                        if threads > 1 {
                            " or lower numStreamThreads"
                        } else {
                            ""
                        }
                    ),
                )
            } else {
                Judged::new(
                    status::SCALING,
                    false,
                    "AsRequested",
                    format!("running {replicas} of at most {cap} useful instances"),
                )
            };
            (replicas, scaling, None, ctx.settings.resync)
        }
    };
    let signature = plan.state_signature();
    let mut judged = vec![
        Judged::new(
            status::CONFIG_VALID,
            true,
            "Resolved",
            "every property is known and valid, and no secret is in spec.config",
        ),
        Judged::new(
            status::TOPOLOGY_VALID,
            true,
            "Compiled",
            format!(
                "{} sub-topologies, {} stores",
                plan.topology.subtopologies().len(),
                plan.stores.len()
            ),
        ),
        Judged::new(
            status::TOPICS_READY,
            true,
            "TopicsReady",
            format!(
                "sources present and co-partitioned; {} internal topics",
                plan.internal_topics.len()
            ),
        ),
        scaling,
    ];
    judged.extend(no_conflict(app));
    judged.extend(now_allowed(app));
    judged.extend(suspend::condition(app));
    let held = running
        .as_ref()
        .and_then(|sts| upgrade::held_change(app, sts, &plan, &signature));
    match &held {
        Some(message) => {
            judged.push(Judged::new(
                status::DEGRADED,
                true,
                "TopologyChangeHeld",
                message.clone(),
            ));
            // The held version is not applied, but a suspension still stops it.
            if suspend::is_suspended(app) {
                deletion::stop_instances(app, ctx, deletion::StopFor::Suspend).await?;
            }
        }
        None => {
            judged.push(Judged::new(
                status::DEGRADED,
                false,
                "AsSpecified",
                "the running topology is the specified one",
            ));
            apply_objects(
                app,
                ctx,
                &plan,
                replicas,
                &signature,
                secrets_digest.as_deref(),
            )
            .await?;
        }
    }
    let sts = sets.get_opt(&app.name_any()).await?;
    let sts_status = sts.and_then(|s| s.status).unwrap_or_default();
    let last_error = last_processing_error(ctx, app).await?;
    let ready = sts_status.ready_replicas.unwrap_or(0);
    judged.push(if suspend::is_suspended(app) {
        suspend::ready(sts_status.replicas)
    } else if held.is_some() {
        Judged::new(
            status::READY,
            false,
            "TopologyChangeHeld",
            "the new topology is held back; the previous one runs",
        )
    } else if ready >= replicas {
        Judged::new(
            status::READY,
            true,
            "InstancesReady",
            format!("{ready} of {replicas} instances ready"),
        )
    } else {
        Judged::new(
            status::READY,
            false,
            "InstancesStarting",
            format!("{ready} of {replicas} instances ready"),
        )
    });
    let lag = offsets.map(|o| o.lag());
    announce(ctx, app, &judged).await;
    let fields = StreamsAppStatus {
        replicas: Some(sts_status.replicas),
        ready_replicas: Some(ready),
        selector: Some(render::selector(app)),
        max_useful_replicas: Some(cap),
        tasks: Some(tasks.iter().max().copied().unwrap_or(0) as i32),
        lag,
        internal_topics: topics
            .partitions
            .keys()
            .filter(|t| t.starts_with(&format!("{}-", app.spec.application_id)))
            .cloned()
            .collect(),
        last_processing_error: last_error.or(kept(app).last_processing_error),
        autoscaling: autoscaled,
        assignment: described_group.map_or_else(|| kept(app).assignment, |g| g.pods),
        ..kept(app)
    };
    write_status(ctx, app, &judged, fields).await?;
    Ok(Action::requeue(next))
}

/// One step of the reset the annotation asks for; the status shows where it stands. Once done,
/// the next reconcile (soon) starts the instances again, with the reset's token.
async fn reset_step(
    app: &StreamsApp,
    ctx: &Context,
    plan: &Plan,
    request: reset::Request,
) -> Result<Action, Error> {
    let (status, judged, after) = match request
        .advance(app, ctx, plan, &plan.state_signature())
        .await?
    {
        reset::Outcome::Waiting { status, after } => {
            let ready = Judged::new(status::READY, false, "Resetting", status.message.clone());
            (status, vec![ready], after)
        }
        reset::Outcome::Finished(status) => (status, Vec::new(), Duration::from_millis(200)),
    };
    let fields = StreamsAppStatus {
        reset: Some(status),
        ..kept(app)
    };
    write_status(ctx, app, &judged, fields).await?;
    Ok(Action::requeue(after))
}

/// The autoscaler's count for an app with `spec.autoscaling.enabled`, the Scaling condition,
/// the status it shows and when to look again. `Err` when the settings are unusable.
async fn autoscale(
    ctx: &Context,
    app: &StreamsApp,
    spec: &freshet_crds::AutoscalingSpec,
    offsets: Option<(kafka::InputOffsets, bool)>,
    (current, cap, tasks, threads): (i32, i32, u32, u32),
    commit_interval: Duration,
) -> Result<(i32, Judged, Option<AutoscalingStatus>, Duration), scaling::AutoscalingError> {
    let interval = scaling::metrics_interval(spec)?;
    let policy = scaling::autoscaling_policy(spec, commit_interval)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let decision = {
        let mut all = lock(&ctx.autoscalers);
        let scaler = all.entry(Context::key(app)).or_default();
        if let Some((o, settled)) = offsets {
            scaler.observe(
                Sample {
                    at: o.read_at_ms as f64 / 1000.0,
                    end: o.end,
                    committed: o.committed,
                    no_records: o.no_records,
                    settled,
                },
                &policy,
            );
        }
        scaler.decide(
            now,
            &policy,
            current.max(0) as u32,
            cap.max(1) as u32,
            tasks,
            threads,
        )
    };
    let replicas = decision.replicas as i32;
    let previous = app.status.clone().unwrap_or_default().autoscaling;
    let mut last_scale_time = previous.and_then(|p| p.last_scale_time);
    if replicas != current {
        last_scale_time = Some(Timestamp::now().to_string());
        ctx.event(
            app,
            EventType::Normal,
            "Autoscaled",
            format!(
                "from {current} to {replicas} instances (recommended {}): {}",
                decision.recommended, decision.reason
            ),
        )
        .await;
    }
    // A manual scale is not what decides now: say so once per value.
    if let Some(asked) = app.spec.replicas {
        let last = lock(&ctx.manual_scales).insert(Context::key(app), asked);
        if last.is_some_and(|l| l != asked) {
            ctx.event(
                app,
                EventType::Warning,
                "ManualScaleIgnored",
                format!("spec.replicas is now {asked}, but autoscaling is on and runs {replicas}: set spec.autoscaling.enabled to false to scale by hand (or through an HPA or KEDA)"),
            )
            .await;
        }
    }
    let scaling = Judged::new(
        status::SCALING,
        replicas != current,
        status::AUTOSCALED,
        format!(
            "{replicas} instances (at most {cap} useful): {}",
            decision.reason
        ),
    );
    let label = crate::metrics::AppLabel {
        namespace: app.namespace().unwrap_or_default(),
        name: app.name_any(),
    };
    let m = &ctx.metrics;
    m.lag.get_or_create(&label).set(decision.lag);
    m.raw_lag.get_or_create(&label).set(decision.raw_lag);
    m.desired_replicas
        .get_or_create(&label)
        .set(i64::from(replicas));
    if let Some(r) = decision.input_rate {
        m.input_rate.get_or_create(&label).set(r);
    }
    if let Some(r) = decision.processing_rate {
        m.processing_rate.get_or_create(&label).set(r);
    }
    let shown = AutoscalingStatus {
        lag: decision.lag,
        raw_lag: decision.raw_lag,
        input_rate: decision.input_rate.map(|r| (r * 10.0).round() / 10.0),
        processing_rate: decision.processing_rate.map(|r| (r * 10.0).round() / 10.0),
        desired_replicas: replicas,
        last_scale_time,
        reason: decision.reason,
    };
    Ok((replicas, scaling, Some(shown), interval))
}

/// The latest error an instance exited with: the engine's last words, which Kubernetes keeps as
/// the container's termination message (the end of its log, `FallbackToLogsOnError`).
async fn last_processing_error(ctx: &Context, app: &StreamsApp) -> Result<Option<String>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let list = pods
        .list(&ListParams::default().labels(&render::selector(app)))
        .await?;
    let mut latest: Option<(Timestamp, String)> = None;
    for pod in list.items {
        let statuses = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        for c in statuses {
            let ended = [
                c.state.and_then(|s| s.terminated),
                c.last_state.and_then(|s| s.terminated),
            ];
            for t in ended.into_iter().flatten().filter(|t| t.exit_code != 0) {
                let at = t.finished_at.map_or(Timestamp::UNIX_EPOCH, |f| f.0);
                let message = format!(
                    "{}: exit code {}: {}",
                    pod.metadata.name.clone().unwrap_or_default(),
                    t.exit_code,
                    t.message.unwrap_or_default().trim()
                );
                if latest.as_ref().is_none_or(|(when, _)| at > *when) {
                    latest = Some((at, message));
                }
            }
        }
    }
    Ok(latest.map(|(_, m)| m))
}

async fn apply_objects(
    app: &StreamsApp,
    ctx: &Context,
    plan: &Plan,
    replicas: i32,
    signature: &str,
    secrets_digest: Option<&str>,
) -> Result<(), Error> {
    let ns = app.namespace().unwrap_or_default();
    let pp = PatchParams::apply(MANAGER).force();
    let decisions = Decisions {
        replicas,
        image: render::engine_image(app, &ctx.settings.default_image),
        signature,
        internal_topics: &plan.internal_topics,
        stores: &plan.stores,
        layout: &plan.state_layout(),
        secrets_digest,
    };
    // In `render::Objects::ORDER`, which `freshet-operator render` prints in.
    let objects = render::objects(app, &decisions)?;
    let name = app.name_any();
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &render::config_map_name(app),
            &pp,
            &Patch::Apply(objects.config_map),
        )
        .await?;
    Api::<Service>::namespaced(ctx.client.clone(), &ns)
        .patch(&name, &pp, &Patch::Apply(objects.service))
        .await?;
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .patch(&name, &pp, &Patch::Apply(objects.stateful_set))
        .await?;
    Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns)
        .patch(&name, &pp, &Patch::Apply(objects.pod_disruption_budget))
        .await?;
    Ok(())
}

/// Kafka refused or could not be asked: a condition that says why, and a retry.
async fn topics_failed(app: &StreamsApp, ctx: &Context, e: AdminError) -> Result<Action, Error> {
    let (condition, reason) = match &e {
        AdminError::NotCoPartitioned(_) => (status::TOPOLOGY_VALID, "NotCoPartitioned"),
        AdminError::MissingTopic(_) => (status::TOPICS_READY, "SourceTopicMissing"),
        AdminError::Unreachable { .. } => (status::TOPICS_READY, "KafkaUnreachable"),
        AdminError::CreateFailed { .. } => (status::TOPICS_READY, "TopicCreationFailed"),
        AdminError::DeleteFailed { .. } => (status::TOPICS_READY, "TopicDeletionFailed"),
        AdminError::NotAuthorized { .. } => (status::TOPICS_READY, "NotAuthorized"),
    };
    let mut message = e.to_string();
    if matches!(e, AdminError::Unreachable { .. }) {
        message.push_str(&secrets::credentials_hint(&app.spec));
    }
    let judged = [
        Judged::new(condition, false, reason, message),
        Judged::new(
            status::READY,
            false,
            reason,
            "waiting for Kafka; the running version (if any) is kept",
        ),
    ];
    announce(ctx, app, &judged).await;
    write_status(ctx, app, &judged, kept(app)).await?;
    Ok(Action::requeue(ctx.backoff(app)))
}

//! The application reset of a live app: `kubectl annotate sapp X freshet.dev/reset=<token>[:<mode>]`.
//! The instances are scaled to 0 (the deletion's [`stop_instances`]); once their pods are gone
//! and the group has no member left (a static member stays listed until its session times out),
//! the reset runs as `freshet-engine reset` does (`freshet_admin::reset`: input offsets moved,
//! intermediate topics to their end, internal topics deleted); the pods then start again with
//! the reset's token, at which each wipes its local state once (the PVC outlives them). The
//! outcome is in `status.reset` and an Event. A new token asks for a new reset; the same one is
//! done once.
//!
//! A held change of the state rolls out after a reset done for its signature: reset and apply.

use std::time::Duration;

use freshet_admin::AdminError;
use freshet_admin::reset::{self as admin_reset, ResetError, ResetMode};
use freshet_crds::{ResetStatus, StreamsApp};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::context::{Context, Error};
use crate::deletion::{Instances, StopFor, stop_instances};
use crate::kafka::Plan;

/// The annotation: `<token>` or `<token>:<mode>`, the mode as the reset tool's options
/// (`to-earliest`, `to-latest`, `to-datetime=<T>`, `by-duration=<D>`, `to-offset=<n>`).
pub const RESET: &str = "freshet.dev/reset";

const DONE: &str = ResetStatus::DONE;
const FAILED: &str = ResetStatus::FAILED;

/// How often a reset in progress is looked at.
const POLL: Duration = Duration::from_secs(2);

/// A reset the annotation asks for and `status.reset` does not show done.
pub struct Request {
    token: String,
    mode_text: String,
    mode: Option<ResetMode>,
}

/// The signature a done reset was for: a held change with it rolls out.
pub fn done_signature(app: &StreamsApp) -> Option<&str> {
    ResetStatus::done(app.status.as_ref())?.signature.as_deref()
}

/// The reset the annotation asks for, unless done (or failed) already.
pub fn requested(app: &StreamsApp) -> Option<Request> {
    let value = app.annotations().get(RESET)?.trim();
    let (token, mode_text) = value.split_once(':').unwrap_or((value, "to-earliest"));
    let last = app.status.as_ref().and_then(|s| s.reset.as_ref());
    if token.is_empty()
        || last.is_some_and(|r| r.token == token && (r.phase == DONE || r.phase == FAILED))
    {
        return None;
    }
    Some(Request {
        token: token.to_owned(),
        mode_text: mode_text.to_owned(),
        mode: ResetMode::parse(mode_text),
    })
}

/// Where a reset stands after this reconcile.
pub enum Outcome {
    /// Still going: show `status` and look again after `after`.
    Waiting {
        /// `status.reset` now.
        status: ResetStatus,
        /// When to look again.
        after: Duration,
    },
    /// Done or failed for good: `status.reset`, and the reconcile goes on (and scales back).
    Finished(ResetStatus),
}

impl Request {
    fn status(&self, phase: &str, message: String, signature: Option<&str>) -> ResetStatus {
        ResetStatus {
            token: self.token.clone(),
            mode: self.mode_text.clone(),
            phase: phase.to_owned(),
            message,
            signature: signature.map(str::to_owned),
            last_transition_time: Some(Timestamp::now().to_string()),
        }
    }

    /// The next step of the reset of `app` (whose plan is `plan`, of state signature
    /// `signature`): stop the instances, wait for the group to empty, reset. Each change of
    /// phase is told in an Event.
    pub async fn advance(
        &self,
        app: &StreamsApp,
        ctx: &Context,
        plan: &Plan,
        signature: &str,
    ) -> Result<Outcome, Error> {
        let id = &app.spec.application_id;
        let Some(mode) = self.mode.clone() else {
            let message = format!(
                "{RESET}={}:{}: unknown mode '{}': write to-earliest, to-latest, to-datetime=<ISO-8601>, by-duration=<duration> or to-offset=<n>, then annotate again with a new token",
                self.token, self.mode_text, self.mode_text
            );
            ctx.event(
                app,
                kube::runtime::events::EventType::Warning,
                "ResetFailed",
                message.clone(),
            )
            .await;
            return Ok(Outcome::Finished(self.status(FAILED, message, None)));
        };
        if let Instances::Running(pods) = stop_instances(app, ctx, StopFor::Reset).await? {
            return Ok(Outcome::Waiting {
                status: self.status(
                    "Stopping",
                    format!(
                        "waiting for {} pods to stop: {}",
                        pods.len(),
                        pods.join(", ")
                    ),
                    None,
                ),
                after: POLL,
            });
        }
        let (cache, key) = (ctx.kafka.clone(), Context::key(app));
        let (topology, config) = (plan.topology.clone(), plan.config.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let clients = cache.get(&key, &config)?;
            let planned =
                admin_reset::plan_reset(clients.admin(), &topology, &config, &mode, None)?;
            admin_reset::execute_reset(clients.admin(), &config, &planned)?;
            Ok::<_, ResetError>(planned)
        })
        .await?;
        match outcome {
            Ok(done) => {
                let message = format!(
                    "reset {id} ({}): {} input partitions moved, {} intermediate partitions to their end, internal topics deleted: {}; each instance wipes its local state at its next start",
                    self.mode_text,
                    done.inputs.len(),
                    done.intermediate.len(),
                    if done.delete_topics.is_empty() {
                        "none".to_owned()
                    } else {
                        done.delete_topics.join(", ")
                    }
                );
                ctx.event(
                    app,
                    kube::runtime::events::EventType::Normal,
                    "ApplicationReset",
                    message.clone(),
                )
                .await;
                Ok(Outcome::Finished(self.status(
                    DONE,
                    message,
                    Some(signature),
                )))
            }
            // Static members (the pods') stay listed until their session times out.
            Err(ResetError::Active { members, .. }) => Ok(Outcome::Waiting {
                status: self.status(
                    "Resetting",
                    format!(
                        "the pods are gone; waiting for the group {id} to drop its {} members (a static member stays until session.timeout.ms): {}",
                        members.len(),
                        members.join(", ")
                    ),
                    None,
                ),
                after: POLL,
            }),
            Err(ResetError::Kafka(e @ AdminError::Unreachable { .. })) => {
                let delay = ctx.backoff(app);
                tracing::warn!(app = %app.name_any(), error = %e, retry_in = ?delay, "application reset: Kafka unreachable");
                Ok(Outcome::Waiting {
                    status: self.status(
                        "Resetting",
                        format!("{e}; retrying in {}s", delay.as_secs()),
                        None,
                    ),
                    after: delay,
                })
            }
            Err(e) => {
                let message = format!(
                    "the reset of {id} failed: {e}. The instances start again as they were; annotate with a new token to try again"
                );
                ctx.event(
                    app,
                    kube::runtime::events::EventType::Warning,
                    "ResetFailed",
                    message.clone(),
                )
                .await;
                Ok(Outcome::Finished(self.status(FAILED, message, None)))
            }
        }
    }
}

//! What every reconcile shares: the apiserver client, the Event recorder, the metrics, each app's
//! Kafka clients and what the operator remembers of each app between reconciles; and the
//! reconciler's error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use freshet_admin::AdminError;
use freshet_crds::StreamsApp;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use crate::autoscale::Autoscaler;
use crate::kafka::ClientCache;
use crate::metrics::Metrics;

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "freshet-operator";

/// Why a reconcile failed; it is retried after a delay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver refused or did not answer.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The engine's `app.yaml` could not be written.
    #[error("rendering the engine manifest: {0}")]
    Manifest(#[from] serde_yaml_ng::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A blocking Kafka call panicked or was cancelled.
    #[error("a Kafka call did not finish: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    /// Kafka refused a topic operation or could not be reached.
    #[error("{0}")]
    Kafka(#[from] AdminError),
}

/// The StreamsApps the operator watches: the controllers' caches (one per watched namespace,
/// or one for all) and the namespaces, for the apiserver itself when the caches may lag. Who
/// owns an applicationId is decided over them ([`crate::tenancy`]).
pub struct Watched {
    /// The controllers' reflector stores.
    pub stores: Vec<Store<StreamsApp>>,
    /// The watched namespaces; all when empty.
    pub namespaces: Vec<String>,
}

/// The operator's timings, from its flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The engine image when the StreamsApp names none.
    pub default_image: String,
    /// How soon a reconcile that waits on Kafka (a missing topic, an unreachable broker) runs
    /// again.
    pub retry: Duration,
    /// How often a healthy app is looked at again (lag, pods).
    pub resync: Duration,
    /// The shortest time between two status writes of an app when only measurements (the lag)
    /// changed.
    pub status_refresh: Duration,
    /// Where the operator may connect, which images it runs, what its clients may read.
    pub policy: crate::policy::Policy,
}

/// Where the deletion of an app stands, for its Events: each stage is told once.
#[derive(Clone, Debug, Default)]
pub struct Deleting {
    /// When the StatefulSet was first seen scaled to 0 with pods left.
    pub waiting_since: Option<Instant>,
    /// The Warning about pods that do not go was sent.
    pub stuck_told: bool,
    /// The Event saying the instances stopped was sent.
    pub stopped_told: bool,
}

/// What every reconcile shares. One per leadership term: a replica that steps down and leads
/// again starts with a new one (only the Kafka clients carry over).
pub struct Context {
    /// The apiserver client.
    pub client: Client,
    /// Publishes the Events.
    pub recorder: Recorder,
    /// The operator's Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The timings and the default image.
    pub settings: Settings,
    /// The Kafka clients of each app.
    pub kafka: Arc<ClientCache>,
    /// Consecutive waits on Kafka per app (namespace/name), for the backoff.
    pub waits: Mutex<HashMap<String, u32>>,
    /// The autoscaler of each app with autoscaling on.
    pub autoscalers: Mutex<HashMap<String, Autoscaler>>,
    /// The last `spec.replicas` seen of each autoscaled app.
    pub manual_scales: Mutex<HashMap<String, i32>>,
    /// When each app's status was last written.
    pub status_written: Mutex<HashMap<String, Instant>>,
    /// The deletions in progress.
    pub deleting: Mutex<HashMap<String, Deleting>>,
    /// The StreamsApps the controllers watch (set when they start), for who owns an
    /// applicationId.
    pub watched: OnceLock<Watched>,
}

/// Locks a map of per-app memory; a panic elsewhere leaves it usable (it holds no invariant
/// across entries).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Context {
    /// A context for a new leadership term (or a run without leader election).
    pub fn new(
        client: Client,
        identity: &str,
        metrics: Arc<Metrics>,
        kafka: Arc<ClientCache>,
        settings: Settings,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter(identity)),
            client,
            metrics,
            settings,
            kafka,
            waits: Mutex::default(),
            autoscalers: Mutex::default(),
            manual_scales: Mutex::default(),
            status_written: Mutex::default(),
            deleting: Mutex::default(),
            watched: OnceLock::new(),
        }
    }

    /// The app's key in the per-app maps: `namespace/name`.
    pub fn key(app: &StreamsApp) -> String {
        format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
    }

    /// The delay before the next try of an app waiting on Kafka: `retry`, doubling with each
    /// consecutive wait, at most five minutes.
    pub fn backoff(&self, app: &StreamsApp) -> Duration {
        let mut waits = lock(&self.waits);
        let n = waits.entry(Self::key(app)).or_insert(0);
        let delay = self.settings.retry.saturating_mul(1 << (*n).min(8));
        *n += 1;
        delay.min(Duration::from_secs(300))
    }

    /// Kafka answered: the next wait starts from `retry` again.
    pub fn waited_enough(&self, app: &StreamsApp) {
        lock(&self.waits).remove(&Self::key(app));
    }

    /// Forgets a deleted app: its Kafka clients are closed, its memory dropped.
    pub fn forget(&self, app: &StreamsApp) {
        let key = Self::key(app);
        self.kafka.forget(&key);
        lock(&self.waits).remove(&key);
        lock(&self.autoscalers).remove(&key);
        lock(&self.manual_scales).remove(&key);
        lock(&self.status_written).remove(&key);
        lock(&self.deleting).remove(&key);
    }

    /// Publishes an Event about `app`; a failure to publish is logged, never fatal.
    pub async fn event(&self, app: &StreamsApp, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &app.object_ref(&())).await {
            tracing::warn!(app = %app.name_any(), error = %e, "cannot publish an Event");
        }
    }
}

/// The Event reporter of this operator replica.
pub fn reporter(identity: &str) -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance: Some(identity.to_owned()),
    }
}

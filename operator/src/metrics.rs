//! The operator's Prometheus metrics and its HTTP endpoints: `/metrics`, `/healthz`, `/readyz`
//! (ready once this replica leads and its controller runs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `result` label of reconciles: `ok` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// One StreamsApp.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    /// The StreamsApp's namespace.
    pub namespace: String,
    /// The StreamsApp's name.
    pub name: String,
}

/// What the reconciler counts.
pub struct Metrics {
    /// `freshet_operator_reconciles_total`, by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// `freshet_operator_reconcile_duration_seconds`.
    pub duration: Histogram,
    /// `freshet_operator_leader`: 1 while this replica leads.
    pub leader: Gauge,
    /// What the autoscaler measured and decided, per app.
    pub lag: Family<AppLabel, Gauge>,
    /// Log-end minus committed offsets, markers included.
    pub raw_lag: Family<AppLabel, Gauge>,
    /// `freshet_operator_app_input_rate`, records/s.
    pub input_rate: Family<AppLabel, Gauge<f64, AtomicU64>>,
    /// `freshet_operator_app_processing_rate`, records/s.
    pub processing_rate: Family<AppLabel, Gauge<f64, AtomicU64>>,
    /// `freshet_operator_app_desired_replicas`.
    pub desired_replicas: Family<AppLabel, Gauge>,
    /// `freshet_operator_status_writes_total`: status updates sent to the apiserver, per app.
    pub status_writes: Family<AppLabel, Counter>,
    /// `freshet_operator_kafka_clients_created_total`: librdkafka clients made.
    pub kafka_clients_created: Counter,
    /// `freshet_operator_kafka_clients`: librdkafka clients open now.
    pub kafka_clients: Gauge,
    registry: Registry,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Family::<ResultLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let leader = Gauge::default();
        let mut registry = Registry::with_prefix("freshet_operator");
        registry.register(
            "reconciles",
            "StreamsApp reconciliations, by result (ok or error)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconciliation took",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let lag = Family::<AppLabel, Gauge>::default();
        let raw_lag = Family::<AppLabel, Gauge>::default();
        let input_rate = Family::<AppLabel, Gauge<f64, AtomicU64>>::default();
        let processing_rate = Family::<AppLabel, Gauge<f64, AtomicU64>>::default();
        let desired_replicas = Family::<AppLabel, Gauge>::default();
        registry.register(
            "app_lag",
            "Records waiting on an app's inputs (transaction markers and aborted records not counted)",
            lag.clone(),
        );
        registry.register(
            "app_raw_lag",
            "Log-end minus committed offsets on an app's inputs, as Kafka's tools show it",
            raw_lag.clone(),
        );
        registry.register(
            "app_input_rate",
            "Records/s arriving on an app's inputs, over the autoscaler's window",
            input_rate.clone(),
        );
        registry.register(
            "app_processing_rate",
            "Records/s an app commits, over the autoscaler's window",
            processing_rate.clone(),
        );
        registry.register(
            "app_desired_replicas",
            "Instances the autoscaler runs for an app",
            desired_replicas.clone(),
        );
        let status_writes = Family::<AppLabel, Counter>::default();
        let kafka_clients_created = Counter::default();
        let kafka_clients = Gauge::default();
        registry.register(
            "status_writes",
            "Status updates the operator sent to the apiserver for an app (at most one per status refresh interval while only the lag changes)",
            status_writes.clone(),
        );
        registry.register(
            "kafka_clients_created",
            "Kafka clients (librdkafka instances) the operator made: each app's are made once and reused",
            kafka_clients_created.clone(),
        );
        registry.register(
            "kafka_clients",
            "Kafka clients the operator holds open, for the apps it reconciles",
            kafka_clients.clone(),
        );
        Metrics {
            reconciles,
            status_writes,
            kafka_clients_created,
            kafka_clients,
            duration,
            leader,
            lag,
            raw_lag,
            input_rate,
            processing_rate,
            desired_replicas,
            registry,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one reconcile and its duration.
    pub fn record(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" }.to_owned();
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Records whether this replica leads (and so reports ready).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
        self.leader.set(i64::from(ready));
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> (StatusCode, String) {
    match m.encode() {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn ready(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "leading\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "standing by\n")
    }
}

/// Serves the endpoints until the process ends.
pub async fn serve(addr: SocketAddr, m: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(m);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP endpoints: /metrics /healthz /readyz");
    axum::serve(listener, app).await
}

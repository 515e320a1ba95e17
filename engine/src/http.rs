//! The operational HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/topology` (the page and
//! the machine forms: [`crate::topology_page`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;

use freshet_streams::runtime::{KafkaStreams, RecordFailure, State, StreamsError};

/// What the endpoints read; shared with the application's owner.
pub type AppHandle = Arc<std::sync::RwLock<KafkaStreams>>;

/// What the engine waits for before it starts the application (the brokers, its source
/// topics), for `/readyz`; `None` once it has started.
pub type Waiting = Arc<std::sync::Mutex<Option<String>>>;

/// The endpoints' state: the application and what its start waits for.
#[derive(Clone)]
struct Endpoints {
    app: AppHandle,
    waiting: Waiting,
}

impl axum::extract::FromRef<Endpoints> for AppHandle {
    fn from_ref(endpoints: &Endpoints) -> AppHandle {
        endpoints.app.clone()
    }
}

async fn healthz(AxumState(app): AxumState<AppHandle>) -> impl IntoResponse {
    let state = app.read().map(|a| a.state()).unwrap_or(State::Error);
    // Alive unless failed: a restart is the cure only for ERROR. Loading global tables or
    // restoring stores is progress, however long it takes.
    if state == State::Error {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{state}\n"))
    } else {
        (StatusCode::OK, format!("{state}\n"))
    }
}

/// `/readyz`: 200 when RUNNING, else 503; the body, JSON for people and the operator alike, says
/// the state and why: `{"state": "CREATED", "reason": "waiting: cannot reach Kafka at ..."}`,
/// and lists the tasks whose stores are being restored, RUNNING or not (a restore does not make
/// the instance unready: its other tasks run meanwhile): `"restoringTasks": [{"task": "0_0",
/// "remainingRecords": 120000}]`,
/// `{"state": "REBALANCING", "reason": "loading global tables"}`, or after a failure the error
/// and, when a record's handler said fail, where that record was: `{"state": "ERROR", "error":
/// "...", "record": {"kind": "production", "task": "0_0", "topic": "orders", "partition": 0,
/// "offset": 42}}`.
async fn readyz(AxumState(endpoints): AxumState<Endpoints>) -> impl IntoResponse {
    let waiting = endpoints.waiting.lock().ok().and_then(|w| w.clone());
    if let Some(what) = waiting {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "state": State::Created.name(), "reason": format!("waiting: {what}") }),
        );
    }
    let Ok(app) = endpoints.app.read() else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "state": "ERROR" }),
        );
    };
    let state = app.state();
    let mut body = serde_json::json!({ "state": state.name() });
    // Restoring tasks do not make the instance unready: it runs its other tasks meanwhile.
    let restoring = app.restoring_tasks();
    if !restoring.is_empty() {
        body["restoringTasks"] = restoring
            .iter()
            .map(|r| serde_json::json!({ "task": r.task, "remainingRecords": r.remaining_records }))
            .collect();
    }
    if state == State::Running {
        return json(StatusCode::OK, body);
    }
    if app.loading_global_tables() {
        body["reason"] = "loading global tables".into();
        body["globalRecordsLoaded"] = app.metrics().global_records.get().into();
    }
    if let Some(err) = app.error() {
        body["error"] = err.to_string().into();
        if let StreamsError::Record(failure) = &err {
            body["record"] = record(failure);
        }
    }
    json(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// Where the failed record was: the input record (Kafka Streams' `ErrorHandlerContext`).
fn record(failure: &RecordFailure) -> serde_json::Value {
    let mut r = serde_json::json!({
        "kind": failure.kind.to_string(),
        "task": failure.task,
        "message": failure.message,
    });
    if failure.has_input() {
        r["topic"] = failure.topic.clone().into();
        r["partition"] = failure.partition.into();
        r["offset"] = failure.offset.into();
    }
    r
}

fn json(
    status: StatusCode,
    body: serde_json::Value,
) -> (StatusCode, [(HeaderName, &'static str); 1], String) {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
}

async fn metrics(AxumState(app): AxumState<AppHandle>) -> impl IntoResponse {
    let body = app.read().map(|a| a.metrics().encode()).unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// The router, for embedding into another server.
pub fn router(app: AppHandle, waiting: Waiting) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/topology", get(crate::topology_page::topology))
        .with_state(Endpoints { app, waiting })
}

/// Serves the endpoints on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    app: AppHandle,
    waiting: Waiting,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP endpoints: /healthz /readyz /metrics /topology");
    axum::serve(listener, router(app, waiting))
        .with_graceful_shutdown(shutdown)
        .await
}

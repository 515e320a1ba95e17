//! The operational HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, `/topology`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use freshet_streams::runtime::{KafkaStreams, State};
use freshet_streams::topology::DescribeFormat;

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
    // Alive unless failed: a restart is the cure only for ERROR.
    if state == State::Error {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{state}\n"))
    } else {
        (StatusCode::OK, format!("{state}\n"))
    }
}

async fn readyz(AxumState(endpoints): AxumState<Endpoints>) -> impl IntoResponse {
    let waiting = endpoints.waiting.lock().ok().and_then(|w| w.clone());
    if let Some(what) = waiting {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("CREATED: waiting: {what}\n"),
        );
    }
    let Ok(app) = endpoints.app.read() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "ERROR\n".to_owned());
    };
    let state = app.state();
    match (state, app.error()) {
        (State::Running, _) => (StatusCode::OK, "RUNNING\n".to_owned()),
        (_, Some(err)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{state}: {err}\n")),
        _ => (StatusCode::SERVICE_UNAVAILABLE, format!("{state}\n")),
    }
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

async fn topology(AxumState(app): AxumState<AppHandle>) -> impl IntoResponse {
    app.read()
        .map(|a| a.topology().describe(DescribeFormat::Text))
        .unwrap_or_default()
}

/// The router, for embedding into another server.
pub fn router(app: AppHandle, waiting: Waiting) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/topology", get(topology))
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

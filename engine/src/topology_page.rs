//! `/topology`: a live HTML page drawing the topology for browsers, and the machine forms
//! (`?format=text|dot|mermaid|json`) for programs.
//!
//! Without `?format=` a client that accepts `text/html` (a browser) gets the page, anyone else
//! Kafka Streams' `describe()` text, as before the page existed. The page is one file compiled
//! into the binary (no script or style fetched from anywhere); it reads `?format=json` once a
//! second and updates the rates in place. Rates are the engine's: counts over the last
//! [`RATE_WINDOW`] of the samples every reader's requests took, so every viewer sees the same.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use freshet_streams::topology::DescribeFormat;

use crate::http::AppHandle;

/// The page: HTML, its script and style inline.
const PAGE: &str = include_str!("topology_page.html");

/// How far back rates look.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The shortest span a rate is measured over.
const MIN_RATE_SPAN: Duration = Duration::from_millis(500);

/// Counts at one moment: records processed per task and received per node, fetched per (topic,
/// partition).
struct Sample {
    at: Instant,
    tasks: HashMap<String, u64>,
    /// Records each node received, by (task, node).
    nodes: HashMap<(String, String), u64>,
    partitions: HashMap<(String, i32), u64>,
}

/// The samples of the last [`RATE_WINDOW`], oldest first (one engine runs one application).
static SAMPLES: LazyLock<Mutex<VecDeque<Sample>>> = LazyLock::new(Mutex::default);

/// Records/s between `before` and `now` over `span`, if measurable.
fn per_second(now: u64, before: Option<u64>, span: Option<Duration>) -> serde_json::Value {
    match (before, span) {
        (Some(b), Some(span)) => {
            let r = now.saturating_sub(b) as f64 / span.as_secs_f64();
            ((r * 10.0).round() / 10.0).into()
        }
        _ => serde_json::Value::Null,
    }
}

/// `/topology`'s query.
#[derive(serde::Deserialize)]
pub(crate) struct TopologyQuery {
    format: Option<String>,
}

/// Serves the page, or the form `?format=` names; an unknown format is a 400 naming the known.
pub(crate) async fn topology(
    AxumState(app): AxumState<AppHandle>,
    Query(query): Query<TopologyQuery>,
    headers: HeaderMap,
) -> Response {
    let format = match query.format.as_deref() {
        Some(name) => match DescribeFormat::parse(name) {
            Some(f) => f,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown format {name:?}: use text, dot, mermaid or json\n"),
                )
                    .into_response();
            }
        },
        None if accepts_html(&headers) => {
            return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
        }
        None => DescribeFormat::Text,
    };
    let Ok(app) = app.read() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    match format {
        DescribeFormat::Json => {
            let mut body = app.topology().describe_json();
            body["live"] = live(&app);
            (
                [(header::CONTENT_TYPE, "application/json")],
                format!("{body:#}\n"),
            )
                .into_response()
        }
        other => app.topology().describe(other).into_response(),
    }
}

/// Whether the client asked for HTML (browsers put `text/html` first in `Accept`).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// What this instance runs now: its name (the pod's), state, tasks with their counts and rates,
/// and its input partitions' counts and rates.
fn live(app: &freshet_streams::runtime::KafkaStreams) -> serde_json::Value {
    let metrics = app.metrics();
    let assigned: Vec<(usize, String)> = app
        .tasks()
        .into_iter()
        .enumerate()
        .flat_map(|(thread, tasks)| tasks.into_iter().map(move |id| (thread + 1, id)))
        .collect();
    let counts = metrics.partition_counts();
    let now = Sample {
        at: Instant::now(),
        tasks: assigned
            .iter()
            .map(|(_, id)| (id.clone(), metrics.task_counts(id).unwrap_or_default().0))
            .collect(),
        nodes: assigned
            .iter()
            .flat_map(|(_, id)| {
                metrics
                    .node_counts(id)
                    .into_iter()
                    .map(move |(node, n)| ((id.clone(), node), n))
            })
            .collect(),
        partitions: counts
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.consumed))
            .collect(),
    };
    let mut samples = SAMPLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while samples
        .front()
        .is_some_and(|s| now.at.duration_since(s.at) > RATE_WINDOW)
    {
        samples.pop_front();
    }
    let base = samples
        .front()
        .filter(|s| now.at.duration_since(s.at) >= MIN_RATE_SPAN);
    let span = base.map(|s| now.at.duration_since(s.at));
    let tasks: Vec<serde_json::Value> = assigned
        .iter()
        .map(|(thread, id)| {
            let (processed, produced) = metrics.task_counts(id).unwrap_or_default();
            let nodes: Vec<serde_json::Value> = metrics
                .node_counts(id)
                .into_iter()
                .map(|(node, records)| {
                    let before =
                        base.and_then(|b| b.nodes.get(&(id.clone(), node.clone())).copied());
                    serde_json::json!({
                        "name": node,
                        "records": records,
                        "rate": per_second(records, before, span),
                    })
                })
                .collect();
            serde_json::json!({
                "id": id,
                "thread": thread,
                "processed": processed,
                "produced": produced,
                "rate": per_second(processed, base.and_then(|b| b.tasks.get(id).copied()), span),
                "nodes": nodes,
            })
        })
        .collect();
    let partitions: Vec<serde_json::Value> = counts
        .into_iter()
        .map(|p| {
            let before =
                base.and_then(|b| b.partitions.get(&(p.topic.clone(), p.partition)).copied());
            serde_json::json!({
                "topic": p.topic,
                "partition": p.partition,
                "consumed": p.consumed,
                "lag": p.lag,
                "rate": per_second(p.consumed, before, span),
            })
        })
        .collect();
    if samples
        .back()
        .is_none_or(|s| now.at.duration_since(s.at) >= Duration::from_millis(200))
    {
        samples.push_back(now);
    }
    drop(samples);
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this instance".to_owned());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    // Each stream thread with the client id its group knows it by, its active tasks and its
    // standby (and warm-up) tasks: what Kafka's group tools list for this instance.
    let standbys = app.standby_tasks();
    let threads: Vec<serde_json::Value> = app
        .tasks()
        .into_iter()
        .enumerate()
        .map(|(i, active)| {
            serde_json::json!({
                "thread": i + 1,
                "clientId": app.thread_client_id(i + 1),
                "activeTasks": active,
                "standbyTasks": standbys.get(i).cloned().unwrap_or_default(),
            })
        })
        .collect();
    serde_json::json!({
        "applicationId": app.config().application_id,
        "instance": instance,
        "groupProtocol": app.group_protocol().as_str(),
        "processId": app.group_process_id(),
        "state": app.state().name(),
        "timeMs": now_ms,
        "threads": threads,
        "tasks": tasks,
        "partitions": partitions,
    })
}

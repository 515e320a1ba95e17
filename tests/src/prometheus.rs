//! A real Prometheus (Debian's `prometheus` package, `FRESHET_PROMETHEUS` to use another
//! binary) started by a test on a loopback port it chooses, with a scrape configuration derived
//! from the chart's PodMonitor, ServiceMonitor and the pods' `prometheus.io/*` annotations the
//! way the Prometheus Operator and Prometheus' own `kubernetes-pods` example job derive theirs.
//!
//! Debian builds Prometheus without Kubernetes service discovery, so the pods come from a
//! `file_sd_configs` file the test writes from the apiserver's pods with the labels Kubernetes
//! discovery (`role: pod`) gives each target ([`pod_targets`]); the relabeling that selects and
//! names them is the one the Prometheus Operator generates, unchanged.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::engine::{free_port, http_get};

/// How long a request to Prometheus's HTTP API waits for the answer.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an API request to Prometheus gave no data.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing answered on its port.
    #[error("prometheus did not answer")]
    NoAnswer,
    /// The answer was not JSON.
    #[error("{status}: {source}: {body}")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// What came instead.
        body: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// Prometheus answered with an error (a bad query, say).
    #[error("{status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Prometheus's answer, its error in it.
        body: String,
    },
}

/// The `prometheus` binary.
pub fn prometheus_binary() -> String {
    std::env::var("FRESHET_PROMETHEUS").unwrap_or_else(|_| "prometheus".into())
}

/// The `promtool` binary.
pub fn promtool_binary() -> String {
    std::env::var("FRESHET_PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    /// Where its HTTP API answers.
    pub port: u16,
    /// Its log.
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml text), its storage in a temporary
    /// directory, and waits until it is ready.
    pub fn start(config: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; install Debian's prometheus package (make deps) or set FRESHET_PROMETHEUS",
                    prometheus_binary()
                )
            });
        let mut p = Prometheus {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = http_get(port, "/-/ready", API_TIMEOUT) {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "prometheus exited ({status}):\n{}\nconfig:\n{config}",
                    p.log_text()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "prometheus not ready after 30 s:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`: the `data` of a successful answer, or why not.
    pub fn api(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        let (status, body) = http_get(self.port, &format!("/api/v1/{path}"), API_TIMEOUT)
            .ok_or(ApiError::NoAnswer)?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|source| ApiError::NotJson {
                status,
                body: body.clone(),
                source,
            })?;
        if v["status"] != "success" {
            return Err(ApiError::Refused { status, body });
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result vector.
    pub fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, ApiError> {
        let q: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let data = self.api(&format!("query?query={q}"))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Every metric name Prometheus holds series of.
    pub fn names(&self) -> Vec<String> {
        self.api("label/__name__/values")
            .ok()
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scrape job the Prometheus Operator generates for one `podMetricsEndpoints` entry of a
/// PodMonitor (`monitor`, as rendered by the chart): pods discovered from the apiserver, kept
/// when they match the selector's labels and declare the endpoint's port by name; `namespace`,
/// `pod`, `container` and `job` set; the endpoint's relabelings applied. Targets come from the
/// file `pods` written by [`write_pod_targets`]. `interval` replaces the endpoint's (a test
/// cannot wait 30 s between samples).
pub fn pod_monitor_job(
    monitor: &serde_json::Value,
    pods: &Path,
    interval: &str,
) -> serde_json::Value {
    let name = monitor["metadata"]["name"].as_str().unwrap_or_default();
    let ns = monitor["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    let mut relabel = Vec::new();
    if let Some(labels) = monitor["spec"]["selector"]["matchLabels"].as_object() {
        for (k, v) in labels {
            let k = sanitize(k);
            relabel.push(serde_json::json!({
                "action": "keep",
                "source_labels": [format!("__meta_kubernetes_pod_label_{k}"), format!("__meta_kubernetes_pod_labelpresent_{k}")],
                "regex": format!("({});true", v.as_str().unwrap_or_default()),
            }));
        }
    }
    relabel.push(serde_json::json!({
        "action": "keep",
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": endpoint["port"].as_str().unwrap_or_default(),
    }));
    for (source, target) in [
        ("__meta_kubernetes_namespace", "namespace"),
        ("__meta_kubernetes_pod_container_name", "container"),
        ("__meta_kubernetes_pod_name", "pod"),
    ] {
        relabel.push(serde_json::json!({"source_labels": [source], "target_label": target}));
    }
    relabel.push(serde_json::json!({"target_label": "job", "replacement": format!("{ns}/{name}")}));
    for r in endpoint["relabelings"].as_array().into_iter().flatten() {
        let mut c = serde_json::Map::new();
        if let Some(s) = r.get("sourceLabels") {
            c.insert("source_labels".into(), s.clone());
        }
        for (from, to) in [
            ("targetLabel", "target_label"),
            ("regex", "regex"),
            ("replacement", "replacement"),
            ("action", "action"),
            ("separator", "separator"),
        ] {
            if let Some(v) = r.get(from) {
                c.insert(to.into(), v.clone());
            }
        }
        relabel.push(c.into());
    }
    serde_json::json!({
        "job_name": format!("podMonitor/{ns}/{name}/0"),
        "scrape_interval": interval,
        "metrics_path": endpoint["path"].as_str().unwrap_or("/metrics"),
        "file_sd_configs": [{ "files": [pods.display().to_string()], "refresh_interval": "1s" }],
        "relabel_configs": relabel,
    })
}

/// Prometheus' `kubernetes-pods` example job: pods annotated `prometheus.io/scrape: "true"`,
/// scraped at their IP on `prometheus.io/port`, path `prometheus.io/path`.
pub fn annotations_job(pods: &Path, interval: &str) -> serde_json::Value {
    serde_json::json!({
        "job_name": "kubernetes-pods",
        "scrape_interval": interval,
        "file_sd_configs": [{ "files": [pods.display().to_string()], "refresh_interval": "1s" }],
        "relabel_configs": [
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "target_label": "__metrics_path__", "regex": "(.+)"},
            {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"], "target_label": "__address__", "regex": "(.+);(\\d+)", "replacement": "$1:$2"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    })
}

/// A Prometheus label name from a Kubernetes one, as service discovery writes it.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Writes `pods` to `file` (atomically) as Kubernetes discovery's `role: pod` targets would be:
/// one per declared container port at `<pod IP>:<port>`, with the pod's labels and annotations
/// as `__meta_kubernetes_pod_label_*`/`_labelpresent_*`/`_annotation_*`, its name, namespace,
/// IP, and the container's name and port.
pub fn write_pod_targets(file: &Path, pods: &[k8s_openapi::api::core::v1::Pod]) {
    let mut groups = Vec::new();
    for pod in pods {
        let (Some(ip), Some(spec)) = (
            pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            pod.spec.as_ref(),
        ) else {
            continue;
        };
        let mut common = serde_json::Map::new();
        let meta = &pod.metadata;
        common.insert(
            "__meta_kubernetes_namespace".into(),
            meta.namespace.clone().unwrap_or_default().into(),
        );
        common.insert(
            "__meta_kubernetes_pod_name".into(),
            meta.name.clone().unwrap_or_default().into(),
        );
        common.insert("__meta_kubernetes_pod_ip".into(), ip.clone().into());
        for (k, v) in meta.labels.iter().flatten() {
            common.insert(
                format!("__meta_kubernetes_pod_label_{}", sanitize(k)),
                v.clone().into(),
            );
            common.insert(
                format!("__meta_kubernetes_pod_labelpresent_{}", sanitize(k)),
                "true".into(),
            );
        }
        for (k, v) in meta.annotations.iter().flatten() {
            common.insert(
                format!("__meta_kubernetes_pod_annotation_{}", sanitize(k)),
                v.clone().into(),
            );
            common.insert(
                format!("__meta_kubernetes_pod_annotationpresent_{}", sanitize(k)),
                "true".into(),
            );
        }
        for c in &spec.containers {
            for port in c.ports.iter().flatten() {
                let mut labels = common.clone();
                labels.insert(
                    "__meta_kubernetes_pod_container_name".into(),
                    c.name.clone().into(),
                );
                labels.insert(
                    "__meta_kubernetes_pod_container_port_name".into(),
                    port.name.clone().unwrap_or_default().into(),
                );
                labels.insert(
                    "__meta_kubernetes_pod_container_port_number".into(),
                    port.container_port.to_string().into(),
                );
                groups.push(serde_json::json!({
                    "targets": [format!("{ip}:{}", port.container_port)],
                    "labels": labels,
                }));
            }
        }
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string(&groups).expect("targets json"))
        .expect("write targets");
    std::fs::rename(&tmp, file).expect("rename targets");
}

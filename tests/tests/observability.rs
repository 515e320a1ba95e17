//! Observability against real components: the chart's PodMonitor, dashboard and PrometheusRule
//! behind their values; `promtool test rules` on the alerts the chart renders; and a real
//! Prometheus scraping a running app's pods and the operator with a scrape configuration derived
//! from the PodMonitor, the ServiceMonitor and the pods' `prometheus.io/*` annotations, holding
//! every metric the dashboard and the alerts use, and answering the throughput, lag and latency
//! panels' queries while records flow.
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use freshet_crds::StreamsApp;
use freshet_tests::apps::{BY_KEY, apply, counting_app, operator, send_batch, wait_app_ready};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::prometheus::{
    Prometheus, annotations_job, pod_monitor_job, promtool_binary, write_pod_targets,
};
use freshet_tests::{eventually, kube_client, repo_root, unique_name};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

const WAIT: Duration = Duration::from_secs(120);

/// `helm template` of the chart with `sets`: the rendered documents.
fn render(sets: &[&str]) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(std::env::var("FRESHET_HELM").unwrap_or_else(|_| "helm".into()));
    cmd.args(["template", "t"])
        .arg(repo_root().join("charts/freshet"))
        .args(["--namespace", "freshet"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm template (FRESHET_HELM)");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split("\n---")
        .filter_map(|d| serde_yaml_ng::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The dashboard ConfigMap: the one labelled for the Grafana sidecar.
fn dashboard_of(docs: &[serde_json::Value]) -> Option<serde_json::Value> {
    of_kind(docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .map(|c| {
            serde_json::from_str(c["data"]["freshet.json"].as_str().expect("freshet.json"))
                .expect("the dashboard is JSON")
        })
}

/// The PrometheusRule's rule groups, as a Prometheus rule file.
fn rules_of(docs: &[serde_json::Value]) -> serde_json::Value {
    of_kind(docs, "PrometheusRule")
        .first()
        .map(|r| r["spec"].clone())
        .expect("a PrometheusRule")
}

/// The `(title, expr)` of every dashboard query.
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let (Some(title), Some(expr)) = (p["title"].as_str(), t["expr"].as_str()) {
                out.push((title.to_owned(), expr.to_owned()));
            }
        }
    }
    out
}

/// Every `alert: (name, expr)`.
fn alerts(rules: &serde_json::Value) -> Vec<(String, String)> {
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| {
            Some((
                r["alert"].as_str()?.to_owned(),
                r["expr"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The metric names (`freshet_...`) a PromQL expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("freshet_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn monitoring_objects_render_only_behind_their_values() {
    let off = render(&[]);
    for kind in ["PodMonitor", "PrometheusRule"] {
        assert!(of_kind(&off, kind).is_empty(), "{kind} rendered by default");
    }
    assert!(
        dashboard_of(&off).is_none(),
        "dashboard rendered by default"
    );
    let on = render(&[
        "metrics.podMonitor.enabled=true",
        "metrics.dashboards.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "watchNamespaces={shop}",
    ]);
    let monitor = of_kind(&on, "PodMonitor");
    assert_eq!(monitor.len(), 1);
    assert_eq!(
        monitor[0]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "freshet-engine"
    );
    assert_eq!(
        monitor[0]["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["shop"]),
        "the PodMonitor looks where the operator runs apps"
    );
    let dashboard = dashboard_of(&on).expect("the dashboard ConfigMap");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("charts/freshet/files/dashboard.json"))
            .expect("dashboard.json"),
    )
    .expect("dashboard.json is JSON");
    assert_eq!(dashboard, shipped);
    let titles: BTreeSet<String> = panel_queries(&dashboard)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    for needed in [
        "Throughput",
        "Throughput per task",
        "Consumer lag",
        "Process latency",
        "Restore progress",
        "Dead-letter records",
        "RocksDB memory",
    ] {
        assert!(titles.contains(needed), "no panel {needed}: {titles:?}");
    }
    // Engine pods and the operator's own pod carry the annotations annotation-based scrapers read.
    let deployment = of_kind(&on, "Deployment")[0];
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
}

#[test]
fn every_alert_passes_its_promtool_unit_test_and_has_a_runbook() {
    let rules = rules_of(&render(&["metrics.prometheusRule.enabled=true"]));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rules).expect("rules yaml"),
    )
    .expect("write rules.yaml");
    let tests = std::fs::read_to_string(repo_root().join("tests/prometheus/alerts.test.yaml"))
        .expect("tests/prometheus/alerts.test.yaml");
    std::fs::write(dir.path().join("alerts.test.yaml"), &tests).expect("write the tests");
    let run = |args: &[&str]| {
        let out = Command::new(promtool_binary())
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run promtool: {e}; install Debian's prometheus package (make deps)")
            });
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["check", "rules", "rules.yaml"]);
    run(&["test", "rules", "alerts.test.yaml"]);
    let cases: serde_json::Value = serde_yaml_ng::from_str(&tests).expect("tests yaml");
    let tested: BTreeSet<String> = cases["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["alert_rule_test"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .filter_map(|c| c["alertname"].as_str().map(str::to_owned))
        .collect();
    let runbook = std::fs::read_to_string(repo_root().join("docs/runbooks/alerts.md"))
        .expect("docs/runbooks/alerts.md");
    let all = alerts(&rules);
    assert_eq!(all.len(), 5, "{all:?}");
    for (alert, _) in &all {
        assert!(
            tested.contains(alert),
            "{alert} has no promtool case that fires it"
        );
        assert!(
            runbook.contains(&format!("\n## {alert}\n")),
            "{alert} has no section in docs/runbooks/alerts.md"
        );
    }
}

/// Prometheus scrapes the pods of a counting app (through the PodMonitor's and the annotations'
/// jobs) and the operator (the ServiceMonitor's), while records flow.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_app_and_the_operator_and_answers_the_panels() {
    let docs = render(&[
        "metrics.podMonitor.enabled=true",
        "metrics.dashboards.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "serviceMonitor.enabled=true",
    ]);
    let dashboard = dashboard_of(&docs).expect("dashboard");
    let rules = rules_of(&docs);
    let monitor = of_kind(&docs, "PodMonitor")[0].clone();
    let service_monitor = of_kind(&docs, "ServiceMonitor")[0].clone();

    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "metrics").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("metrics-in"), unique_name("metrics-out"));
    create_topics(&[(&input, 3), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let mut app = counting_app(&unique_name("metrics-app"), &input, &output, "", BY_KEY);
    // librdkafka's statistics every second rather than every 10 s: the test waits less.
    app.spec
        .config
        .insert("statistics.interval.ms".into(), "1000".into());
    apply(&apps, app).await;
    send_batch(&input, 30, 2, false);
    wait_app_ready(&apps, "counter").await;

    // Records keep flowing while Prometheus scrapes.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, input) = (stop.clone(), input.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                send_batch(&input, 30, 4, false);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // The pods' discovery (see freshet_tests::prometheus): refreshed while the test runs.
    let sd_dir = tempfile::tempdir().expect("temp dir");
    let targets = sd_dir.path().join("pods.json");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = pods.list(&Default::default()).await.expect("list pods");
    write_pod_targets(&targets, &list.items);
    let operator_job = serde_json::json!({
        "job_name": format!("serviceMonitor/freshet/{}/0", service_monitor["metadata"]["name"].as_str().unwrap_or_default()),
        "scrape_interval": "1s",
        "metrics_path": service_monitor["spec"]["endpoints"][0]["path"],
        "static_configs": [{ "targets": [format!("127.0.0.1:{}", op.http_port)], "labels": { "namespace": "freshet", "pod": "operator" } }],
    });
    let config = serde_json::json!({
        "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
        "scrape_configs": [
            pod_monitor_job(&monitor, &targets, "1s"),
            annotations_job(&targets, "1s"),
            operator_job,
        ],
    });
    let prometheus = Prometheus::start(&serde_yaml_ng::to_string(&config).expect("config yaml"));
    // The Prometheus Operator's job label: <namespace>/<PodMonitor>.
    let pod_job = format!(
        "freshet/{}",
        monitor["metadata"]["name"].as_str().unwrap_or_default()
    );
    for job in [pod_job.as_str(), "kubernetes-pods"] {
        eventually(WAIT, &format!("{job} scrapes counter-0"), || async {
            let up = prometheus
                .query(&format!(
                    r#"up{{job="{job}", namespace="{ns}", pod="counter-0"}} == 1"#
                ))
                .ok()?;
            (!up.is_empty()).then_some(())
        })
        .await;
    }
    eventually(WAIT, "the operator scraped", || async {
        let up = prometheus
            .query(r#"up{job=~"serviceMonitor/.*"} == 1"#)
            .ok()?;
        (!up.is_empty()).then_some(())
    })
    .await;
    let streamsapp = prometheus
        .query(&format!(r#"freshet_state{{job="{pod_job}"}}"#))
        .expect("query");
    assert_eq!(
        streamsapp
            .first()
            .map(|s| s["metric"]["streamsapp"].clone()),
        Some(serde_json::json!("counter")),
        "the PodMonitor's relabeling names the app: {streamsapp:?}"
    );

    // Every metric the dashboard and the alerts read is scraped.
    let mut used = BTreeSet::new();
    for (_, expr) in panel_queries(&dashboard) {
        used.extend(metric_names(&expr));
    }
    for (_, expr) in alerts(&rules) {
        used.extend(metric_names(&expr));
    }
    assert!(used.len() >= 15, "{used:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let names: BTreeSet<String> = prometheus.names().into_iter().collect();
        let missing: Vec<&String> = used.iter().filter(|n| !names.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "used by the dashboard or the alerts, not scraped after 60 s: {missing:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    let substituted = |expr: &str| {
        expr.replace("$namespace", &ns)
            .replace("$app", "counter")
            .replace("$pod", ".*")
            .replace("$__rate_interval", "30s")
    };
    // Every query of the dashboard and every alert is valid PromQL to this Prometheus.
    for (title, expr) in panel_queries(&dashboard) {
        if let Err(e) = prometheus.query(&substituted(&expr)) {
            panic!("panel {title}: {expr}: {e}");
        }
    }
    for (alert, expr) in alerts(&rules) {
        if let Err(e) = prometheus.query(&expr) {
            panic!("alert {alert}: {expr}: {e}");
        }
    }
    // The throughput, lag and latency panels answer, with numbers, for this app.
    let answered = |expr: &str| {
        let result = prometheus.query(&substituted(expr)).unwrap_or_default();
        result.iter().any(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        })
    };
    for title in [
        "Throughput",
        "Throughput per task",
        "Consumer lag",
        "Consumer lag (librdkafka)",
        "Process latency",
        "Broker round-trip time",
    ] {
        let queries: Vec<String> = panel_queries(&dashboard)
            .into_iter()
            .filter(|(t, _)| t == title)
            .map(|(_, e)| e)
            .collect();
        eventually(
            Duration::from_secs(60),
            &format!("panel {title} answers"),
            || async { queries.iter().all(|q| answered(q)).then_some(()) },
        )
        .await;
    }
    let throughput = prometheus
        .query(&format!(
            r#"sum(rate(freshet_records_processed_total{{namespace="{ns}"}}[30s]))"#
        ))
        .expect("query");
    println!("throughput while scraped: {throughput:?}");

    // Every engine metric is documented next to its Kafka Streams name.
    let docs_text =
        std::fs::read_to_string(repo_root().join("docs/metrics.md")).expect("docs/metrics.md");
    for name in prometheus.names() {
        if !name.starts_with("freshet_") {
            continue;
        }
        let base = ["_bucket", "_count", "_sum", "_total", "_created"]
            .iter()
            .fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(
            docs_text.contains(&format!("`{base}")),
            "{name} is not in docs/metrics.md"
        );
    }

    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

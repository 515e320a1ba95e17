//! StreamsApps run by the operator on the test node: the operator process, a counting app,
//! sending input, reading its counts back, and watching its pods. Shared by the pod and
//! autoscaling tests.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::engine::{EngineProcess, free_port};
use crate::kafka::{Received, key_values, produce, produce_transactional};
use crate::{eventually, kafka_bootstrap, kubeconfig_path, kubelet, pod_kafka_bootstrap};

/// How long a test waits for a pod, a count or a scale.
pub const WAIT: Duration = Duration::from_secs(120);

/// The operator, watching `ns` only, resyncing every 2 s, without leader election.
pub fn operator(ns: &str) -> EngineProcess {
    let port = free_port();
    let kubeconfig = kubeconfig_path().display().to_string();
    // On the real node the engine pods run the test profile's image, loaded into its containerd.
    let image: Vec<String> = if kubelet::selected() {
        vec!["--engine-image".into(), kubelet::engine_image()]
    } else {
        Vec::new()
    };
    EngineProcess::spawn(
        "freshet-operator",
        &[
            image,
            vec![
                "--namespace".into(),
                ns.into(),
                "--http-port".into(),
                port.to_string(),
                "--http-address".into(),
                "127.0.0.1".into(),
                "--leader-election".into(),
                "false".into(),
                "--resync-seconds".into(),
                "2".into(),
            ],
        ]
        .concat(),
        &[("KUBECONFIG", kubeconfig.as_str())],
        port,
    )
}

/// The StreamsApp `counter`: counts per key into `output` (a long per key), with `extra` spec
/// lines (indented two spaces) and `steps` before the count (e.g. `- groupByKey: {}`, or a
/// `groupBy` for a repartition topic). A changelogged store, so moved tasks restore it.
pub fn counting_app(
    app_id: &str,
    input: &str,
    output: &str,
    extra: &str,
    steps: &str,
) -> StreamsApp {
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: counter }}
spec:
  applicationId: {app_id}
  bootstrapServers: "{bootstrap}"
  defaultKeySerde: string
  defaultValueSerde: string
  replicas: 1
{extra}
  config:
    commit.interval.ms: "200"
    session.timeout.ms: "6000"
  topology:
    streams:
      - {{ name: events, topic: {input} }}
    pipelines:
      - name: count
        from: events
        steps:
{steps}
          - count: {{ store: counts }}
          - toStream: {{}}
          - to: {{ topic: {output}, valueSerde: long }}
"#,
        bootstrap = pod_kafka_bootstrap()
    ))
    .expect("test StreamsApp")
}

/// The steps of a count by the record's own key, without a repartition topic.
pub const BY_KEY: &str = "          - groupByKey: {}";

/// `each` records for each of `keys` keys (`k0`…), in rounds; with `transactional`, written by
/// a transactional producer, one transaction per 10,000 records.
pub fn send_batch(topic: &str, keys: usize, each: usize, transactional: bool) {
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..each)
        .flat_map(|i| {
            (0..keys).map(move |k| (format!("k{k}").into_bytes(), format!("v{i}").into_bytes()))
        })
        .collect();
    let refs = key_values(&owned);
    if transactional {
        produce_transactional(topic, &refs, 10_000);
    } else {
        produce(topic, &refs, 0);
    }
}

/// The latest count per key.
pub fn counts(records: &[Received]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for r in records {
        let v = r.value.as_deref().expect("count");
        out.insert(
            r.key_str().to_owned(),
            i64::from_be_bytes(v.try_into().expect("8-byte long")),
        );
    }
    out
}

/// The latest count per key written to `output`, read under read_committed up to its end.
pub fn read_counts(output: &str) -> BTreeMap<String, i64> {
    let client: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    let got: Vec<Received> = crate::differential::progress::read_all_committed(&client, output)
        .expect("read the output")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    counts(&got)
}

/// Waits until every key's count reaches `at_least`; the time it took.
pub fn wait_counts(output: &str, keys: usize, at_least: i64) -> Duration {
    let started = Instant::now();
    let deadline = started + WAIT;
    loop {
        let c = read_counts(output);
        if c.len() == keys && c.values().all(|&n| n >= at_least) {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "counts did not all reach {at_least}: {} keys, lowest {:?}",
            c.len(),
            c.values().min()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Server-side applies the StreamsApp `counter`.
pub async fn apply(apps: &Api<StreamsApp>, app: StreamsApp) {
    apps.patch(
        "counter",
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(app),
    )
    .await
    .expect("apply the StreamsApp");
}

/// Waits until the pod's container was restarted and is ready again.
pub async fn wait_restarted(pods: &Api<Pod>, name: &str) {
    eventually(WAIT, &format!("{name} restarted"), || async {
        let p = pods.get(name).await.ok()?;
        let s = p.status?.container_statuses?.first()?.clone();
        (s.restart_count >= 1 && s.ready).then_some(())
    })
    .await;
}

/// Pods of `counter` that are Ready and not being deleted.
pub async fn ready_pods(pods: &Api<Pod>) -> usize {
    pods.list(&ListParams::default().labels("freshet.dev/app=counter"))
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                })
                .count()
        })
        .unwrap_or(0)
}

/// The condition `type_` of StreamsApp `name` once it has `reason`, within [`WAIT`]; fails
/// with the operator's log.
pub async fn condition_with(
    apps: &Api<StreamsApp>,
    name: &str,
    type_: &str,
    reason: &str,
    op: &EngineProcess,
) -> Condition {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = apps
            .get(name)
            .await
            .ok()
            .and_then(|a| a.status)
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == type_));
        if let Some(c) = found.filter(|c| c.reason == reason) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "no {type_} condition with reason {reason} on {name}; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits, within [`WAIT`], for StreamsApp `name`'s `Ready` condition to be `True`.
pub async fn wait_app_ready(apps: &Api<StreamsApp>, name: &str) {
    eventually(WAIT, &format!("StreamsApp {name} Ready"), || async {
        let app = apps.get(name).await.ok()?;
        app.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
}

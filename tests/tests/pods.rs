//! StreamsApps whose pods really run: the operator reconciles, the StatefulSet controller makes
//! pods, and the test node (`freshet_tests::node`) runs each pod's engine as a local process.
//! Scaling moves the work between processes without losing any; a SIGKILLed pod process is
//! restarted and resumes from its state directory.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::engine::{EngineProcess, free_port};
use freshet_tests::kafka::{Received, create_topics, produce};
use freshet_tests::node::Node;
use freshet_tests::{
    eventually, kafka_bootstrap, kube_client, kubeconfig_path, kubectl, unique_name,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(120);

fn operator(ns: &str) -> EngineProcess {
    let port = free_port();
    let kubeconfig = kubeconfig_path().display().to_string();
    EngineProcess::spawn(
        "freshet-operator",
        &[
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
        &[("KUBECONFIG", kubeconfig.as_str())],
        port,
    )
}

/// Counts per key: a changelogged store, so moved tasks restore it.
fn counting_app(app_id: &str, input: &str, output: &str) -> StreamsApp {
    counting_app_with(app_id, input, output, "")
}

fn counting_app_with(app_id: &str, input: &str, output: &str, extra: &str) -> StreamsApp {
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
          - groupByKey: {{}}
          - count: {{ store: counts }}
          - toStream: {{}}
          - to: {{ topic: {output}, valueSerde: long }}
"#,
        bootstrap = kafka_bootstrap()
    ))
    .expect("test StreamsApp")
}

fn send_batch(topic: &str, keys: usize, each: usize) {
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..each)
        .flat_map(|i| {
            (0..keys).map(move |k| (format!("k{k}").into_bytes(), format!("v{i}").into_bytes()))
        })
        .collect();
    let refs: Vec<_> = owned
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
        .collect();
    produce(topic, &refs, 0);
}

/// The latest count per key.
fn counts(records: &[Received]) -> BTreeMap<String, i64> {
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

/// Waits until every key's count reaches `at_least`; the time it took.
fn wait_counts(output: &str, keys: usize, at_least: i64) -> Duration {
    let started = Instant::now();
    let deadline = started + WAIT;
    let client: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client");
    loop {
        // Everything written so far, up to the end offsets.
        let got: Vec<Received> =
            freshet_tests::differential::progress::read_all_committed(&client, output)
                .expect("read the output")
                .into_iter()
                .map(|(_, r)| r)
                .collect();
        let c = counts(&got);
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

async fn apply(apps: &Api<StreamsApp>, app: StreamsApp) {
    apps.patch(
        "counter",
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(app),
    )
    .await
    .expect("apply the StreamsApp");
}

/// Waits until the pod's container was restarted and is ready again.
async fn wait_restarted(pods: &Api<Pod>, name: &str) {
    eventually(WAIT, &format!("{name} restarted"), || async {
        let p = pods.get(name).await.ok()?;
        let s = p.status?.container_statuses?.first()?.clone();
        (s.restart_count >= 1 && s.ready).then_some(())
    })
    .await;
}

async fn ready_pods(pods: &Api<Pod>) -> usize {
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

#[tokio::test(flavor = "multi_thread")]
async fn pods_count_scale_out_and_back_and_survive_a_kill() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "pods").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("pods-in"), unique_name("pods-out"));
    create_topics(&[(&input, 6), (&output, 1)]).await;
    let keys = 60;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    apply(
        &apps,
        counting_app(&unique_name("pods-app"), &input, &output),
    )
    .await;
    send_batch(&input, keys, 10);
    eventually(WAIT, "the app Ready", || async {
        let app = apps.get("counter").await.ok()?;
        app.status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    wait_counts(&output, keys, 10);

    // 1 → 3: the tasks spread over three processes; nothing is lost.
    let scale = |n: u32| {
        let out = kubectl()
            .args([
                "-n",
                &ns,
                "scale",
                "sapp/counter",
                &format!("--replicas={n}"),
            ])
            .output()
            .expect("kubectl scale");
        assert!(out.status.success(), "{out:?}");
    };
    scale(3);
    // Records sent during the rebalance: how long until every count is current is the stall.
    send_batch(&input, keys, 10);
    let up = wait_counts(&output, keys, 20);
    println!(
        "scale 1 -> 3: all counts current after {} ms",
        up.as_millis()
    );
    eventually(WAIT, "three pods ready", || async {
        (ready_pods(&pods).await == 3).then_some(())
    })
    .await;
    send_batch(&input, keys, 10);
    wait_counts(&output, keys, 30);
    for pod in ["counter-0", "counter-1", "counter-2"] {
        let log = std::fs::read_to_string(node.log_path(&ns, pod)).unwrap_or_default();
        assert!(log.contains("task created"), "{pod} got no task:\n{log}");
    }

    // 3 → 1.
    scale(1);
    send_batch(&input, keys, 10);
    let down = wait_counts(&output, keys, 40);
    println!(
        "scale 3 -> 1: all counts current after {} ms",
        down.as_millis()
    );
    eventually(WAIT, "one pod left", || async {
        let s = sets.get("counter").await.ok()?;
        (s.status?.replicas == 1).then_some(())
    })
    .await;

    // SIGKILL the remaining process: restarted, resumes from its state directory.
    assert!(
        node.kill_container(&ns, "counter-0"),
        "no process for counter-0"
    );
    wait_restarted(&pods, "counter-0").await;
    send_batch(&input, keys, 10);
    wait_counts(&output, keys, 50);
    let log = std::fs::read_to_string(node.log_path(&ns, "counter-0")).unwrap_or_default();
    let after_kill = log
        .rsplit("stream thread started")
        .next()
        .unwrap_or_default();
    assert!(
        after_kill.contains("task created"),
        "no restart in the log:\n{log}"
    );
    assert!(
        !after_kill.contains("from=0 "),
        "after the kill a store was restored from the changelog's start:\n{after_kill}"
    );
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_scales_the_app_out_to_the_cap_and_back_after_the_window() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "autoscale").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("auto-in"), unique_name("auto-out"));
    create_topics(&[(&input, 6), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    // Shortened for the test: 2 s measurements over 10 s, 12 s before scaling down.
    let autoscaling = "  numStreamThreads: 2\n  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 8, metricsInterval: 2s, window: 10s, scaleDownStabilization: 12s, cooldown: 4s, catchUpDuration: 3s, maxLagPerReplica: 50000 }";
    apply(
        &apps,
        counting_app_with(&unique_name("auto-app"), &input, &output, autoscaling),
    )
    .await;
    eventually(WAIT, "one pod ready", || async {
        (ready_pods(&pods).await == 1).then_some(())
    })
    .await;
    let keys = 1000;
    let burst = Instant::now();
    send_batch(&input, keys, 300);
    let produced = burst.elapsed();
    // Watch the StatefulSet: never above the cap (6 partitions / 2 threads = 3).
    let mut most = 0;
    let mut scaled_up = None;
    let deadline = Instant::now() + WAIT;
    while scaled_up.is_none() {
        let r = sets
            .get("counter")
            .await
            .ok()
            .and_then(|s| s.spec?.replicas)
            .unwrap_or(0);
        most = most.max(r);
        if ready_pods(&pods).await == 3 {
            scaled_up = Some(burst.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "never 3 pods ready; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "burst of {} records (produced in {} ms) -> 3 pods ready after {} ms",
        keys * 300,
        produced.as_millis(),
        scaled_up.expect("scaled").as_millis()
    );
    wait_counts(&output, keys, 300);
    let drained = Instant::now();
    // Down only after the 12 s stabilisation window, and to 1.
    let mut down_at = None;
    while down_at.is_none() {
        let r = sets
            .get("counter")
            .await
            .ok()
            .and_then(|s| s.spec?.replicas)
            .unwrap_or(0);
        most = most.max(r);
        if r < 3 {
            down_at = Some(drained.elapsed());
        }
        assert!(
            Instant::now() < deadline + WAIT,
            "never scaled down; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let down_at = down_at.expect("down");
    println!("drained -> scaled down after {} ms", down_at.as_millis());
    assert!(
        down_at >= Duration::from_secs(10),
        "scaled down {down_at:?} after draining, inside the window"
    );
    assert!(
        most <= 3,
        "the StatefulSet went to {most}, above the cap of 3"
    );
    eventually(WAIT, "back to one replica", || async {
        let s = sets.get("counter").await.ok()?;
        (s.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    // Nothing lost across the rescales.
    send_batch(&input, keys, 1);
    wait_counts(&output, keys, 301);
    let app = apps.get("counter").await.expect("app");
    let shown = app
        .status
        .and_then(|s| s.autoscaling)
        .expect("status.autoscaling");
    assert_eq!(shown.desired_replicas, 1, "{shown:?}");
    assert!(shown.last_scale_time.is_some(), "{shown:?}");
    op.kill();
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exactly_once_pod_killed_restores_from_the_changelog_with_exact_counts() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "pods-eos").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("eos-in"), unique_name("eos-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let keys = 40;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    apply(
        &apps,
        counting_app_with(
            &unique_name("eos-app"),
            &input,
            &output,
            "  processingGuarantee: exactly_once_v2",
        ),
    )
    .await;
    send_batch(&input, keys, 10);
    wait_counts(&output, keys, 10);
    assert!(
        node.kill_container(&ns, "counter-0"),
        "no process for counter-0"
    );
    wait_restarted(&pods, "counter-0").await;
    send_batch(&input, keys, 10);
    wait_counts(&output, keys, 20);
    // read_committed: every key's latest count is exact, none above.
    let client_md: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("client");
    let got: Vec<Received> =
        freshet_tests::differential::progress::read_all_committed(&client_md, &output)
            .expect("read")
            .into_iter()
            .map(|(_, r)| r)
            .collect();
    let c = counts(&got);
    assert!(c.values().all(|&n| n == 20), "{c:?}");
    let log = std::fs::read_to_string(node.log_path(&ns, "counter-0")).unwrap_or_default();
    let after_kill = log
        .rsplit("stream thread started")
        .next()
        .unwrap_or_default();
    assert!(
        after_kill.contains("store restored from its changelog") && after_kill.contains("from=0 "),
        "after the kill the store was not restored from the changelog's start:\n{after_kill}"
    );
    op.kill();
    drop(node);
}

//! The operator against the real kube-apiserver (with the controller-manager) and the real
//! broker: a StreamsApp becomes internal topics, a ConfigMap, a headless Service, a StatefulSet
//! and a PodDisruptionBudget; replicas are capped by partitions; bad input and faults set
//! conditions that say why; delete honours cleanupPolicy; two operators elect one leader.
//!
//! Each test runs its own operator process on its own namespace (no pods run: the test cluster
//! has no kubelet, and none of this needs one).
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::cluster::{events, install_crd, namespace};
use freshet_tests::engine::{EngineProcess, free_port};
use freshet_tests::kafka::{create_topics, partition_count};
use freshet_tests::{
    eventually, kafka_bootstrap, kube_client, kubeconfig_path, kubectl, unique_name,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// An operator process watching `ns`; `extra` adds flags.
fn operator(ns: &str, extra: &[&str]) -> EngineProcess {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "--namespace".into(),
        ns.into(),
        "--http-port".into(),
        port.to_string(),
        "--retry-seconds".into(),
        "2".into(),
        "--resync-seconds".into(),
        "2".into(),
    ];
    if !extra.contains(&"--leader-election") {
        args.extend(["--leader-election".into(), "false".into()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let kubeconfig = kubeconfig_path().display().to_string();
    EngineProcess::spawn(
        "freshet-operator",
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
        ],
        port,
    )
}

/// A StreamsApp counting orders per customer (a repartition topic and a changelog).
fn counting_app(name: &str, app_id: &str, input: &str, bootstrap: &str, extra: &str) -> StreamsApp {
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: {name} }}
spec:
  applicationId: {app_id}
  bootstrapServers: "{bootstrap}"
  defaultKeySerde: string
  defaultValueSerde: json
  replicas: 2
{extra}
  topology:
    streams:
      - {{ name: orders, topic: {input} }}
    pipelines:
      - name: per-customer
        from: orders
        steps:
          - groupBy: "value.customer"
          - count: {{ store: counts }}
          - toStream: {{}}
          - to: {{ topic: {input}-counts, valueSerde: long }}
"#
    ))
    .expect("test StreamsApp")
}

async fn apply_app(apps: &Api<StreamsApp>, app: &StreamsApp) {
    apps.patch(
        &app.name_any(),
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(app),
    )
    .await
    .expect("apply the StreamsApp");
}

/// The condition `type_` of the app, once it satisfies `pred`.
async fn condition(
    apps: &Api<StreamsApp>,
    name: &str,
    type_: &str,
    pred: impl Fn(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition) -> bool,
    op: &EngineProcess,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let what = format!("condition {type_} of {name}");
    let deadline = Instant::now() + WAIT;
    loop {
        let app = apps.get(name).await.expect("get app");
        let found = app
            .status
            .unwrap_or_default()
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_);
        if let Some(c) = found.filter(|c| pred(c)) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A typed step from its JSON form.
fn step(json: serde_json::Value) -> freshet_crds::Step {
    serde_json::from_value(json).expect("a valid step")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streams_app_becomes_topics_and_a_capped_stateful_set() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-apply").await;
    let input = unique_name("op-orders");
    create_topics(&[(&input, 4)]).await;
    let app_id = unique_name("op-app");
    let mut op = operator(&ns, &[]);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);

    let applied = Instant::now();
    apply_app(
        &apps,
        &counting_app("orders", &app_id, &input, &kafka_bootstrap(), ""),
    )
    .await;
    let sts = eventually(WAIT, "the StatefulSet", || async {
        sets.get_opt("orders").await.ok().flatten()
    })
    .await;
    println!(
        "apply -> StatefulSet exists: {} ms",
        applied.elapsed().as_millis()
    );
    let spec = sts.spec.clone().expect("sts spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(
        sts.owner_references()[0].kind,
        "StreamsApp",
        "owned by the StreamsApp"
    );
    // Internal topics: named as the engine names them, sized like the input.
    for suffix in ["counts-repartition", "counts-changelog"] {
        assert_eq!(
            partition_count(&format!("{app_id}-{suffix}")),
            4,
            "{app_id}-{suffix}"
        );
    }
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("orders-app")
        .await
        .expect("ConfigMap");
    let manifest = &cm.data.expect("data")["app.yaml"];
    let parsed: StreamsApp =
        serde_yaml_ng::from_str(manifest).expect("the engine's manifest parses");
    assert_eq!(parsed.spec.application_id, app_id);
    assert_eq!(parsed.spec.replicas, None, "scaling must not roll the pods");
    let svc = Api::<Service>::namespaced(client.clone(), &ns)
        .get("orders")
        .await
        .expect("Service");
    assert_eq!(
        svc.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None"),
        "headless"
    );
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
        .get("orders")
        .await
        .expect("PodDisruptionBudget");
    let valid = condition(
        &apps,
        "orders",
        "TopologyValid",
        |c| c.status == "True",
        &op,
    )
    .await;
    let app = apps.get("orders").await.expect("app");
    let status = app.status.clone().expect("status");
    assert_eq!(status.observed_generation, app.metadata.generation);
    assert_eq!(valid.observed_generation, app.metadata.generation);
    assert_eq!(status.max_useful_replicas, Some(4));
    assert_eq!(status.selector.as_deref(), Some("freshet.dev/app=orders"));
    let created = events(&client, &ns, "TopicCreated").await;
    assert_eq!(created.len(), 1, "one Event for the topics created");
    let note = created[0].message.clone().unwrap_or_default();
    assert!(
        note.contains(&format!("{app_id}-counts-repartition (4 partitions)"))
            && note.contains(&format!("{app_id}-counts-changelog (4 partitions)")),
        "{note}"
    );

    // Nothing changed: later reconciles (every 2 s here) write nothing. First the status
    // settles: the controller-manager creates the two pods (they stay Pending, no kubelet).
    eventually(WAIT, "status.replicas 2", || async {
        let s = apps.get("orders").await.ok()?.status?;
        (s.replicas == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = apps.get("orders").await.expect("app");
    // The StatefulSet's status is the controller-manager's; its spec generation is ours.
    let versions = |a: &StreamsApp, s: &StatefulSet| (a.resource_version(), s.metadata.generation);
    let before = versions(&app, &sets.get("orders").await.expect("sts"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = versions(
        &apps.get("orders").await.expect("app"),
        &sets.get("orders").await.expect("sts"),
    );
    assert_eq!(before, after, "an idle reconcile wrote something");
    assert_eq!(
        events(&client, &ns, "TopicCreated").await.len(),
        1,
        "no new TopicCreated events"
    );

    // Above the cap: the StatefulSet stays at 4 tasks / 1 thread, spec.replicas stays 10.
    let scaled = kubectl()
        .args(["-n", &ns, "scale", "sapp/orders", "--replicas=10"])
        .output()
        .expect("kubectl scale");
    assert!(scaled.status.success(), "{scaled:?}");
    eventually(WAIT, "StatefulSet at the cap", || async {
        let s = sets.get("orders").await.ok()?;
        (s.spec?.replicas == Some(4)).then_some(())
    })
    .await;
    assert_eq!(
        apps.get("orders").await.expect("app").spec.replicas,
        Some(10)
    );
    let capped = condition(
        &apps,
        "orders",
        "Scaling",
        |c| c.reason == "ReplicasCapped",
        &op,
    )
    .await;
    assert!(
        capped
            .message
            .contains(&format!("add partitions to {input}")),
        "{}",
        capped.message
    );
    let warnings = eventually(WAIT, "a ReplicasCapped Event", || async {
        let e = events(&client, &ns, "ReplicasCapped").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    let table = kubectl()
        .args(["-n", &ns, "get", "sapp", "orders"])
        .output()
        .expect("kubectl get");
    let text = String::from_utf8_lossy(&table.stdout);
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "APP",
            "ID",
            "REPLICAS",
            "READY",
            "LAG",
            "SUSPENDED",
            "AGE"
        ],
        "{text}"
    );
    assert!(text.contains(&app_id), "{text}");

    // Retain (the default): deleting keeps the topics.
    apps.delete("orders", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the StreamsApp gone", || async {
        apps.get_opt("orders").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(partition_count(&format!("{app_id}-counts-changelog")), 4);
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
}

fn group_exists(group: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("consumer");
    consumer
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .map(|l| {
            l.groups()
                .iter()
                .any(|g| g.name() == group && g.state() != "Dead")
        })
        .unwrap_or(false)
}

/// Commits an offset for `group`, as a running app would have.
fn commit_for(group: &str, topic: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(0))
        .expect("tpl");
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_policy_delete_resets_the_application() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-delete").await;
    let input = unique_name("op-del-orders");
    create_topics(&[(&input, 2)]).await;
    let app_id = unique_name("op-del-app");
    let mut op = operator(&ns, &[]);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    apply_app(
        &apps,
        &counting_app(
            "doomed",
            &app_id,
            &input,
            &kafka_bootstrap(),
            "  cleanupPolicy: Delete",
        ),
    )
    .await;
    condition(&apps, "doomed", "TopicsReady", |c| c.status == "True", &op).await;
    commit_for(&app_id, &input);
    assert!(group_exists(&app_id), "the group exists before the delete");
    apps.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the StreamsApp gone", || async {
        apps.get_opt("doomed").await.ok()?.is_none().then_some(())
    })
    .await;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("consumer");
    eventually(WAIT, "internal topics deleted", || async {
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .ok()?;
        let left: Vec<&str> = md
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|n| n.starts_with(&format!("{app_id}-")))
            .collect();
        left.is_empty().then_some(())
    })
    .await;
    assert!(!group_exists(&app_id), "the consumer group was not deleted");
    assert_eq!(events(&client, &ns, "ApplicationReset").await.len(), 1);
    op.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_topologies_and_missing_topics_set_conditions_that_say_why() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-bad").await;
    let input = unique_name("op-bad-orders");
    create_topics(&[(&input, 2)]).await;
    let mut op = operator(&ns, &[]);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);

    // A good app, then a bad expression: TopologyValid=False, the StatefulSet untouched.
    let good = counting_app(
        "app",
        &unique_name("op-bad-app"),
        &input,
        &kafka_bootstrap(),
        "",
    );
    apply_app(&apps, &good).await;
    let sts = eventually(WAIT, "the StatefulSet", || async {
        sets.get_opt("app").await.ok().flatten()
    })
    .await;
    let mut bad = good.clone();
    bad.spec.topology.pipelines[0].steps[0] = step(json!({ "groupBy": "vlaue.customer" }));
    apply_app(&apps, &bad).await;
    let invalid = condition(&apps, "app", "TopologyValid", |c| c.status == "False", &op).await;
    assert!(
        invalid.message.contains("vlaue"),
        "the compiler's message names the typo: {}",
        invalid.message
    );
    assert_eq!(
        sets.get("app").await.expect("sts").metadata.generation,
        sts.metadata.generation,
        "the running StatefulSet was touched"
    );

    // A password in spec.config: ConfigValid=False, naming the field to use and never the value,
    // neither in the status nor in an Event.
    let mut secret = good.clone();
    secret
        .spec
        .config
        .insert("sasl.password".into(), "hunter2-in-config".into());
    apply_app(&apps, &secret).await;
    let refused = condition(&apps, "app", "ConfigValid", |c| c.status == "False", &op).await;
    assert!(
        refused
            .message
            .contains("spec.kafka.authentication.passwordSecret")
            && refused.message.contains("spec.config[\"sasl.password\"]"),
        "{}",
        refused.message
    );
    let status =
        serde_json::to_string(&apps.get("app").await.expect("app").status).expect("status as JSON");
    assert!(!status.contains("hunter2"), "{status}");
    assert!(
        !events(&client, &ns, "ConfigInvalid").await.is_empty(),
        "no ConfigInvalid Event"
    );
    // No Event of any reason carries the value.
    let all = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("events");
    let events = serde_json::to_string(&all.items).expect("events as JSON");
    assert!(!events.contains("hunter2"), "{events}");

    // A topology change of stores is held back until accepted.
    let mut changed = good.clone();
    changed.spec.topology.pipelines[0].steps[1] =
        step(json!({ "count": { "store": "counts-v2" } }));
    apply_app(&apps, &changed).await;
    let held = condition(
        &apps,
        "app",
        "Degraded",
        |c| c.reason == "TopologyChangeHeld",
        &op,
    )
    .await;
    assert!(held.message.contains("counts-v2"), "{}", held.message);
    let accept = held
        .message
        .split("freshet.dev/accept-state-change=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the message gives the command to accept")
        .to_owned();
    assert_eq!(
        sets.get("app").await.expect("sts").metadata.generation,
        sts.metadata.generation,
        "a held change rolled out"
    );
    let annotated = kubectl()
        .args([
            "-n",
            &ns,
            "annotate",
            "streamsapp",
            "app",
            &format!("freshet.dev/accept-state-change={accept}"),
            "--overwrite",
        ])
        .output()
        .expect("kubectl annotate");
    assert!(annotated.status.success(), "{annotated:?}");
    condition(&apps, "app", "Degraded", |c| c.status == "False", &op).await;
    let rolled = sets.get("app").await.expect("sts");
    assert_eq!(
        rolled
            .annotations()
            .get("freshet.dev/stores")
            .map(String::as_str),
        Some("counts-v2")
    );

    // A missing source topic: TopicsReady=False naming it, then True once it exists.
    let missing = unique_name("op-missing");
    apply_app(
        &apps,
        &counting_app(
            "waiting",
            &unique_name("op-wait"),
            &missing,
            &kafka_bootstrap(),
            "",
        ),
    )
    .await;
    let c = condition(
        &apps,
        "waiting",
        "TopicsReady",
        |c| c.status == "False",
        &op,
    )
    .await;
    assert_eq!(c.reason, "SourceTopicMissing");
    assert!(c.message.contains(&missing), "{}", c.message);
    create_topics(&[(&missing, 1)]).await;
    condition(&apps, "waiting", "TopicsReady", |c| c.status == "True", &op).await;

    // Kafka unreachable: a condition that names the address, and no crash.
    apply_app(
        &apps,
        &counting_app(
            "nowhere",
            &unique_name("op-nowhere"),
            &input,
            "127.0.0.1:1",
            "",
        ),
    )
    .await;
    let c = condition(
        &apps,
        "nowhere",
        "TopicsReady",
        |c| c.status == "False",
        &op,
    )
    .await;
    assert_eq!(c.reason, "KafkaUnreachable");
    assert!(c.message.contains("127.0.0.1:1"), "{}", c.message);
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_apiserver_is_retried_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("kubeconfig");
    let dead = free_port();
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{dead}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: x}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .expect("kubeconfig");
    let port = free_port();
    let mut op = EngineProcess::spawn(
        "freshet-operator",
        &[
            "--http-port".into(),
            port.to_string(),
            "--leader-election".into(),
            "false".into(),
        ],
        &[("KUBECONFIG", config.to_str().expect("utf-8"))],
        port,
    );
    let log = eventually(Duration::from_secs(20), "the operator saying why", || {
        let text = op.log_text();
        async move { text.contains("is the apiserver reachable").then_some(text) }
    })
    .await;
    assert!(
        log.contains(&dead.to_string()) || log.contains("127.0.0.1"),
        "{log}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "the operator exited:\n{log}"
    );
    assert_eq!(op.get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(
        op.get("/readyz").map(|r| r.0),
        Some(503),
        "not ready without the apiserver"
    );
    op.kill();
}

fn reconciles(op: &EngineProcess) -> f64 {
    op.get("/metrics")
        .map(|(_, body)| {
            body.lines()
                .filter(|l| l.starts_with("freshet_operator_reconciles_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_leader_reconciles_and_a_killed_leader_is_replaced() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-leader").await;
    let input = unique_name("op-leader-orders");
    create_topics(&[(&input, 2)]).await;
    let (duration, retry) = (4u64, 1u64);
    let lease = unique_name("lease");
    let start = |who: &str| {
        operator(
            &ns,
            &[
                "--leader-election",
                "true",
                "--lease-namespace",
                &ns,
                "--lease-name",
                &lease,
                "--identity",
                who,
                "--lease-duration-seconds",
                &duration.to_string(),
                "--retry-period-seconds",
                &retry.to_string(),
            ],
        )
    };
    let mut ops: BTreeMap<&str, EngineProcess> = BTreeMap::new();
    ops.insert("a", start("a"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    ops.insert("b", start("b"));
    let leader = eventually(WAIT, "a leader", || {
        let found = ops
            .iter()
            .find(|(_, op)| op.get("/readyz").map(|r| r.0) == Some(200))
            .map(|(k, _)| *k);
        async move { found }
    })
    .await;
    let standby = if leader == "a" { "b" } else { "a" };
    eventually(WAIT, "the standby answering, not ready", || {
        let code = ops[standby].get("/readyz").map(|r| r.0);
        async move { (code == Some(503)).then_some(()) }
    })
    .await;
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    apply_app(
        &apps,
        &counting_app(
            "first",
            &unique_name("op-l1"),
            &input,
            &kafka_bootstrap(),
            "",
        ),
    )
    .await;
    eventually(WAIT, "first StatefulSet", || async {
        sets.get_opt("first").await.ok().flatten()
    })
    .await;
    assert!(reconciles(&ops[leader]) > 0.0);
    assert_eq!(reconciles(&ops[standby]), 0.0, "the standby reconciled");

    // SIGKILL the leader: the standby takes over within the lease duration plus a retry.
    ops.get_mut(leader).expect("leader").kill();
    let killed = Instant::now();
    eventually(
        Duration::from_secs(duration + retry + 10),
        "the standby leading",
        || {
            let ready = ops[standby].get("/readyz").map(|r| r.0) == Some(200);
            async move { ready.then_some(()) }
        },
    )
    .await;
    let handover = killed.elapsed();
    println!(
        "leader killed -> standby leads: {} ms",
        handover.as_millis()
    );
    assert!(
        handover <= Duration::from_secs(duration + retry + 1),
        "handover took {handover:?}, more than the lease ({duration} s) plus a retry ({retry} s)"
    );
    apply_app(
        &apps,
        &counting_app(
            "second",
            &unique_name("op-l2"),
            &input,
            &kafka_bootstrap(),
            "",
        ),
    )
    .await;
    eventually(WAIT, "second StatefulSet", || async {
        sets.get_opt("second").await.ok().flatten()
    })
    .await;
    // A clean stop gives the Lease up at once.
    let stopped = ops
        .get_mut(standby)
        .expect("new leader")
        .terminate(Duration::from_secs(30));
    assert!(stopped.success(), "{stopped:?}");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns);
    let holder = leases
        .get(&lease)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder, None, "the Lease was not released");
    for op in ops.values_mut() {
        op.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_crd_refuses_a_new_application_id_and_min_above_max_replicas() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-cel").await;
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let app = counting_app("fixed", "fixed-id", "orders", "127.0.0.1:1", "");
    apply_app(&apps, &app).await;
    let mut renamed = app.clone();
    renamed.spec.application_id = "other-id".into();
    let err = apps
        .patch(
            "fixed",
            &PatchParams::apply("freshet-tests").force(),
            &Patch::Apply(&renamed),
        )
        .await
        .expect_err("a changed applicationId was accepted");
    assert!(
        err.to_string().contains("applicationId is immutable"),
        "{err}"
    );
    let inverted = counting_app(
        "inverted",
        "inverted-id",
        "orders",
        "127.0.0.1:1",
        "  autoscaling: { enabled: true, minReplicas: 5, maxReplicas: 2 }",
    );
    let err = apps
        .create(&PostParams::default(), &inverted)
        .await
        .expect_err("minReplicas above maxReplicas was accepted");
    assert!(
        err.to_string()
            .contains("minReplicas must not exceed maxReplicas"),
        "{err}"
    );
}

//! The operator's own faults (issue 15): deleting a running app with `cleanupPolicy: Delete`
//! stops it before the reset and the reset stays done; Kafka unreachable holds the deletion
//! until the documented annotation lets it go; steady traffic on an unchanged spec costs few
//! status writes and no new Kafka clients; an apiserver restart does not end the operator.
//!
//! Short forms for `make test`; `FRESHET_CHAOS=1` runs the long ones (two minutes of "stays
//! gone", ten of steady traffic, a minute held without Kafka, the apiserver down 30 s).
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{self, WAIT, counting_app, read_counts};
use freshet_tests::cluster::{events, install_crd, namespace};
use freshet_tests::engine::{EngineProcess, free_port};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::private_cluster::PrivateApiserver;
use freshet_tests::{
    eventually, kafka_bootstrap, kube_client, kubeconfig_path, kubectl, unique_name,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// The long forms run under `FRESHET_CHAOS=1` (`make chaos`).
fn chaos() -> bool {
    std::env::var("FRESHET_CHAOS").is_ok_and(|v| v == "1")
}

/// An operator process on `kubeconfig`, watching `ns` (all when `None`), retrying after 2 s and
/// looking at healthy apps every 2 s; `extra` adds flags (leader election is off unless given).
fn operator(kubeconfig: &Path, ns: Option<&str>, extra: &[&str]) -> EngineProcess {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "--http-port".into(),
        port.to_string(),
        "--http-address".into(),
        "127.0.0.1".into(),
        "--retry-seconds".into(),
        "2".into(),
        "--resync-seconds".into(),
        "2".into(),
    ];
    if let Some(ns) = ns {
        args.extend(["--namespace".into(), ns.into()]);
    }
    if !extra.contains(&"--leader-election") {
        args.extend(["--leader-election".into(), "false".into()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let kubeconfig = kubeconfig.display().to_string();
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

/// The sum of the samples of `name` on the operator's `/metrics` whose labels include
/// `labels`; `None` when the endpoint does not answer.
fn metric(op: &EngineProcess, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, body) = op.get("/metrics")?;
    Some(
        body.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

fn alive(op: &mut EngineProcess) -> bool {
    op.child.try_wait().expect("wait").is_none()
}

fn metadata_client() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("metadata client")
}

/// The topics named `<app_id>-...`: the app's internal topics.
fn internal_topics(client: &BaseConsumer, app_id: &str) -> Vec<String> {
    let md = client
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(&format!("{app_id}-")))
        .collect()
}

fn group_exists(client: &BaseConsumer, group: &str) -> bool {
    client
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .map(|l| {
            l.groups()
                .iter()
                .any(|g| g.name() == group && g.state() != "Dead")
        })
        .expect("group list")
}

/// Records on `topic` at about `per_second`, keys `k0`..`k19`, from one producer, until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(topic: &str, per_second: usize) -> Traffic {
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let (topic, stopping, counter) = (topic.to_owned(), stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !stopping.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * per_second as f64) as usize;
                while counter.load(Ordering::Relaxed) < due {
                    let i = counter.load(Ordering::Relaxed);
                    let key = format!("k{}", i % 20);
                    let record: BaseRecord<'_, str, str> =
                        BaseRecord::to(&topic).key(key.as_str()).payload("v");
                    if producer.send(record).is_err() {
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = producer.flush(Duration::from_secs(10));
        });
        Traffic {
            stop,
            sent,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_running_app_stops_it_before_the_reset_which_stays_done() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-del-run").await;
    let _node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("del-run-in"), unique_name("del-run-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let app_id = unique_name("del-run-app");
    let op = apps::operator(&ns);
    let apps_api: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    // A repartition topic and a changelog, both written while the app runs.
    apps::apply(
        &apps_api,
        counting_app(
            &app_id,
            &input,
            &output,
            "  cleanupPolicy: Delete",
            "          - groupBy: \"key\"",
        ),
    )
    .await;
    let traffic = Traffic::start(&input, 200);
    let kafka = metadata_client();
    eventually(WAIT, "the app counting", || async {
        (!tokio::task::block_in_place(|| read_counts(&output)).is_empty()).then_some(())
    })
    .await;
    let topics = internal_topics(&kafka, &app_id);
    assert_eq!(topics.len(), 2, "{topics:?}");
    eventually(WAIT, "the app's consumer group", || async {
        group_exists(&kafka, &app_id).then_some(())
    })
    .await;

    // The traffic goes on through the deletion and after it.
    let started = Instant::now();
    let deleted = tokio::task::spawn_blocking({
        let ns = ns.clone();
        move || {
            kubectl()
                .args([
                    "-n",
                    &ns,
                    "delete",
                    "streamsapp",
                    "counter",
                    "--timeout=180s",
                ])
                .output()
                .expect("kubectl delete")
        }
    })
    .await
    .expect("kubectl delete");
    let took = started.elapsed();
    println!(
        "kubectl delete with cleanupPolicy Delete: {} ms",
        took.as_millis()
    );
    assert!(
        deleted.status.success(),
        "{deleted:?}; operator log:\n{}",
        op.log_text()
    );
    assert!(
        took < Duration::from_secs(180),
        "the deletion took {took:?}"
    );
    assert!(apps_api.get_opt("counter").await.expect("get").is_none());
    // Each stage told, in order.
    let mut stages = Vec::new();
    for reason in ["ScalingToZero", "InstancesStopped", "ApplicationReset"] {
        let found = events(&client, &ns, reason).await;
        assert_eq!(
            found.len(),
            1,
            "one {reason} Event; operator log:\n{}",
            op.log_text()
        );
        stages.push(found[0].event_time.clone().map(|t| t.0));
    }
    assert!(
        stages.windows(2).all(|w| w[0] <= w[1]),
        "stages out of order: {stages:?}"
    );

    // Gone, and still gone while input keeps arriving.
    let stay = if chaos() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(10)
    };
    let until = Instant::now() + stay;
    let mut looks = 0;
    while Instant::now() < until {
        let left = internal_topics(&kafka, &app_id);
        assert!(
            left.is_empty(),
            "internal topics back after {looks} looks: {left:?}"
        );
        assert!(
            !group_exists(&kafka, &app_id),
            "the consumer group is back after {looks} looks"
        );
        looks += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "topics and group stayed gone for {} s ({looks} looks), {} records sent",
        stay.as_secs(),
        traffic.sent.load(Ordering::Relaxed)
    );
    drop(traffic);
}

// libtest starts tests in the order of their names, two at a time on CI's 2 cores: this one,
// the longest (the operator's Kafka timeouts before the Warning), is named to start first.
#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_with_kafka_unreachable_waits_for_skip_cleanup() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-del-nokafka").await;
    // Nothing listens where the app points, so each Kafka call waits its whole timeout: 2 s
    // rather than the default 10 (the flag a user with a slow or distant cluster raises).
    let mut op = operator(
        &kubeconfig_path(),
        Some(&ns),
        &["--kafka-timeout-seconds", "2"],
    );
    let apps_api: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    // Nothing listens there.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut app = counting_app(
        &unique_name("del-nokafka"),
        "orders",
        "counts",
        "  cleanupPolicy: Delete",
        apps::BY_KEY,
    );
    app.spec.bootstrap_servers = nowhere.clone();
    apps::apply(&apps_api, app).await;
    eventually(WAIT, "the finalizer and TopicsReady=False", || async {
        let a = apps_api.get("counter").await.ok()?;
        let waiting = a.status?.conditions.iter().any(|c| {
            c.type_ == "TopicsReady" && c.status == "False" && c.reason == "KafkaUnreachable"
        });
        (waiting
            && a.metadata
                .finalizers?
                .iter()
                .any(|f| f == "freshet.dev/cleanup"))
        .then_some(())
    })
    .await;
    apps_api
        .delete("counter", &DeleteParams::default())
        .await
        .expect("delete");
    let deleted_at = Instant::now();
    let warning = eventually(WAIT, "a ResetFailed Warning", || async {
        events(&client, &ns, "ResetFailed").await.into_iter().next()
    })
    .await;
    println!(
        "delete -> ResetFailed Warning: {} ms",
        deleted_at.elapsed().as_millis()
    );
    let note = warning.message.clone().unwrap_or_default();
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(
        note.contains("Kafka is unreachable") && note.contains(&nowhere),
        "{note}"
    );
    assert!(
        note.contains("kubectl annotate streamsapp counter freshet.dev/skip-cleanup=true"),
        "{note}"
    );

    // Held, retried with a growing delay rather than in a loop.
    let before = metric(&op, "freshet_operator_reconciles_total", &[]).expect("metrics");
    // A retry loop without a growing delay would show dozens here even in the short form.
    let watched = Duration::from_secs(if chaos() { 60 } else { 12 });
    tokio::time::sleep(watched).await;
    let after = metric(&op, "freshet_operator_reconciles_total", &[]).expect("metrics");
    println!(
        "reconciles while held for {} s: {}",
        watched.as_secs(),
        after - before
    );
    assert!(
        after - before <= 6.0,
        "{} reconciles in {watched:?}",
        after - before
    );
    assert!(
        apps_api.get_opt("counter").await.expect("get").is_some(),
        "deleted without the cleanup and without the annotation"
    );

    let annotated = kubectl()
        .args([
            "-n",
            &ns,
            "annotate",
            "streamsapp",
            "counter",
            "freshet.dev/skip-cleanup=true",
        ])
        .output()
        .expect("kubectl annotate");
    assert!(annotated.status.success(), "{annotated:?}");
    let annotated_at = Instant::now();
    eventually(WAIT, "the StreamsApp gone", || async {
        apps_api
            .get_opt("counter")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    println!(
        "annotated -> deleted: {} ms",
        annotated_at.elapsed().as_millis()
    );
    let skipped = events(&client, &ns, "CleanupSkipped").await;
    assert_eq!(skipped.len(), 1, "one CleanupSkipped Event");
    assert!(alive(&mut op), "operator died:\n{}", op.log_text());
    op.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_spec_under_traffic_writes_status_rarely_and_reuses_kafka_clients() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "op-steady").await;
    let _node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("steady-op-in"), unique_name("steady-op-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let mut op = apps::operator(&ns);
    let apps_api: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    apps::apply(
        &apps_api,
        counting_app(&unique_name("steady-op"), &input, &output, "", apps::BY_KEY),
    )
    .await;
    let traffic = Traffic::start(&input, 100);
    eventually(WAIT, "the app Ready and counting", || async {
        let ready = apps_api
            .get("counter")
            .await
            .ok()?
            .status?
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let counting = !tokio::task::block_in_place(|| read_counts(&output)).is_empty();
        (ready && counting).then_some(())
    })
    .await;
    let app_label = [("namespace", ns.as_str()), ("name", "counter")];
    let writes = |op: &EngineProcess| {
        metric(op, "freshet_operator_status_writes_total", &app_label).expect("metrics")
    };
    let created = |op: &EngineProcess| {
        metric(op, "freshet_operator_kafka_clients_created_total", &[]).expect("metrics")
    };
    let reconciles =
        |op: &EngineProcess| metric(op, "freshet_operator_reconciles_total", &[]).expect("metrics");
    let (writes0, created0, reconciles0) = (writes(&op), created(&op), reconciles(&op));
    assert!(created0 > 0.0, "no Kafka client counted");

    let observe = if chaos() {
        Duration::from_secs(600)
    } else {
        // Still ten reconciles or more: an operator writing status on each would show it.
        Duration::from_secs(20)
    };
    let until = Instant::now() + observe;
    let mut lags = std::collections::BTreeSet::new();
    while Instant::now() < until {
        if let Some(lag) = apps_api
            .get("counter")
            .await
            .ok()
            .and_then(|a| a.status?.lag)
        {
            lags.insert(lag);
        }
        assert_eq!(
            created(&op),
            created0,
            "a Kafka client was created after the first reconciles; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (written, reconciled) = (writes(&op) - writes0, reconciles(&op) - reconciles0);
    let bound = observe.as_secs().div_ceil(30) as f64 + 2.0;
    println!(
        "{} s of traffic, spec unchanged: {written} status writes (bound {bound}), {reconciled} reconciles, Kafka clients created {created0} (constant), lag values seen {lags:?}, {} records sent",
        observe.as_secs(),
        traffic.sent.load(Ordering::Relaxed)
    );
    assert!(
        written <= bound,
        "{written} status writes in {observe:?} (at most {bound})"
    );
    // The bound means something: the operator did look, every couple of seconds.
    assert!(
        reconciled >= (observe.as_secs() / 4) as f64,
        "only {reconciled} reconciles in {observe:?}"
    );
    assert_eq!(
        metric(&op, "freshet_operator_kafka_clients", &[]),
        Some(3.0),
        "the app's clients open"
    );
    drop(traffic);

    // Deleted (Retain): its clients are closed.
    apps_api
        .delete("counter", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the app's Kafka clients closed", || async {
        (metric(&op, "freshet_operator_kafka_clients", &[]) == Some(0.0)).then_some(())
    })
    .await;
    assert!(alive(&mut op), "operator died:\n{}", op.log_text());
    op.kill();
}

/// A StreamsApp `name` in `default` that nothing will run (the private cluster has no node).
fn idle_app(name: &str, input: &str) -> StreamsApp {
    let mut app = counting_app(&unique_name(name), input, "out", "", apps::BY_KEY);
    app.metadata.name = Some(name.to_owned());
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_survives_an_apiserver_restart() {
    let started = Instant::now();
    let mut cluster = PrivateApiserver::start().await;
    println!(
        "private etcd + kube-apiserver serving after {} ms",
        started.elapsed().as_millis()
    );
    let client = cluster.client().await;
    install_crd(&client).await;
    let input = unique_name("restart-in");
    create_topics(&[(&input, 1)]).await;
    // With leader election, as deployed: a 4 s Lease renewed every second, so the outage is
    // far longer than the renew deadline.
    let mut op = operator(
        &cluster.kubeconfig,
        None,
        &[
            "--leader-election",
            "true",
            "--lease-namespace",
            "default",
            "--lease-duration-seconds",
            "4",
            "--retry-period-seconds",
            "1",
        ],
    );
    let apps_api: Api<StreamsApp> = Api::namespaced(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let apply = |app: StreamsApp| {
        let apps_api = apps_api.clone();
        async move {
            apps_api
                .patch(
                    &app.name_any(),
                    &PatchParams::apply("freshet-tests").force(),
                    &Patch::Apply(app),
                )
                .await
                .expect("apply the StreamsApp");
        }
    };
    apply(idle_app("before", &input)).await;
    eventually(WAIT, "the StatefulSet of the first app", || async {
        sets.get_opt("before").await.ok().flatten()
    })
    .await;

    cluster.stop_apiserver();
    // Either way twice the Lease's 4 s, so the leader must step down.
    let down = Duration::from_secs(if chaos() { 30 } else { 8 });
    tokio::time::sleep(down).await;
    assert!(
        alive(&mut op),
        "the operator exited while the apiserver was down:\n{}",
        op.log_text()
    );
    assert_eq!(op.get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(
        op.get("/readyz").map(|r| r.0),
        Some(503),
        "still leading without an apiserver for {down:?}"
    );
    let back = cluster.start_apiserver().await;
    println!(
        "apiserver down {} s, serving again {} ms after its restart",
        down.as_secs(),
        back.as_millis()
    );

    let restarted = Instant::now();
    let client = cluster.client().await;
    let apps_api: Api<StreamsApp> = Api::namespaced(client.clone(), "default");
    let sets: Api<StatefulSet> = Api::namespaced(client, "default");
    apps_api
        .patch(
            "after",
            &PatchParams::apply("freshet-tests").force(),
            &Patch::Apply(idle_app("after", &input)),
        )
        .await
        .expect("apply the StreamsApp");
    eventually(
        WAIT,
        "the StatefulSet of an app applied after the restart",
        || async { sets.get_opt("after").await.ok().flatten() },
    )
    .await;
    println!(
        "app applied after the restart -> StatefulSet: {} ms",
        restarted.elapsed().as_millis()
    );
    assert_eq!(op.get("/readyz").map(|r| r.0), Some(200), "leading again");
    assert!(alive(&mut op), "operator died:\n{}", op.log_text());
    let log = op.log_text();
    assert!(log.contains("stepped down"), "{log}");
    op.kill();
}

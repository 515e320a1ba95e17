//! `spec.suspend` on the test node (issue 21): suspending stops every pod, says so in the
//! `Suspended` condition and the printer column, and processes nothing meanwhile; resuming goes
//! on from the kept state and offsets, with exact counts.
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, condition_with, counting_app, operator, read_counts, send_batch,
    wait_app_ready, wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::{eventually, kube_client, kubectl, unique_name};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};

async fn set_suspend(apps: &Api<StreamsApp>, suspend: bool) {
    apps.patch(
        "counter",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "suspend": suspend } })),
    )
    .await
    .expect("patch spec.suspend");
}

async fn pod_count(pods: &Api<Pod>) -> usize {
    pods.list(&ListParams::default().labels("freshet.dev/app=counter"))
        .await
        .map(|l| l.items.len())
        .unwrap_or(usize::MAX)
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_stops_every_pod_and_resume_counts_exactly() {
    let started = Instant::now();
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "suspend").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("susp-in"), unique_name("susp-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let keys = 20;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut app = counting_app(&unique_name("susp-app"), &input, &output, "", BY_KEY);
    app.spec.replicas = Some(2);
    apply(&apps, app).await;
    send_batch(&input, keys, 10, false);
    wait_app_ready(&apps, "counter").await;
    wait_counts(&output, keys, 10);

    // Suspend: no pod left, the condition and the column say so.
    set_suspend(&apps, true).await;
    let c = condition_with(&apps, "counter", "Suspended", "Suspended", &op).await;
    assert_eq!(c.status, "True");
    eventually(WAIT, "no pod left", || async {
        (pod_count(&pods).await == 0).then_some(())
    })
    .await;
    let ready = condition_with(&apps, "counter", "Ready", "Suspended", &op).await;
    assert_eq!(ready.status, "False", "{}", ready.message);
    let table = kubectl()
        .args(["-n", &ns, "get", "sapp", "counter"])
        .output()
        .expect("kubectl get");
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("SUSPENDED") && table.contains("true"),
        "printer column: {table}"
    );
    println!("{table}");

    // Input while suspended is not processed.
    send_batch(&input, keys, 10, false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = read_counts(&output);
    assert!(
        during.values().all(|&n| n == 10),
        "processed while suspended: {during:?}"
    );
    assert_eq!(pod_count(&pods).await, 0, "a pod came back while suspended");

    // Resume: from the kept offsets and state, exactly.
    set_suspend(&apps, false).await;
    let c = condition_with(&apps, "counter", "Suspended", "Resumed", &op).await;
    assert_eq!(c.status, "False");
    wait_app_ready(&apps, "counter").await;
    let took = wait_counts(&output, keys, 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = read_counts(&output);
    assert_eq!(after.len(), keys);
    assert!(
        after.values().all(|&n| n == 20),
        "exact counts after resume: {after:?}"
    );
    println!(
        "resumed: counts current {} ms after Ready; whole test {:?}",
        took.as_millis(),
        started.elapsed()
    );
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

/// Autoscaling on: suspending still stops every pod (the autoscaler does not decide meanwhile),
/// and resuming hands the count back to it.
#[tokio::test(flavor = "multi_thread")]
async fn suspend_stops_an_autoscaled_app() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "suspend-auto").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("susp-auto-in"), unique_name("susp-auto-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let app = counting_app(
        &unique_name("susp-auto-app"),
        &input,
        &output,
        "  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2 }",
        BY_KEY,
    );
    apply(&apps, app).await;
    send_batch(&input, 5, 2, false);
    wait_app_ready(&apps, "counter").await;
    wait_counts(&output, 5, 2);
    set_suspend(&apps, true).await;
    let scaling = condition_with(&apps, "counter", "Scaling", "Suspended", &op).await;
    assert!(
        scaling.message.contains("0 instances"),
        "{}",
        scaling.message
    );
    eventually(WAIT, "no pod left", || async {
        (pod_count(&pods).await == 0).then_some(())
    })
    .await;
    set_suspend(&apps, false).await;
    condition_with(&apps, "counter", "Scaling", "Autoscaled", &op).await;
    wait_app_ready(&apps, "counter").await;
    send_batch(&input, 5, 2, false);
    wait_counts(&output, 5, 4);
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

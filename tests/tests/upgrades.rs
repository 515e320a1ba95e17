//! Upgrades that say what they change, and the operator's reset (issue 21), on the test node: a
//! compatible change (a stateless step) rolls and the counts go on exactly; an incompatible one
//! (the processing guarantee) is held with its difference named and the two ways on; the reset
//! annotation stops the pods, resets the application (offsets, internal topics, the state on the
//! pods' volumes) and applies the held version, after which the counts are exact again.
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, condition_with, counting_app, operator, read_counts, send_batch,
    wait_app_ready, wait_counts,
};
use freshet_tests::cluster::{events, install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::{eventually, kube_client, kubectl, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;

fn step(json: serde_json::Value) -> freshet_crds::Step {
    serde_json::from_value(json).expect("a valid step")
}

#[tokio::test(flavor = "multi_thread")]
async fn compatible_changes_roll_incompatible_ones_are_held_and_reset_and_apply_counts_exactly() {
    let started = Instant::now();
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "upgrades").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("upg-in"), unique_name("upg-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let keys = 20;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let app_id = unique_name("upg-app");
    let first = counting_app(&app_id, &input, &output, "", BY_KEY);
    apply(&apps, first.clone()).await;
    send_batch(&input, keys, 10, false);
    wait_app_ready(&apps, "counter").await;
    wait_counts(&output, keys, 10);
    let signature = |s: &StatefulSet| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("freshet.dev/state-signature").cloned())
    };
    let before = sets.get("counter").await.expect("sts");
    assert!(
        before
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("freshet.dev/state-layout"))
            .is_some_and(|l| l.contains("store counts: key-value key=string value=long")),
        "the layout is recorded: {:?}",
        before.metadata.annotations
    );

    // Compatible: a stateless step before the count rolls; the counts go on exactly.
    let mut compatible = first.clone();
    compatible.spec.topology.pipelines[0]
        .steps
        .insert(0, step(serde_json::json!({ "filter": "value != ''" })));
    apply(&apps, compatible.clone()).await;
    eventually(WAIT, "the compatible change rolled", || async {
        let s = sets.get("counter").await.ok()?;
        (s.metadata.generation > before.metadata.generation).then_some(())
    })
    .await;
    assert_eq!(
        signature(&sets.get("counter").await.expect("sts")),
        signature(&before),
        "a stateless change keeps the signature"
    );
    send_batch(&input, keys, 10, false);
    wait_counts(&output, keys, 20);
    let degraded = condition_with(&apps, "counter", "Degraded", "AsSpecified", &op).await;
    assert_eq!(degraded.status, "False");

    // Incompatible: exactly_once_v2 writes the state transactionally; held, the difference named.
    let mut incompatible = compatible.clone();
    incompatible.spec.processing_guarantee = Some(freshet_crds::ProcessingGuarantee::ExactlyOnceV2);
    apply(&apps, incompatible).await;
    let held = condition_with(&apps, "counter", "Degraded", "TopologyChangeHeld", &op).await;
    println!("held: {}", held.message);
    assert!(
        held.message
            .contains("processing.guarantee: at_least_once -> exactly_once_v2"),
        "the difference is named: {}",
        held.message
    );
    assert!(
        held.message.contains("freshet.dev/reset=") && held.message.contains("new applicationId"),
        "the two ways on: {}",
        held.message
    );
    assert!(
        !events(&client, &ns, "TopologyChangeHeld").await.is_empty(),
        "an Event says it"
    );
    let running = sets.get("counter").await.expect("sts");

    // Reset and apply.
    let output_before = read_output_end(&output);
    let reset_at = Instant::now();
    let annotated = kubectl()
        .args([
            "-n",
            &ns,
            "annotate",
            "sapp",
            "counter",
            "freshet.dev/reset=first:to-earliest",
        ])
        .output()
        .expect("kubectl annotate");
    assert!(annotated.status.success(), "{annotated:?}");
    let done = eventually(WAIT, "the reset done", || async {
        let r = apps.get("counter").await.ok()?.status?.reset?;
        assert_ne!(r.phase, "Failed", "{}", r.message);
        (r.phase == "Done").then_some(r)
    })
    .await;
    println!("reset: {} ({:?})", done.message, reset_at.elapsed());
    assert_eq!(done.token, "first");
    assert!(
        !events(&client, &ns, "ApplicationReset").await.is_empty(),
        "an Event tells the reset"
    );
    let degraded = condition_with(&apps, "counter", "Degraded", "AsSpecified", &op).await;
    assert_eq!(degraded.status, "False", "the held version is applied");
    let applied = sets.get("counter").await.expect("sts");
    assert_ne!(
        signature(&applied),
        signature(&running),
        "the new state layout runs"
    );
    let env = serde_json::to_string(&applied.spec.expect("spec").template).expect("template");
    assert!(env.contains("FRESHET_RESET_TOKEN"), "{env}");
    wait_app_ready(&apps, "counter").await;
    // From the start with no state: the same 20 per key, not 20 more on top of the old state.
    let deadline = Instant::now() + WAIT;
    loop {
        let c = read_counts(&output);
        let recounted = read_output_end(&output) >= output_before + keys as i64;
        if recounted && c.len() == keys && c.values().all(|&n| n >= 20) {
            break;
        }
        assert!(Instant::now() < deadline, "not recounted: {c:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = read_counts(&output);
    assert!(
        after.values().all(|&n| n == 20),
        "exact counts after the reset: {after:?}"
    );
    let log = node.log(&ns, "counter-0").await;
    assert!(
        log.contains("local state wiped"),
        "the pod wiped its state:\n{log}"
    );
    // The same token again does nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = apps
        .get("counter")
        .await
        .expect("app")
        .status
        .expect("status");
    assert_eq!(again.reset.expect("reset").phase, "Done");
    println!("upgrades and reset: whole test {:?}", started.elapsed());
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

/// The end offset of the single-partition `output` (records and transaction markers).
fn read_output_end(output: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", freshet_tests::kafka_bootstrap())
        .create()
        .expect("metadata client");
    consumer
        .fetch_watermarks(output, 0, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

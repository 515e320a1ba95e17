//! StreamsApps whose pods really run: the operator reconciles, the StatefulSet controller makes
//! pods, and the node (`freshet_tests::node`: the real node's kubelet running the engine image,
//! or the test node running each pod's engine as a local process) runs them.
//! Scaling moves the work between processes without losing any; a SIGKILLed pod process is
//! restarted and resumes from its state directory. (Autoscaling: `autoscaling.rs`.)
use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, counting_app, operator, read_counts, ready_pods, send_batch,
    wait_app_ready, wait_counts, wait_restarted,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::{eventually, kube_client, kubectl, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

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
        counting_app(&unique_name("pods-app"), &input, &output, "", BY_KEY),
    )
    .await;
    send_batch(&input, keys, 10, false);
    wait_app_ready(&apps, "counter").await;
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
    send_batch(&input, keys, 10, false);
    let up = wait_counts(&output, keys, 20);
    println!(
        "scale 1 -> 3: all counts current after {} ms",
        up.as_millis()
    );
    eventually(WAIT, "three pods ready", || async {
        (ready_pods(&pods).await == 3).then_some(())
    })
    .await;
    send_batch(&input, keys, 10, false);
    wait_counts(&output, keys, 30);
    for pod in ["counter-0", "counter-1", "counter-2"] {
        let log = node.log(&ns, pod).await;
        assert!(log.contains("task created"), "{pod} got no task:\n{log}");
    }

    // 3 → 1.
    scale(1);
    send_batch(&input, keys, 10, false);
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
    send_batch(&input, keys, 10, false);
    wait_counts(&output, keys, 50);
    let log = node.log(&ns, "counter-0").await;
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
        counting_app(
            &unique_name("eos-app"),
            &input,
            &output,
            "  processingGuarantee: exactly_once_v2",
            BY_KEY,
        ),
    )
    .await;
    send_batch(&input, keys, 10, false);
    wait_counts(&output, keys, 10);
    assert!(
        node.kill_container(&ns, "counter-0"),
        "no process for counter-0"
    );
    wait_restarted(&pods, "counter-0").await;
    send_batch(&input, keys, 10, false);
    wait_counts(&output, keys, 20);
    // read_committed: every key's latest count is exact, none above.
    let c = read_counts(&output);
    assert!(c.values().all(|&n| n == 20), "{c:?}");
    let log = node.log(&ns, "counter-0").await;
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

//! Tenants that share one operator cannot touch each other's work (issue 17): an
//! applicationId has one owner, the first app created with it, and every other app with it gets
//! a `Conflict` condition and nothing else, on its deletion too; objects named like an app's that
//! the operator did not make are neither taken over nor deleted; `application.id` cannot be
//! overridden through `config` or the pods' environment.
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, condition_with, counting_app, operator, read_counts, send_batch,
    wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::{eventually, kafka_bootstrap, kube_client, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;

/// The topics whose names start with `<app_id>-`, and whether the group `app_id` exists.
fn kafka_state(app_id: &str) -> (Vec<String>, bool) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("consumer");
    let topics = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata")
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(&format!("{app_id}-")))
        .collect();
    let group = consumer
        .fetch_group_list(Some(app_id), Duration::from_secs(10))
        .expect("groups")
        .groups()
        .iter()
        .any(|g| g.name() == app_id && g.state() != "Dead");
    (topics, group)
}

async fn event_reasons(client: &kube::Client, ns: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_app_with_the_same_id_conflicts_and_its_deletion_leaves_the_first_alone() {
    let started = Instant::now();
    let client = kube_client().await;
    install_crd(&client).await;
    let first_ns = namespace(&client, "tenant-a").await;
    let second_ns = namespace(&client, "tenant-b").await;
    let node = Node::start(
        client.clone(),
        &unique_name("node"),
        &[&first_ns, &second_ns],
    )
    .await;
    let (input, output) = (unique_name("ten-in"), unique_name("ten-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let app_id = unique_name("ten-app");
    let mut op = operator(&format!("{first_ns},{second_ns}"));
    let first: Api<StreamsApp> = Api::namespaced(client.clone(), &first_ns);
    let second: Api<StreamsApp> = Api::namespaced(client.clone(), &second_ns);
    let keys = 20;
    apply(&first, counting_app(&app_id, &input, &output, "", BY_KEY)).await;
    send_batch(&input, keys, 5, false);
    wait_counts(&output, keys, 5);
    let first_pods: Api<Pod> = Api::namespaced(client.clone(), &first_ns);
    let pod = first_pods.get("counter-0").await.expect("the first's pod");
    let uid = pod.metadata.uid.clone();
    let (topics, group) = kafka_state(&app_id);
    assert!(
        !topics.is_empty() && group,
        "the first app's topics and group"
    );

    // The second app: same applicationId, cleanupPolicy Delete.
    apply(
        &second,
        counting_app(&app_id, &input, &output, "  cleanupPolicy: Delete", BY_KEY),
    )
    .await;
    let conflict = condition_with(&second, "counter", "Conflict", "ApplicationIdInUse", &op).await;
    assert_eq!(conflict.status, "True");
    assert!(
        conflict.message.contains(&format!("{first_ns}/counter")),
        "names the owner: {}",
        conflict.message
    );
    let no_conflict = first
        .get("counter")
        .await
        .expect("the first app")
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .all(|c| c.type_ != "Conflict" || c.status == "False");
    assert!(no_conflict, "the owner has no conflict");
    // Several resyncs (2 s) of the second app: nothing made for it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &second_ns);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &second_ns);
    assert!(sets.get_opt("counter").await.expect("get").is_none());
    assert!(maps.get_opt("counter-app").await.expect("get").is_none());

    let before = read_counts(&output);
    second
        .delete("counter", &DeleteParams::default())
        .await
        .expect("delete the second");
    eventually(WAIT, "the second app gone", || async {
        second
            .get_opt("counter")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let reasons = event_reasons(&client, &second_ns).await;
    assert!(
        reasons.iter().any(|r| r == "CleanupSkipped")
            && !reasons
                .iter()
                .any(|r| r == "ScalingToZero" || r == "ApplicationReset"),
        "{reasons:?}"
    );
    // Nothing of the first app was touched: topics, group, counts, its pod.
    assert_eq!(kafka_state(&app_id), (topics, true));
    assert_eq!(read_counts(&output), before, "counts unchanged");
    send_batch(&input, keys, 5, false);
    wait_counts(&output, keys, 10);
    let pod = first_pods.get("counter-0").await.expect("the first's pod");
    let restarts = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.first().map(|c| c.restart_count));
    assert_eq!(
        (pod.metadata.uid, restarts),
        (uid, Some(0)),
        "the first's pod is the same and never restarted"
    );
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    println!(
        "two tenants, one applicationId: {} s",
        started.elapsed().as_secs()
    );
    op.kill();
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_it_did_not_make_are_left_alone_and_id_overrides_are_refused() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "not-ours").await;
    let input = unique_name("notours-in");
    create_topics(&[(&input, 1)]).await;
    // Someone's ConfigMap with the name the app's would have.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "counter-app" },
        "data": { "owner": "someone else" },
    }))
    .expect("configmap");
    maps.create(&PostParams::default(), &theirs)
        .await
        .expect("create the ConfigMap");
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    apply(
        &apps,
        counting_app(
            &unique_name("notours-app"),
            &input,
            &unique_name("notours-out"),
            "  cleanupPolicy: Delete",
            BY_KEY,
        ),
    )
    .await;
    let conflict = condition_with(&apps, "counter", "Conflict", "ObjectsNotOwned", &op).await;
    assert!(
        conflict.status == "True"
            && conflict
                .message
                .contains(&format!("ConfigMap {ns}/counter-app")),
        "{conflict:?}"
    );
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert!(sets.get_opt("counter").await.expect("get").is_none());

    // An application.id override in the pods' environment is refused.
    let mut overriding = counting_app(
        &unique_name("override-app"),
        &input,
        &unique_name("override-out"),
        "  pod: { env: [{ name: FRESHET_CONFIG_APPLICATION_ID, value: someone-elses-app }] }",
        BY_KEY,
    );
    overriding.metadata.name = Some("overriding".into());
    apps.patch(
        "overriding",
        &kube::api::PatchParams::apply("freshet-tests").force(),
        &kube::api::Patch::Apply(&overriding),
    )
    .await
    .expect("apply the overriding app");
    let refused = condition_with(
        &apps,
        "overriding",
        "TopologyValid",
        "ApplicationIdOverride",
        &op,
    )
    .await;
    assert!(
        refused.message.contains("FRESHET_CONFIG_APPLICATION_ID"),
        "{refused:?}"
    );
    assert!(sets.get_opt("overriding").await.expect("get").is_none());

    apps.delete("counter", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the app gone", || async {
        apps.get_opt("counter").await.ok()?.is_none().then_some(())
    })
    .await;
    // Give the garbage collector time to delete what it would.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let survivor = maps
        .get("counter-app")
        .await
        .expect("the ConfigMap survives the app's deletion");
    assert_eq!(
        survivor
            .data
            .and_then(|d| d.get("owner").cloned())
            .as_deref(),
        Some("someone else")
    );
    assert!(survivor.metadata.owner_references.is_none());
    op.kill();
}

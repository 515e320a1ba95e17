//! The operator's view of a streams group (group.protocol=streams, KIP-1071): a StreamsApp of
//! two pods on the test node, and its status lists each pod's active tasks as the group's
//! coordinator assigned them (StreamsGroupDescribe), the same tasks Kafka's own tool lists for
//! the pods' members.
use std::collections::BTreeSet;

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, counting_app, operator, send_batch, wait_app_ready, wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::streams_groups::describe;
use freshet_tests::{eventually, kube_client, unique_name};
use kube::api::Api;

const PARTITIONS: i32 = 4;
const KEYS: usize = 16;

#[tokio::test(flavor = "multi_thread")]
async fn the_status_shows_each_pods_tasks_from_the_streams_group() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "sgroup-op").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let app_id = unique_name("sgroup-op-app");
    let (input, output) = (format!("{app_id}-in"), format!("{app_id}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let mut app = counting_app(&app_id, &input, &output, "", BY_KEY);
    app.spec.replicas = Some(2);
    // The broker owns the session timeout of a streams group.
    app.spec.config.remove("session.timeout.ms");
    app.spec
        .config
        .insert("group.protocol".into(), "streams".into());
    apply(&apps, app).await;
    send_batch(&input, KEYS, 10, false);
    wait_app_ready(&apps, "counter").await;
    wait_counts(&output, KEYS, 10);

    let all: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();
    let assignment = eventually(WAIT, "each pod's tasks in the status", || async {
        let status = apps.get("counter").await.ok()?.status?;
        let pods: BTreeSet<&str> = status.assignment.iter().map(|p| p.pod.as_str()).collect();
        let tasks: Vec<&String> = status.assignment.iter().flat_map(|p| &p.tasks).collect();
        let union: BTreeSet<String> = tasks.iter().map(|t| t.to_string()).collect();
        (pods == BTreeSet::from(["counter-0", "counter-1"])
            && tasks.len() == all.len()
            && union == all
            && status.assignment.iter().all(|p| !p.tasks.is_empty()))
        .then_some(status.assignment)
    })
    .await;
    // Kafka's tool lists the same tasks for the two pods' members (one process each).
    let rows = describe(&app_id);
    let mut by_process: Vec<BTreeSet<String>> = Vec::new();
    for process in rows.iter().map(|r| &r.process).collect::<BTreeSet<_>>() {
        by_process.push(
            rows.iter()
                .filter(|r| &r.process == process)
                .flat_map(|r| r.active.iter().cloned())
                .collect(),
        );
    }
    let mut from_status: Vec<BTreeSet<String>> = assignment
        .iter()
        .map(|p| p.tasks.iter().cloned().collect())
        .collect();
    by_process.sort();
    from_status.sort();
    assert_eq!(
        from_status, by_process,
        "status {assignment:#?}, tool {rows:#?}"
    );
    println!("status.assignment: {assignment:?}");
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "the operator exited:\n{}",
        op.log_text()
    );
    op.kill();
    drop(node);
}

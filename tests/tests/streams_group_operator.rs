//! The operator and a streams group (group.protocol=streams, KIP-1071), a StreamsApp of two pods:
//! its status lists each pod's active tasks as the group's coordinator assigned them
//! (StreamsGroupDescribe), the same tasks Kafka's own tool lists for the pods' members; and a
//! scale-down hands the removed pod's tasks to their standbys at once.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, counting_app, operator, send_batch, wait_app_ready, wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::streams_groups::{describe, set_group_config, wait_counts_exact};
use freshet_tests::{eventually, kube_client, unique_name};
use k8s_openapi::api::core::v1::Pod;
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

/// Records of state a scale-down may restore at most, in tenths of a percent of the state.
const RESTORED_PER_MILLE: usize = 50;
/// Longer than a takeover through the operator takes, and well below the group's session
/// timeout (45 s, the broker's default), which is how long the tasks of a static member that
/// left waited before the operator removed it.
const TAKEOVER: Duration = Duration::from_secs(25);

/// A scale-down under the streams protocol with a standby per task: the pod the scale-down
/// removes leaves as a static member, its tasks kept for it, and once the pod is gone the
/// operator removes its member: the survivor takes the tasks from its standbys at once (well
/// within the session timeout), restoring next to nothing, and every count stays exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_scale_down_hands_the_removed_pods_tasks_to_their_standbys_at_once() {
    const KEYS: usize = 2_000;
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "sgroup-down").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let app_id = unique_name("sgroup-down-app");
    let (input, output) = (format!("{app_id}-in"), format!("{app_id}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, 1)]).await;
    set_group_config(&app_id, "streams.num.standby.replicas=1");
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let app_with = |replicas: i32| {
        let mut app = counting_app(&app_id, &input, &output, "", BY_KEY);
        app.spec.replicas = Some(replicas);
        app.spec.config.remove("session.timeout.ms");
        app.spec
            .config
            .insert("group.protocol".into(), "streams".into());
        app
    };
    apply(&apps, app_with(2)).await;
    send_batch(&input, KEYS, 5, false);
    wait_app_ready(&apps, "counter").await;
    wait_counts_exact(&output, KEYS, 5);
    // Each pod holds standbys of the other's tasks.
    eventually(WAIT, "a standby of every task in the status", || async {
        let status = apps.get("counter").await.ok()?.status?;
        let standbys: BTreeSet<&String> = status
            .assignment
            .iter()
            .flat_map(|p| &p.standby_tasks)
            .collect();
        (status.assignment.len() == 2 && standbys.len() == PARTITIONS as usize).then_some(())
    })
    .await;
    let survivor_log_before = node.log(&ns, "counter-0").await.len();

    apply(&apps, app_with(1)).await;
    eventually(WAIT, "counter-1 gone", || async {
        pods.get_opt("counter-1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let gone = Instant::now();
    let all: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("0_{p}")).collect();
    let took = loop {
        let rows = describe(&app_id);
        let active: BTreeSet<String> = rows.iter().flat_map(|r| r.active.clone()).collect();
        if rows.len() == 1 && active == all {
            break gone.elapsed();
        }
        assert!(
            gone.elapsed() < TAKEOVER,
            "{TAKEOVER:?} after counter-1 was gone, its tasks had not moved to counter-0: {rows:#?}\noperator log:\n{}",
            op.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("the survivor held every task {took:?} after counter-1 was gone");

    send_batch(&input, KEYS, 5, false);
    wait_counts_exact(&output, KEYS, 10);
    let log = node.log(&ns, "counter-0").await;
    let after = log.get(survivor_log_before..).unwrap_or_default();
    let restored: usize = after
        .lines()
        .filter(|l| l.contains("store restored from its changelog"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("records="))?
                .parse::<usize>()
                .ok()
        })
        .sum();
    println!("records restored by the survivor at the takeover: {restored} (state: {KEYS} keys)");
    assert!(
        restored * 1000 < KEYS * RESTORED_PER_MILLE,
        "the survivor restored {restored} records of a state of {KEYS} keys: its standbys were not used\n{after}"
    );
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "the operator exited:\n{}",
        op.log_text()
    );
    op.kill();
    drop(node);
}

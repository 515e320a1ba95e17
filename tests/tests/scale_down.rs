//! A scale-down by the operator, 2 pods to 1: the pod the scale-down removes closes as a static
//! member (`group.instance.id` from its name), whose tasks the group keeps for it until its
//! session times out (45 s here, Kafka's default); once the pod is gone the operator removes its
//! members, and the survivor takes its tasks at once. Under a streams group with a standby per
//! task (group.protocol=streams, KIP-1071) it takes them from its standbys, restoring next to
//! nothing; under a classic group it restores them. Every count stays exact.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, WAIT, apply, counting_app, operator, read_counts, send_batch, wait_app_ready,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::engine::changelog_restores;
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::streams_groups::{set_group_config, wait_counts_exact};
use freshet_tests::{eventually, kube_client, unique_name};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

const PARTITIONS: i32 = 4;
const KEYS: usize = 2_000;
/// Records of state the survivor may restore from its standbys, in thousandths of the state.
const RESTORED_PER_MILLE: usize = 50;
/// Longer than a takeover through the operator takes, and well below the session timeout
/// (45 s), which is how long the tasks of a departed static member waited without the removal.
const TAKEOVER: Duration = Duration::from_secs(25);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    Classic,
    StreamsWithStandbys,
}

async fn scale_down(protocol: Protocol) {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "scale-down").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let app_id = unique_name("down-app");
    let (input, output) = (format!("{app_id}-in"), format!("{app_id}-out"));
    create_topics(&[(&input, PARTITIONS), (&output, 1)]).await;
    if protocol == Protocol::StreamsWithStandbys {
        set_group_config(&app_id, "streams.num.standby.replicas=1");
    }
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let app_with = |replicas: i32| {
        let mut app = counting_app(&app_id, &input, &output, "", BY_KEY);
        app.spec.replicas = Some(replicas);
        let config = &mut app.spec.config;
        match protocol {
            // Kafka's default session timeout, which the test app otherwise shortens.
            Protocol::Classic => {
                config.insert("session.timeout.ms".into(), "45000".into());
                config.insert("group.protocol".into(), "classic".into());
            }
            // The broker owns a streams group's session timeout (45 s by default).
            Protocol::StreamsWithStandbys => {
                config.remove("session.timeout.ms");
                config.insert("group.protocol".into(), "streams".into());
            }
        }
        app
    };
    apply(&apps, app_with(2)).await;
    send_batch(&input, KEYS, 5, false);
    wait_app_ready(&apps, "counter").await;
    wait_counts_exact(&output, KEYS, 5);
    if protocol == Protocol::StreamsWithStandbys {
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
    }
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
    // Input for every key: the departed pod's partitions are counted only once the survivor
    // holds them.
    send_batch(&input, KEYS, 5, false);
    let took = loop {
        let counts = read_counts(&output);
        if counts.len() == KEYS && counts.values().all(|&n| n >= 10) {
            break gone.elapsed();
        }
        assert!(
            gone.elapsed() < TAKEOVER,
            "{protocol:?}: {TAKEOVER:?} after counter-1 was gone, {} keys of {KEYS} were counted to 10: its tasks had not moved to counter-0\noperator log:\n{}",
            counts.values().filter(|&&n| n >= 10).count(),
            op.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    println!("{protocol:?}: every key counted {took:?} after counter-1 was gone");
    wait_counts_exact(&output, KEYS, 10);

    if protocol == Protocol::StreamsWithStandbys {
        let log = node.log(&ns, "counter-0").await;
        let after = log.get(survivor_log_before..).unwrap_or_default();
        let restored: usize = changelog_restores(after).iter().map(|(_, r)| r).sum();
        println!(
            "records restored by the survivor at the takeover: {restored} (state: {KEYS} keys)"
        );
        assert!(
            restored * 1000 < KEYS * RESTORED_PER_MILLE,
            "the survivor restored {restored} records of a state of {KEYS} keys: its standbys were not used\n{after}"
        );
    }
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "the operator exited:\n{}",
        op.log_text()
    );
    op.kill();
    drop(node);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streams_group_hands_the_removed_pods_tasks_to_their_standbys_at_once() {
    scale_down(Protocol::StreamsWithStandbys).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_classic_group_moves_the_removed_pods_partitions_at_once() {
    scale_down(Protocol::Classic).await;
}

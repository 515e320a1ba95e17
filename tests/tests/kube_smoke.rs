//! The real control plane works for what the operator needs: a CRD and its objects through kube,
//! and the StatefulSet controller creating Pods.
use std::time::Duration;

use freshet_crds::StreamsApp;
use freshet_tests::{eventually, kube_client, kubectl, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

async fn delete_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete namespace");
}

#[tokio::test]
async fn a_custom_resource_is_stored_and_read_back() {
    let client = kube_client().await;
    freshet_tests::cluster::install_crd(&client).await;

    let ns = freshet_tests::cluster::namespace(&client, "smoke").await;
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let app: StreamsApp = serde_json::from_value(json!({
        "apiVersion": "freshet.dev/v1alpha1",
        "kind": "StreamsApp",
        "metadata": {"name": "orders"},
        "spec": {
            "applicationId": "orders-app",
            "bootstrapServers": "127.0.0.1:9092",
            "numStreamThreads": 2,
            "topology": {
                "streams": [{"name": "orders", "topic": "orders"}],
                "pipelines": [{"name": "big", "from": "orders", "steps": [{"filter": "value.amount >= 100"}, {"to": {"topic": "big-orders"}}]}]
            }
        }
    }))
    .unwrap();
    // The CRD may take a moment to be served after Established.
    let created = eventually(Duration::from_secs(30), "StreamsApp created", || async {
        apps.create(&PostParams::default(), &app).await.ok()
    })
    .await;
    let read = apps.get("orders").await.expect("read back");
    assert_eq!(read.spec, app.spec);
    assert_eq!(read.metadata.uid, created.metadata.uid);

    // Schema validation runs in the apiserver: a negative replica count is refused.
    let mut bad = app.clone();
    bad.metadata.name = Some("bad".into());
    bad.spec.replicas = Some(-1);
    let err = apps.create(&PostParams::default(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("spec.replicas"), "{err}");

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn the_statefulset_controller_creates_all_pods_in_parallel() {
    let client = kube_client().await;
    let ns = freshet_tests::cluster::namespace(&client, "smoke").await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "podManagementPolicy": "Parallel",
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "freshet/engine:dev"}]}
            }
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("create StatefulSet");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // No kubelet runs, so the pods stay Pending; what matters is that the controller made them.
    let names = eventually(
        Duration::from_secs(60),
        "3 pods of the StatefulSet",
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let mut names: Vec<String> = list
                .items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            names.sort();
            (names.len() == 3).then_some(names)
        },
    )
    .await;
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    delete_namespace(&client, &ns).await;
}

#[test]
fn kubectl_lists_the_default_namespaces_and_applies_a_statefulset() {
    let out = kubectl()
        .args(["get", "ns", "-o", "name"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8(out.stdout).unwrap();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            names.contains(&format!("namespace/{ns}\n")),
            "{ns} missing from:\n{names}"
        );
    }

    let ns = unique_name("kubectl");
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut cmd = kubectl();
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["create", "namespace", &ns], None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !run(&["-n", &ns, "get", "serviceaccounts", "-o", "name"], None)
        .contains("serviceaccount/default")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no default ServiceAccount in {ns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let manifest = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 4\n  podManagementPolicy: Parallel\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: c, image: freshet/engine:dev}]}\n";
    run(&["-n", &ns, "apply", "-f", "-"], Some(manifest));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pods = run(
            &["-n", &ns, "get", "pods", "-l", "app=db", "-o", "name"],
            None,
        );
        if pods.lines().count() == 4 {
            assert_eq!(pods, "pod/db-0\npod/db-1\npod/db-2\npod/db-3\n");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "pods so far: {pods}");
        std::thread::sleep(Duration::from_millis(200));
    }
    run(&["delete", "namespace", &ns, "--wait=false"], None);
}

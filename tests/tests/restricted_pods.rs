//! Engine pods in a namespace that enforces the Pod Security `restricted` level: the apiserver's
//! PodSecurity admission judges the pods the StatefulSet controller makes from the operator's
//! template, and the node runs them: the real node's kubelet and runc with the whole security
//! context, where the test checks that the engine writes its state volume and nothing else; the
//! test node with what it can honour of it (a read-only root filesystem but for the state and
//! scratch volumes).
use std::time::Instant;

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    BY_KEY, apply, counting_app, operator, send_batch, wait_app_ready, wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::{kube_client, kubectl, unique_name};
use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_restricted_namespace_admits_and_runs_the_engine_pods() {
    let started = Instant::now();
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "restricted").await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            }}})),
        )
        .await
        .expect("label the namespace restricted");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // The judge is on: a pod without the restricted settings is refused here.
    let bare: Pod = serde_json::from_value(json!({
        "metadata": { "name": "bare" },
        "spec": { "containers": [{ "name": "c", "image": "ghcr.io/freshet/engine:test" }] },
    }))
    .expect("pod");
    let refused = pods
        .create(&PostParams::default(), &bare)
        .await
        .expect_err("a pod without a security context is refused in a restricted namespace");
    assert!(
        refused
            .to_string()
            .contains("violates PodSecurity \"restricted"),
        "{refused}"
    );

    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("psa-in"), unique_name("psa-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    apply(
        &apps,
        counting_app(&unique_name("psa-app"), &input, &output, "", BY_KEY),
    )
    .await;
    send_batch(&input, 20, 5, false);
    wait_app_ready(&apps, "counter").await;
    let took = wait_counts(&output, 20, 5);
    println!(
        "restricted namespace: counts complete {} ms after Ready, {} s in all",
        took.as_millis(),
        started.elapsed().as_secs()
    );
    // Admitted, not retried around a refusal: the StatefulSet controller never failed to create.
    let failed: Vec<String> = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter_map(|e| e.message)
        .collect();
    assert!(failed.is_empty(), "pods refused: {failed:?}");
    let pod = pods.get("counter-0").await.expect("counter-0");
    let spec = pod.spec.expect("pod spec");
    assert_eq!(spec.automount_service_account_token, Some(false));
    let resources = spec.containers[0].resources.clone().expect("resources");
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("memory")),
        "default requests"
    );
    // The engine ran with a read-only root filesystem: its mount namespace says so.
    let pid = node.pid(&ns, "counter-0").expect("counter-0 runs");
    let mountinfo =
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("the engine's mounts");
    let root = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a root mount");
    assert!(
        root.split(' ')
            .nth(5)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "root not read-only: {root}"
    );
    // What the default memory request is measured against.
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .map(str::to_owned)
        .unwrap_or_default();
    println!("engine {rss}; requests {:?}", resources.requests);
    if node.is_real() {
        writes_its_state_volume_and_nothing_else(&client, &ns, &mountinfo).await;
    }
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

/// On the real node (runc's mounts, the kubelet's volumes): of counter-0's container, the
/// filesystems that can be written are the state volume, the scratch volume at /tmp and the
/// kubelet's own files (termination message, /etc/hosts, hostname, resolv.conf); the state
/// volume holds the engine's files, written as 65532; a write anywhere else in the image fails.
async fn writes_its_state_volume_and_nothing_else(
    client: &kube::Client,
    ns: &str,
    mountinfo: &str,
) {
    use std::os::unix::fs::MetadataExt;
    // mountinfo: id parent major:minor root mount-point options ... - fstype source super-options
    let pseudo = [
        "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "tmpfs",
    ];
    let allowed = [
        "/var/lib/freshet/state",
        "/tmp",
        "/dev/termination-log",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    ];
    let mut writable = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let fstype = line
            .split(" - ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        let rw = fields
            .get(5)
            .is_some_and(|o| o.split(',').any(|o| o == "rw"));
        if rw && !pseudo.contains(&fstype) {
            writable.push(fields.get(4).copied().unwrap_or_default().to_owned());
        }
    }
    println!("counter-0's writable filesystems: {writable:?}");
    assert!(
        writable.iter().all(|m| allowed.contains(&m.as_str())),
        "writable beyond the volumes: {writable:?}"
    );
    assert!(
        writable.iter().any(|m| m == "/var/lib/freshet/state"),
        "the state volume is not writable: {writable:?}"
    );
    // The node's volume behind the claim holds what the engine wrote, as 65532.
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get("state-counter-0")
        .await
        .expect("counter-0's claim");
    let volume = claim
        .spec
        .and_then(|s| s.volume_name)
        .expect("the claim is bound");
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&volume)
        .await
        .expect("the volume");
    let path = pv.spec.and_then(|s| s.local).expect("a local volume").path;
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(&path)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the volume").flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                files.push((entry.path(), meta.uid()));
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|(p, _)| p.to_string_lossy().contains("counts")),
        "no store files in the state volume {path}: {files:?}"
    );
    assert!(
        files.iter().all(|(_, uid)| *uid == 65532),
        "files in the state volume not written as 65532: {files:?}"
    );
    println!("state volume {path}: {} files, all of 65532", files.len());
    // And the image's filesystem refuses a write, through the kubelet (kubectl exec).
    for target in ["/var/lib/freshet/x", "/usr/local/bin/x", "/x"] {
        let out = kubectl()
            .args(["-n", ns, "exec", "counter-0", "--", "/bin/sh", "-c"])
            .arg(format!("echo x > {target}"))
            .output()
            .expect("kubectl exec");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Read-only file system"),
            "writing {target} in counter-0: {out:?}"
        );
    }
}

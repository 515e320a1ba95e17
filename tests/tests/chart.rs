//! The Helm chart: lint, rendering for the main value combinations, the values schema, and an
//! end-to-end run: `helm install` into the real apiserver, the operator's own pod running on the
//! node (the real node: a container of the operator image; else the test node) as its ServiceAccount (so the chart's RBAC is what it gets), a StreamsApp applied,
//! its pods counting records from the real broker, status Ready=True.
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use freshet_crds::StreamsApp;
use freshet_tests::apps::wait_app_ready;
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::{Received, create_topics, key_values, produce};
use freshet_tests::node::Node;
use freshet_tests::{
    eventually, kafka_bootstrap, kube_client, kubeconfig_path, kubectl, pod_kafka_bootstrap,
    repo_root, unique_name,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(120);

fn helm() -> Command {
    let mut cmd = Command::new(std::env::var("FRESHET_HELM").unwrap_or_else(|_| "helm".into()));
    cmd.arg("--kubeconfig").arg(kubeconfig_path());
    cmd
}

fn chart() -> String {
    repo_root().join("charts/freshet").display().to_string()
}

/// `helm template` with `sets`; (success, stdout, stderr).
fn template(sets: &[&str]) -> (bool, String, String) {
    let mut cmd = helm();
    cmd.args(["template", "t", &chart(), "--namespace", "freshet"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm template");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rendered documents as (kind, namespace, document).
fn documents(yaml: &str) -> Vec<(String, String, serde_json::Value)> {
    yaml.split("\n---")
        .filter_map(|d| serde_yaml_ng::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.is_object())
        .map(|v| {
            (
                v["kind"].as_str().unwrap_or_default().to_owned(),
                v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                v,
            )
        })
        .collect()
}

/// The operator's Deployment among rendered `docs`.
fn deployment_of(docs: &[(String, String, serde_json::Value)]) -> &serde_json::Value {
    &docs
        .iter()
        .find(|(k, _, _)| k == "Deployment")
        .expect("a Deployment rendered")
        .2
}

fn env_of(deployment: &serde_json::Value, name: &str) -> Option<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn the_chart_lints_clean() {
    let out = helm()
        .args(["lint", "--strict", &chart()])
        .output()
        .expect("helm lint");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ERROR]"),
        "{text}"
    );
}

#[test]
fn the_chart_renders_cluster_wide_or_per_namespace() {
    let (ok, all, err) = template(&[]);
    assert!(ok, "{err}");
    let docs = documents(&all);
    let kinds: Vec<&str> = docs.iter().map(|(k, _, _)| k.as_str()).collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let deployment = deployment_of(&docs);
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_LEADER_ELECTION").as_deref(),
        Some("false")
    );
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_NAMESPACES"),
        None,
        "all namespaces"
    );
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default();
    assert!(image.starts_with("ghcr.io/freshet/operator:"), "{image}");
    assert!(
        env_of(deployment, "FRESHET_ENGINE_IMAGE")
            .is_some_and(|i| i.starts_with("ghcr.io/freshet/engine:")),
        "engine image"
    );

    let (ok, some, err) = template(&["watchNamespaces={a,b}", "replicaCount=2"]);
    assert!(ok, "{err}");
    let docs = documents(&some);
    assert!(
        !docs.iter().any(|(k, _, _)| k == "ClusterRole"),
        "a ClusterRole for a namespace list"
    );
    let roles: Vec<&str> = docs
        .iter()
        .filter(|(k, _, _)| k == "Role")
        .map(|(_, ns, _)| ns.as_str())
        .collect();
    assert_eq!(
        roles,
        ["a", "b", "freshet"],
        "a Role per watched namespace, and the Lease's"
    );
    let deployment = deployment_of(&docs);
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_NAMESPACES").as_deref(),
        Some("a,b")
    );
    // Only what the watched namespaces need: no cluster-wide binding, and in each Role no verb
    // the operator never uses (every verb is documented in the operator guide's RBAC table).
    assert!(
        !docs.iter().any(|(k, _, _)| k == "ClusterRoleBinding"),
        "a ClusterRoleBinding for a namespace list"
    );
    let role = &docs
        .iter()
        .find(|(k, ns, _)| k == "Role" && ns == "a")
        .expect("the Role in a")
        .2;
    for rule in role["rules"].as_array().expect("rules") {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(
            !verbs.contains(&"delete") && !verbs.contains(&"*"),
            "the operator deletes nothing itself: {rule}"
        );
        if rule["resources"] != serde_json::json!(["streamsapps/finalizers"]) {
            assert!(
                !verbs.contains(&"update"),
                "server-side apply needs no update: {rule}"
            );
        }
    }
    // The allow-lists reach the operator as flags, the Secrets its clients may read as mounts.
    let (ok, limited, err) = template(&[
        "allowedBootstrapServers={*.kafka.svc:9092,kafka-0.example}",
        "allowedImages={ghcr.io/freshet/*}",
        "kafkaClientSecrets={kafka-tls}",
    ]);
    assert!(ok, "{err}");
    let docs = documents(&limited);
    let deployment = deployment_of(&docs);
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_ALLOWED_BOOTSTRAP_SERVERS").as_deref(),
        Some("*.kafka.svc:9092,kafka-0.example")
    );
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_ALLOWED_IMAGES").as_deref(),
        Some("ghcr.io/freshet/*")
    );
    assert_eq!(
        env_of(deployment, "FRESHET_OPERATOR_CLIENT_FILE_DIRS").as_deref(),
        Some("/etc/freshet/kafka")
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "kafka-tls");
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/etc/freshet/kafka/kafka-tls"
    );
    let (ok, _, err) = template(&["allowedBootstrapServers={a b}"]);
    assert!(!ok && err.contains("allowedBootstrapServers"), "{err}");
    let (ok, with_monitor, err) = template(&["serviceMonitor.enabled=true"]);
    assert!(ok, "{err}");
    assert!(
        documents(&with_monitor)
            .iter()
            .any(|(k, _, _)| k == "ServiceMonitor")
    );
}

#[test]
fn the_values_schema_names_a_bad_value() {
    let (ok, _, err) = template(&["replicaCount=0"]);
    assert!(!ok && err.contains("replicaCount"), "{err}");
    let (ok, _, err) = template(&["replicas=2"]);
    assert!(!ok && err.contains("replicas"), "{err}");
    let (ok, _, err) = template(&["image.pullPolicy=Sometimes"]);
    assert!(!ok && err.contains("pullPolicy"), "{err}");
    let (ok, _, err) = template(&["statusRefreshSeconds=0"]);
    assert!(!ok && err.contains("statusRefreshSeconds"), "{err}");
    let (ok, _, err) = template(&["kafkaTimeoutSeconds=0"]);
    assert!(!ok && err.contains("kafkaTimeoutSeconds"), "{err}");
}

fn counts(records: &[Received]) -> BTreeMap<String, i64> {
    records
        .iter()
        .filter_map(|r| {
            let v: [u8; 8] = r.value.as_deref()?.try_into().ok()?;
            Some((r.key_str().to_owned(), i64::from_be_bytes(v)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_runs_an_app_end_to_end() {
    let client = kube_client().await;
    install_crd(&client).await;
    let (release_ns, app_ns) = (
        namespace(&client, "freshet").await,
        namespace(&client, "apps").await,
    );
    let node = Node::start(
        client.clone(),
        &unique_name("node"),
        &[&release_ns, &app_ns],
    )
    .await;
    let release = unique_name("fr");
    let installed = helm()
        .args([
            "install",
            &release,
            &chart(),
            "--namespace",
            &release_ns,
            "--wait=false",
        ])
        .args(["--set", &format!("watchNamespaces={{{app_ns}}}")])
        .args(if node.is_real() {
            // The images of the test profile's binaries, loaded into the node's containerd.
            let tag = freshet_tests::kubelet::image_tag();
            vec![
                "--set".to_owned(),
                format!("image.tag={tag}"),
                "--set".to_owned(),
                format!("engineImage.tag={tag}"),
            ]
        } else {
            Vec::new()
        })
        .output()
        .expect("helm install");
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&installed.stdout).contains("kubectl get sapp"),
        "NOTES"
    );
    // The chart's RBAC, as the operator meets it.
    let sa = format!("system:serviceaccount:{release_ns}:{release}-freshet");
    for (verb, what, want) in [
        ("patch", "streamsapps/status", "yes"),
        ("create", "statefulsets.apps", "yes"),
        ("delete", "secrets", "no"),
        // The Secrets an app's spec.kafka names are read by name, never listed.
        ("get", "secrets", "yes"),
        ("list", "secrets", "no"),
        ("list", "streamsapps", "yes"),
    ] {
        let out = kubectl()
            .args(["auth", "can-i", verb, what, "-n", &app_ns, "--as", &sa])
            .output()
            .expect("kubectl auth can-i");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(said, want, "{verb} {what} in {app_ns} as {sa}");
    }
    let other = kubectl()
        .args([
            "auth",
            "can-i",
            "list",
            "streamsapps",
            "-n",
            "default",
            "--as",
            &sa,
        ])
        .output()
        .expect("kubectl auth can-i");
    assert_eq!(
        String::from_utf8_lossy(&other.stdout).trim(),
        "no",
        "beyond its namespaces"
    );

    let (input, output) = (unique_name("helm-in"), unique_name("helm-out"));
    create_topics(&[(&input, 2), (&output, 1)]).await;
    let app: StreamsApp = serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: counter }}
spec:
  applicationId: {app_id}
  bootstrapServers: "{bootstrap}"
  defaultKeySerde: string
  defaultValueSerde: string
  config: {{ commit.interval.ms: "200" }}
  topology:
    streams: [{{ name: events, topic: {input} }}]
    pipelines:
      - name: count
        from: events
        steps:
          - groupByKey: {{}}
          - count: {{ store: counts }}
          - toStream: {{}}
          - to: {{ topic: {output}, valueSerde: long }}
"#,
        app_id = unique_name("helm-app"),
        bootstrap = pod_kafka_bootstrap()
    ))
    .expect("app");
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &app_ns);
    apps.patch(
        "counter",
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(&app),
    )
    .await
    .expect("apply the StreamsApp");
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..50)
        .map(|i| (format!("k{}", i % 5).into_bytes(), b"x".to_vec()))
        .collect();
    let refs = key_values(&records);
    produce(&input, &refs, 0);
    let metadata: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .create()
        .expect("client");
    eventually(WAIT, "every key counted to 10", || {
        let got = freshet_tests::differential::progress::read_all_committed(&metadata, &output)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>();
        let c = counts(&got);
        async move { (c.len() == 5 && c.values().all(|&n| n == 10)).then_some(()) }
    })
    .await;
    wait_app_ready(&apps, "counter").await;
    if node.is_real() {
        real_node_serves_the_release(&client, &node, &release_ns, &app_ns).await;
    }
    let table = kubectl()
        .args(["-n", &app_ns, "get", "sapp"])
        .output()
        .expect("kubectl get sapp");
    println!("{}", String::from_utf8_lossy(&table.stdout));
    let uninstalled = helm()
        .args(["uninstall", &release, "--namespace", &release_ns])
        .output()
        .expect("helm uninstall");
    assert!(uninstalled.status.success(), "{uninstalled:?}");
    drop(node);
}

/// On the real node: the operator runs in a container of its image, the engine pod has an
/// address of the node's pod network, the app's Service has it as endpoint, and the kubelet
/// serves the engine's log (`kubectl logs`).
async fn real_node_serves_the_release(
    client: &kube::Client,
    node: &Node,
    release_ns: &str,
    app_ns: &str,
) {
    let operators = Api::<Pod>::namespaced(client.clone(), release_ns)
        .list(&ListParams::default())
        .await
        .expect("the release's pods");
    let operator = operators.items.first().expect("the operator's pod");
    let spec = operator.spec.clone().expect("pod spec");
    assert_eq!(spec.node_name.as_deref(), Some(node.name()));
    let image = spec.containers[0].image.clone().unwrap_or_default();
    assert!(
        image.starts_with("ghcr.io/freshet/operator:"),
        "operator image {image}"
    );
    let engine = Api::<Pod>::namespaced(client.clone(), app_ns)
        .get("counter-0")
        .await
        .expect("counter-0");
    let ip = engine
        .status
        .and_then(|s| s.pod_ip)
        .expect("counter-0 has an address");
    assert!(!ip.starts_with("127."), "a loopback pod address: {ip}");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), app_ns);
    eventually(WAIT, "the Service counter's endpoint", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=counter"))
            .await
            .ok()?;
        list.items
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .any(|e| e.addresses.contains(&ip))
            .then_some(())
    })
    .await;
    let log = kubectl()
        .args(["-n", app_ns, "logs", "counter-0"])
        .output()
        .expect("kubectl logs");
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("task created"),
        "kubectl logs counter-0: {log:?}"
    );
    println!(
        "real node: operator {image} on {}, counter-0 at {ip} behind Service counter, kubectl logs works",
        node.name()
    );
}

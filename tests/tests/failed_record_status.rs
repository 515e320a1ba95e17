//! A pod whose `production.exception.handler` said fail: the engine writes the failed record's
//! place to its termination message file, the node keeps it in the pod's status
//! (`lastState.terminated.message`), and the operator shows it in the StreamsApp's
//! `status.lastProcessingError` — through the apiserver, which the operator reaches where it
//! cannot reach the pods. (The handler itself: `production_errors.rs`.)

use freshet_crds::StreamsApp;
use freshet_tests::apps::{WAIT, apply, operator};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::{create_topic_with_config, create_topics, produce};
use freshet_tests::node::Node;
use freshet_tests::{eventually, kube_client, pod_kafka_bootstrap, unique_name};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

#[tokio::test(flavor = "multi_thread")]
async fn the_status_names_the_record_a_pod_failed_on() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "refused").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("st-in"), unique_name("st-out"));
    create_topics(&[(&input, 1)]).await;
    create_topic_with_config(&output, 1, &[("max.message.bytes", "10000")]).await;
    let big = vec![b'x'; 20_000];
    produce(
        &input,
        &[
            (Some(b"a"), Some(b"small")),
            (Some(b"b"), Some(&big)),
            (Some(b"c"), Some(b"small")),
        ],
        0,
    );
    let app: StreamsApp = serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: counter }}
spec:
  applicationId: {app_id}
  bootstrapServers: "{bootstrap}"
  defaultKeySerde: string
  defaultValueSerde: bytes
  replicas: 1
  config:
    commit.interval.ms: "200"
    production.exception.handler: fail
  topology:
    streams:
      - {{ name: events, topic: {input} }}
    pipelines:
      - name: copy
        from: events
        steps:
          - to: {{ topic: {output} }}
"#,
        app_id = unique_name("st-app"),
        bootstrap = pod_kafka_bootstrap(),
    ))
    .expect("test StreamsApp");
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    apply(&apps, app).await;

    let place = format!("{input}-0 offset 1");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let message = eventually(WAIT, "the pod's termination message", || async {
        let pod = pods.get("counter-0").await.ok()?;
        let status = pod.status?.container_statuses?.first()?.clone();
        status.last_state?.terminated?.message
    })
    .await;
    assert!(
        message.starts_with("the application stopped in ERROR") && message.contains(&place),
        "the termination message is the engine's summary, not its log: {message}"
    );
    let error = eventually(WAIT, "status.lastProcessingError", || async {
        let app = apps.get("counter").await.ok()?;
        app.status?
            .last_processing_error
            .filter(|e| e.contains(&place))
    })
    .await;
    assert!(
        error.contains("production") && error.contains(&output),
        "{error}"
    );
    println!("status.lastProcessingError: {error}");
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
    drop(node);
}

//! A StreamsApp whose credentials come only from Secrets, on the operator and the test node,
//! against the secured test broker (SCRAM-SHA-512 over SASL_SSL, the CA from a Secret, with
//! exactly the ACLs Kafka Streams documents):
//! - it becomes Ready and counts exactly: the operator's own admin client (internal topics, lag)
//!   and the pods both log in with the Secrets; the same over mutual TLS (`type: tls`), whose
//!   deletion with `cleanupPolicy: Delete` resets it through the operator's admin client;
//! - the password is nowhere it must not be: the ConfigMap, the StreamsApp, Events, the
//!   operator's and the engine's logs;
//! - rotating the password (on the broker, then in the Secret) rolls the pods, and processing
//!   goes on;
//! - a wrong password gives a condition naming the Secret.

use freshet_crds::{CleanupPolicy, StreamsApp};
use freshet_tests::acls::{Acl, Operation, Resource, create_acls, kafka_streams_acls};
use freshet_tests::apps::{WAIT, apply, operator};
use freshet_tests::brokers::Brokers;
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::engine::EngineProcess;
use freshet_tests::node::Node;
use freshet_tests::words::{KEYS, PER_KEY, produce_words, read_word_counts};
use freshet_tests::{eventually, kube_client, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The Secret holding `key: value`, created or replaced.
async fn put_secret(secrets: &Api<Secret>, name: &str, key: &str, value: &str) {
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "stringData": { key: value },
    }))
    .expect("a Secret");
    match secrets.get_opt(name).await.expect("get Secret") {
        None => {
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .expect("create Secret");
        }
        Some(_) => {
            secrets
                .patch(
                    name,
                    &PatchParams::apply("freshet-tests").force(),
                    &Patch::Apply(serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": { "name": name },
                        "data": {},
                        "stringData": { key: value },
                    })),
                )
                .await
                .expect("update Secret");
        }
    }
}

/// Waits for condition `type_` of the app `name` to satisfy `pred`.
async fn condition(
    apps: &Api<StreamsApp>,
    name: &str,
    type_: &str,
    pred: impl Fn(&Condition) -> bool,
    op: &EngineProcess,
) -> Condition {
    let found = tokio::time::timeout(
        WAIT,
        eventually(WAIT, &format!("condition {type_}"), || async {
            let app = apps.get(name).await.ok()?;
            app.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_ && pred(c))
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "condition {type_} not reached; operator log:\n{}",
            op.log_text()
        )
    })
}

/// The StreamsApp `name` counting `input`'s words into `output`, with `kafka` (the block's
/// lines, indented four spaces) as `spec.kafka`.
fn secured_app(name: &str, app_id: &str, input: &str, output: &str, kafka: &str) -> StreamsApp {
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: {name} }}
spec:
  applicationId: {app_id}
  kafka:
{kafka}
  defaultKeySerde: string
  defaultValueSerde: string
  replicas: 1
  config:
    commit.interval.ms: "200"
    statestore.cache.max.bytes: "0"
    # A stopped static member leaves the group after this (the reset waits for an empty group).
    session.timeout.ms: "6000"
  topology:
    streams:
      - {{ name: events, topic: {input} }}
    pipelines:
      - name: count
        from: events
        steps:
          - groupBy: "value"
          - count: {{ store: counts }}
          - toStream: {{}}
          - to: {{ topic: {output}, valueSerde: long }}
"#
    ))
    .expect("test StreamsApp")
}

/// The pod template's Secrets digest.
async fn secrets_hash(sets: &Api<StatefulSet>) -> Option<String> {
    let sts = sets.get_opt("counter").await.ok()??;
    sts.spec?
        .template
        .metadata?
        .annotations?
        .get("freshet.dev/secrets-hash")
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_only_from_secrets_count_rotate_and_are_never_shown() {
    let brokers = tokio::task::spawn_blocking(Brokers::secured)
        .await
        .expect("the secured broker");
    let plaintext = brokers.bootstrap();
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "secured").await;
    // The secured listeners are on loopback: the test node's pods reach them, the real node's not.
    let node = Node::start_local(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, app_id) = (unique_name("sop-in"), unique_name("sop-app"));
    let output = format!("counts-of-{app_id}");
    // The harness's clients block: off the runtime's worker.
    tokio::task::block_in_place(|| {
        brokers.create_topics(&[(&input, 2), (&output, 1)]);
        produce_words(&plaintext, &input);
        create_acls(
            &plaintext,
            "User:app",
            &kafka_streams_acls(&app_id, &[&input], &[&output]),
        );
    });
    let password = brokers.password("app");
    let ca = std::fs::read_to_string(brokers.secrets().join("ca.crt")).expect("the CA");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    put_secret(&secrets, "cluster-ca-cert", "ca.crt", &ca).await;
    put_secret(&secrets, "app-user", "password", &password).await;

    let app = secured_app(
        "counter",
        &app_id,
        &input,
        &output,
        &format!(
            r#"    bootstrapServers: "{bootstrap}"
    tls:
      trustedCertificates:
        - {{ secretName: cluster-ca-cert, certificate: ca.crt }}
    authentication:
      type: scram-sha-512
      username: app
      passwordSecret: {{ secretName: app-user, password: password }}"#,
            bootstrap = brokers.sasl_ssl_bootstrap()
        ),
    );
    let op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    apply(&apps, app).await;

    // The same over mutual TLS, from a Strimzi KafkaUser's Secret (user.crt, user.key; the
    // principal is the certificate's CN), the CA by pattern.
    let tls_id = unique_name("sop-tls");
    let tls_output = format!("counts-of-{tls_id}");
    tokio::task::block_in_place(|| {
        brokers.create_topics(&[(&tls_output, 1)]);
        // cleanupPolicy: Delete also deletes the group: DELETE on it too.
        let mut acls = kafka_streams_acls(&tls_id, &[&input], &[&tls_output]);
        acls.push(Acl::prefixed(Resource::Group, &tls_id, Operation::Delete));
        create_acls(&plaintext, "User:app-tls", &acls);
    });
    let user_secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "app-tls" },
        "stringData": {
            "user.crt": std::fs::read_to_string(brokers.secrets().join("app-tls.crt")).expect("crt"),
            "user.key": std::fs::read_to_string(brokers.secrets().join("app-tls.key")).expect("key"),
        },
    }))
    .expect("a Secret");
    secrets
        .create(&PostParams::default(), &user_secret)
        .await
        .expect("create the TLS user's Secret");
    let mut tls_app = secured_app(
        "counter-tls",
        &tls_id,
        &input,
        &tls_output,
        &format!(
            r#"    bootstrapServers: "{bootstrap}"
    tls:
      trustedCertificates:
        - {{ secretName: cluster-ca-cert, pattern: "*.crt" }}
    authentication:
      type: tls
      certificateAndKey: {{ secretName: app-tls, certificate: user.crt, key: user.key }}"#,
            bootstrap = brokers.ssl_bootstrap()
        ),
    );
    tls_app.spec.cleanup_policy = Some(CleanupPolicy::Delete);
    apps.patch(
        "counter-tls",
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(tls_app),
    )
    .await
    .expect("apply counter-tls");

    // Ready, counting exactly: the operator created the internal topics with the Secrets'
    // credentials, and the pod logged in with them.
    condition(&apps, "counter", "TopicsReady", |c| c.status == "True", &op).await;
    condition(&apps, "counter", "Ready", |c| c.status == "True", &op).await;
    let (bootstrap, out) = (plaintext.clone(), output.clone());
    let (updates, counts) =
        tokio::task::spawn_blocking(move || read_word_counts(&bootstrap, &out, PER_KEY as i64))
            .await
            .expect("the counts");
    assert_eq!(updates, KEYS * PER_KEY, "one update per record: {counts:?}");
    condition(&apps, "counter-tls", "Ready", |c| c.status == "True", &op).await;
    let (bootstrap, out) = (plaintext.clone(), tls_output.clone());
    let (updates, counts) =
        tokio::task::spawn_blocking(move || read_word_counts(&bootstrap, &out, PER_KEY as i64))
            .await
            .expect("the counts over mutual TLS");
    assert_eq!(updates, KEYS * PER_KEY, "over mutual TLS: {counts:?}");

    // Its deletion resets it through the operator's admin client, with the Secrets' credentials.
    apps.delete("counter-tls", &DeleteParams::default())
        .await
        .expect("delete counter-tls");
    eventually(WAIT, "counter-tls gone after its reset", || async {
        apps.get_opt("counter-tls")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let left: Vec<String> = tokio::task::block_in_place(|| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &plaintext)
            .create()
            .expect("metadata client");
        consumer
            .fetch_metadata(None, std::time::Duration::from_secs(10))
            .expect("metadata")
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|n| n.starts_with(&format!("{tls_id}-")))
            .collect()
    });
    assert!(
        left.is_empty(),
        "internal topics left after the reset: {left:?}"
    );

    // The password is in none of what users and collectors see.
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("counter-app")
        .await
        .expect("the ConfigMap");
    let shown = [
        (
            "the ConfigMap",
            serde_json::to_string(&config_map).expect("JSON"),
        ),
        (
            "the StreamsApp",
            serde_json::to_string(&apps.get("counter").await.expect("app")).expect("JSON"),
        ),
        (
            "the Events",
            serde_json::to_string(
                &Api::<Event>::namespaced(client.clone(), &ns)
                    .list(&ListParams::default())
                    .await
                    .expect("events")
                    .items,
            )
            .expect("JSON"),
        ),
        ("the operator's log", op.log_text()),
        ("the engine's log", node.log(&ns, "counter-0").await),
    ];
    for (what, text) in &shown {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(!text.contains(&password), "{what} shows the password");
    }
    assert!(
        shown[0].1.contains("app-user"),
        "the ConfigMap names the Secret"
    );

    // Rotation: a new password on the broker, then in the Secret: the pods roll, and the
    // records sent after it are counted.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let before = secrets_hash(&sets).await.expect("a Secrets digest");
    let first_pod = pods.get("counter-0").await.expect("counter-0").metadata.uid;
    let rotated = format!("{password}-rotated");
    tokio::task::block_in_place(|| brokers.set_scram_password("app", &rotated));
    put_secret(&secrets, "app-user", "password", &rotated).await;
    eventually(WAIT, "the pod template's new Secrets digest", || async {
        secrets_hash(&sets).await.filter(|h| *h != before)
    })
    .await;
    eventually(WAIT, "counter-0 replaced and ready", || async {
        let pod = pods.get("counter-0").await.ok()?;
        let ready = pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (pod.metadata.uid != first_pod && ready).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| produce_words(&plaintext, &input));
    let (bootstrap, out) = (plaintext.clone(), output.clone());
    let (_, counts) =
        tokio::task::spawn_blocking(move || read_word_counts(&bootstrap, &out, 2 * PER_KEY as i64))
            .await
            .expect("the counts after the rotation");
    assert!(
        counts.values().all(|c| *c == 2 * PER_KEY as i64),
        "{counts:?}"
    );

    // A wrong password: the operator's condition names the Secret it came from.
    put_secret(&secrets, "app-user", "password", "not-the-password").await;
    let refused = condition(
        &apps,
        "counter",
        "TopicsReady",
        |c| c.status == "False" && c.message.contains("'app-user'"),
        &op,
    )
    .await;
    assert!(
        refused
            .message
            .contains("spec.kafka.authentication.passwordSecret"),
        "{}",
        refused.message
    );
    assert!(
        !op.log_text().contains(&rotated),
        "the operator logs the password"
    );
    drop(op);
    drop(node);
    tokio::task::spawn_blocking(move || drop(brokers))
        .await
        .expect("the broker stopped");
}

//! The operator connects only where its allow-list says (issue 17): an app whose bootstrap
//! server is outside `--allowed-bootstrap-servers` is refused in its status and the operator
//! opens no connection to it (the test listens there and counts); an image outside
//! `--allowed-images` and client properties that would read files in the operator's pod are
//! refused too. A control app on an allowed pattern pointing at the same listener shows the
//! listener does see the operator when it is allowed to connect.
use std::net::TcpListener;
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::condition_with;
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::engine::{EngineProcess, free_port};
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, kube_client, kubeconfig_path, unique_name};
use kube::api::{Api, Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(60);

fn app(name: &str, bootstrap: &str, input: &str, extra: &str) -> StreamsApp {
    serde_yaml_ng::from_str(&format!(
        r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: {name} }}
spec:
  applicationId: {id}
  bootstrapServers: "{bootstrap}"
{extra}
  topology:
    streams: [{{ name: s, topic: {input} }}]
    pipelines: [{{ name: p, from: s, steps: [{{ to: {{ topic: {input}-out }} }}] }}]
"#,
        id = unique_name("allow-app"),
    ))
    .expect("test StreamsApp")
}

/// Connections accepted by `listener` so far (non-blocking).
fn accepted(listener: &TcpListener) -> usize {
    let mut n = 0;
    while listener.accept().is_ok() {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_outside_the_allow_list_is_refused_without_a_connection() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "allow").await;
    let input = unique_name("allow-in");
    create_topics(&[(&input, 1)]).await;
    // Where a refused app points: the test listens and counts who connects.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let http = free_port();
    let kubeconfig = kubeconfig_path().display().to_string();
    let args: Vec<String> = [
        "--namespace",
        &ns,
        "--http-port",
        &http.to_string(),
        "--leader-election",
        "false",
        "--retry-seconds",
        "1",
        "--resync-seconds",
        "1",
        "--allowed-bootstrap-servers",
        &format!("{},localhost:*", kafka_bootstrap()),
        "--allowed-images",
        "ghcr.io/freshet/*",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut op = EngineProcess::spawn(
        "freshet-operator",
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
        ],
        http,
    );
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pp = PatchParams::apply("freshet-tests").force();
    let put = |a: StreamsApp| {
        let apps = apps.clone();
        let pp = pp.clone();
        async move {
            apps.patch(
                &a.metadata.name.clone().unwrap_or_default(),
                &pp,
                &Patch::Apply(&a),
            )
            .await
            .expect("apply");
        }
    };
    put(app("outside", &format!("127.0.0.1:{port}"), &input, "")).await;
    put(app(
        "bad-image",
        &kafka_bootstrap(),
        &input,
        "  image: evil.example/engine:1",
    ))
    .await;
    put(app(
        "reads-files",
        &kafka_bootstrap(),
        &input,
        "  config: { security.protocol: SSL, ssl.ca.location: /etc/passwd }",
    ))
    .await;
    put(app("inside", &kafka_bootstrap(), &input, "")).await;

    let refused = condition_with(
        &apps,
        "outside",
        "Allowed",
        "BootstrapServerNotAllowed",
        &op,
    )
    .await;
    assert!(
        refused.status == "False" && refused.message.contains(&format!("127.0.0.1:{port}")),
        "{refused:?}"
    );
    let image = condition_with(&apps, "bad-image", "Allowed", "ImageNotAllowed", &op).await;
    assert!(image.message.contains("evil.example/engine:1"), "{image:?}");
    let files = condition_with(
        &apps,
        "reads-files",
        "Allowed",
        "ClientPropertyRefused",
        &op,
    )
    .await;
    assert!(
        files.message.contains("ssl.ca.location=/etc/passwd"),
        "{files:?}"
    );
    // The allowed app runs as ever.
    condition_with(&apps, "inside", "TopicsReady", "TopicsReady", &op).await;
    // Several resyncs (1 s) and retries later: nobody came.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        accepted(&listener),
        0,
        "the operator connected to a refused server"
    );

    // The control: an allowed pattern to the same listener, and the operator does connect.
    put(app("control", &format!("localhost:{port}"), &input, "")).await;
    let deadline = Instant::now() + WAIT;
    let mut seen = 0;
    while seen == 0 {
        assert!(
            Instant::now() < deadline,
            "the listener never saw the allowed app's connection; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = accepted(&listener);
    }
    println!("refused: 0 connections; the allowed control: {seen}");
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died"
    );
    op.kill();
}

//! Shared setup for the integration tests: where the real broker and apiserver are, and unique
//! names so tests can share them.
//!
//! `make test` starts Kafka and the cluster and exports their addresses; a test run without them
//! fails with a message saying so, never passes vacuously.

pub mod acls;
pub mod apps;
pub mod brokers;
pub mod cluster;
pub mod confluent;
pub mod differential;
pub mod engine;
pub mod kafka;
pub mod kubelet;
pub mod node;
pub mod private_cluster;
pub mod prometheus;
pub mod streams_groups;
pub mod test_node;
pub mod words;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The repository root. Read when the test runs (cargo sets `CARGO_MANIFEST_DIR` then): the
/// target dir is shared between clones, so a path baked in at compile time may name another one.
pub fn repo_root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .expect("tests/ has a parent")
    .to_owned()
}

/// Bootstrap servers of the test broker (`FRESHET_KAFKA_BOOTSTRAP`, default 127.0.0.1:9092).
/// Panics with the fix when nothing listens there.
pub fn kafka_bootstrap() -> String {
    let addr =
        std::env::var("FRESHET_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let reachable = addr
        .parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        reachable,
        "no Kafka broker at {addr}: run the tests with `make test`, or start one with `make kafka-up`"
    );
    addr
}

/// Bootstrap servers of the test broker as pods see it: on the real node Kafka's `PODS`
/// listener at the node's address ([`kubelet::pod_bootstrap`]), on the test node (pods are host
/// processes) [`kafka_bootstrap`]. Panics with the fix when nothing answers there.
pub fn pod_kafka_bootstrap() -> String {
    if !kubelet::selected() {
        return kafka_bootstrap();
    }
    let addr = kubelet::pod_bootstrap();
    let reachable = addr
        .parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        reachable,
        "no Kafka pod listener at {addr} (FRESHET_NODE=kubelet): start Kafka and the cluster with the same \
         FRESHET_NODE_NET (FRESHET_NODE=kubelet make kafka-up cluster-up), or set FRESHET_POD_KAFKA_BOOTSTRAP"
    );
    addr
}

/// Path of the kubeconfig for the test cluster (`KUBECONFIG`, default .freshet/kubeconfig).
pub fn kubeconfig_path() -> PathBuf {
    let path = std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".freshet/kubeconfig"));
    assert!(
        path.exists(),
        "no kubeconfig at {}: run the tests with `make test`, or start the cluster with `make cluster-up`",
        path.display()
    );
    path
}

/// A kube client for the test cluster.
pub async fn kube_client() -> kube::Client {
    let path = kubeconfig_path();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}", path.display()));
    kube::Client::try_from(config).expect("kube client")
}

/// The kubectl built for the test cluster's version (`FRESHET_KUBECTL`).
pub fn kubectl() -> std::process::Command {
    let bin = std::env::var("FRESHET_KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--kubeconfig").arg(kubeconfig_path());
    cmd
}

/// A name no other test (or earlier run) uses: `<prefix>-<time>-<counter>`, DNS-1123 safe.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        % 100_000_000;
    format!(
        "{prefix}-{millis}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

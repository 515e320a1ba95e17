//! The make targets' scripts stop with a message that says what went wrong and how to fix it.
//! Each case runs the real script against a private run and cache directory.
use std::net::TcpListener;
use std::process::{Command, Output};

use freshet_tests::repo_root;

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let run_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(repo_root().join("scripts").join(name));
    cmd.args(args).env("FRESHET_RUN_DIR", run_dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run script");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn assert_fails_with(out: &Output, stderr: &str, what: &[&str], fix: &str) {
    assert!(!out.status.success(), "expected failure, stderr:\n{stderr}");
    for w in what {
        assert!(stderr.contains(w), "stderr lacks {w:?}:\n{stderr}");
    }
    assert!(
        stderr.contains("FIX:") && stderr.contains(fix),
        "stderr lacks the fix {fix:?}:\n{stderr}"
    );
}

#[test]
fn kafka_up_on_a_busy_port_names_the_port_and_the_variable() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (out, err) = script("kafka.sh", &["up"], &[("FRESHET_KAFKA_PORT", &port)]);
    assert_fails_with(
        &out,
        &err,
        &[&format!("port {port}"), "already in use"],
        "FRESHET_KAFKA_PORT=<port>",
    );
}

#[test]
fn registry_up_on_a_busy_port_names_the_port_and_the_variable() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (out, err) = script("registry.sh", &["up"], &[("FRESHET_REGISTRY_PORT", &port)]);
    assert_fails_with(
        &out,
        &err,
        &[&format!("port {port}"), "already in use"],
        "FRESHET_REGISTRY_PORT=<port>",
    );
}

#[test]
fn cluster_up_on_a_busy_port_names_the_port_and_the_variable() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    // etcd is checked first: give it ports nothing uses, so the apiserver's port is the busy one.
    let etcd_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (out, err) = script(
        "cluster.sh",
        &["up"],
        &[
            ("FRESHET_APISERVER_PORT", &port),
            ("FRESHET_ETCD_PORT", &etcd_port),
        ],
    );
    assert_fails_with(
        &out,
        &err,
        &[&format!("port {port}"), "kube-apiserver"],
        "FRESHET_APISERVER_PORT=<port>",
    );
}

#[test]
fn kafka_up_without_java_says_to_install_it() {
    let (out, err) = script(
        "kafka.sh",
        &["up"],
        &[("JAVA", "/nonexistent/java"), ("FRESHET_KAFKA_PORT", "1")],
    );
    assert_fails_with(
        &out,
        &err,
        &["'/nonexistent/java' is not installed"],
        "install a Java 17+ runtime",
    );
}

#[test]
fn building_kubernetes_without_go_says_to_install_it() {
    let (out, err) = script(
        "build-k8s.sh",
        &["kubernetes"],
        &[("GO", "/nonexistent/go"), ("K8S_VERSION", "v1.0.0-missing")],
    );
    assert_fails_with(
        &out,
        &err,
        &["'/nonexistent/go' is not installed"],
        "install Go",
    );
}

#[test]
fn a_kafka_version_maven_central_lacks_fails_the_download_clearly() {
    let cache = tempfile::tempdir().unwrap();
    // Maven's own plugins come from the shared repository, so only Kafka's download is missing.
    let shared_cache = std::env::var("FRESHET_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/freshet", std::env::var("HOME").unwrap()));
    let m2 = format!("{shared_cache}/m2");
    let (out, err) = script(
        "kafka.sh",
        &["fetch"],
        &[
            ("FRESHET_CACHE", cache.path().to_str().unwrap()),
            ("FRESHET_M2", &m2),
            ("KAFKA_VERSION", "0.0.1-missing"),
        ],
    );
    assert_fails_with(
        &out,
        &err,
        &["downloading Apache Kafka 0.0.1-missing from Maven Central failed"],
        "Maven Central is reachable",
    );
}

#[test]
fn a_kubernetes_version_the_module_proxy_lacks_fails_the_download_clearly() {
    let cache = tempfile::tempdir().unwrap();
    let (out, err) = script(
        "build-k8s.sh",
        &["kubernetes"],
        &[
            ("FRESHET_CACHE", cache.path().to_str().unwrap()),
            ("K8S_VERSION", "v1.0.999"),
        ],
    );
    assert_fails_with(
        &out,
        &err,
        &["k8s.io/kubernetes@v1.0.999"],
        "Go module proxy is reachable",
    );
}

#[test]
fn pushing_images_without_a_registry_says_where_to_name_it() {
    let (out, err) = script("images.sh", &["push"], &[("IMAGE_REGISTRY", "")]);
    assert_fails_with(
        &out,
        &err,
        &["IMAGE_REGISTRY is not set"],
        "make images push IMAGE_REGISTRY=",
    );
}

#[test]
fn an_unknown_node_kind_names_the_ones_there_are() {
    let (out, err) = script("cluster.sh", &["up"], &[("FRESHET_NODE", "vm")]);
    assert_fails_with(&out, &err, &["FRESHET_NODE=vm"], "FRESHET_NODE=kubelet");
}

#[test]
fn the_real_node_without_a_cluster_for_it_says_how_to_start_one() {
    let (out, err) = script("node.sh", &["up"], &[]);
    assert_fails_with(
        &out,
        &err,
        &["not running for a real node"],
        "FRESHET_NODE=kubelet make cluster-up",
    );
}

#[test]
fn make_test_names_the_nodes_it_can_run_pods_on() {
    let (out, err) = script("test.sh", &[], &[("FRESHET_NODE", "vm")]);
    assert_fails_with(&out, &err, &["FRESHET_NODE=vm"], "FRESHET_NODE=auto");
}

#[test]
fn the_real_node_on_a_network_the_machine_routes_says_why_not() {
    // The first two octets of a route this machine has: the node's /16 would shadow it.
    let routes = Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let Some(net) = routes.split_whitespace().find_map(|w| {
        let octets: Vec<&str> = w.split(['.', '/']).collect();
        (octets.len() >= 4 && octets[..4].iter().all(|o| o.parse::<u8>().is_ok()))
            .then(|| format!("{}.{}", octets[0], octets[1]))
    }) else {
        eprintln!("no IPv4 route on this machine: nothing to clash with");
        return;
    };
    let (out, _) = script("node.sh", &["can-run"], &[("FRESHET_NODE_NET", &net)]);
    let why = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "can-run accepted {net}.0.0/16: {why}"
    );
    // Without root the first reason is that; with it, the clash.
    assert!(
        why.contains("already routes") || why.contains("root"),
        "can-run gave no reason: {why}"
    );
}

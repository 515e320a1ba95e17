//! The real node (`FRESHET_NODE=kubelet`, `scripts/node.sh`): a kubelet and containerd run the
//! pods in containers of the images (`ghcr.io/freshet/{engine,operator}:<version>-test`, loaded
//! into the node's containerd by `make test`). A test's node then runs nothing itself: it opens
//! its namespaces to the real node, reaches the containers through CRI (`crictl`: process ids,
//! SIGKILL) and the apiserver (`kubectl logs`, through the kubelet), and deletes its namespaces
//! when dropped, so that nothing it started keeps running.
//!
//! Namespaces are closed to the node until then: [`crate::cluster::namespace`] gives each one
//! the `scheduler.alpha.kubernetes.io/node-selector` annotation of the apiserver's
//! `PodNodeSelector` admission (on with the real node, `scripts/cluster.sh`) naming no node, so
//! a test that starts no node sees its pods Pending, as on a cluster whose test node serves
//! other namespaces. [`Kubelet::start`] points the annotation at the real node.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node as KNode, Pod};
use kube::Client;
use kube::api::{Api, LogParams, Patch, PatchParams};
use serde_json::json;

use crate::{eventually, kubectl, repo_root};

/// The namespace annotation `PodNodeSelector` merges into the node selector of its pods.
pub const NODE_SELECTOR_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/node-selector";

/// The node selector of a namespace no node serves yet: no node has this label.
pub const NO_NODE: &str = "freshet.dev/node=none";

/// True when the tests run their pods on the real node: `FRESHET_NODE=kubelet`.
pub fn selected() -> bool {
    std::env::var("FRESHET_NODE").is_ok_and(|v| v == "kubelet")
}

/// The real node's name (`FRESHET_NODE_NAME`, default `freshet-node`, as in `scripts/node.sh`).
pub fn node_name() -> String {
    std::env::var("FRESHET_NODE_NAME").unwrap_or_else(|_| "freshet-node".to_owned())
}

/// The tag of the images the pods run (`FRESHET_NODE_IMAGE_TAG`, default `<version>-test`: the
/// test profile's binaries, `FRESHET_IMAGE_PROFILE=test scripts/images.sh build`).
pub fn image_tag() -> String {
    std::env::var("FRESHET_NODE_IMAGE_TAG")
        .unwrap_or_else(|_| format!("{}-test", env!("CARGO_PKG_VERSION")))
}

/// The engine image of the StreamsApps the tests' operators run.
pub fn engine_image() -> String {
    format!("ghcr.io/freshet/engine:{}", image_tag())
}

/// The broker as pods see it: Kafka's `PODS` listener, advertised at the node's address
/// (`FRESHET_POD_KAFKA_BOOTSTRAP`, default `<FRESHET_NODE_NET>.0.2:9092`). The host reaches it
/// there too, over the node's veth, so an operator on the host can use the same address.
pub fn pod_bootstrap() -> String {
    std::env::var("FRESHET_POD_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        let net = std::env::var("FRESHET_NODE_NET").unwrap_or_else(|_| "10.213".to_owned());
        format!("{net}.0.2:9092")
    })
}

/// `crictl` for the node's containerd: `FRESHET_CRICTL` and `FRESHET_CRI_ENDPOINT` (exported by
/// `make test`), else the one `scripts/build-k8s.sh node` cached and `.freshet/node`'s socket.
fn crictl() -> Command {
    let bin = std::env::var_os("FRESHET_CRICTL")
        .map(PathBuf::from)
        .or_else(cached_crictl)
        .unwrap_or_else(|| PathBuf::from("crictl"));
    let endpoint = std::env::var("FRESHET_CRI_ENDPOINT").unwrap_or_else(|_| {
        format!(
            "unix://{}",
            repo_root().join(".freshet/node/containerd.sock").display()
        )
    });
    let mut cmd = Command::new(bin);
    cmd.args([
        "--runtime-endpoint",
        &endpoint,
        "--image-endpoint",
        &endpoint,
        "--timeout",
        "30s",
    ]);
    cmd
}

/// `$FRESHET_CACHE/bin/crictl-*/crictl` (default cache `~/.cache/freshet`).
fn cached_crictl() -> Option<PathBuf> {
    let cache = std::env::var_os("FRESHET_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/freshet")))?;
    std::fs::read_dir(cache.join("bin"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("crictl-"))
        .map(|e| e.path().join("crictl"))
        .find(|p| p.exists())
}

/// The real node, serving some namespaces for one test.
pub struct Kubelet {
    /// The node's name.
    pub name: String,
    client: Client,
    namespaces: Vec<String>,
}

impl Kubelet {
    /// Checks that the node is Ready, then opens `namespaces` to it.
    pub async fn start(client: Client, namespaces: &[&str]) -> Kubelet {
        let name = node_name();
        let nodes: Api<KNode> = Api::all(client.clone());
        eventually(
            Duration::from_secs(30),
            &format!(
                "node {name} Ready (FRESHET_NODE=kubelet: start the cluster with FRESHET_NODE=kubelet make cluster-up)"
            ),
            || async {
                let node = nodes.get(&name).await.ok()?;
                node.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
        let all: Api<Namespace> = Api::all(client.clone());
        let selector = format!("kubernetes.io/hostname={name}");
        for ns in namespaces {
            all.patch(
                ns,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": {
                    NODE_SELECTOR_ANNOTATION: selector,
                }}})),
            )
            .await
            .unwrap_or_else(|e| panic!("open namespace {ns} to node {name}: {e}"));
        }
        Kubelet {
            name,
            client,
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The id of the running container of pod `namespace/pod` (its only one), through CRI.
    fn container(&self, namespace: &str, pod: &str) -> Option<String> {
        let out = crictl()
            .args(["ps", "-q", "--state", "running", "--label"])
            .arg(format!("io.kubernetes.pod.namespace={namespace}"))
            .arg("--label")
            .arg(format!("io.kubernetes.pod.name={pod}"))
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "crictl ps for {namespace}/{pod}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_owned)
    }

    /// The host's process id of pod `namespace/pod`'s container, while it runs.
    pub fn pid(&self, namespace: &str, pod: &str) -> Option<u32> {
        let id = self.container(namespace, pod)?;
        let out = crictl()
            .args([
                "inspect",
                "--output",
                "go-template",
                "--template",
                "{{.info.pid}}",
                &id,
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|&pid| pid > 1)
    }

    /// SIGKILLs the process of pod `namespace/pod`'s container (the kubelet then restarts it, as
    /// after an OOM kill); false when it runs nothing.
    pub fn kill_container(&self, namespace: &str, pod: &str) -> bool {
        let Some(pid) = self.pid(namespace, pod) else {
            return false;
        };
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The log of pod `namespace/pod`'s container as the kubelet serves it: the previous
    /// container's (after a restart) followed by the current one's.
    pub async fn log(&self, namespace: &str, pod: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let previous = LogParams {
            previous: true,
            ..LogParams::default()
        };
        let mut log = pods.logs(pod, &previous).await.unwrap_or_default();
        match pods.logs(pod, &LogParams::default()).await {
            Ok(current) => log.push_str(&current),
            Err(e) => log.push_str(&format!("(no log of {namespace}/{pod}: {e})\n")),
        }
        log
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What ran where, before it goes.
            // Pending pods on a node that is Ready: its taints say why (a full disk gives
            // `node.kubernetes.io/disk-pressure`, and nothing is scheduled there any more).
            if let Ok(out) = kubectl()
                .args(["get", "node", &self.name, "-o"])
                .arg("jsonpath={.spec.taints}")
                .output()
            {
                eprintln!(
                    "taints of {}: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            for ns in &self.namespaces {
                if let Ok(out) = kubectl()
                    .args(["-n", ns, "get", "pods", "-o", "wide"])
                    .output()
                {
                    eprintln!(
                        "pods of {ns} on {}:\n{}",
                        self.name,
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
                // The end of each pod's log: what a failure on this node most often needs.
                let names = kubectl()
                    .args(["-n", ns, "get", "pods", "-o", "name"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                for pod in names.lines() {
                    if let Ok(out) = kubectl()
                        .args(["-n", ns, "logs", "--tail=40", "--all-containers", pod])
                        .output()
                    {
                        eprintln!(
                            "last lines of {ns}/{pod}:\n{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            }
        }
        // Its pods stop (grace period, then SIGKILL by the kubelet); its claims go, and the
        // node's recycler makes their volumes Available again.
        let _ = kubectl()
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&self.namespaces)
            .output();
    }
}

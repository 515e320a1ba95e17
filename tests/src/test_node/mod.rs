//! The test node, for a cluster without a kubelet (`freshet_tests::node` picks it when
//! `FRESHET_NODE` is not `kubelet`): it registers a Node and renews its Lease,
//! binds the pending pods of the namespaces it serves, and runs each pod's container as a local
//! process of the workspace binary its image names (`.../engine` → `freshet-engine`,
//! `.../operator` → `freshet-operator`), as a kubelet would run the image:
//!
//! - the pod's args and env (downward API, ConfigMap and Secret references and `envFrom`
//!   resolved), its volumes as directories (a PersistentVolumeClaim's survives the pod, as the
//!   volume would), mount paths in args and env rewritten to them (and a directory holding
//!   mount points to one linking them);
//! - its own loopback address (127.1.0.0 and up) as the pod IP, so equal ports do not collide;
//! - a kubeconfig for the apiserver on loopback with a token issued for the pod's ServiceAccount
//!   (TokenRequest), so an operator pod meets RBAC as in a cluster;
//! - phase, readiness (the readiness probe, over HTTP) and restarts reported in the pod's status;
//!   a container that exits is restarted (restartPolicy Always); its termination message is what
//!   it wrote to its `terminationMessagePath` (a file of the pod's directory, named to the engine
//!   by `FRESHET_TERMINATION_LOG`), or with `FallbackToLogsOnError` and a failure, its log's tail,
//!   as the kubelet does;
//! - SIGTERM when the pod is deleted, SIGKILL after its grace period, then the pod removed;
//! - the container's `resources.limits.cpu` enforced as the kubelet does, by a CFS quota on a
//!   cgroup (v1) of its own, so an instance's capacity is its limit, not whatever the machine's
//!   cores leave over;
//! - `securityContext.readOnlyRootFilesystem`: the process sees the filesystem read-only but for
//!   its writable volumes (a mount namespace of its own, `unshare`), and a volume at `/tmp` is
//!   its `TMPDIR`. The user and group it runs as stay the node's.
//!
//! [`TestNode::kill_container`] SIGKILLs a pod's process, for crash tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node as KNode, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::process::Child;

mod container;

use container::{CpuCgroup, Prepared, container_command, prepare};

/// What a pod's process is doing, shared between the node's loop and the pod's supervisor.
struct Run {
    /// Set when the pod is being deleted: stop for good.
    stopping: Arc<AtomicBool>,
    /// The process id of the current container process.
    pid: Arc<AtomicU32>,
}

/// A running node; stops (and kills its processes) when dropped.
pub struct TestNode {
    pub name: String,
    runs: Arc<Mutex<HashMap<String, Run>>>,
    task: tokio::task::JoinHandle<()>,
    pub dir: tempfile::TempDir,
}

fn now() -> String {
    Timestamp::now().to_string()
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

impl TestNode {
    /// Registers the node `name` and serves the pods of `namespaces`.
    pub async fn start(client: Client, name: &str, namespaces: &[&str]) -> TestNode {
        let nodes: Api<KNode> = Api::all(client.clone());
        let node: KNode = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
            "spec": {},
        }))
        .expect("node");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("register node {name}: {e}"),
        }
        heartbeat(&client, name).await;
        let runs: Arc<Mutex<HashMap<String, Run>>> = Arc::default();
        let dir = tempfile::tempdir().expect("node dir");
        let ctx = NodeContext {
            client,
            name: name.to_owned(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            root: dir.path().to_owned(),
        };
        let task = tokio::spawn(node_loop(ctx, runs.clone()));
        TestNode {
            name: name.to_owned(),
            runs,
            task,
            dir,
        }
    }

    /// SIGKILLs the container process of pod `namespace/name`; false when it runs nothing.
    pub fn kill_container(&self, namespace: &str, name: &str) -> bool {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(run) = runs.get(&format!("{namespace}/{name}")) else {
            return false;
        };
        let pid = run.pid.load(Ordering::SeqCst);
        pid != 0
            && std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
    }

    /// The process id of pod `namespace/name`'s container, while it runs.
    pub fn pid(&self, namespace: &str, name: &str) -> Option<u32> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        let pid = runs
            .get(&format!("{namespace}/{name}"))?
            .pid
            .load(Ordering::SeqCst);
        (pid != 0).then_some(pid)
    }

    /// The log file of a pod's container (all its restarts appended).
    pub fn log_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("pods")
            .join(namespace)
            .join(name)
            .join("container.log")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.task.abort();
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        for run in runs.values() {
            run.stopping.store(true, Ordering::SeqCst);
            let pid = run.pid.load(Ordering::SeqCst);
            if pid != 0 {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

#[derive(Clone)]
struct NodeContext {
    client: Client,
    name: String,
    namespaces: Vec<String>,
    root: PathBuf,
}

/// A loopback address no other pod of this process or of another node process uses: a
/// counter from a start that depends on the process id, spread over 127.1.0.0 and up.
fn next_pod_ip() -> String {
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let n = NEXT
        .get_or_init(|| AtomicU32::new((std::process::id() % 4000) * 4000))
        .fetch_add(1, Ordering::SeqCst)
        % (250 * 256 * 254);
    format!(
        "127.{}.{}.{}",
        1 + n / (250 * 256),
        (n / 250) % 256,
        1 + n % 250
    )
}

/// Node status and Lease, so the node-lifecycle controller keeps the node Ready.
async fn heartbeat(client: &Client, name: &str) {
    let nodes: Api<KNode> = Api::all(client.clone());
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({ "type": type_, "status": status, "reason": reason,
                "lastHeartbeatTime": now(), "lastTransitionTime": now() })
    };
    let status = json!({ "status": {
        "conditions": [
            condition("Ready", "True", "KubeletReady"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }, { "type": "Hostname", "address": name }],
        "capacity": { "cpu": "16", "memory": "64Gi", "pods": "110" },
        "allocatable": { "cpu": "16", "memory": "64Gi", "pods": "110" },
    }});
    if let Err(e) = nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
    {
        eprintln!("node {name}: status: {e}");
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name },
        "spec": { "holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now()) },
    });
    if let Err(e) = leases
        .patch(
            name,
            &PatchParams::apply("freshet-test-node").force(),
            &Patch::Apply(&lease),
        )
        .await
    {
        eprintln!("node {name}: lease: {e}");
    }
}

async fn node_loop(ctx: NodeContext, runs: Arc<Mutex<HashMap<String, Run>>>) {
    let mut beat = tokio::time::Instant::now();
    loop {
        if beat.elapsed() >= Duration::from_secs(10) {
            heartbeat(&ctx.client, &ctx.name).await;
            beat = tokio::time::Instant::now();
        }
        for ns in &ctx.namespaces {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
            let Ok(list) = pods.list(&ListParams::default()).await else {
                continue;
            };
            let present: Vec<String> = list.items.iter().map(key).collect();
            for pod in list.items {
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                let deleting = pod.metadata.deletion_timestamp.is_some();
                match node {
                    None if !deleting => bind(&pods, &pod, &ctx.name).await,
                    Some(n) if n == ctx.name => {
                        let mut guard = runs.lock().unwrap_or_else(|p| p.into_inner());
                        match guard.get(&key(&pod)) {
                            Some(run) if deleting => run.stopping.store(true, Ordering::SeqCst),
                            Some(_) => {}
                            None if deleting => {
                                // Nothing runs for it (any more): finish the deletion.
                                let pods = pods.clone();
                                let name = pod.name_any();
                                tokio::spawn(async move {
                                    let _ = pods
                                        .delete(&name, &DeleteParams::default().grace_period(0))
                                        .await;
                                });
                            }
                            None => {
                                let run = Run {
                                    stopping: Arc::default(),
                                    pid: Arc::default(),
                                };
                                let (stopping, pid) = (run.stopping.clone(), run.pid.clone());
                                guard.insert(key(&pod), run);
                                let (ctx, runs) = (ctx.clone(), runs.clone());
                                tokio::spawn(async move {
                                    let k = key(&pod);
                                    supervise(ctx, pod, stopping, pid).await;
                                    runs.lock().unwrap_or_else(|p| p.into_inner()).remove(&k);
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Pods gone without a graceful delete: their processes go too.
            let guard = runs.lock().unwrap_or_else(|p| p.into_inner());
            for (k, run) in guard.iter() {
                if k.starts_with(&format!("{ns}/")) && !present.contains(k) {
                    run.stopping.store(true, Ordering::SeqCst);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn bind(pods: &Api<Pod>, pod: &Pod, node: &str) {
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": { "name": pod.name_any() },
        "target": { "apiVersion": "v1", "kind": "Node", "name": node },
    });
    if let Err(e) = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &pod.name_any(),
            &PostParams::default(),
            &binding,
        )
        .await
    {
        eprintln!("bind {}: {e}", key(pod));
    }
}

async fn probe(ip: &str, path: &str, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await, Ok(Ok(n)) if n >= 12 && buf[9..12] == *b"200")
}

/// What the node reports of a pod's container.
struct Reported {
    ip: String,
    started: String,
    ready: bool,
    restarts: i32,
    state: serde_json::Value,
    last: serde_json::Value,
}

async fn set_status(pods: &Api<Pod>, pod: &Pod, r: &Reported) {
    let (ip, ready, restarts, started) = (&r.ip, r.ready, r.restarts, &r.started);
    let (state, last) = (&r.state, &r.last);
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .unwrap_or_default();
    let flag = |b: bool| if b { "True" } else { "False" };
    let running = state.get("running").is_some();
    let status = json!({ "status": {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "startTime": started,
        "conditions": [
            { "type": "PodScheduled", "status": "True" },
            { "type": "Initialized", "status": "True" },
            { "type": "ContainersReady", "status": flag(ready) },
            { "type": "Ready", "status": flag(ready) },
        ],
        "containerStatuses": [{
            "name": container.name,
            "image": container.image.unwrap_or_default(),
            "imageID": "",
            "ready": ready,
            "started": running,
            "restartCount": restarts,
            "state": state,
            "lastState": last,
        }],
    }});
    if let Err(e) = pods
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
    {
        eprintln!("status of {}: {e}", key(pod));
    }
}

fn tail(path: &Path, bytes: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(bytes);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// The termination message as the kubelet makes it: the file's first 4096 bytes; if it is empty
/// and the policy is `FallbackToLogsOnError` and the container failed, the log's tail.
fn termination_message(p: &Prepared, log: &Path, code: i32) -> String {
    let written = std::fs::read(&p.termination_log).unwrap_or_default();
    if !written.is_empty() {
        return String::from_utf8_lossy(&written[..written.len().min(4096)]).into_owned();
    }
    if p.fallback_to_logs && code != 0 {
        tail(log, 2048)
    } else {
        String::new()
    }
}

/// Runs a pod's container until the pod is deleted, restarting it when it exits.
async fn supervise(ctx: NodeContext, pod: Pod, stopping: Arc<AtomicBool>, pid: Arc<AtomicU32>) {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let mut r = Reported {
        ip: next_pod_ip(),
        started: now(),
        ready: false,
        restarts: 0,
        state: json!({}),
        last: json!({}),
    };
    let ip = r.ip.clone();
    loop {
        let p = match prepare(&ctx, &pod, &ip).await {
            Ok(p) => p,
            Err(e) => {
                r.ready = false;
                r.state =
                    json!({ "waiting": { "reason": "CreateContainerConfigError", "message": e } });
                set_status(&pods, &pod, &r).await;
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let log = p.dir.join("container.log");
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        else {
            break;
        };
        let Ok(err) = file.try_clone() else { break };
        // A new, empty termination message file for each run of the container.
        if std::fs::write(&p.termination_log, "").is_err() {
            break;
        }
        // The termination message file exists (written above) before it is bind-mounted.
        let mut cmd = container_command(&p);
        cmd.current_dir(&p.dir)
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true);
        let mut child: Child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("start {}: {e}", key(&pod));
                break;
            }
        };
        pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        let _cgroup = match (p.cpu_limit_millis, child.id()) {
            (Some(millis), Some(id)) => {
                let name = format!("{}-{}", pod.namespace().unwrap_or_default(), pod.name_any());
                match CpuCgroup::limit(&name, id, millis) {
                    Ok(cgroup) => Some(cgroup),
                    Err(e) => {
                        eprintln!("{}: CPU limit {millis}m not enforced: {e}", key(&pod));
                        None
                    }
                }
            }
            _ => None,
        };
        r.state = json!({ "running": { "startedAt": now() } });
        r.ready = false;
        set_status(&pods, &pod, &r).await;
        let exit = loop {
            if stopping.load(Ordering::SeqCst) {
                // SIGTERM, then SIGKILL after the grace period.
                if let Some(id) = child.id() {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &id.to_string()])
                        .status();
                }
                let status = match tokio::time::timeout(p.grace, child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        let _ = child.kill().await;
                        child.wait().await.ok()
                    }
                };
                pid.store(0, Ordering::SeqCst);
                let _ = pods
                    .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
                    .await;
                let _ = status;
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            let now_ready = match &p.readiness {
                Some((path, port)) => probe(&ip, path, *port).await,
                None => true,
            };
            if now_ready != r.ready {
                r.ready = now_ready;
                set_status(&pods, &pod, &r).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        pid.store(0, Ordering::SeqCst);
        use std::os::unix::process::ExitStatusExt;
        let code = exit
            .code()
            .unwrap_or_else(|| 128 + exit.signal().unwrap_or(0));
        r.last = json!({ "terminated": {
            "exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
            "message": termination_message(&p, &log, code),
            "finishedAt": now(),
        }});
        r.restarts += 1;
        r.ready = false;
        r.state = json!({ "waiting": { "reason": "ContainerRestarting" } });
        set_status(&pods, &pod, &r).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

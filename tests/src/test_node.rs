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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Node as KNode, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::engine::workspace_binary;

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

/// A pod's process, prepared: what to run and where its probe answers.
struct Prepared {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    readiness: Option<(String, u16)>,
    grace: Duration,
    /// The file standing for the container's `terminationMessagePath`.
    termination_log: PathBuf,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    fallback_to_logs: bool,
    /// The container's CPU limit, in millicores.
    cpu_limit_millis: Option<u64>,
    /// `securityContext.readOnlyRootFilesystem`: the directories (and the termination message
    /// file) that stay writable in the process's read-only view of the filesystem.
    read_only_root: Option<Vec<PathBuf>>,
}

/// Millicores of a CPU quantity (`250m`, `0.5`, `2`); `None` for anything else.
fn millicores(quantity: &str) -> Option<u64> {
    match quantity.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => quantity
            .parse::<f64>()
            .ok()
            .filter(|cores| *cores > 0.0)
            .map(|cores| (cores * 1000.0).round() as u64),
    }
}

/// The cgroup (v1 `cpu` controller) a container with a CPU limit runs in: the quota per 100 ms
/// period is the limit, as the kubelet sets it. Removed when dropped.
struct CpuCgroup(PathBuf);

impl CpuCgroup {
    const PERIOD_US: u64 = 100_000;

    /// Puts process `pid` under a quota of `millis` millicores.
    fn limit(name: &str, pid: u32, millis: u64) -> std::io::Result<CpuCgroup> {
        let dir = Path::new("/sys/fs/cgroup/cpu/freshet-test-node").join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cpu.cfs_period_us"), Self::PERIOD_US.to_string())?;
        let quota = (millis * Self::PERIOD_US / 1000).max(1000);
        std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        // cgroup.procs moves every thread of the process.
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())?;
        Ok(CpuCgroup(dir))
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        // Only an empty cgroup can go; the process has exited by now.
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn binary_for(image: &str) -> PathBuf {
    let repo = image.rsplit('/').next().unwrap_or(image);
    let repo = repo.split([':', '@']).next().unwrap_or(repo);
    let name = if repo.contains("operator") {
        "freshet-operator"
    } else {
        "freshet-engine"
    };
    workspace_binary(name)
}

async fn prepare(ctx: &NodeContext, pod: &Pod, ip: &str) -> Result<Prepared, String> {
    let ns = pod.namespace().unwrap_or_default();
    let spec = pod.spec.clone().ok_or("pod without spec")?;
    let container: Container = spec
        .containers
        .first()
        .cloned()
        .ok_or("pod without containers")?;
    let dir = ctx.root.join("pods").join(&ns).join(pod.name_any());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // Volumes → directories.
    let mut volumes: HashMap<String, PathBuf> = HashMap::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for v in spec.volumes.clone().unwrap_or_default() {
        let path = if let Some(pvc) = &v.persistent_volume_claim {
            ctx.root.join("volumes").join(&ns).join(&pvc.claim_name)
        } else {
            dir.join("volumes").join(&v.name)
        };
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        if let Some(cm) = &v.config_map {
            let cm = config_maps
                .get(&cm.name)
                .await
                .map_err(|e| format!("configMap {}: {e}", cm.name))?;
            for (k, text) in cm.data.unwrap_or_default() {
                std::fs::write(path.join(k), text).map_err(|e| e.to_string())?;
            }
        }
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let s = secrets
                .get(&name)
                .await
                .map_err(|e| format!("secret {name}: {e}"))?;
            for (k, bytes) in s.data.unwrap_or_default() {
                std::fs::write(path.join(k), bytes.0).map_err(|e| e.to_string())?;
            }
        }
        volumes.insert(v.name.clone(), path);
    }
    // PersistentVolumeClaims from volumeClaimTemplates appear as pod volumes named after the
    // template; any mount without a volume gets a directory of its own.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    let mut writable: Vec<PathBuf> = Vec::new();
    for m in container.volume_mounts.clone().unwrap_or_default() {
        let base = volumes
            .get(&m.name)
            .cloned()
            .unwrap_or_else(|| dir.join("volumes").join(&m.name));
        let path = match &m.sub_path {
            Some(sub) if !sub.is_empty() => base.join(sub),
            _ => base,
        };
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        if m.read_only != Some(true) {
            writable.push(path.clone());
        }
        mounts.push((m.mount_path.clone(), path));
    }
    // A directory holding mount points (the operator mounts each Secret at
    // `/var/run/secrets/freshet/<name>` and names the directory): as a container runtime
    // makes it, a directory of its own with each mount in it (here a link).
    // Only a directory the args or env name, so that no other path is rewritten.
    let named: Vec<String> = container
        .args
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(
            container
                .env
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.value),
        )
        .collect();
    let mut parents: Vec<(String, PathBuf)> = Vec::new();
    for (mount, path) in mounts.clone() {
        let Some((parent, name)) = mount.rsplit_once('/') else {
            continue;
        };
        if !named.iter().any(|n| n == parent) || mounts.iter().any(|(m, _)| m == parent) {
            continue;
        }
        let dir_for = dir
            .join("volumes")
            .join(format!("parent{}", parent.replace('/', "_")));
        std::fs::create_dir_all(&dir_for).map_err(|e| e.to_string())?;
        let link = dir_for.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(&path, &link).map_err(|e| e.to_string())?;
        }
        if !parents.iter().any(|(p, _)| p == parent) {
            parents.push((parent.to_owned(), dir_for));
        }
    }
    mounts.extend(parents);
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    let rewrite = |s: &str| -> String {
        for (mount, path) in &mounts {
            if let Some(rest) = s.strip_prefix(mount.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", path.display());
            }
        }
        s.to_owned()
    };
    // Environment.
    let mut env: Vec<(String, String)> = Vec::new();
    for from in container.env_from.clone().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let cm = config_maps
                .get(&r.name)
                .await
                .map_err(|e| format!("envFrom configMap {}: {e}", r.name))?;
            env.extend(
                cm.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), v)),
            );
        }
        if let Some(r) = &from.secret_ref {
            let s = secrets
                .get(&r.name)
                .await
                .map_err(|e| format!("envFrom secret {}: {e}", r.name))?;
            env.extend(s.data.unwrap_or_default().into_iter().map(|(k, v)| {
                (
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v.0).into_owned(),
                )
            }));
        }
    }
    for e in container.env.clone().unwrap_or_default() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.name" => pod.name_any(),
                        "metadata.namespace" => ns.clone(),
                        "status.podIP" => ip.to_owned(),
                        "spec.nodeName" => ctx.name.clone(),
                        "spec.serviceAccountName" => spec
                            .service_account_name
                            .clone()
                            .unwrap_or_else(|| "default".into()),
                        other => {
                            return Err(format!("env {}: unsupported fieldRef {other}", e.name));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let s = secrets
                        .get(&r.name)
                        .await
                        .map_err(|err| format!("env {}: secret {}: {err}", e.name, r.name))?;
                    let bytes = s.data.unwrap_or_default().remove(&r.key).ok_or(format!(
                        "env {}: secret {} has no key {}",
                        e.name, r.name, r.key
                    ))?;
                    String::from_utf8_lossy(&bytes.0).into_owned()
                } else if let Some(r) = &from.config_map_key_ref {
                    let cm = config_maps
                        .get(&r.name)
                        .await
                        .map_err(|err| format!("env {}: configMap {}: {err}", e.name, r.name))?;
                    cm.data
                        .unwrap_or_default()
                        .remove(&r.key)
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            }
            (None, None) => String::new(),
        };
        env.push((e.name.clone(), rewrite(&value)));
    }
    // A volume at /tmp is where temporary files go (`std::env::temp_dir`, librdkafka), as in
    // the container, where it hides the image's /tmp.
    if let Some((_, path)) = mounts
        .iter()
        .find(|(m, _)| m.trim_end_matches('/') == "/tmp")
    {
        env.push(("TMPDIR".into(), path.display().to_string()));
    }
    // The termination message file, which the kubelet creates at terminationMessagePath in the
    // container: here a file of the pod's directory, named to the engine by its variable.
    let termination_log = dir.join("termination-log");
    env.push((
        "FRESHET_TERMINATION_LOG".into(),
        termination_log.display().to_string(),
    ));
    // The apiserver, as the pod's ServiceAccount.
    let sa = spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    if let Some(kubeconfig) = service_account_kubeconfig(ctx, &ns, &sa, &dir).await {
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    }
    let args: Vec<String> = container
        .command
        .iter()
        .flatten()
        .skip(1)
        .chain(container.args.iter().flatten())
        .map(|a| rewrite(a))
        .collect();
    let ports: BTreeMap<String, u16> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.clone()?, p.container_port as u16)))
        .collect();
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| {
            let port = match &h.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as u16,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                    *ports.get(s)?
                }
            };
            Some((h.path.clone().unwrap_or_else(|| "/".into()), port))
        });
    let read_only_root = container
        .security_context
        .as_ref()
        .and_then(|c| c.read_only_root_filesystem)
        .unwrap_or(false)
        .then(|| {
            writable.push(termination_log.clone());
            writable
        });
    Ok(Prepared {
        binary: binary_for(container.image.as_deref().unwrap_or_default()),
        args,
        env,
        dir,
        readiness,
        grace: Duration::from_secs(
            spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64
        ),
        termination_log,
        fallback_to_logs: container.termination_message_policy.as_deref()
            == Some("FallbackToLogsOnError"),
        cpu_limit_millis: container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref()?.get("cpu"))
            .map(|q| {
                millicores(&q.0)
                    .ok_or_else(|| format!("resources.limits.cpu: {:?} is not a CPU quantity", q.0))
            })
            .transpose()?,
        read_only_root,
    })
}

/// The command that runs `p`'s binary: itself, or with a read-only root filesystem, under
/// `unshare` in a mount namespace of its own where `/` is remounted read-only and only the
/// writable volumes (each bind-mounted onto itself first) can be written, as in a container
/// with `readOnlyRootFilesystem`. The binary is exec'd, so the process id is the container's.
/// Its environment is the pod's only.
fn container_command(p: &Prepared) -> Command {
    let mut cmd;
    match &p.read_only_root {
        None => {
            cmd = Command::new(&p.binary);
            cmd.args(&p.args).env_clear();
        }
        Some(writable) => {
            let mut script = String::from("set -e; mount --make-rprivate /; ");
            for i in 0..writable.len() {
                script.push_str(&format!(
                    "mount --bind \"$FRESHET_NODE_W{i}\" \"$FRESHET_NODE_W{i}\"; unset FRESHET_NODE_W{i}; "
                ));
            }
            script.push_str("mount -o remount,bind,ro /; exec \"$0\" \"$@\"");
            cmd = Command::new("unshare");
            cmd.args(["--mount", "--", "sh", "-c", &script])
                .arg(&p.binary)
                .args(&p.args)
                .env_clear();
            for (i, path) in writable.iter().enumerate() {
                cmd.env(format!("FRESHET_NODE_W{i}"), path);
            }
        }
    }
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(p.env.iter().cloned());
    cmd
}

/// A kubeconfig for the apiserver on loopback with a token of `namespace/sa`; `None` when the
/// ServiceAccount does not exist (yet).
async fn service_account_kubeconfig(
    ctx: &NodeContext,
    ns: &str,
    sa: &str,
    dir: &Path,
) -> Option<PathBuf> {
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(ctx.client.clone(), ns);
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": { "expirationSeconds": 86400 },
    });
    let issued: serde_json::Value = api
        .create_subresource("token", sa, &PostParams::default(), &request)
        .await
        .ok()?;
    let token = issued["status"]["token"].as_str()?.to_owned();
    let admin = kube::config::Kubeconfig::read_from(crate::kubeconfig_path()).ok()?;
    let cluster = admin.clusters.first()?.cluster.clone()?;
    let text = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "cluster", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{ "name": sa, "user": { "token": token } }],
        "contexts": [{ "name": "pod", "context": { "cluster": "cluster", "user": sa, "namespace": ns } }],
        "current-context": "pod",
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_string(&text).ok()?).ok()?;
    Some(path)
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

#[cfg(test)]
mod tests {
    use super::millicores;

    #[test]
    fn cpu_quantities_in_millicores() {
        assert_eq!(millicores("250m"), Some(250));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("lots"), None);
        assert_eq!(millicores("0"), None);
    }
}

//! A pod's container as the test node runs it: the binary its image names, its args and env
//! (downward API, ConfigMap and Secret references resolved), its volumes as directories, its
//! CPU limit as a cgroup quota and its read-only root as a mount namespace.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::process::Command;

use super::NodeContext;
use crate::engine::workspace_binary;

/// A pod's process, prepared: what to run and where its probe answers.
pub(super) struct Prepared {
    pub(super) binary: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) dir: PathBuf,
    pub(super) readiness: Option<(String, u16)>,
    pub(super) grace: Duration,
    /// The file standing for the container's `terminationMessagePath`.
    pub(super) termination_log: PathBuf,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    pub(super) fallback_to_logs: bool,
    /// The container's CPU limit, in millicores.
    pub(super) cpu_limit_millis: Option<u64>,
    /// `securityContext.readOnlyRootFilesystem`: the directories (and the termination message
    /// file) that stay writable in the process's read-only view of the filesystem.
    pub(super) read_only_root: Option<Vec<PathBuf>>,
}

/// Millicores of a CPU quantity (`250m`, `0.5`, `2`); `None` for anything else.
pub(super) fn millicores(quantity: &str) -> Option<u64> {
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
pub(super) struct CpuCgroup(PathBuf);

impl CpuCgroup {
    const PERIOD_US: u64 = 100_000;

    /// Puts process `pid` under a quota of `millis` millicores.
    pub(super) fn limit(name: &str, pid: u32, millis: u64) -> std::io::Result<CpuCgroup> {
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

pub(super) fn binary_for(image: &str) -> PathBuf {
    let repo = image.rsplit('/').next().unwrap_or(image);
    let repo = repo.split([':', '@']).next().unwrap_or(repo);
    let name = if repo.contains("operator") {
        "freshet-operator"
    } else {
        "freshet-engine"
    };
    workspace_binary(name)
}

pub(super) async fn prepare(ctx: &NodeContext, pod: &Pod, ip: &str) -> Result<Prepared, String> {
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
pub(super) fn container_command(p: &Prepared) -> Command {
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
pub(super) async fn service_account_kubeconfig(
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

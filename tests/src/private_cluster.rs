//! A control plane of a test's own: etcd and kube-apiserver on free ports, from the binaries
//! `make cluster-up` uses, for tests that stop the apiserver (the shared one serves every other
//! test). No controller-manager and no node: objects are stored, nothing runs them.
//!
//! The apiserver makes its own self-signed serving certificate; the kubeconfig skips its
//! verification and authenticates with a static token in `system:masters`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::engine::free_port;
use crate::repo_root;

/// A version pinned in scripts/lib.sh (`NAME=${NAME:-v1.2.3}`).
fn pinned_version(name: &str) -> String {
    let lib = std::fs::read_to_string(repo_root().join("scripts/lib.sh")).expect("scripts/lib.sh");
    let prefix = format!("{name}=${{{name}:-");
    lib.lines()
        .find_map(|l| {
            l.strip_prefix(&prefix)?
                .strip_suffix('}')
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("{name} not pinned in scripts/lib.sh"))
}

/// `$FRESHET_CACHE/bin/<dir>/<binary>`, where `make cluster-up` put it.
fn cached_binary(dir: &str, binary: &str) -> PathBuf {
    let cache = std::env::var_os("FRESHET_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/freshet")
        });
    let path = cache.join("bin").join(dir).join(binary);
    assert!(
        path.exists(),
        "{} not found: `make cluster-up` (or scripts/build-k8s.sh all) builds it",
        path.display()
    );
    path
}

/// etcd and a kube-apiserver that can be stopped and started again on the same store; both are
/// killed when this is dropped.
pub struct PrivateApiserver {
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Option<Child>,
    args: Vec<String>,
    /// The apiserver's port on 127.0.0.1.
    pub port: u16,
    /// A kubeconfig for it.
    pub kubeconfig: PathBuf,
}

fn spawn(binary: &Path, args: &[String], log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run openssl");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

impl PrivateApiserver {
    /// Starts etcd and the apiserver and waits until the apiserver serves.
    pub async fn start() -> PrivateApiserver {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // The service-account token keys the apiserver requires.
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(d.join("sa.key"))
            .arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(d.join("sa.key"))
            .arg("-out")
            .arg(d.join("sa.pub")));
        let token = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        );
        std::fs::write(
            d.join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n"),
        )
        .expect("tokens.csv");
        let (client_port, peer_port, port) = (free_port(), free_port(), free_port());
        let etcd_bin = cached_binary(&format!("etcd-{}", pinned_version("ETCD_VERSION")), "etcd");
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args: Vec<String> = [
            "--name",
            "private",
            "--data-dir",
            &d.join("etcd").display().to_string(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("private={peer_url}"),
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let etcd = spawn(&etcd_bin, &etcd_args, &d.join("etcd.log"));
        let p = |f: &str| d.join(f).display().to_string();
        let args: Vec<String> = [
            "--etcd-servers",
            &client_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--cert-dir",
            &p("certs"),
            "--token-auth-file",
            &p("tokens.csv"),
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            &p("sa.pub"),
            "--service-account-signing-key-file",
            &p("sa.key"),
            "--api-audiences",
            "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            "--authorization-mode",
            "RBAC",
            "--profiling=false",
            "--v=1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: private, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\nusers: [{{name: admin, user: {{token: {token}}}}}]\ncontexts: [{{name: private, context: {{cluster: private, user: admin}}}}]\ncurrent-context: private\n"
            ),
        )
        .expect("kubeconfig");
        let mut cluster = PrivateApiserver {
            dir,
            etcd,
            apiserver: None,
            args,
            port,
            kubeconfig,
        };
        cluster.start_apiserver().await;
        cluster
    }

    /// A client of this apiserver.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// Starts the apiserver (again) and waits until it serves the `default` namespace; how long
    /// that took.
    pub async fn start_apiserver(&mut self) -> Duration {
        assert!(self.apiserver.is_none(), "the apiserver already runs");
        let started = Instant::now();
        let bin = cached_binary(
            &format!("kubernetes-{}", pinned_version("K8S_VERSION")),
            "kube-apiserver",
        );
        let log = self.dir.path().join("kube-apiserver.log");
        self.apiserver = Some(spawn(&bin, &self.args, &log));
        let client = self.client().await;
        let namespaces: Api<Namespace> = Api::all(client);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(Ok(Some(status))) = self.apiserver.as_mut().map(Child::try_wait) {
                panic!(
                    "kube-apiserver exited with {status}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Ok(Some(_)) = namespaces.get_opt("default").await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the private kube-apiserver did not serve within 120 s (log: {})",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        started.elapsed()
    }

    /// Stops the apiserver: SIGTERM, SIGKILL after 20 s. etcd keeps the store.
    pub fn stop_apiserver(&mut self) {
        let Some(mut child) = self.apiserver.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PrivateApiserver {
    fn drop(&mut self) {
        if let Some(mut a) = self.apiserver.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

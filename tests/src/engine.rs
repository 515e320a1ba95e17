//! Running the `freshet-engine` binary as a child process, as users and pods run it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The engine binary built next to the test executables (`make test` builds every target first).
pub fn engine_binary() -> PathBuf {
    workspace_binary("freshet-engine")
}

/// A binary of the workspace (`freshet-engine`, `freshet-operator`) built next to the tests.
pub fn workspace_binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps, binaries in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("the executable's directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not built: run `cargo build --workspace --all-targets` (make test does)",
        bin.display()
    );
    bin
}

/// How long a GET of an engine's endpoints waits for the answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running engine (or operator) process; killed when dropped.
pub struct EngineProcess {
    pub child: Child,
    pub log: PathBuf,
    pub http_port: u16,
}

/// A free local port for an engine's HTTP endpoints. Taken below the kernel's ephemeral range
/// (32768 and up), where every outgoing connection of the broker, the apiserver and the
/// clients also takes ports: a port found free there can be taken by a connection before the
/// engine binds it. Never the same port twice in one test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

impl EngineProcess {
    /// Starts `freshet-engine run -f manifest` with extra args and env; logs go to a file.
    pub fn start(manifest: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> EngineProcess {
        let http_port = free_port();
        let mut all = vec![
            "run".to_owned(),
            "-f".to_owned(),
            manifest.display().to_string(),
            "--http-port".to_owned(),
            http_port.to_string(),
            "--http-address".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let mut env = env.to_vec();
        env.push(("FRESHET_LOG", "info,librdkafka=warn"));
        Self::spawn("freshet-engine", &all, &env, http_port)
    }

    /// Starts `freshet-engine run -f manifest` as application `app` on the test broker with its
    /// state in `state_dir`, and waits (a minute at most) until it is RUNNING.
    pub fn start_ready(
        manifest: &std::path::Path,
        app: &str,
        state_dir: &std::path::Path,
    ) -> EngineProcess {
        let mut engine = Self::start(
            manifest,
            &[
                "--bootstrap-servers",
                &crate::kafka_bootstrap(),
                "--application-id",
                app,
                "--state-dir",
                state_dir.to_str().expect("UTF-8 path"),
            ],
            &[],
        );
        engine.wait_ready(Duration::from_secs(60));
        engine
    }

    /// Starts the workspace binary `name` with `args` and `env`, its log going to a file;
    /// `http_port` is where its HTTP endpoints answer.
    pub fn spawn(
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        http_port: u16,
    ) -> EngineProcess {
        let log = std::env::temp_dir().join(format!("{}.log", crate::unique_name(name)));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(workspace_binary(name));
        cmd.args(args).stdout(Stdio::null()).stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        EngineProcess {
            child,
            log,
            http_port,
        }
    }

    /// GET a path of the HTTP endpoints: (status, body), or None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path, HTTP_TIMEOUT)
    }

    /// A handle for [`Diagnosis::text`], which needs no borrow of the process.
    pub fn diagnosis(&self) -> Diagnosis {
        Diagnosis {
            pid: self.child.id(),
            http_port: self.http_port,
            log: self.log.clone(),
        }
    }

    /// Waits until `/readyz` answers 200 (RUNNING) and lists no task still restoring its
    /// stores: every task assigned so far runs. (A restoring task does not make the engine
    /// unready — it runs its other tasks meanwhile — so 200 alone does not say that.)
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((200, body)) = self.get("/readyz")
                && !body.contains("restoringTasks")
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "engine exited with {status} before RUNNING; log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "engine not ready after {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sum of every sample of metric `name` on `/metrics` (its labelled series added up;
    /// 0 when it has none): exactly that name, not the names it is a prefix of.
    pub fn metric(&self, name: &str) -> f64 {
        let (status, body) = self.get("/metrics").expect("the engine's /metrics answers");
        assert_eq!(status, 200, "/metrics: {body}");
        body.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            // An empty sum is -0.
            + 0.0
    }

    /// Waits (a minute at most) until [`metric`](Self::metric) `name` reaches `at_least`.
    pub fn wait_for_metric(&self, name: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.metric(name) < at_least {
            assert!(
                Instant::now() < deadline,
                "{name} stayed below {at_least}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.child.id());
        self.wait(timeout)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "engine did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// `GET path` from 127.0.0.1:`port` (an engine's, an operator's or Prometheus's HTTP port),
/// waiting at most `timeout` for the answer: (status, body, a chunked one decoded), or None
/// when nothing answers.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// What a stalled engine is doing, for a failure message.
pub struct Diagnosis {
    pid: u32,
    http_port: u16,
    log: PathBuf,
}

impl Diagnosis {
    /// Its log, its `/readyz` and `/metrics`, and every thread's stack (by gdb, when the
    /// machine has it): a process that is alive but silent says nothing in its log.
    pub fn text(&self) -> String {
        let mut out = format!(
            "log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        for path in ["/readyz", "/metrics"] {
            let answer = http_get(self.http_port, path, HTTP_TIMEOUT)
                .map(|(code, body)| format!("{code}\n{body}"));
            out += &format!("\n{path}: {}", answer.as_deref().unwrap_or("no answer"));
        }
        let stacks = Command::new("gdb")
            .args(["-p", &self.pid.to_string(), "-batch", "-nx"])
            .args(["-ex", "thread apply all bt 30"])
            .output();
        match stacks {
            Ok(o) => out += &format!("\nthreads:\n{}", String::from_utf8_lossy(&o.stdout)),
            Err(e) => out += &format!("\nno thread stacks (gdb: {e})"),
        }
        out
    }
}

/// The tasks an engine's log says it created (`task created ... task=0_3`), in order.
pub fn tasks_created(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("task created"))
        .filter_map(|l| l.split("task=").nth(1))
        .map(|t| {
            t.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .to_owned()
        })
        .collect()
}

/// The restores an engine's log reports (`store restored from its changelog ... partition=3
/// ... records=120`): the changelog partition and the records restored, in order.
pub fn changelog_restores(log: &str) -> Vec<(i32, usize)> {
    let field = |line: &str, name: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    log.lines()
        .filter(|l| l.contains("store restored from its changelog"))
        .map(|l| {
            let partition = field(l, "partition")
                .and_then(|p| p.parse().ok())
                .unwrap_or(-1);
            let records = field(l, "records")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            (partition, records)
        })
        .collect()
}

//! The processes under test: the Java oracle (tests/reference/streams) and the Freshet engine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::EngineProcess;
use crate::{kafka_bootstrap, repo_root, unique_name};

/// The oracle's classpath: `FRESHET_REFERENCE_CLASSPATH` (make test builds it and exports it), or
/// else built here by `scripts/reference.sh build`, a no-op when already built.
pub fn oracle_classpath() -> String {
    if let Ok(cp) = std::env::var("FRESHET_REFERENCE_CLASSPATH")
        && !cp.is_empty()
    {
        return cp;
    }
    let script = repo_root().join("scripts/reference.sh");
    let out = Command::new(&script)
        .arg("build")
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} build failed ({}); see its message above",
        script.display(),
        out.status
    );
    let file = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading the oracle classpath {file}: {e}"))
        .trim()
        .to_owned()
}

/// A `java` command for the oracle's main class.
pub fn oracle_command(classpath: &str) -> Command {
    let java = std::env::var("JAVA").unwrap_or_else(|_| "java".to_owned());
    let mut cmd = Command::new(java);
    // A small heap and the quick JIT: the cases are small, start-up time is what counts.
    cmd.args([
        "-Xms64m",
        "-Xmx768m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        // Kafka Streams warns once per skipped record and about settings chosen on purpose here
        // (a temporary state dir, generated store names): noise that would bury a failure.
        "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals=error",
        "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.StreamsConfig=error",
        "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.processor.internals.StateDirectory=error",
        "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.streams.processor.internals.InternalTopologyBuilder=error",
        "-cp",
        classpath,
        "dev.freshet.reference.Oracle",
    ]);
    cmd
}

/// One application to run: case, application id, topic map (`input=..,table=..,output=..`).
pub struct AppRun {
    pub case: &'static str,
    pub application_id: String,
    pub topic_map: String,
}

/// A process running one or more of the applications under test; killed when dropped.
pub enum Runner {
    /// One JVM running a KafkaStreams instance per case.
    Oracle {
        child: Child,
        log: PathBuf,
        _state: tempfile::TempDir,
    },
    /// One freshet-engine process for one case.
    Engine {
        engine: EngineProcess,
        _dir: tempfile::TempDir,
    },
}

impl Runner {
    /// Starts the oracle with every run in one JVM (a JVM start-up per case would cost seconds
    /// of the two cores each).
    pub fn oracle(classpath: &str, runs: &[AppRun]) -> Runner {
        let state = tempfile::tempdir().expect("oracle state dir");
        let log = std::env::temp_dir().join(format!("{}.log", unique_name("oracle")));
        let file = std::fs::File::create(&log).expect("oracle log file");
        let mut cmd = oracle_command(classpath);
        cmd.arg("run").arg(kafka_bootstrap()).arg(state.path());
        for r in runs {
            cmd.args([r.case, &r.application_id, &r.topic_map]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the oracle (java): {e}"));
        Runner::Oracle {
            child,
            log,
            _state: state,
        }
    }

    /// Starts `freshet-engine run` on `manifest` (the case's app.yaml with its placeholders
    /// replaced) with its own state dir.
    pub fn engine(manifest: &str, application_id: &str) -> Runner {
        let dir = tempfile::tempdir().expect("engine dir");
        let path = dir.path().join("app.yaml");
        std::fs::write(&path, manifest).expect("write the manifest");
        let state = dir.path().join("state");
        let bootstrap = kafka_bootstrap();
        let engine = EngineProcess::start(
            &path,
            &[
                "--bootstrap-servers",
                &bootstrap,
                "--application-id",
                application_id,
                "--state-dir",
                state.to_str().expect("UTF-8 temp path"),
            ],
            &[],
        );
        Runner::Engine { engine, _dir: dir }
    }

    fn child(&mut self) -> &mut Child {
        match self {
            Runner::Oracle { child, .. } => child,
            Runner::Engine { engine, .. } => &mut engine.child,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        match self {
            Runner::Oracle { log, .. } => log.clone(),
            Runner::Engine { engine, .. } => engine.log.clone(),
        }
    }

    /// For failure messages: the first lines that report a failure (the oracle's `FAILED`, any
    /// `ERROR`), then the last lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let path = self.log_path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let failures: Vec<&str> = all
            .iter()
            .filter(|l| l.starts_with("FAILED") || l.contains(" ERROR "))
            .take(5)
            .copied()
            .collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        let mut out = String::new();
        if !failures.is_empty() {
            out = format!(
                "--- failures in {} ---\n{}\n",
                path.display(),
                failures.join("\n")
            );
        }
        out + &format!("--- last {lines} lines of {} ---\n{tail}", path.display())
    }

    /// Why the process is no longer running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child().try_wait() {
            Ok(Some(status)) => Some(format!("exited with {status}")),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    /// SIGTERM, then up to `timeout` for a clean exit; Err says what went wrong (after a kill).
    pub fn terminate(&mut self, timeout: Duration) -> Result<(), String> {
        let pid = self.child().id();
        if let Some(why) = self.exited() {
            return Err(format!("had already {why}"));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child().try_wait() {
                // The JVM exits 143 after its shutdown hook closed every instance cleanly.
                Ok(Some(s)) if s.success() || s.code() == Some(143) => return Ok(()),
                Ok(Some(s)) => return Err(format!("exited with {s} after SIGTERM")),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = self.child().kill();
        let _ = self.child().wait();
        Err(format!(
            "did not exit within {timeout:?} of SIGTERM; killed"
        ))
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child().kill();
            let _ = self.child().wait();
        }
    }
}

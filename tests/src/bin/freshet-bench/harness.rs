//! One benchmark: the input written once, then every contender × workload × guarantee run from
//! its start, repeated; each run's output checked for completeness.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::avro::write_avro_input;
use crate::check::{self, Checker, Expected};
use crate::data::{self, Expect, Generator, KEYS};
use crate::kafka_io::{create_topics, delete_topics, producer, send};

pub const PARTITIONS: i32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Stateless,
    Count,
    Windowed,
    Join,
    /// The stateless workload on the same records in Avro (Confluent's framing, through the
    /// schema registry), read and written with the `avro` serde: Freshet only.
    Avro,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Stateless => "stateless",
            Workload::Count => "count",
            Workload::Windowed => "windowed",
            Workload::Join => "join",
            Workload::Avro => "avro",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Workload> {
        Ok(match s {
            "stateless" => Workload::Stateless,
            "count" => Workload::Count,
            "windowed" => Workload::Windowed,
            "join" => Workload::Join,
            "avro" => Workload::Avro,
            _ => anyhow::bail!("unknown workload {s}: stateless, count, windowed, join or avro"),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Freshet,
    KStreams,
    Pipe,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Freshet => "freshet",
            Contender::KStreams => "kstreams",
            Contender::Pipe => "pipe",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<Contender> {
        Ok(match s {
            "freshet" => Contender::Freshet,
            "kstreams" => Contender::KStreams,
            "pipe" => Contender::Pipe,
            _ => anyhow::bail!("unknown contender {s}: freshet, kstreams or pipe"),
        })
    }
}

pub struct Settings {
    pub bootstrap: String,
    pub n: u64,
    pub repeats: u32,
    pub workloads: Vec<Workload>,
    pub guarantees: Vec<String>,
    pub contenders: Vec<Contender>,
    pub threads: u32,
    pub commit_alos_ms: u64,
    pub commit_eos_ms: u64,
    pub engine: PathBuf,
    pub kstreams_classpath: String,
    pub java_opts: Vec<String>,
    pub latency_rate: u64,
    pub latency_seconds: u64,
    pub work: PathBuf,
    pub timeout: Duration,
    /// How long to wait for RUNNING after the output is complete.
    pub ready_wait: Duration,
    /// The schema registry's Confluent-compatible API (the `avro` workload's).
    pub registry: Option<String>,
}

impl Settings {
    fn commit_ms(&self, guarantee: &str) -> u64 {
        if guarantee == "exactly_once_v2" {
            self.commit_eos_ms
        } else {
            self.commit_alos_ms
        }
    }
}

/// One run's figures (a throughput run or a latency run).
#[derive(Clone, Debug)]
pub struct Row {
    pub contender: Contender,
    pub workload: Workload,
    pub guarantee: String,
    pub repeat: u32,
    pub phase: &'static str,
    pub complete: bool,
    pub seconds: f64,
    pub records_per_s: f64,
    pub startup_s: f64,
    pub rss_mib: f64,
    pub cpu_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub output_records: u64,
    pub duplicates: u64,
    pub problem: String,
}

impl Row {
    pub const HEADER: &'static str = "contender\tworkload\tguarantee\trepeat\tphase\tcomplete\tseconds\trecords_per_s\tstartup_s\trss_mib\tcpu_s\tp50_ms\tp99_ms\toutput_records\tduplicates\tproblem";

    pub fn tsv(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{:.3}\t{:.0}\t{:.3}\t{:.1}\t{:.2}\t{:.1}\t{:.1}\t{}\t{}\t{}",
            self.contender.name(),
            self.workload.name(),
            self.guarantee,
            self.repeat,
            self.phase,
            self.complete,
            self.seconds,
            self.records_per_s,
            self.startup_s,
            self.rss_mib,
            self.cpu_s,
            self.p50_ms,
            self.p99_ms,
            self.output_records,
            self.duplicates,
            self.problem.replace(['\t', '\n'], " ")
        )
    }
}

fn expected(contender: Contender, workload: Workload) -> Expected {
    match (contender, workload) {
        (Contender::Pipe, _) | (_, Workload::Join) => Expected::AllIds,
        (_, Workload::Stateless | Workload::Avro) => Expected::FilteredIds,
        (_, Workload::Count) => Expected::Counts,
        (_, Workload::Windowed) => Expected::Windows,
    }
}

/// A running contender.
struct Running {
    child: Child,
    stdout: PathBuf,
    log: PathBuf,
    http_port: Option<u16>,
}

/// Whether a contender is RUNNING: Freshet's /readyz answers 200; Kafka Streams and the raw
/// pipe print RUNNING.
#[derive(Clone)]
struct Readiness {
    stdout: PathBuf,
    http_port: Option<u16>,
}

impl Readiness {
    fn check(&self) -> bool {
        match self.http_port {
            Some(port) => http_status(port, "/readyz") == Some(200),
            None => std::fs::read_to_string(&self.stdout)
                .map(|s| s.lines().any(|l| l == "RUNNING"))
                .unwrap_or(false),
        }
    }

    /// Polls every 10 ms on a thread of its own (an HTTP answer may be slow) until RUNNING or
    /// `stop`; the thread returns the time from `started`.
    fn watch(
        self,
        started: Instant,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<Option<Duration>> {
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if self.check() {
                    return Some(started.elapsed());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        })
    }
}

impl Running {
    fn readiness(&self) -> Readiness {
        Readiness {
            stdout: self.stdout.clone(),
            http_port: self.http_port,
        }
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("exited with {status}: {}", self.log_tail())),
            _ => None,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// (peak RSS MiB, CPU seconds) from /proc.
    fn usage(&self) -> (f64, f64) {
        let pid = self.child.id();
        let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?)
            })
            .unwrap_or(0.0);
        (rss_kb / 1024.0, ticks / clock_ticks())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "[bench] pid {} ignored SIGTERM for 20 s; killing it",
            self.child.id()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

/// Names of one run's topics, application and files.
struct RunNames {
    app: String,
    input: String,
    output: String,
    dir: PathBuf,
}

pub struct Bench {
    s: Settings,
    id: String,
    input: String,
    /// The same input in Avro, for the `avro` workload.
    avro_input: Option<String>,
    table: String,
    expect: Arc<Expect>,
    pub rows: Vec<Row>,
    /// The runs' topics, for the final clean-up.
    created: Vec<String>,
}

impl Bench {
    /// Creates the input and table topics and writes the input once.
    pub fn prepare(s: Settings) -> Bench {
        let id = format!("{}", check::now_ms() / 1000);
        let input = format!("bench-in-{id}");
        let table = format!("bench-table-{id}");
        create_topics(&[&input, &table]);
        let t0 = Instant::now();
        let p = producer(&s.bootstrap, "20");
        // The table's rows are older than every stream record, so the join reads them first.
        let base = check::now_ms() - s.n as i64 - 3_600_000;
        for k in 0..KEYS {
            send(
                &p,
                &table,
                data::key_name(k).as_bytes(),
                &data::table_row(k),
                base - 60_000,
            );
        }
        let mut expect = Expect::new(0);
        for r in Generator::new(42, 0, s.n, true, Box::new(move |i| base + i as i64)) {
            send(
                &p,
                &input,
                data::key_name(r.key).as_bytes(),
                &r.value(),
                r.timestamp,
            );
            expect.add(&r);
        }
        p.flush(Duration::from_secs(120)).expect("flush the input");
        let avro_input = s
            .workloads
            .contains(&Workload::Avro)
            .then(|| write_avro_input(&s, &id, base));
        eprintln!(
            "[bench] wrote {} records ({} pass the filter, {} keys, {} windows) to {input} and {KEYS} rows to {table} in {:.1} s",
            s.n,
            expect.passing,
            expect.distinct_keys(),
            expect.windows.len(),
            t0.elapsed().as_secs_f64()
        );
        Bench {
            s,
            id,
            created: [input.clone(), table.clone()]
                .into_iter()
                .chain(avro_input.clone())
                .collect(),
            input,
            avro_input,
            table,
            expect: Arc::new(expect),
            rows: Vec::new(),
        }
    }

    pub fn run_all(&mut self) {
        let mut runs = Vec::new();
        for repeat in 1..=self.s.repeats {
            for g in self.s.guarantees.clone() {
                for w in self.s.workloads.clone() {
                    for c in self.s.contenders.clone() {
                        // The raw pipe has no processing: it runs once per guarantee, as the
                        // ceiling for the stateless workload (and the others).
                        if c == Contender::Pipe && w != Workload::Stateless {
                            continue;
                        }
                        // Avro is Freshet's side-by-side figure against its own JSON run.
                        if w == Workload::Avro && c != Contender::Freshet {
                            continue;
                        }
                        runs.push((repeat, g.clone(), w, c));
                    }
                }
            }
        }
        let total = runs.len();
        for (i, (repeat, g, w, c)) in runs.into_iter().enumerate() {
            let row = self.throughput(c, w, &g, repeat);
            eprintln!(
                "[bench] {}/{total} {} {} {} #{repeat}: {:.0} records/s, {:.1} s, RUNNING after {:.2} s, peak RSS {:.0} MiB, CPU {:.1} s{}",
                i + 1,
                c.name(),
                w.name(),
                g,
                row.records_per_s,
                row.seconds,
                row.startup_s,
                row.rss_mib,
                row.cpu_s,
                if row.complete {
                    String::new()
                } else {
                    format!(" INCOMPLETE: {}", row.problem)
                }
            );
            self.rows.push(row);
            write_rows(&self.s.work.join("results.tsv"), &self.rows);
            // The latency runs feed JSON records: none for the Avro copy.
            if self.s.latency_seconds > 0 && w != Workload::Avro {
                let row = self.latency(c, w, &g, repeat);
                eprintln!(
                    "[bench] {}/{total} {} {} {} #{repeat}: latency at {}/s p50 {:.0} ms p99 {:.0} ms{}",
                    i + 1,
                    c.name(),
                    w.name(),
                    g,
                    self.s.latency_rate,
                    row.p50_ms,
                    row.p99_ms,
                    if row.complete {
                        String::new()
                    } else {
                        format!(" INCOMPLETE: {}", row.problem)
                    }
                );
                self.rows.push(row);
                write_rows(&self.s.work.join("results.tsv"), &self.rows);
            }
        }
    }

    pub fn cleanup(&self) {
        delete_topics(&self.s.bootstrap, &self.created, &[]);
    }

    fn names(&self, c: Contender, w: Workload, g: &str, repeat: u32, phase: &str) -> RunNames {
        let g = if g == "exactly_once_v2" {
            "eos"
        } else {
            "alos"
        };
        let app = format!(
            "bench-{}-{}-{}-{g}-{phase}-{repeat}",
            self.id,
            c.name(),
            w.name()
        );
        let dir = self.s.work.join(&app);
        std::fs::create_dir_all(&dir).expect("run directory");
        RunNames {
            input: match (w, &self.avro_input) {
                (Workload::Avro, Some(avro)) => avro.clone(),
                _ => self.input.clone(),
            },
            output: format!("{app}-out"),
            app,
            dir,
        }
    }

    fn start(&self, c: Contender, w: Workload, g: &str, n: &RunNames) -> Running {
        let stdout = n.dir.join("stdout");
        let log = n.dir.join("log");
        let commit = self.s.commit_ms(g);
        let state = n.dir.join("state");
        let mut http_port = None;
        let mut cmd = match c {
            Contender::Freshet => {
                let manifest = n.dir.join("app.yaml");
                std::fs::write(&manifest, self.manifest(w, g, n, &state)).expect("manifest");
                let port = freshet_tests::engine::free_port();
                http_port = Some(port);
                let mut cmd = Command::new(&self.s.engine);
                cmd.arg("run").arg("-f").arg(&manifest).args([
                    "--http-port",
                    &port.to_string(),
                    "--http-address",
                    "127.0.0.1",
                    "--threads",
                    &self.s.threads.to_string(),
                ]);
                cmd.env("FRESHET_LOG", "warn");
                cmd
            }
            Contender::KStreams => {
                let mut cmd = Command::new(std::env::var("JAVA").unwrap_or_else(|_| "java".into()));
                cmd.args(&self.s.java_opts)
                    .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                    .arg("-cp")
                    .arg(&self.s.kstreams_classpath)
                    .arg("dev.freshet.bench.BenchApp")
                    .arg(format!("workload={}", w.name()))
                    .arg(format!("bootstrap={}", self.s.bootstrap))
                    .arg(format!("app={}", n.app))
                    .arg(format!("input={}", n.input))
                    .arg(format!("output={}", n.output))
                    .arg(format!("table={}", self.table))
                    .arg(format!("guarantee={g}"))
                    .arg(format!("threads={}", self.s.threads))
                    .arg(format!("commit={commit}"))
                    .arg(format!("state={}", state.display()));
                cmd
            }
            Contender::Pipe => {
                let mut cmd = Command::new(std::env::current_exe().expect("own path"));
                cmd.arg("pipe")
                    .args(["--bootstrap", &self.s.bootstrap, "--group", &n.app])
                    .args(["--input", &n.input, "--output", &n.output])
                    .args(["--threads", &self.s.threads.to_string()])
                    .args(["--commit-ms", &commit.to_string(), "--guarantee", g]);
                cmd
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", c.name()));
        Running {
            child,
            stdout,
            log,
            http_port,
        }
    }

    fn manifest(&self, w: Workload, g: &str, n: &RunNames, state: &Path) -> String {
        let mut m = String::new();
        let _ = write!(
            m,
            "applicationId: {app}\nbootstrapServers: {bs}\ndefaultKeySerde: string\ndefaultValueSerde: {serde}\nstateDir: {state}\nconfig:\n  processing.guarantee: {g}\n  commit.interval.ms: \"{commit}\"\n{registry}topology:\n  streams:\n    - {{ name: input, topic: {input} }}\n",
            app = n.app,
            bs = self.s.bootstrap,
            serde = if w == Workload::Avro { "avro" } else { "json" },
            state = state.display(),
            commit = self.s.commit_ms(g),
            registry = match (&self.s.registry, w) {
                (Some(url), Workload::Avro) => format!("  schema.registry.url: {url}\n"),
                _ => String::new(),
            },
            input = n.input,
        );
        if w == Workload::Join {
            let _ = writeln!(
                m,
                "  tables:\n    - {{ name: customers, topic: {}, store: customers }}",
                self.table
            );
        }
        let steps = match w {
            Workload::Stateless | Workload::Avro => "        - filter: \"value.amount >= 100\"\n        - mapValues: \"{'id': value.id, 'amount': value.amount}\"\n".to_owned(),
            Workload::Count => "        - groupByKey: {}\n        - count: { store: counts }\n        - toStream: {}\n".to_owned(),
            Workload::Windowed => "        - groupByKey: {}\n        - windowedBy: { tumbling: 1m, grace: 10s }\n        - count: { store: windowed-counts }\n        - toStream: {}\n".to_owned(),
            Workload::Join => "        - join: { table: customers, value: \"{'id': left.id, 'amount': left.amount, 'tier': right.tier}\" }\n".to_owned(),
        };
        let sink = match w {
            Workload::Stateless | Workload::Join => {
                format!("        - to: {{ topic: {} }}\n", n.output)
            }
            Workload::Avro => format!(
                "        - to: {{ topic: {}, valueSchema: '{}' }}\n",
                n.output,
                data::AVRO_OUTPUT_SCHEMA
            ),
            Workload::Count => format!(
                "        - to: {{ topic: {}, valueSerde: long }}\n",
                n.output
            ),
            Workload::Windowed => format!(
                "        - to: {{ topic: {}, keySerde: windowed-string, valueSerde: long }}\n",
                n.output
            ),
        };
        let _ = write!(
            m,
            "  pipelines:\n    - name: bench\n      from: input\n      steps:\n{steps}{sink}"
        );
        m
    }

    /// Runs a contender over the whole input from the start until its output holds every result.
    fn throughput(&mut self, c: Contender, w: Workload, g: &str, repeat: u32) -> Row {
        let n = self.names(c, w, g, repeat, "tp");
        create_topics(&[&n.output]);
        let checker = Checker::new(expected(c, w), self.expect.clone(), None);
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.s.timeout;
        let watcher = {
            let (bs, out, stop) = (self.s.bootstrap.clone(), n.output.clone(), stop.clone());
            std::thread::spawn(move || check::watch(&bs, &out, PARTITIONS, checker, deadline, stop))
        };
        let started = Instant::now();
        let mut proc = self.start(c, w, g, &n);
        let ready = proc.readiness().watch(started, stop.clone());
        let mut problem = String::new();
        let mut usage = (0.0, 0.0);
        while !watcher.is_finished() {
            if let Some(e) = proc.exited() {
                problem = e;
                break;
            }
            // Sampled on every turn, so the last sample is taken when the output is complete.
            usage = proc.usage();
            std::thread::sleep(Duration::from_millis(20));
        }
        if !problem.is_empty() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let watched = watcher.join().expect("checker thread");
        if problem.is_empty() {
            let last = proc.usage();
            usage = (last.0.max(usage.0), last.1.max(usage.1));
        }
        // A contender may finish the input before it reports RUNNING (Freshet reports it once
        // every stream thread has its assignment): wait for it a while longer.
        let ready_deadline = Instant::now() + self.s.ready_wait;
        while !ready.is_finished() && Instant::now() < ready_deadline && proc.exited().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let startup = ready.join().expect("readiness thread");
        let t = Instant::now();
        proc.stop();
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!(
                "[bench] stopping {} took {:.1} s",
                c.name(),
                t.elapsed().as_secs_f64()
            );
        }
        let row = self.row(
            c,
            w,
            g,
            repeat,
            "throughput",
            &watched,
            started,
            startup,
            usage,
            problem,
            &proc,
        );
        delete_topics(
            &self.s.bootstrap,
            std::slice::from_ref(&n.output),
            std::slice::from_ref(&n.app),
        );
        let _ = std::fs::remove_dir_all(n.dir.join("state"));
        row
    }

    /// Runs a contender on a fresh input fed at a fixed rate once it is RUNNING; latencies are
    /// output receipt time minus the input record's timestamp (its scheduled send time).
    fn latency(&mut self, c: Contender, w: Workload, g: &str, repeat: u32) -> Row {
        let mut n = self.names(c, w, g, repeat, "lat");
        n.input = format!("{}-in", n.app);
        create_topics(&[&n.input, &n.output]);
        let started = Instant::now();
        let mut proc = self.start(c, w, g, &n);
        let ready_stop = Arc::new(AtomicBool::new(false));
        let ready = proc.readiness().watch(started, ready_stop.clone());
        let ready_deadline = Instant::now() + Duration::from_secs(120);
        let mut problem = String::new();
        while !ready.is_finished() {
            if let Some(e) = proc.exited() {
                problem = e;
            } else if Instant::now() > ready_deadline {
                problem = "not RUNNING within 120 s".into();
            }
            if !problem.is_empty() {
                ready_stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let startup = ready.join().expect("readiness thread");
        let count = self.s.latency_rate * self.s.latency_seconds;
        let begin = check::now_ms() + 500;
        let rate = self.s.latency_rate as f64;
        let schedule = move |i: u64| begin + (i as f64 * 1000.0 / rate) as i64;
        let records: Vec<data::Record> =
            Generator::new(7 + repeat as u64, 0, count, false, Box::new(schedule)).collect();
        let mut expect = Expect::new(0);
        for r in &records {
            expect.add(r);
        }
        // The first fifth is warm-up, not measured.
        let measured_from = begin + (self.s.latency_seconds as i64 * 1000) / 5;
        let checker = Checker::new(expected(c, w), Arc::new(expect), Some(measured_from));
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now()
            + Duration::from_secs(self.s.latency_seconds + 30)
            + Duration::from_millis(self.s.commit_ms(g));
        let watcher = {
            let (bs, out, stop) = (self.s.bootstrap.clone(), n.output.clone(), stop.clone());
            std::thread::spawn(move || check::watch(&bs, &out, PARTITIONS, checker, deadline, stop))
        };
        if problem.is_empty() {
            let p = producer(&self.s.bootstrap, "0");
            for r in &records {
                let wait = r.timestamp - check::now_ms();
                if wait > 0 {
                    std::thread::sleep(Duration::from_millis(wait as u64));
                }
                send(
                    &p,
                    &n.input,
                    data::key_name(r.key).as_bytes(),
                    &r.value(),
                    r.timestamp,
                );
            }
            p.flush(Duration::from_secs(30)).expect("flush");
        }
        while !watcher.is_finished() {
            if let Some(e) = proc.exited() {
                problem = e;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let watched = watcher.join().expect("checker thread");
        let usage = proc.usage();
        proc.stop();
        let row = self.row(
            c, w, g, repeat, "latency", &watched, started, startup, usage, problem, &proc,
        );
        delete_topics(
            &self.s.bootstrap,
            &[n.output.clone(), n.input.clone()],
            std::slice::from_ref(&n.app),
        );
        let _ = std::fs::remove_dir_all(n.dir.join("state"));
        row
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        c: Contender,
        w: Workload,
        g: &str,
        repeat: u32,
        phase: &'static str,
        watched: &check::Watched,
        started: Instant,
        startup: Option<Duration>,
        usage: (f64, f64),
        mut problem: String,
        proc: &Running,
    ) -> Row {
        let k = &watched.checker;
        if problem.is_empty() && !k.errors.is_empty() {
            problem = k.errors.join("; ");
        }
        if problem.is_empty() && watched.complete_at.is_none() {
            problem = format!(
                "{} of {} results after {:.0} s; log: {}",
                k.matched,
                k.target,
                started.elapsed().as_secs_f64(),
                proc.log_tail()
            );
        }
        if problem.is_empty() && k.duplicates > 0 && g == "exactly_once_v2" {
            problem = format!("{} duplicate records under exactly_once_v2", k.duplicates);
        }
        let seconds = watched
            .complete_at
            .map(|t| (t - started).as_secs_f64())
            .unwrap_or(0.0);
        let (p50, p99) = percentiles(&k.latencies);
        Row {
            contender: c,
            workload: w,
            guarantee: g.to_owned(),
            repeat,
            phase,
            complete: problem.is_empty(),
            seconds,
            records_per_s: if phase == "throughput" && seconds > 0.0 {
                self.s.n as f64 / seconds
            } else {
                0.0
            },
            startup_s: startup.map(|d| d.as_secs_f64()).unwrap_or(0.0),
            rss_mib: usage.0,
            cpu_s: usage.1,
            p50_ms: p50,
            p99_ms: p99,
            output_records: k.records,
            duplicates: k.duplicates,
            problem,
        }
    }
}

fn percentiles(v: &[u32]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64;
    (at(0.50), at(0.99))
}

/// Writes the results file, after every run (a long run leaves figures even if cut short).
pub fn write_rows(path: &Path, rows: &[Row]) {
    let mut f = std::fs::File::create(path).expect("results file");
    writeln!(f, "{}", Row::HEADER).expect("write");
    for r in rows {
        writeln!(f, "{}", r.tsv()).expect("write");
    }
}

//! `freshet-engine`: runs a declarative Kafka Streams topology.
//!
//! `run -f app.yaml` runs it, `validate -f app.yaml` checks it (with `--bootstrap-servers`, also
//! against the real topics), `describe -f app.yaml` prints it as Kafka Streams would, `reset -f
//! app.yaml` resets it as Kafka's `kafka-streams-application-reset` does.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use freshet_crds::StreamsAppSpec;
use freshet_spec::{self as spec, Defaults, SecretFiles, SecretSource};
use freshet_streams::config::StreamsConfig;
use freshet_streams::runtime::repeats::Repeats;
use freshet_streams::runtime::{KafkaStreams, State, StopHandle, admin};
use freshet_streams::topology::{DescribeFormat, Topology};

mod http;
mod reset;
mod termination;
mod testing;
mod topology_page;

#[derive(Parser)]
#[command(
    name = "freshet-engine",
    version,
    about = "Kafka Streams applications in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Overrides {
    /// bootstrap.servers (overrides FRESHET_BOOTSTRAP_SERVERS and the manifest).
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// application.id.
    #[arg(long)]
    application_id: Option<String>,
    /// state.dir.
    #[arg(long)]
    state_dir: Option<String>,
    /// num.stream.threads.
    #[arg(long)]
    threads: Option<u32>,
    /// Where the Secrets `spec.kafka` names are read from: `<dir>/<secret>/<key>`, as a mounted
    /// Secret volume lays them out; `FRESHET_SECRET_<SECRET>_<KEY>` overrides a file.
    #[arg(long, env = "FRESHET_SECRETS_DIR", default_value = spec::secrets::DEFAULT_SECRETS_DIR)]
    secrets_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the application until SIGTERM or SIGINT.
    Run {
        /// The StreamsApp manifest, or just its spec.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        /// Port of /healthz, /readyz, /metrics and /topology (FRESHET_HTTP_PORT; 0 disables).
        #[arg(long, env = "FRESHET_HTTP_PORT", default_value_t = 8080)]
        http_port: u16,
        /// Address the HTTP endpoints bind (the pod IP in Kubernetes).
        #[arg(long, env = "FRESHET_HTTP_ADDRESS", default_value_t = Ipv4Addr::UNSPECIFIED.into())]
        http_address: std::net::IpAddr,
        /// After a failure, keep /healthz and /readyz reporting it this many seconds before
        /// exiting (a signal ends the wait).
        #[arg(long, env = "FRESHET_ERROR_LINGER_SECONDS", default_value_t = 10)]
        error_linger_seconds: u64,
    },
    /// Check a manifest: structure, expressions, config; with --bootstrap-servers also the topics.
    Validate {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the manifest on the test driver, without a broker: pipe the records of a JSON Lines
    /// file through it and compare the output with another (or print it).
    Test {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Input records, one JSON object a line: {"topic", "key", "value", "timestamp"}.
        #[arg(long)]
        input: PathBuf,
        /// The records the output topics must hold, in order, in the same format.
        #[arg(long)]
        expected: Option<PathBuf>,
    },
    /// Reset the application as Kafka's kafka-streams-application-reset does: the group's input
    /// offsets moved, intermediate topics skipped to their end, internal topics deleted, and the
    /// local state (<state.dir>/<application.id>) wiped. Refuses while the group has active
    /// members.
    Reset {
        /// The StreamsApp manifest, or just its spec.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
        #[command(flatten)]
        args: reset::ResetArgs,
    },
    /// Print the topology as Kafka Streams' Topology.describe() does, or as a picture.
    Describe {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

impl Overrides {
    /// No overrides: the manifest's own configuration.
    fn none() -> Self {
        Overrides {
            bootstrap_servers: None,
            application_id: None,
            state_dir: None,
            threads: None,
            secrets_dir: PathBuf::from(spec::secrets::DEFAULT_SECRETS_DIR),
        }
    }
}

/// `describe --format`: the library's [`DescribeFormat`], as a command-line choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Kafka Streams' `Topology.describe()` text.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// JSON: nodes, topics, stores and edges, for programs.
    Json,
}

impl From<Format> for DescribeFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Text => DescribeFormat::Text,
            Format::Dot => DescribeFormat::Dot,
            Format::Mermaid => DescribeFormat::Mermaid,
            Format::Json => DescribeFormat::Json,
        }
    }
}

/// Resolves configuration: flags, then FRESHET_* variables, then spec fields and `spec.kafka`
/// (its Secrets read from `secrets`), then `config`.
fn resolve_config(
    spec: &StreamsAppSpec,
    o: &Overrides,
    secrets: &dyn SecretSource,
) -> Result<StreamsConfig, spec::ResolveError> {
    let mut flags = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            flags.push((k.to_owned(), v));
        }
    };
    push("bootstrap.servers", o.bootstrap_servers.clone());
    push("application.id", o.application_id.clone());
    push("state.dir", o.state_dir.clone());
    push("num.stream.threads", o.threads.map(|t| t.to_string()));
    spec::resolve_config(
        spec,
        flags,
        freshet_streams::config::layers_from_env(std::env::vars()),
        secrets,
    )
}

/// Where the Secrets come from: the files (or variables) when clients will be created, else
/// placeholders, since checking a manifest needs no credentials.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Secrets {
    Read,
    Placeholders,
}

fn load(
    file: &std::path::Path,
    overrides: &Overrides,
    secrets: Secrets,
) -> Result<(StreamsConfig, Topology), String> {
    let spec = spec::load_manifest(file).map_err(|e| e.to_string())?;
    let config = match secrets {
        Secrets::Read => {
            resolve_config(&spec, overrides, &SecretFiles::new(&overrides.secrets_dir))
        }
        Secrets::Placeholders => resolve_config(&spec, overrides, &spec::secrets::Placeholders),
    }
    .map_err(|e| format!("{}: {e}", file.display()))?;
    let env_warnings = freshet_streams::config::env_warnings(std::env::vars());
    for w in config.warnings.iter().chain(&env_warnings) {
        tracing::warn!("{}: {w}", file.display());
    }
    let defaults = Defaults::from_config(&config);
    let topology = spec::compile(&spec.topology, defaults).map_err(|e| {
        let lines: Vec<String> =
            e.0.iter()
                .map(|e| format!("{}: {e}", file.display()))
                .collect();
        lines.join("\n")
    })?;
    Ok((config, topology))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FRESHET_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into());
    let json = std::env::var("FRESHET_LOG_FORMAT").is_ok_and(|f| f == "json");
    // Colours only for a terminal: logs written to files and collectors stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(
    file: PathBuf,
    overrides: Overrides,
    http: Option<SocketAddr>,
    error_linger: Duration,
) -> ExitCode {
    // The SIGTERM handler comes first. In a container the engine may be PID 1, and the kernel
    // drops a signal PID 1 has no handler for: a pod deleted while the engine was still loading
    // its manifest would otherwise run on until the kubelet's SIGKILL, a whole grace period later.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the HTTP runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    let term = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    });
    let mut term = match term {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot install the SIGTERM handler: {e}");
            return ExitCode::from(2);
        }
    };
    // The application hears the signal at once too, once it exists: `start` may still be
    // deciding the group protocol or loading global tables, and a pod must stop within its
    // grace period. A signal before that is seen by `wait_for_kafka`, through `shutdown`.
    let stop: Arc<OnceLock<StopHandle>> = Arc::default();
    let (flag, stop_later) = (shutdown.clone(), stop.clone());
    runtime.spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        flag.store(true, Ordering::Relaxed);
        if let Some(stop) = stop_later.get() {
            stop.request_stop();
        }
    });

    let (config, topology) = match load(&file, &overrides, Secrets::Read) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            termination::write(&e);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = reset::wipe_after_reset(&config) {
        let e = e.to_string();
        eprintln!("error: {e}");
        termination::write(&e);
        return ExitCode::from(2);
    }
    tracing::info!(application_id = %config.application_id, topology = %topology.summary(), "starting");
    let pod_name = std::env::var("POD_NAME").ok();
    let streams = KafkaStreams::new(topology, config, pod_name.as_deref());
    let _ = stop.set(streams.stop_handle());
    let app = Arc::new(RwLock::new(streams));
    let http_stop = Arc::new(tokio::sync::Notify::new());
    let waiting: http::Waiting = Arc::default();
    if let Some(addr) = http {
        let (app, waiting, stop) = (app.clone(), waiting.clone(), http_stop.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr));
        if let Err(e) = listener {
            eprintln!(
                "error: cannot listen on {addr} for the HTTP endpoints: {e} (use --http-port to pick another port)"
            );
            return ExitCode::from(2);
        }
        drop(listener);
        runtime.spawn(async move {
            if let Err(e) =
                http::serve(addr, app, waiting, async move { stop.notified().await }).await
            {
                tracing::error!(%addr, error = %e, "HTTP server stopped");
            }
        });
    }

    match wait_for_kafka(&app, &waiting, &shutdown) {
        Ok(true) => {
            // A read lock: loading the global tables in `start` can take minutes, and the HTTP
            // endpoints read the application meanwhile (a liveness probe must not wait for it).
            if let Ok(a) = app.read() {
                a.start();
            }
        }
        // A signal while waiting: nothing started, nothing to close.
        Ok(false) => {
            tracing::info!("signal received while waiting for Kafka: exiting");
            http_stop.notify_waiters();
            runtime.shutdown_timeout(Duration::from_secs(2));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            termination::write(&e.to_string());
            http_stop.notify_waiters();
            runtime.shutdown_timeout(Duration::from_secs(2));
            return ExitCode::from(2);
        }
    }
    loop {
        if shutdown.load(Ordering::Relaxed) {
            tracing::info!("signal received: closing");
            break;
        }
        let finished = app.read().map(|a| a.is_finished()).unwrap_or(true);
        if finished {
            if let Some(err) = app.read().ok().and_then(|a| a.error()) {
                tracing::error!(error = %err, linger = ?error_linger, "the application failed; /healthz and /readyz report it until exit");
                let deadline = std::time::Instant::now() + error_linger;
                while std::time::Instant::now() < deadline && !shutdown.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed = app
        .write()
        .map(|mut a| a.close(Duration::from_secs(60)))
        .unwrap_or(false);
    http_stop.notify_waiters();
    runtime.shutdown_timeout(Duration::from_secs(2));
    let (state, error) = app
        .read()
        .map(|a| (a.state(), a.error()))
        .unwrap_or((State::Error, None));
    match (state, error) {
        (State::NotRunning, None) if closed => {
            tracing::info!("closed cleanly");
            ExitCode::SUCCESS
        }
        (_, Some(e)) => {
            let summary = format!("the application stopped in {state}: {e}");
            eprintln!("error: {summary}");
            termination::write(&summary);
            ExitCode::from(1)
        }
        _ => {
            let summary = format!("the application did not close within 60 s (state {state})");
            eprintln!("error: {summary}");
            termination::write(&summary);
            ExitCode::from(1)
        }
    }
}

/// How often the engine checks again for the brokers and its source topics while it waits.
const STARTUP_RETRY: Duration = Duration::from_secs(1);

/// Checks the source topics and creates the internal ones, waiting while the brokers do not
/// answer or a source topic does not exist yet: on Kubernetes an exit would be a crash loop,
/// each restart paying a restore. `/readyz` and the log say what it waits for. Returns
/// `Ok(false)` when a signal came first, an error when waiting cannot help.
fn wait_for_kafka(
    app: &http::AppHandle,
    waiting: &http::Waiting,
    shutdown: &AtomicBool,
) -> Result<bool, admin::AdminError> {
    let started = std::time::Instant::now();
    let mut repeats = Repeats::every(Duration::from_secs(30));
    loop {
        let prepared = match prepare_topics_unless_stopped(app, shutdown) {
            Some(prepared) => prepared,
            None => return Ok(false),
        };
        match prepared {
            Ok(_) => {
                if let Some(what) = repeats.last_logged() {
                    tracing::info!(waited_s = started.elapsed().as_secs(), waited_for = %what, "Kafka and the source topics are there: starting");
                }
                if let Ok(mut w) = waiting.lock() {
                    *w = None;
                }
                return Ok(true);
            }
            Err(e) if e.is_transient() => {
                let what = e.to_string();
                if repeats.should_log(&what) {
                    tracing::warn!(waiting_s = started.elapsed().as_secs(), "waiting: {what}");
                }
                if let Ok(mut w) = waiting.lock() {
                    *w = Some(what);
                }
            }
            Err(e) => return Err(e),
        }
        let deadline = std::time::Instant::now() + STARTUP_RETRY;
        while std::time::Instant::now() < deadline {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One `admin::prepare_topics`, on its own thread so that a signal ends the wait at once: with
/// the brokers unreachable a try lasts as long as librdkafka's metadata timeout (15 s). `None`
/// when a signal came first (the try is left to finish on its own; the process is exiting).
fn prepare_topics_unless_stopped(
    app: &http::AppHandle,
    shutdown: &AtomicBool,
) -> Option<Result<(), admin::AdminError>> {
    let (done, result) = std::sync::mpsc::channel();
    let app = app.clone();
    std::thread::spawn(move || {
        let prepared = match app.read() {
            Ok(a) => admin::prepare_topics(a.topology(), a.config()).map(drop),
            Err(_) => return,
        };
        let _ = done.send(prepared);
    });
    loop {
        match result.recv_timeout(Duration::from_millis(100)) {
            Ok(prepared) => return Some(prepared),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if shutdown.load(Ordering::Relaxed) {
                    return None;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn main() -> ExitCode {
    init_logging();
    match Cli::parse().command {
        Command::Run {
            file,
            overrides,
            http_port,
            http_address,
            error_linger_seconds,
        } => {
            let http = (http_port != 0).then(|| SocketAddr::new(http_address, http_port));
            run(
                file,
                overrides,
                http,
                Duration::from_secs(error_linger_seconds),
            )
        }
        Command::Validate { file, overrides } => match load(
            &file,
            &overrides,
            // Only a check against the brokers needs the credentials.
            if overrides.bootstrap_servers.is_some() {
                Secrets::Read
            } else {
                Secrets::Placeholders
            },
        ) {
            Ok((config, topology)) => {
                if overrides.bootstrap_servers.is_some() {
                    match admin::source_partitions(&topology, &config) {
                        Ok(counts) => {
                            for (t, n) in &counts {
                                println!("topic {t}: {n} partitions");
                            }
                        }
                        Err(e) => {
                            eprintln!("error: {}: {e}", file.display());
                            return ExitCode::from(2);
                        }
                    }
                }
                println!(
                    "{}: valid (application.id {}, {} sub-topologies)",
                    file.display(),
                    config.application_id,
                    topology.subtopologies().len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Test {
            file,
            input,
            expected,
        } => match load(&file, &Overrides::none(), Secrets::Placeholders)
            .map_err(|e| e.to_string())
            .and_then(|(config, topology)| {
                testing::run(topology, config, &input, expected.as_deref())
                    .map_err(|e| e.to_string())
            }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Reset {
            file,
            overrides,
            args,
        } => match load(&file, &overrides, Secrets::Read) {
            Ok((config, topology)) => match reset::run(&topology, &config, &args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    ExitCode::from(1)
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Describe { file, format } => {
            match load(&file, &Overrides::none(), Secrets::Placeholders) {
                Ok((_, topology)) => {
                    print!("{}", topology.describe(format.into()));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

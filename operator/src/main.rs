//! `freshet-operator`: reconciles StreamsApp resources into StatefulSets of the engine;
//! `freshet-operator render -f app.yaml` prints what it would create, without a cluster.
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use freshet_operator::context::{Context, Settings};
use freshet_operator::controller;
use freshet_operator::kafka::ClientCache;
use freshet_operator::leader::{self, LeaseSettings};
use freshet_operator::metrics::{self, Metrics};
use freshet_operator::policy::Policy;
use freshet_operator::render_cli::{self, RenderArgs};
use kube::{Api, Client, CustomResourceExt, api::ListParams};

#[derive(Parser)]
#[command(
    name = "freshet-operator",
    version,
    about = "Runs StreamsApp resources as StatefulSets of the Freshet engine"
)]
struct Args {
    /// Without a subcommand the operator runs.
    #[command(subcommand)]
    command: Option<Command>,
    /// Namespaces to watch (repeat or comma-separate); all when none is given.
    #[arg(
        long = "namespace",
        env = "FRESHET_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// The engine image of StreamsApps that set no `spec.image`.
    #[arg(long, env = "FRESHET_ENGINE_IMAGE", default_value = freshet_operator::render::DEFAULT_IMAGE)]
    engine_image: String,
    /// Port of /metrics, /healthz and /readyz.
    #[arg(long, env = "FRESHET_OPERATOR_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// Address the endpoints bind (the pod IP in Kubernetes).
    #[arg(long, env = "FRESHET_OPERATOR_HTTP_ADDRESS", default_value_t = Ipv4Addr::UNSPECIFIED.into())]
    http_address: std::net::IpAddr,
    /// Elect a leader among replicas through a Lease (turn off only for a single replica).
    #[arg(long, env = "FRESHET_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, default_value = "freshet-operator")]
    lease_name: String,
    /// This replica's name in the Lease (the pod name in Kubernetes).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a leader's Lease lasts without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds between Lease renewals (and attempts to take it).
    #[arg(long, default_value_t = 2)]
    retry_period_seconds: u64,
    /// Seconds before a reconcile that waits on Kafka runs again.
    #[arg(long, default_value_t = 10)]
    retry_seconds: u64,
    /// Seconds one Kafka call for an app (metadata, offsets, topic and group admin) waits for
    /// the cluster before the app is reported unreachable: raise it for brokers that answer
    /// slowly, lower it to learn sooner that Kafka is down.
    #[arg(long, env = "FRESHET_OPERATOR_KAFKA_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    kafka_timeout_seconds: u64,
    /// Seconds between looks at a healthy app (lag, pods).
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
    /// Seconds between two status writes of an app when only its lag changed.
    #[arg(long, default_value_t = 30)]
    status_refresh_seconds: u64,
    /// Host patterns (`*` any characters; with `:port` the port too) every bootstrap server of
    /// an app must match; any when none is given. The operator connects to no other.
    #[arg(
        long,
        env = "FRESHET_OPERATOR_ALLOWED_BOOTSTRAP_SERVERS",
        value_delimiter = ',',
        value_parser = freshet_operator::policy::valid_pattern
    )]
    allowed_bootstrap_servers: Vec<String>,
    /// Patterns `spec.image` must match; any when none is given (`--engine-image` always).
    #[arg(
        long,
        env = "FRESHET_OPERATOR_ALLOWED_IMAGES",
        value_delimiter = ',',
        value_parser = freshet_operator::policy::valid_pattern
    )]
    allowed_images: Vec<String>,
    /// Directories (mounted Secrets) whose files the operator's Kafka clients may read
    /// (`ssl.*.location`, `sasl.kerberos.keytab`); none when not given.
    #[arg(long, env = "FRESHET_OPERATOR_CLIENT_FILE_DIRS", value_delimiter = ',')]
    client_file_dirs: Vec<std::path::PathBuf>,
}

#[derive(clap::Subcommand)]
enum Command {
    Render(RenderArgs),
}

/// `freshet-operator render`: the objects on stdout; a manifest it cannot render is an error
/// on stderr and exit code 1.
fn render(args: &RenderArgs) -> ExitCode {
    match render_cli::run(args, std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The user's mistake, not a log line: printed plainly, whatever RUST_LOG says.
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

/// Waits until the apiserver answers and the StreamsApp CRD is served, saying why meanwhile.
async fn wait_for_api(client: &Client, apiserver: &str, namespaces: &[String]) {
    // With namespaced RBAC only a watched namespace may be listed.
    let apps: Api<freshet_crds::StreamsApp> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut delay = Duration::from_secs(1);
    loop {
        match apps.list(&ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(err) => {
                tracing::error!(%err, %apiserver, crd = %freshet_crds::StreamsApp::crd_name(), retry_in = ?delay, "cannot list StreamsApps: is the apiserver reachable and the CRD installed (helm install freshet charts/freshet)?");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. Listening replaces the default action (exit) for the whole
/// process, so every phase that can be interrupted listens: the controller itself, and this
/// while a standby campaigns.
async fn stop_signal() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = term => {}
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if let Some(Command::Render(render_args)) = &args.command {
        return render(render_args);
    }
    let config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(%err, "cannot configure a Kubernetes client: set KUBECONFIG or run in a pod with a ServiceAccount");
            return ExitCode::from(2);
        }
    };
    let apiserver = config.cluster_url.to_string();
    let client = match Client::try_from(config) {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(%err, %apiserver, "cannot build a Kubernetes client");
            return ExitCode::from(2);
        }
    };
    let metrics = Arc::new(Metrics::default());
    let addr = SocketAddr::new(args.http_address, args.http_port);
    let mut server = tokio::spawn(metrics::serve(addr, metrics.clone()));
    wait_for_api(&client, &apiserver, &args.namespaces).await;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("freshet-operator-{}", std::process::id()));
    let settings = Settings {
        default_image: args.engine_image.clone(),
        retry: Duration::from_secs(args.retry_seconds),
        resync: Duration::from_secs(args.resync_seconds),
        status_refresh: Duration::from_secs(args.status_refresh_seconds),
        policy: Policy {
            bootstrap_servers: args.allowed_bootstrap_servers.clone(),
            images: args.allowed_images.clone(),
            client_file_dirs: args.client_file_dirs.clone(),
        },
    };
    // Each app's Kafka clients outlive a leadership term: they hold no decision, only
    // connections.
    let kafka = Arc::new(ClientCache::new(
        metrics.kafka_clients_created.clone(),
        metrics.kafka_clients.clone(),
        Duration::from_secs(args.kafka_timeout_seconds),
    ));
    let context = || {
        Arc::new(Context::new(
            client.clone(),
            &identity,
            metrics.clone(),
            kafka.clone(),
            settings.clone(),
        ))
    };
    let namespaces = args.namespaces.clone();
    if !args.leader_election {
        metrics.set_ready(true);
        controller::run(context(), namespaces).await;
        return ExitCode::SUCCESS;
    }
    let lease = LeaseSettings {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_duration_seconds),
        retry: Duration::from_secs(args.retry_period_seconds),
    };
    // Terms of leadership: campaign, lead until the Lease is lost, step down (the controller
    // dropped, its reconciles cancelled) and campaign again. See `leader` for why that is safe.
    loop {
        tokio::select! {
            r = &mut server => {
                tracing::error!(result = ?r, port = args.http_port, "the HTTP endpoints stopped: is the port taken?");
                return ExitCode::from(2);
            }
            () = stop_signal() => {
                tracing::info!("stopping (not leading)");
                return ExitCode::SUCCESS;
            }
            () = leader::acquire(&client, &lease) => {}
        }
        metrics.set_ready(true);
        tokio::select! {
            () = controller::run(context(), namespaces.clone()) => {
                // A clean stop hands the Lease over at once instead of letting it expire.
                leader::release(&client, &lease).await;
                return ExitCode::SUCCESS;
            }
            () = leader::hold(&client, &lease) => {
                metrics.set_ready(false);
                tracing::warn!(lease = %lease.name, "stepped down: reconciling stopped; campaigning for the Lease again");
            }
        }
    }
}

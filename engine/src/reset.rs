//! `freshet-engine reset`: Kafka's `kafka-streams-application-reset` for a manifest, plus what
//! Kafka Streams' `KafkaStreams#cleanUp()` does on an instance: the local state directory
//! `<state.dir>/<application.id>` wiped. The Kafka side is `freshet_admin::reset`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Args};
use freshet_streams::config::StreamsConfig;
use freshet_streams::runtime::admin::reset::{self, ResetError, ResetMode};
use freshet_streams::runtime::admin::{self, AdminError};
use freshet_streams::topology::Topology;

/// Where the input topics' offsets go, and which topics: the reset tool's options.
#[derive(Args, Clone, Debug)]
#[command(group(ArgGroup::new("mode").args(["to_earliest", "to_latest", "to_datetime", "by_duration", "to_offset"])))]
pub struct ResetArgs {
    /// Each input partition's log start (the default).
    #[arg(long)]
    to_earliest: bool,
    /// Each input partition's end: nothing written so far is processed again.
    #[arg(long)]
    to_latest: bool,
    /// The first offset at or after this time, ISO-8601 as Kafka's tool takes it:
    /// `2026-12-07T04:30:00.000`, with `Z` or `+01:00` for a zone (UTC when none).
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// The first offset at or after now minus this long: `1h`, `PT30M`, `1d`.
    #[arg(long, value_name = "DURATION")]
    by_duration: Option<String>,
    /// This offset in every input partition (kept between the log start and end).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// The input topics to reset, instead of the topology's sources (comma-separated).
    #[arg(long, value_delimiter = ',')]
    input_topics: Option<Vec<String>>,
    /// Print what would be done, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Why `reset` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An option's value is not usable.
    #[error("{option}: {message}")]
    BadOption {
        /// The option, e.g. `--to-datetime`.
        option: &'static str,
        /// What is wrong and what to write.
        message: String,
    },
    /// The reset refused or failed on the Kafka side.
    #[error(transparent)]
    Reset(#[from] ResetError),
    /// The local state directory could not be removed.
    #[error("cannot wipe the local state or record the reset at {path}: {source}")]
    State {
        /// The directory.
        path: PathBuf,
        /// The file system's error.
        source: std::io::Error,
    },
}

impl ResetArgs {
    fn mode(&self) -> Result<ResetMode, CliError> {
        if self.to_latest {
            return Ok(ResetMode::ToLatest);
        }
        if let Some(t) = &self.to_datetime {
            return reset::parse_datetime(t)
                .map(ResetMode::ToDatetime)
                .ok_or_else(|| CliError::BadOption {
                    option: "--to-datetime",
                    message: format!(
                        "'{t}' is not a date-time: write it as 2026-12-07T04:30:00.000, with Z or +01:00 for a zone"
                    ),
                });
        }
        if let Some(d) = &self.by_duration {
            return freshet_topology::duration::parse(d)
                .map(ResetMode::ByDuration)
                .map_err(|e| CliError::BadOption {
                    option: "--by-duration",
                    message: e.to_string(),
                });
        }
        if let Some(o) = self.to_offset {
            return Ok(ResetMode::ToOffset(o));
        }
        Ok(ResetMode::ToEarliest)
    }
}

/// Resets the application: prints the plan, and unless `--dry-run`, carries it out and wipes
/// the local state.
pub fn run(topology: &Topology, config: &StreamsConfig, args: &ResetArgs) -> Result<(), CliError> {
    let mode = args.mode()?;
    let clients = admin::Clients::new(config).map_err(ResetError::from)?;
    let plan = reset::plan_reset(
        &clients,
        topology,
        config,
        &mode,
        args.input_topics.as_deref(),
    )?;
    let state = config.state_dir.join(&config.application_id);
    let prefix = if args.dry_run { "dry run: " } else { "" };
    for line in plan.to_string().lines() {
        println!("{prefix}{line}");
    }
    let has_state = state.exists();
    if has_state {
        println!("{prefix}local state {}: delete", state.display());
    }
    if args.dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    reset::execute_reset(&clients, config, &plan)?;
    if has_state {
        remove_state(&state)?;
    }
    // The group may still hold offsets of deleted internal topics; the broker drops them with
    // the topics. Wait until they are really gone, so a start right after finds no stale topic.
    wait_deleted(&clients, config, &plan.delete_topics)?;
    println!(
        "reset done: {} input and {} intermediate partitions moved, {} internal topics deleted{}",
        plan.inputs.len(),
        plan.intermediate.len(),
        plan.delete_topics.len(),
        if has_state {
            ", local state deleted"
        } else {
            ""
        }
    );
    Ok(())
}

fn remove_state(state: &Path) -> Result<(), CliError> {
    std::fs::remove_dir_all(state).map_err(|source| CliError::State {
        path: state.to_owned(),
        source,
    })
}

/// Waits (30 s at most) until the deleted topics are gone from the cluster's metadata: the
/// broker deletes asynchronously, and an application started before would find a topic about
/// to go.
fn wait_deleted(
    clients: &admin::Clients,
    config: &StreamsConfig,
    topics: &[String],
) -> Result<(), CliError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = clients
            .partition_counts(config, topics)
            .map_err(|e: AdminError| CliError::Reset(e.into()))?;
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(topics = ?left.keys().collect::<Vec<_>>(), "deleted topics still listed after 30 s");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The variable holding the token of the application's last reset, which the operator sets on
/// the pods after its `freshet.dev/reset` annotation: the local state of an instance outlives
/// it (a PersistentVolumeClaim), so each instance wipes it once, at its first start after the
/// reset, as `KafkaStreams#cleanUp()` would.
pub const RESET_TOKEN_ENV: &str = "FRESHET_RESET_TOKEN";

/// Wipes `<state.dir>/<application.id>` if [`RESET_TOKEN_ENV`] names a reset this state
/// directory has not seen, and records the token beside it
/// (`<state.dir>/<application.id>.reset-token`). Whether it wiped.
pub fn wipe_after_reset(config: &StreamsConfig) -> Result<bool, CliError> {
    let Ok(token) = std::env::var(RESET_TOKEN_ENV) else {
        return Ok(false);
    };
    let marker = config
        .state_dir
        .join(format!("{}.reset-token", config.application_id));
    if std::fs::read_to_string(&marker).is_ok_and(|seen| seen.trim() == token.trim()) {
        return Ok(false);
    }
    let state = config.state_dir.join(&config.application_id);
    if state.exists() {
        remove_state(&state)?;
    }
    let io = |source| CliError::State {
        path: marker.clone(),
        source,
    };
    std::fs::create_dir_all(&config.state_dir).map_err(io)?;
    std::fs::write(&marker, token.trim()).map_err(io)?;
    tracing::info!(state = %state.display(), token = token.trim(), "the application was reset: local state wiped");
    Ok(true)
}

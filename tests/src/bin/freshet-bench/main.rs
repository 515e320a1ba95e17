//! `freshet-bench`: Freshet against Java Kafka Streams and a raw librdkafka pipe (bench/run.sh).
//!
//! - `run`: writes the input once (Zipf keys, ~100-byte JSON values; with the `avro` workload, the
//!   same records in Avro too), then runs every contender
//!   on every workload under every guarantee, each from the start with its own application id
//!   and output topic, repeated; checks every output for completeness; prints the figures and
//!   the ratio tables and writes `results.tsv`, `tables.md` and `chart.dat` into `--out`.
//! - `pipe`: the raw pipe contender (a consume-then-produce loop with no processing).
//! - `report`: the tables again from a `results.tsv`.

mod avro;
mod check;
mod data;
mod harness;
mod kafka_io;
mod pipe;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use harness::{Contender, Row, Settings, Workload};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole benchmark.
    Run {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Input records.
        #[arg(long, default_value_t = 2_000_000)]
        n: u64,
        #[arg(long, default_value_t = 3)]
        repeats: u32,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "stateless,count,windowed,join"
        )]
        workloads: Vec<String>,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "at_least_once,exactly_once_v2"
        )]
        guarantees: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = "freshet,kstreams,pipe")]
        contenders: Vec<String>,
        /// Stream threads of every contender.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// commit.interval.ms under at_least_once (every contender).
        #[arg(long, default_value_t = 1000)]
        commit_alos_ms: u64,
        /// commit.interval.ms under exactly_once_v2 (Kafka Streams' default there).
        #[arg(long, default_value_t = 100)]
        commit_eos_ms: u64,
        /// The freshet-engine binary.
        #[arg(long)]
        engine: PathBuf,
        /// The file holding the Kafka Streams contender's classpath (bench/kstreams.sh build).
        #[arg(long)]
        kstreams_classpath: PathBuf,
        /// JVM options of the Kafka Streams contender, space-separated.
        #[arg(long, default_value = "-Xmx1g")]
        java_opts: String,
        /// Input records/s of the latency runs (0 seconds skips them).
        #[arg(long, default_value_t = 5000)]
        latency_rate: u64,
        #[arg(long, default_value_t = 10)]
        latency_seconds: u64,
        /// Seconds a run may take before it counts as incomplete.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Seconds to wait for RUNNING after a contender's output is complete (a contender may
        /// finish a small input before it reports RUNNING; its start time is then unknown).
        #[arg(long, default_value_t = 30)]
        ready_wait: u64,
        /// Where the runs' files and the results go.
        #[arg(long)]
        out: PathBuf,
        /// The schema registry's Confluent-compatible API root (the `avro` workload's).
        #[arg(long)]
        registry: Option<String>,
    },
    /// The raw pipe contender.
    Pipe {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        threads: i32,
        #[arg(long, default_value_t = 1000)]
        commit_ms: u64,
        #[arg(long, default_value = "at_least_once")]
        guarantee: String,
    },
    /// Print the tables of a results.tsv again.
    Report {
        #[arg(long)]
        results: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Pipe {
            bootstrap,
            group,
            input,
            output,
            partitions,
            threads,
            commit_ms,
            guarantee,
        } => pipe::run(pipe::PipeArgs {
            bootstrap,
            group,
            input,
            output,
            partitions,
            threads,
            commit_ms,
            eos: guarantee == "exactly_once_v2",
        }),
        Cmd::Report { results } => {
            let rows = read_rows(&results)?;
            let mut workloads = Vec::new();
            let mut guarantees = Vec::new();
            let mut contenders = Vec::new();
            for r in &rows {
                if !workloads.contains(&r.workload) {
                    workloads.push(r.workload);
                }
                if !guarantees.contains(&r.guarantee) {
                    guarantees.push(r.guarantee.clone());
                }
                if !contenders.contains(&r.contender) {
                    contenders.push(r.contender);
                }
            }
            print!(
                "{}",
                report::tables(&rows, &workloads, &guarantees, &contenders)
            );
            Ok(())
        }
        Cmd::Run {
            bootstrap,
            n,
            repeats,
            workloads,
            guarantees,
            contenders,
            threads,
            commit_alos_ms,
            commit_eos_ms,
            engine,
            kstreams_classpath,
            java_opts,
            latency_rate,
            latency_seconds,
            timeout,
            ready_wait,
            out,
            registry,
        } => {
            // SAFETY: set before any thread starts; the tests' helpers read it.
            unsafe { std::env::set_var("FRESHET_KAFKA_BOOTSTRAP", &bootstrap) };
            let workloads = workloads
                .iter()
                .map(|w| Workload::parse(w))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let contenders = contenders
                .iter()
                .map(|c| Contender::parse(c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for g in &guarantees {
                anyhow::ensure!(
                    g == "at_least_once" || g == "exactly_once_v2",
                    "unknown guarantee {g}: at_least_once or exactly_once_v2"
                );
            }
            std::fs::create_dir_all(&out)?;
            let kstreams_classpath = if contenders.contains(&Contender::KStreams) {
                std::fs::read_to_string(&kstreams_classpath)?
                    .trim()
                    .to_owned()
            } else {
                String::new()
            };
            let settings = Settings {
                bootstrap,
                n,
                repeats,
                workloads: workloads.clone(),
                guarantees: guarantees.clone(),
                contenders: contenders.clone(),
                threads,
                commit_alos_ms,
                commit_eos_ms,
                engine,
                kstreams_classpath,
                java_opts: java_opts.split_whitespace().map(str::to_owned).collect(),
                latency_rate,
                latency_seconds,
                work: out.clone(),
                timeout: Duration::from_secs(timeout),
                ready_wait: Duration::from_secs(ready_wait),
                registry,
            };
            anyhow::ensure!(
                !workloads.contains(&Workload::Avro) || settings.registry.is_some(),
                "the avro workload needs --registry, the schema registry's Confluent-compatible API root (FRESHET_SCHEMA_REGISTRY_URL for bench/run.sh)"
            );
            let mut bench = harness::Bench::prepare(settings);
            bench.run_all();
            bench.cleanup();
            harness::write_rows(&out.join("results.tsv"), &bench.rows);
            let tables = report::tables(&bench.rows, &workloads, &guarantees, &contenders);
            std::fs::write(out.join("tables.md"), &tables)?;
            std::fs::write(
                out.join("chart.dat"),
                report::chart_data(&bench.rows, &workloads, &guarantees),
            )?;
            print!("{tables}");
            let failed: Vec<&Row> = bench.rows.iter().filter(|r| !r.complete).collect();
            for r in &failed {
                eprintln!(
                    "[bench] INCOMPLETE: {} {} {} #{} ({}): {}",
                    r.contender.name(),
                    r.workload.name(),
                    r.guarantee,
                    r.repeat,
                    r.phase,
                    r.problem
                );
            }
            anyhow::ensure!(
                failed.is_empty(),
                "{} of {} runs did not produce every result",
                failed.len(),
                bench.rows.len()
            );
            eprintln!(
                "[bench] every run of every contender produced every result ({} runs)",
                bench.rows.len()
            );
            Ok(())
        }
    }
}

fn read_rows(path: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(f.len() >= 15, "bad line in {}: {line}", path.display());
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
        rows.push(Row {
            contender: Contender::parse(f[0])?,
            workload: Workload::parse(f[1])?,
            guarantee: f[2].to_owned(),
            repeat: f[3].parse()?,
            phase: if f[4] == "latency" {
                "latency"
            } else {
                "throughput"
            },
            complete: f[5] == "true",
            seconds: num(6),
            records_per_s: num(7),
            startup_s: num(8),
            rss_mib: num(9),
            cpu_s: num(10),
            p50_ms: num(11),
            p99_ms: num(12),
            output_records: num(13) as u64,
            duplicates: num(14) as u64,
            problem: f.get(15).unwrap_or(&"").to_string(),
        });
    }
    Ok(rows)
}

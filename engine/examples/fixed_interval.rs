//! Processor API: work at a fixed interval.
//!
//! A processor counts the records it sees per key and, every `--interval-ms` of wall-clock time,
//! emits one summary record per key with the count since the last emit, then resets.
//!
//! ```sh
//! cargo run --example fixed_interval -- --bootstrap-servers 127.0.0.1:9092 \
//!     --input clicks --output click-counts --interval-ms 1000
//! ```
use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use freshet_engine::config::{Layer, LayerSource, StreamsConfig};
use freshet_engine::dsl::StreamsBuilder;
use freshet_engine::processor::{
    ProcessError, Processor, ProcessorContext, PunctuationId, PunctuationType, Record,
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    #[arg(long, default_value = "fixed-interval")]
    application_id: String,
    #[arg(long)]
    input: String,
    #[arg(long)]
    output: String,
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Stop after this many seconds (0: run until Ctrl-C / SIGTERM).
    #[arg(long, default_value_t = 0)]
    max_seconds: u64,
}

/// Counts per key between wall-clock punctuations.
struct IntervalCounter {
    interval: Duration,
    counts: BTreeMap<String, i64>,
}

impl Processor<String, String, String, i64> for IntervalCounter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) {
        ctx.schedule(self.interval, PunctuationType::WallClockTime);
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, i64>,
        key: &String,
        _value: &String,
    ) -> Result<(), ProcessError> {
        *self.counts.entry(key.clone()).or_default() += 1;
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        _id: PunctuationId,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        for (key, count) in std::mem::take(&mut self.counts) {
            ctx.forward(Record::new(key, count, timestamp));
        }
        // Emitted counts must not be re-emitted after a restart: commit now.
        ctx.request_commit();
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter("info,librdkafka=warn")
        .init();
    let args = Args::parse();
    let interval = Duration::from_millis(args.interval_ms);
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&args.input)
        .process(None, move || IntervalCounter {
            interval,
            counts: BTreeMap::new(),
        })
        .to(&args.output);
    let topology = builder.build()?;
    let config = StreamsConfig::resolve(&[Layer::new(
        LayerSource::Flag,
        [
            ("application.id", args.application_id),
            ("bootstrap.servers", args.bootstrap_servers),
            ("commit.interval.ms", "200".to_owned()),
        ],
    )])?;
    freshet_engine::runtime::run_until_stopped(
        topology,
        config,
        Duration::from_secs(args.max_seconds),
    )?;
    Ok(())
}

//! Processor API: work at a fixed interval.
//!
//! A processor counts the records it sees per key and, every `--interval-ms` of wall-clock time,
//! emits one summary record per key with the count since the last emit, then resets. The counts
//! live in a state store logged to a changelog, so a crash between two emits loses none of them.
//!
//! ```sh
//! cargo run --example fixed_interval -- --bootstrap-servers 127.0.0.1:9092 \
//!     --input clicks --output click-counts --interval-ms 1000
//! ```
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use freshet_streams::config::{Layer, LayerSource, StreamsConfig};
use freshet_streams::dsl::StreamsBuilder;
use freshet_streams::processor::{
    ProcessError, Processor, ProcessorContext, PunctuationId, PunctuationType, Record, StoreHandle,
};
use freshet_streams::serdes::{LongSerde, StringSerde};
use freshet_streams::topology::StoreDef;

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
    #[arg(long, default_value = "/tmp/freshet-examples")]
    state_dir: String,
}

const STORE: &str = "interval-counts";

/// Counts per key between wall-clock punctuations, kept in the `interval-counts` store.
struct IntervalCounter {
    interval: Duration,
    counts: Option<StoreHandle<String, i64>>,
}

impl IntervalCounter {
    fn counts(&self) -> Result<&StoreHandle<String, i64>, ProcessError> {
        self.counts
            .as_ref()
            .ok_or_else(|| ProcessError::new("the store was not opened in init"))
    }
}

impl Processor<String, String, String, i64> for IntervalCounter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) {
        ctx.schedule(self.interval, PunctuationType::WallClockTime);
        self.counts = ctx
            .key_value_store(STORE, Arc::new(StringSerde), Arc::new(LongSerde))
            .ok();
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        key: &String,
        _value: &String,
    ) -> Result<(), ProcessError> {
        let counts = self.counts()?;
        let count = ctx.get(counts, key)?.unwrap_or(0);
        ctx.put(counts, key, &(count + 1))
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        _id: PunctuationId,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        let counts = self.counts()?;
        for (key, count) in ctx.all(counts)? {
            ctx.delete(counts, &key)?;
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
    builder.add_state_store(StoreDef::key_value(STORE));
    builder
        .stream::<String, String>(&args.input)
        .process_with_stores(None, &[STORE], move || IntervalCounter {
            interval,
            counts: None,
        })
        .to(&args.output);
    let topology = builder.build()?;
    let config = StreamsConfig::resolve(&[Layer::new(
        LayerSource::Flag,
        [
            ("application.id", args.application_id),
            ("bootstrap.servers", args.bootstrap_servers),
            ("commit.interval.ms", "200".to_owned()),
            ("state.dir", args.state_dir),
        ],
    )])?;
    freshet_streams::runtime::run_until_stopped(
        topology,
        config,
        Duration::from_secs(args.max_seconds),
    )?;
    Ok(())
}

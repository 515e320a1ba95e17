//! Processor API: route each record to a topic chosen from its value.
//!
//! A processor reads JSON orders and forwards each to the sink named after its `priority`
//! (`high` or `normal`); each sink writes its own topic.
//!
//! ```sh
//! cargo run --example route_by_value -- --bootstrap-servers 127.0.0.1:9092 \
//!     --input orders --high orders-high --normal orders-normal
//! ```
use std::time::Duration;

use clap::Parser;
use freshet_streams::config::{Layer, LayerSource, StreamsConfig};
use freshet_streams::dsl::{Produced, StreamsBuilder};
use freshet_streams::processor::{ProcessError, Processor, ProcessorContext, Record};
use freshet_streams::serdes::DefaultSerde;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    #[arg(long, default_value = "route-by-value")]
    application_id: String,
    #[arg(long)]
    input: String,
    #[arg(long)]
    high: String,
    #[arg(long)]
    normal: String,
    /// Stop after this many seconds (0: run until Ctrl-C / SIGTERM).
    #[arg(long, default_value_t = 0)]
    max_seconds: u64,
}

/// Forwards each order to the child named after its priority.
struct PriorityRouter;

impl Processor<String, serde_json::Value, String, serde_json::Value> for PriorityRouter {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, serde_json::Value>,
        key: &String,
        value: &serde_json::Value,
    ) -> Result<(), ProcessError> {
        let child = match value.get("priority").and_then(|p| p.as_str()) {
            Some("high") => "high",
            _ => "normal",
        };
        let timestamp = ctx.record_meta().map_or(0, |m| m.timestamp);
        ctx.forward_to(child, Record::new(key.clone(), value.clone(), timestamp));
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter("info,librdkafka=warn")
        .init();
    let args = Args::parse();
    let builder = StreamsBuilder::new();
    let routed = builder
        .stream::<String, serde_json::Value>(&args.input)
        .process(Some("priority-router"), || PriorityRouter);
    let serdes = || Produced::with(String::default_serde(), serde_json::Value::default_serde());
    routed.to_with(&args.high, serdes().named("high"));
    routed.to_with(&args.normal, serdes().named("normal"));
    let topology = builder.build()?;
    println!(
        "{}",
        topology.describe(freshet_streams::topology::DescribeFormat::Text)
    );

    let config = StreamsConfig::resolve(&[Layer::new(
        LayerSource::Flag,
        [
            ("application.id", args.application_id),
            ("bootstrap.servers", args.bootstrap_servers),
            ("commit.interval.ms", "200".to_owned()),
        ],
    )])?;
    freshet_streams::runtime::run_until_stopped(
        topology,
        config,
        Duration::from_secs(args.max_seconds),
    )?;
    Ok(())
}

//! The global thread (Kafka Streams' `GlobalStreamThread`): loads every global table from its
//! topic before the stream threads start, then keeps following the topics until shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{error, info};

use super::error::GlobalError;
use crate::config::StreamsConfig;
use crate::state::{GlobalStores, Row, StateError};
use crate::topology::Topology;

/// How long the initial load may see no progress (a broker away is waited for) before it
/// gives up.
const LOAD_PATIENCE: super::restore::read::Patience<'static> = super::restore::read::Patience {
    limit: Duration::from_secs(60),
    limit_name: "the global tables' load limit",
    what: "loading global tables",
    stop: None,
};

fn consumer(config: &StreamsConfig) -> Result<BaseConsumer, GlobalError> {
    super::assigning_consumer_config(config, "global-consumer", "global", &config.global_consumer)
        .create()
        .map_err(GlobalError::Consumer)
}

/// Applies one record to the store of its topic.
fn apply(
    stores: &GlobalStores,
    store_of: &HashMap<String, String>,
    msg: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<(), StateError> {
    let (Some(store), Some(key)) = (store_of.get(msg.topic()), msg.key()) else {
        return Ok(());
    };
    let row: Row = (key.to_vec(), msg.payload().map(<[u8]>::to_vec));
    stores.apply(store, std::slice::from_ref(&row))
}

/// Loads every global table to its topics' current end, then starts the thread that follows
/// them. Returns the stores, or why they could not be loaded.
pub(crate) fn start(
    topology: &Topology,
    config: &StreamsConfig,
    shutdown: Arc<AtomicBool>,
    applied: prometheus_client::metrics::counter::Counter,
) -> Result<Option<Arc<GlobalStores>>, GlobalError> {
    let defs = topology.global_tables();
    if defs.is_empty() {
        return Ok(None);
    }
    let stores = Arc::new(GlobalStores::new(defs.iter().map(|d| d.store.as_str())));
    let store_of: HashMap<String, String> = defs
        .iter()
        .map(|d| (d.topic.clone(), d.store.clone()))
        .collect();
    let consumer = consumer(config)?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for def in defs {
        let metadata = consumer
            .fetch_metadata(Some(&def.topic), Duration::from_secs(15))
            .map_err(|source| GlobalError::Metadata {
                topic: def.topic.clone(),
                source,
            })?;
        let partitions = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32)
            .ok_or_else(|| GlobalError::MissingTopic(def.topic.clone()))?;
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&def.topic, p, Duration::from_secs(15))
                .map_err(|source| GlobalError::Watermarks {
                    topic: def.topic.clone(),
                    partition: p,
                    source,
                })?;
            if high > low {
                ends.insert((def.topic.clone(), p), high);
            }
            tpl.add_partition_offset(&def.topic, p, Offset::Beginning)
                .map_err(GlobalError::Assign)?;
        }
    }
    consumer.assign(&tpl).map_err(GlobalError::Assign)?;
    let started = Instant::now();
    let mut loaded = 0u64;
    super::restore::read::read_to_end(&consumer, ends, &LOAD_PATIENCE, |msg| {
        apply(&stores, &store_of, msg)?;
        applied.inc();
        loaded += 1;
        Ok(())
    })
    .map_err(GlobalError::Load)?;
    info!(
        records = loaded,
        seconds = format!("{:.3}", started.elapsed().as_secs_f64()),
        "global tables loaded"
    );
    let following = stores.clone();
    std::thread::Builder::new()
        .name("GlobalStreamThread".into())
        .spawn(move || {
            while !shutdown.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(msg)) => match apply(&following, &store_of, &msg) {
                        Ok(()) => {
                            applied.inc();
                        }
                        Err(e) => error!(error = %e, "updating a global table"),
                    },
                    Some(Err(e)) => error!(error = %e, "reading global table topics"),
                    None => {}
                }
            }
        })
        .map_err(|e| GlobalError::Spawn(Arc::new(e)))?;
    Ok(Some(stores))
}

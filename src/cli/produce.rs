//! `actorlog produce`: one record per stdin line, optionally `key SEP value`.

use super::{client_config, fail, REQUEST_TIMEOUT};
use clap::Args;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    #[arg(long, short)]
    topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// Write every record to this partition instead of partitioning by key.
    #[arg(long, short)]
    partition: Option<i32>,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
}

/// Counts deliveries and keeps the first failure.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert_with(|| error.to_string());
            }
        }
    }
}

pub fn run(bootstrap: &str, args: ProduceArgs) -> Result<(), String> {
    let producer: BaseProducer<Deliveries> = client_config(bootstrap)
        .set("acks", &args.acks)
        .set("partitioner", "murmur2_random")
        .create_with_context(Deliveries::default())
        .map_err(fail("cannot create producer"))?;
    let mut sent = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((key, value)) => (Some(key.to_string()), value.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let mut record = BaseRecord::to(&args.topic).payload(&value);
        if let Some(key) = &key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        send(&producer, record)?;
        sent += 1;
    }
    producer
        .flush(REQUEST_TIMEOUT)
        .map_err(fail("flush failed"))?;
    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = context.first_error.lock().ok().and_then(|e| e.clone());
        return Err(format!(
            "{failed} of {sent} records failed: {}",
            first.unwrap_or_default()
        ));
    }
    Ok(())
}

/// Enqueues a record, serving delivery reports while the queue is full.
fn send(
    producer: &BaseProducer<Deliveries>,
    mut record: BaseRecord<'_, String, String>,
) -> Result<(), String> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(100));
                record = back;
            }
            Err((e, _)) => return Err(format!("cannot produce: {e}")),
        }
    }
}

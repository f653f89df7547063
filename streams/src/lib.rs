//! Stream processing for Kafka-compatible brokers, in the spirit of Kafka
//! Streams: a typed DSL of `KStream`s and tables, run as one actix actor
//! per input partition, with state in sled trees backed by compacted
//! changelog topics, and at-least-once or exactly-once processing.
//!
//! ```no_run
//! use actorlog_streams::{Guarantee, Str, StreamsBuilder, StreamsConfig};
//!
//! # async fn demo() -> Result<(), actorlog_streams::StreamsError> {
//! let mut builder = StreamsBuilder::new("word-count");
//! let counts = builder
//!     .stream::<String, String>("lines", Str, Str)
//!     .flat_map(|_, line| {
//!         line.split_whitespace()
//!             .map(|w| (w.to_lowercase(), String::new()))
//!             .collect::<Vec<_>>()
//!     })
//!     .group_by_key(Str, Str)
//!     .count("counts");
//! counts.to_stream().to("word-counts", Str, actorlog_streams::I64);
//! let store = counts.queryable();
//! let config = StreamsConfig::new("127.0.0.1:9092", "./state/word-count")
//!     .guarantee(Guarantee::ExactlyOnceV2);
//! let app = builder.build()?.run(&config).await?;
//! println!("the: {:?}", app.get(&store, &"the".to_string())?);
//! app.close().await
//! # }
//! ```
//!
//! The crate's README gives the model: tasks, stores and changelogs,
//! rebalancing, the guarantees, windows and what is not done.

mod app;
mod builder;
mod clients;
mod config;
mod context;
mod driver;
mod error;
mod graph;
mod grouped;
mod restore;
mod serdes;
mod store;
mod stream;
mod table;
mod task;
mod window;

pub use app::KafkaStreams;
pub use builder::{StreamsBuilder, Topology};
pub use config::{Guarantee, StreamsConfig};
pub use error::StreamsError;
pub use graph::Data;
pub use grouped::{KGroupedStream, KTable, WindowedKStream, WindowedKTable};
pub use serdes::{Bincode, Bytes, Json, Serde, Str, WindowedSerde, I64};
pub use store::{StoreRef, WindowStoreRef};
pub use stream::{KStream, Predicate};
pub use table::GlobalKTable;
pub use window::{TimeWindows, Window, Windowed};

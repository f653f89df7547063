//! Connectors for Kafka-compatible brokers, in the role of Kafka Connect:
//! a worker runs the connectors of a YAML file, each task an actix actor
//! on its own thread. A file source produces a file's lines exactly once
//! (records and the file position in one transaction); a file sink appends
//! the records of its topics to a file as a member of the consumer group
//! `connect-<name>`, committing after the fsync; a PostgreSQL sink inserts
//! or upserts struct values as rows, committing after the database
//! transaction; a PostgreSQL CDC source captures the inserts, updates and
//! deletes of tables through a logical replication slot (after a snapshot
//! of their rows), exactly once. Records pass Kafka
//! Connect's converters (bytes, string, JSON with or without its
//! `schema`/`payload` envelope) and single message transforms; failures are
//! fatal to the task or, with `errors.tolerance: all`, skipped and sent to a
//! dead-letter topic with the reason in `__connect.errors.*` headers.
//! Workers of one `group.id` share the source tasks through a consumer
//! group and take over a dead worker's. A small REST API answers Kafka
//! Connect's status, pause, resume and restart.
//!
//! ```no_run
//! let config = actorlog_connect::ConnectConfig::load("connect.yaml".as_ref())?;
//! actorlog_connect::run(config)?; // until SIGINT or SIGTERM
//! # Ok::<(), actorlog_connect::ConnectError>(())
//! ```

mod cdc_database;
mod cdc_source;
mod change_event;
mod clients;
mod config;
mod converter;
mod data;
mod dead_letter;
mod error;
mod file_sink;
mod file_source;
mod offsets;
mod pgoutput;
mod pipeline;
mod postgres;
mod postgres_sink;
mod rest;
mod source_group;
mod status;
mod status_client;
mod tail;
mod task;
mod transform;
mod worker;

pub use config::{
    CdcSource, ConnectConfig, ConnectorConfig, ConnectorKind, ErrorPolicy, DEFAULT_OFFSETS_TOPIC,
};
pub use converter::Converter;
pub use data::{ConnectRecord, Data};
pub use error::ConnectError;
pub use status_client::report as status_report;
pub use transform::Transform;

use actix::Actor;
use source_group::Membership;
use status::Statuses;
use std::sync::Arc;
use worker::{Shutdown, Worker};

/// Runs the worker until SIGINT or SIGTERM, then stops every task after
/// its batch (sinks commit what they wrote).
pub fn run(config: ConnectConfig) -> Result<(), ConnectError> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let config = Arc::new(config);
        clients::create_offsets_topic(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.rest_listen)
            .await
            .map_err(|e| {
                ConnectError::Rest(format!("cannot listen on {}: {e}", config.rest_listen))
            })?;
        let statuses = Statuses::new(config.rest_listen.to_string());
        let worker = Worker::new(Arc::clone(&config), statuses.clone()).start();
        actix_rt::spawn(rest::serve(listener, statuses, worker.clone()));
        let membership = Membership::join(&config, worker.clone()).await?;
        log::info!(
            "connect: {} connector(s), REST API on http://{}",
            config.connectors.len(),
            config.rest_listen
        );
        stopped().await?;
        log::info!("connect: stopping");
        let _ = worker.send(Shutdown).await;
        if let Some(membership) = membership {
            membership.leave().await;
        }
        Ok(())
    })
}

/// Waits for SIGINT or SIGTERM.
async fn stopped() -> Result<(), ConnectError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

//! A running instance of an application: starting it, querying its
//! stores while it runs, and closing it.

use crate::builder::Topology;
use crate::clients::{
    check_copartitioned, create_internal_topics, group_consumer, producer, reader, Assignment,
};
use crate::config::StreamsConfig;
use crate::driver::{Driver, Open};
use crate::error::StreamsError;
use crate::graph::Data;
use crate::restore::{follow_tables, TableSource};
use crate::store::{local_trees, StoreRef, WindowStoreRef};
use crate::window::Window;
use actix_rt::{Arbiter, ArbiterHandle, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;

/// One running instance of a streams application.
pub struct KafkaStreams {
    db: sled::Db,
    assigned: Assignment,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<Result<(), StreamsError>>>,
    tables: Option<JoinHandle<()>>,
    system: System,
    system_thread: Option<JoinHandle<()>>,
}

/// Starts an actix system on its own thread with `threads` arbiters for
/// the task actors.
fn start_actors(
    threads: usize,
) -> Result<(System, Vec<ArbiterHandle>, JoinHandle<()>), StreamsError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("streams-tasks".into())
        .spawn(move || {
            let runner = System::new();
            let started = runner.block_on(async {
                let mut arbiters = vec![Arbiter::current()];
                arbiters.extend((1..threads).map(|_| Arbiter::new().handle()));
                (System::current(), arbiters)
            });
            if sender.send(started).is_ok() {
                if let Err(e) = runner.run() {
                    log::warn!("the task actors' system ended with {e}");
                }
            }
        })
        .map_err(|e| StreamsError::Stopped(format!("starting the task thread: {e}")))?;
    let (system, arbiters) = receiver
        .recv()
        .map_err(|_| StreamsError::Stopped("the task thread did not start".into()))?;
    Ok((system, arbiters, thread))
}

impl Topology {
    /// Starts an instance: creates the internal topics, checks that joined
    /// tables are co-partitioned with their streams, loads the global
    /// tables, then joins the application's consumer group, whose
    /// assignment decides which tasks run here.
    pub async fn run(self, config: &StreamsConfig) -> Result<KafkaStreams, StreamsError> {
        let graph = Arc::new(self.graph);
        create_internal_topics(config, &graph).await?;
        check_copartitioned(config, &graph)?;
        let db = sled::open(&config.state_dir)?;
        let stop = Arc::new(AtomicBool::new(false));

        let tables = if graph.tables.is_empty() {
            None
        } else {
            let sources = graph
                .tables
                .iter()
                .map(|t| {
                    Ok(TableSource {
                        topic: t.topic.clone(),
                        tree: db.open_tree(&t.store)?,
                    })
                })
                .collect::<Result<Vec<_>, StreamsError>>()?;
            let table_reader = reader(config)?;
            let (loaded, on_loaded) = tokio::sync::oneshot::channel();
            let stop = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name("streams-tables".into())
                .spawn(move || {
                    follow_tables(table_reader, sources, stop, move |result| {
                        let _ = loaded.send(result);
                    })
                })
                .map_err(|e| StreamsError::Stopped(format!("starting the table thread: {e}")))?;
            on_loaded
                .await
                .map_err(|_| StreamsError::Stopped("loading the global tables".into()))??;
            Some(thread)
        };

        let (system, arbiters, system_thread) = start_actors(config.threads)?;
        let assigned = Assignment::default();
        let transactional_id = format!("{}-{}", graph.app_id, uuid::Uuid::new_v4());
        let driver = Driver {
            consumer: group_consumer(config, &graph.app_id, &assigned)?,
            producer: producer(config, &transactional_id)?,
            restorer: reader(config)?,
            follower: reader(config)?,
            graph,
            db: db.clone(),
            config: config.clone(),
            arbiters,
            stop: Arc::clone(&stop),
            tasks: HashMap::new(),
            open: Open::default(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| StreamsError::Stopped(format!("starting the driver: {e}")))?,
        };
        let driver = std::thread::Builder::new()
            .name("streams-driver".into())
            .spawn(move || driver.run())
            .map_err(|e| StreamsError::Stopped(format!("starting the driver thread: {e}")))?;
        Ok(KafkaStreams {
            db,
            assigned,
            stop,
            driver: Some(driver),
            tables,
            system,
            system_thread: Some(system_thread),
        })
    }
}

impl KafkaStreams {
    /// Whether the instance is still processing (false after an error
    /// stopped it; [`close`](Self::close) says which).
    pub fn is_running(&self) -> bool {
        self.driver.as_ref().is_some_and(|d| !d.is_finished())
    }

    /// The input partitions the group assigned to this instance: one task each.
    pub fn assigned_partitions(&self) -> Vec<(String, i32)> {
        self.assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The value of `key` in `store`, if a task of this instance holds it.
    pub fn get<K: Data, V: Data>(
        &self,
        store: &StoreRef<K, V>,
        key: &K,
    ) -> Result<Option<V>, StreamsError> {
        store.get_in(&local_trees(&self.db, &store.name)?, key)
    }

    /// The entries of `store` held here with keys from `from` to `to`
    /// (inclusive), in the order of the keys' bytes.
    pub fn range<K: Data, V: Data>(
        &self,
        store: &StoreRef<K, V>,
        from: &K,
        to: &K,
    ) -> Result<Vec<(K, V)>, StreamsError> {
        store.range_in(&local_trees(&self.db, &store.name)?, from, to)
    }

    /// The windows of `key` in `store` starting from `from` to `to` (ms,
    /// inclusive), oldest first.
    pub fn fetch_windows<K: Data, V: Data>(
        &self,
        store: &WindowStoreRef<K, V>,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Window, V)>, StreamsError> {
        store.fetch_in(&local_trees(&self.db, &store.inner.name)?, key, from, to)
    }

    /// Finishes the current commit, leaves the group, stops the tasks and
    /// flushes the stores; the error that stopped the instance, if one did.
    pub async fn close(mut self) -> Result<(), StreamsError> {
        self.stop.store(true, Ordering::Relaxed);
        let driver = self.driver.take();
        let tables = self.tables.take();
        let system_thread = self.system_thread.take();
        let system = self.system.clone();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let result = match driver.map(JoinHandle::join) {
                Some(Ok(result)) => result,
                Some(Err(_)) => Err(StreamsError::Stopped("the driver panicked".into())),
                None => Ok(()),
            };
            if let Some(tables) = tables {
                let _ = tables.join();
            }
            system.stop();
            if let Some(thread) = system_thread {
                let _ = thread.join();
            }
            db.flush()?;
            result
        })
        .await
        .map_err(|e| StreamsError::Stopped(e.to_string()))?
    }
}

impl Drop for KafkaStreams {
    /// Without `close`, the threads are told to stop and left to end.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.system.stop();
    }
}

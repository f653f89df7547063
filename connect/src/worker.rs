//! The worker actor: starts each connector's task on an arbiter of its
//! own and carries out the REST API's pause, resume and restart. Sink
//! tasks start at once (their consumer group shares the partitions); a
//! source task runs only while the group of workers assigns this worker
//! its connector (see `source_group`).

use crate::cdc_source::PostgresCdcTask;
use crate::config::{ConnectConfig, ConnectorConfig, ConnectorKind};
use crate::file_sink::FileSinkTask;
use crate::file_source::FileSourceTask;
use crate::postgres_sink::PostgresSinkTask;
use crate::source_group::{source_connectors, Assigned, Revoked};
use crate::status::{State, Statuses};
use crate::task::Control;
use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub struct Worker {
    config: Arc<ConnectConfig>,
    statuses: Statuses,
    tasks: BTreeMap<String, TaskHandle>,
    /// The source connectors in the order of their partitions.
    sources: Vec<String>,
    /// The source connectors the group assigned to this worker.
    owned: BTreeSet<String>,
    /// Shutting down: an assignment starts nothing.
    stopping: bool,
}

struct TaskHandle {
    control: Recipient<Control>,
    arbiter: Arbiter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pause,
    Resume,
    Restart,
}

/// An operation on a connector; `false` if there is no such connector.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Command {
    pub connector: String,
    pub operation: Operation,
}

/// Stops every task, letting each finish its batch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Worker {
    pub fn new(config: Arc<ConnectConfig>, statuses: Statuses) -> Self {
        for c in &config.connectors {
            statuses.add(&c.name, c.kind.role());
        }
        Self {
            sources: source_connectors(&config),
            config,
            statuses,
            tasks: BTreeMap::new(),
            owned: BTreeSet::new(),
            stopping: false,
        }
    }

    /// A sink always runs here; a source while this worker owns it.
    fn runs_here(&self, connector: &ConnectorConfig) -> bool {
        connector.kind.role() == "sink" || self.owned.contains(&connector.name)
    }

    /// The source connectors of `partitions` (a partition past the config's
    /// sources, from a longer config, stands for none).
    fn sources_of(&self, partitions: &[i32]) -> Vec<String> {
        partitions
            .iter()
            .filter_map(|p| self.sources.get(usize::try_from(*p).ok()?).cloned())
            .collect()
    }

    /// Every source connector not running here runs on another worker.
    fn mark_elsewhere(&self) {
        for name in &self.sources {
            if !self.owned.contains(name) {
                self.statuses.task_elsewhere(name);
            }
        }
    }

    fn connector(&self, name: &str) -> Option<ConnectorConfig> {
        self.config
            .connectors
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }

    fn start_task(&mut self, connector: ConnectorConfig) {
        let name = connector.name.clone();
        let paused = self.statuses.get(&name).is_some_and(|e| e.paused);
        self.statuses.update(&name, |e| {
            e.task = State::Unassigned;
            e.trace = None;
        });
        let arbiter = Arbiter::new();
        let (config, statuses) = (Arc::clone(&self.config), self.statuses.clone());
        let control = match connector.kind {
            ConnectorKind::FileSource { .. } => {
                let task = FileSourceTask::new(config, connector, statuses, paused);
                task.map(|t| FileSourceTask::start_in_arbiter(&arbiter.handle(), |_| t).recipient())
            }
            ConnectorKind::FileSink { .. } => {
                let task = FileSinkTask::new(config, connector, statuses, paused);
                task.map(|t| FileSinkTask::start_in_arbiter(&arbiter.handle(), |_| t).recipient())
            }
            ConnectorKind::PostgresSink { .. } => {
                let task = PostgresSinkTask::new(config, connector, statuses, paused);
                task.map(|t| {
                    PostgresSinkTask::start_in_arbiter(&arbiter.handle(), |_| t).recipient()
                })
            }
            ConnectorKind::PostgresCdcSource(_) => {
                let task = PostgresCdcTask::new(config, connector, statuses, paused);
                task.map(|t| {
                    PostgresCdcTask::start_in_arbiter(&arbiter.handle(), |_| t).recipient()
                })
            }
        };
        if let Some(control) = control {
            self.tasks.insert(name, TaskHandle { control, arbiter });
        }
    }
}

/// Asks a task to stop and waits for it; its arbiter's thread ends after.
async fn stop(task: TaskHandle) {
    // An error means the task has stopped already (it failed).
    let _ = task.control.send(Control::Stop).await;
    task.arbiter.stop();
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        for connector in self.config.connectors.clone() {
            if self.runs_here(&connector) {
                self.start_task(connector);
            }
        }
    }
}

impl Handler<Command> for Worker {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, command: Command, _: &mut Self::Context) -> Self::Result {
        let Some(connector) = self.connector(&command.connector) else {
            return Box::pin(actix::fut::ready(false));
        };
        let name = connector.name.clone();
        match command.operation {
            Operation::Pause | Operation::Resume => {
                let pause = command.operation == Operation::Pause;
                self.statuses.update(&name, |e| e.paused = pause);
                if let Some(task) = self.tasks.get(&name) {
                    let control = if pause {
                        Control::Pause
                    } else {
                        Control::Resume
                    };
                    // A stopped (failed) task has no mailbox: its status says why.
                    let _ = task.control.try_send(control);
                }
                Box::pin(actix::fut::ready(true))
            }
            Operation::Restart => {
                log::info!("connector {name}: restarting");
                let old = self.tasks.remove(&name);
                let stopped = async move {
                    if let Some(task) = old {
                        stop(task).await;
                    }
                };
                Box::pin(
                    actix::fut::wrap_future(stopped).map(move |(), worker: &mut Self, _| {
                        // A source another worker owns stays there: starting
                        // it here would fence that worker's task. One the
                        // group assigned meanwhile has started already.
                        if worker.runs_here(&connector) && !worker.tasks.contains_key(&name) {
                            worker.start_task(connector);
                        }
                        true
                    }),
                )
            }
        }
    }
}

impl Handler<Assigned> for Worker {
    type Result = ();

    fn handle(&mut self, Assigned(partitions): Assigned, _: &mut Self::Context) {
        if self.stopping {
            return;
        }
        for name in self.sources_of(&partitions) {
            self.owned.insert(name.clone());
            if !self.tasks.contains_key(&name) {
                if let Some(connector) = self.connector(&name) {
                    log::info!("connector {name}: assigned to this worker");
                    self.start_task(connector);
                }
            }
        }
        self.mark_elsewhere();
    }
}

impl Handler<Revoked> for Worker {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, revoked: Revoked, _: &mut Self::Context) -> Self::Result {
        let mut stopping = Vec::new();
        for name in self.sources_of(&revoked.partitions) {
            log::info!("connector {name}: moves to another worker");
            self.owned.remove(&name);
            stopping.extend(self.tasks.remove(&name));
        }
        let done = revoked.done;
        let stopped = futures_join(stopping.into_iter().map(stop));
        Box::pin(
            actix::fut::wrap_future(stopped).map(move |(), worker: &mut Self, _| {
                worker.mark_elsewhere();
                // Lets the group hand the partitions on.
                drop(done);
            }),
        )
    }
}

impl Handler<Shutdown> for Worker {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        self.owned.clear();
        let tasks = std::mem::take(&mut self.tasks);
        Box::pin(async move {
            futures_join(tasks.into_values().map(stop)).await;
        })
    }
}

/// Waits for all of `futures`, which run concurrently.
async fn futures_join<F>(futures: impl Iterator<Item = F>)
where
    F: std::future::Future<Output = ()> + 'static,
{
    let handles: Vec<_> = futures.map(actix_rt::spawn).collect();
    for handle in handles {
        let _ = handle.await;
    }
}

//! The stream task actor: one per assigned input partition, owning that
//! partition's state stores and running the topology's processors over
//! its records.

use crate::context::{Ctx, InRecord, LocalStore, OutRecord};
use crate::error::StreamsError;
use crate::graph::SourceFn;
use actix::{Actor, Context, Handler, Message};
use std::collections::HashMap;

/// The task of one input partition.
pub(crate) struct StreamTask {
    pub partition: i32,
    /// The processors reading each topic the task reads: its own, and the
    /// topics of the partitioned tables it holds.
    pub sources: HashMap<String, Vec<SourceFn>>,
    /// Its stores (restored before the task starts), its partitioned
    /// tables and the global tables.
    pub stores: HashMap<String, LocalStore>,
}

impl Actor for StreamTask {
    type Context = Context<Self>;
}

/// Records of the task's partition, of its topic and of its tables'
/// topics, each topic's in offset order, to process in the order given.
pub(crate) struct Process(pub Vec<InRecord>);

impl Message for Process {
    type Result = Result<Vec<OutRecord>, StreamsError>;
}

impl Handler<Process> for StreamTask {
    type Result = Result<Vec<OutRecord>, StreamsError>;

    fn handle(&mut self, msg: Process, _: &mut Context<Self>) -> Self::Result {
        let mut out = Vec::new();
        for record in msg.0 {
            let mut ctx = Ctx {
                partition: self.partition,
                timestamp: record.timestamp,
                stores: &mut self.stores,
                out: &mut out,
            };
            for source in self.sources.get(&record.topic).into_iter().flatten() {
                source(&mut ctx, record.key.as_deref(), record.value.as_deref())?;
            }
        }
        Ok(out)
    }
}

//! What every task actor answers: the worker's pause, resume and stop,
//! and its own poll ticks. Each task runs on an arbiter (thread) of its
//! own, because its librdkafka calls and file I/O block: a slow broker or
//! disk then holds only that task, never the worker or the REST API.

use actix::prelude::*;

#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Control {
    Pause,
    Resume,
    /// Finish the batch at hand (a sink commits it), then stop.
    Stop,
}

/// The next round of a task's loop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poll;

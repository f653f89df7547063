//! What every task actor answers: the worker's pause, resume and stop,
//! and its own poll ticks. Each task runs on an arbiter (thread) of its
//! own, because its librdkafka calls and file I/O block: a slow broker or
//! disk then holds only that task, never the worker or the REST API.

use crate::status::Statuses;
use actix::prelude::*;
use std::time::Duration;

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

/// A source task's poll loop: whether it is paused, and whether a [`Poll`]
/// is on its way, so that resuming never starts a second loop.
pub struct PollLoop {
    paused: bool,
    scheduled: bool,
}

impl PollLoop {
    pub fn new(paused: bool) -> Self {
        Self {
            paused,
            scheduled: false,
        }
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Sends the task its next [`Poll`] after `after`, unless one is on
    /// its way already.
    pub fn schedule<A>(&mut self, ctx: &mut Context<A>, after: Duration)
    where
        A: Actor<Context = Context<A>> + Handler<Poll>,
    {
        if !self.scheduled {
            self.scheduled = true;
            ctx.notify_later(Poll, after);
        }
    }

    /// At a [`Poll`]: whether to run a round (the task is not paused).
    pub fn polled(&mut self) -> bool {
        self.scheduled = false;
        !self.paused
    }

    /// Carries out the worker's `control` for the task named `name`:
    /// pausing, resuming with a round at once, or stopping.
    pub fn control<A>(
        &mut self,
        control: Control,
        name: &str,
        statuses: &Statuses,
        ctx: &mut Context<A>,
    ) where
        A: Actor<Context = Context<A>> + Handler<Poll>,
    {
        match control {
            Control::Pause => {
                self.paused = true;
                statuses.task_paused(name);
            }
            Control::Resume if self.paused => {
                self.paused = false;
                statuses.task_resumed(name);
                self.schedule(ctx, Duration::ZERO);
            }
            Control::Resume => {}
            Control::Stop => ctx.stop(),
        }
    }
}

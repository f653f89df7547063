//! The smallest executor: enough to drive the embedding API, whose futures
//! need no runtime of the caller's (the broker runs its own).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the thread blocked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the calling thread, for programs without
/// an async runtime of their own (or tests and doc examples that want
/// none). Only futures that need no runtime work here: those of this API
/// do, while tokio's timers and sockets do not.
///
/// ```
/// let broker = actorlog::block_on(actorlog::Broker::builder().in_memory().start())?;
/// let (partition, offset) = actorlog::block_on(broker.producer().send("events", None, b"up"))?;
/// assert_eq!((partition, offset), (0, 0));
/// actorlog::block_on(broker.shutdown())?;
/// # Ok::<(), actorlog::Error>(())
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

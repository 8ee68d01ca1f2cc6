//! Draining on shutdown: requests in flight finish, and an idle server exits at once.
//!
//! pingora's graceful shutdown closes the listeners, then sleeps `grace_period_seconds`, then shuts its tokio
//! runtimes down, which cancels every task still running: a transfer in flight survives only that sleep, and
//! an idle server sleeps it out all the same. So gatehouse gives pingora the whole grace period as its sleep
//! and watches the server's execution phase: once the grace period has begun (after SIGTERM, or after SIGQUIT
//! handed the listeners to a new process), the process exits as soon as no request is in flight, and pingora's
//! own end of the sleep is the upper bound.

use pingora::server::ExecutionPhase;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// One request in flight, from admission until its per-request state is dropped (after its access-log line).
pub struct InFlight(());

impl InFlight {
    /// Counts a request that has started.
    pub fn begin() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Requests in flight now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// How long the drain lets a just-accepted request reach admission before it counts.
const SETTLE: Duration = Duration::from_millis(100);

/// How often the drain looks at the in-flight count.
const POLL: Duration = Duration::from_millis(20);

/// Starts the watcher thread: when `phases` reports the shutdown grace period, it waits for the last request
/// in flight, runs `on_exit` (flushing the log) and exits the process with status 0.
pub fn watch(
    mut phases: broadcast::Receiver<ExecutionPhase>,
    on_exit: Box<dyn FnOnce() + Send>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    // The server is gone without a grace period (a fast shutdown): nothing to drain.
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
            // A connection accepted just before the listeners closed gets a moment to reach admission.
            std::thread::sleep(SETTLE);
            let waiting = in_flight();
            if waiting > 0 {
                tracing::info!(
                    requests = waiting,
                    "draining: waiting for requests in flight"
                );
            }
            while in_flight() > 0 {
                std::thread::sleep(POLL);
            }
            tracing::info!("drained: no request in flight, exiting");
            on_exit();
            std::process::exit(0);
        })
        .map(drop)
}

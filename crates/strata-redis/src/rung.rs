//! Waiting for a condition that a [`Notify`] is rung for whenever it may have changed (a job
//! sent, the log applied further): the one way the tier's tasks wait on each other.

use tokio::sync::Notify;

/// Returns once `done` holds, looking again each time `rung` is rung. Registers for the next
/// ring before each look, so a ring between the look and the wait is not missed.
pub(crate) async fn until(rung: &Notify, mut done: impl FnMut() -> bool) {
    loop {
        let next = rung.notified();
        tokio::pin!(next);
        next.as_mut().enable();
        if done() {
            return;
        }
        next.await;
    }
}

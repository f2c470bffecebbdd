//! Wakes readers that wait for new commits (tailing), at no cost when nobody waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
pub(crate) struct TailNotify {
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl TailNotify {
    /// Called after every append.
    pub(crate) fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.cond.notify_all();
        }
    }

    /// Waits until `ready()` or `deadline`; returns `ready()`.
    pub(crate) fn wait_until(&self, deadline: Instant, ready: impl Fn() -> bool) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock();
        // NOTE: `ready` is checked under the lock and appenders notify under it, so a
        // commit between the check and the wait cannot be missed.
        while !ready() {
            if self.cond.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        ready()
    }
}

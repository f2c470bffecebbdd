//! Publishing the visible sequence in commit order.
//!
//! Writers get their sequences from the WAL in order but finish their memtable inserts
//! in any order. A batch becomes visible only once every earlier batch is, so a reader
//! at the visible sequence never sees half a batch or a gap.
//!
//! A writer that finishes while an earlier batch is still being inserted parks its range
//! in `pending` and waits; whoever completes the batch right after the visible sequence
//! publishes it *and every contiguous pending range*, then wakes the waiters. So a
//! descheduled writer delays the others only until it runs again, never once per
//! waiting writer (no convoy of one wake-up per batch).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::types::SeqNo;

/// Spins before yielding: the predecessor usually finishes within a few hundred ns.
const SPINS: u32 = 64;
/// Yields before parking on the condition variable.
const YIELDS: u32 = 8;

/// The highest sequence readers may see, advanced strictly in order.
#[derive(Debug, Default)]
pub(crate) struct Visibility {
    seq: AtomicU64,
    failed: AtomicBool,
    waiters: AtomicUsize,
    /// Completed batches not yet visible: first sequence → last sequence.
    pending: Mutex<BTreeMap<u64, u64>>,
    cond: Condvar,
    /// How many times [`Visibility::reset`] moved the sequence back (a log reader that
    /// read a batch ahead of visibility drops it when this changed).
    resets: AtomicU64,
}

/// The chain of publications was broken by a failed writer; the store is poisoned.
#[derive(Debug)]
pub(crate) struct ChainBroken;

impl Visibility {
    pub(crate) fn new(start: SeqNo) -> Self {
        Self { seq: AtomicU64::new(start.0), ..Self::default() }
    }

    pub(crate) fn current(&self) -> SeqNo {
        SeqNo(self.seq.load(Ordering::Acquire))
    }

    /// Marks `first..=last` as inserted and returns once it is visible.
    pub(crate) fn publish(&self, first: SeqNo, last: SeqNo) -> Result<(), ChainBroken> {
        {
            let mut pending = self.pending.lock();
            if self.seq.load(Ordering::Acquire) == first.0.saturating_sub(1) {
                let mut upto = last.0;
                while let Some(next_last) = pending.remove(&(upto + 1)) {
                    upto = next_last;
                }
                self.seq.store(upto, Ordering::SeqCst);
                drop(pending);
                self.wake_all();
                return Ok(());
            }
            pending.insert(first.0, last.0);
        }
        self.wait_visible(last.0)
    }

    /// Sets the visible sequence back to `to` (a replica's truncation, with no writer
    /// running: the caller holds the write gate and is the only applier).
    pub(crate) fn reset(&self, to: SeqNo) {
        let mut pending = self.pending.lock();
        pending.clear();
        self.seq.store(to.0, Ordering::SeqCst);
        self.resets.fetch_add(1, Ordering::SeqCst);
    }

    /// How many resets happened so far.
    pub(crate) fn resets(&self) -> u64 {
        self.resets.load(Ordering::SeqCst)
    }

    /// Wakes every waiter and makes them fail: a batch that took a sequence will never
    /// be published.
    pub(crate) fn break_chain(&self) {
        self.failed.store(true, Ordering::SeqCst);
        let _guard = self.pending.lock();
        self.cond.notify_all();
    }

    pub(crate) fn wait_visible(&self, last: u64) -> Result<(), ChainBroken> {
        let mut round = 0u32;
        loop {
            if self.seq.load(Ordering::SeqCst) >= last {
                return Ok(());
            }
            if self.failed.load(Ordering::SeqCst) {
                return Err(ChainBroken);
            }
            round += 1;
            if round < SPINS {
                std::hint::spin_loop();
            } else if round < SPINS + YIELDS {
                std::thread::yield_now();
            } else {
                self.park_until(last);
            }
        }
    }

    /// Waits until `last` is visible or `deadline` passes (or the chain broke); returns
    /// whether it is visible. For log readers, which must not hand out a batch before
    /// readers of the store can see it.
    pub(crate) fn wait_visible_until(&self, last: u64, deadline: std::time::Instant) -> bool {
        loop {
            if self.seq.load(Ordering::SeqCst) >= last {
                return true;
            }
            if self.failed.load(Ordering::SeqCst) || std::time::Instant::now() >= deadline {
                return false;
            }
            self.waiters.fetch_add(1, Ordering::SeqCst);
            {
                let mut guard = self.pending.lock();
                // NOTE: checked under the lock that `publish` stores under, after counting
                // ourselves as a waiter, so a publish cannot slip between check and wait.
                if self.seq.load(Ordering::SeqCst) < last && !self.failed.load(Ordering::SeqCst) {
                    self.cond.wait_until(&mut guard, deadline);
                }
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn park_until(&self, last: u64) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        {
            let mut guard = self.pending.lock();
            // NOTE: re-check under the lock; publishers notify while holding it, so a
            // publication between our check and our wait cannot be missed.
            if self.seq.load(Ordering::SeqCst) < last && !self.failed.load(Ordering::SeqCst) {
                self.cond.wait_for(&mut guard, Duration::from_millis(5));
            }
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    fn wake_all(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.pending.lock();
            self.cond.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl Visibility {
        /// Waits until `n` batches are parked waiting for their predecessors.
        fn wait_pending(&self, n: usize) {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while self.pending.lock().len() < n {
                assert!(std::time::Instant::now() < deadline, "no batch ever waited");
                std::thread::yield_now();
            }
        }
    }

    #[test]
    fn out_of_order_finishers_publish_in_order() {
        let v = Arc::new(Visibility::new(SeqNo(0)));
        let late = {
            let v = Arc::clone(&v);
            std::thread::spawn(move || v.publish(SeqNo(3), SeqNo(4)).is_ok())
        };
        v.wait_pending(1);
        assert_eq!(v.current(), SeqNo(0), "batch 3..=4 must wait for 1..=2");
        v.publish(SeqNo(1), SeqNo(2)).expect("first batch publishes");
        assert!(late.join().expect("thread"));
        assert_eq!(v.current(), SeqNo(4), "the first publisher also published 3..=4");
    }

    #[test]
    fn many_out_of_order_finishers_end_fully_visible() {
        let v = Arc::new(Visibility::new(SeqNo(0)));
        let threads: Vec<_> = (0..16u64)
            .rev()
            .map(|i| {
                let v = Arc::clone(&v);
                std::thread::spawn(move || {
                    v.publish(SeqNo(2 * i + 1), SeqNo(2 * i + 2)).is_ok()
                        && v.current() >= SeqNo(2 * i + 2)
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().expect("thread"), "a writer returned before its batch was visible");
        }
        assert_eq!(v.current(), SeqNo(32));
    }

    #[test]
    fn broken_chain_releases_waiters_with_an_error() {
        let v = Arc::new(Visibility::new(SeqNo(0)));
        let waiter = {
            let v = Arc::clone(&v);
            std::thread::spawn(move || v.publish(SeqNo(2), SeqNo(2)).is_err())
        };
        v.wait_pending(1);
        v.break_chain();
        assert!(waiter.join().expect("thread"));
    }
}

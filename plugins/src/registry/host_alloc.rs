//! One allocator for a host and the plugin libraries it loads.
//!
//! Values cross the library boundary in both directions and are freed on the other
//! side: the host drops the `Arc<dyn MemTableFactory>` a plugin built, a plugin drops
//! buffers the host handed it. Each Rust shared library has its own global allocator,
//! so unless both sides use the same one, a free lands in an allocator that never made
//! the block — a crash as soon as the host uses anything but the system allocator (the
//! `strata` binary uses mimalloc). So a loadable plugin library makes every allocation
//! through the host's allocator: [`use_host_allocator!`](crate::use_host_allocator)
//! installs a [`PluginAllocator`] as the library's global allocator and exports
//! [`USE_HOST_ALLOCATOR_SYMBOL`], which the loader calls with [`HOST_ALLOCATOR`] — the
//! host's own global allocator as four C functions — before anything else in the
//! library runs.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, Ordering};

/// Name of the `extern "C" fn(Option<&'static HostAllocator>) -> bool` a loadable plugin
/// library exports (written by [`use_host_allocator!`](crate::use_host_allocator)).
pub const USE_HOST_ALLOCATOR_SYMBOL: &str = "strata_plugin_use_host_allocator";

/// A global allocator as plain C functions: what a host lends a plugin library.
///
/// `size` and `align` are those of a valid [`Layout`]; each function has the contract
/// of the [`GlobalAlloc`] method of the same name.
#[repr(C)]
#[derive(Debug)]
pub struct HostAllocator {
    /// [`GlobalAlloc::alloc`].
    pub alloc: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    /// [`GlobalAlloc::alloc_zeroed`].
    pub alloc_zeroed: unsafe extern "C" fn(size: usize, align: usize) -> *mut u8,
    /// [`GlobalAlloc::dealloc`].
    pub dealloc: unsafe extern "C" fn(ptr: *mut u8, size: usize, align: usize),
    /// [`GlobalAlloc::realloc`].
    pub realloc:
        unsafe extern "C" fn(ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8,
}

/// The global allocator of the binary this copy of strata-plugins is linked into, as a
/// [`HostAllocator`]. The loader lends this one.
pub static HOST_ALLOCATOR: HostAllocator = HostAllocator {
    alloc: host_alloc,
    alloc_zeroed: host_alloc_zeroed,
    dealloc: host_dealloc,
    realloc: host_realloc,
};

unsafe extern "C" fn host_alloc(size: usize, align: usize) -> *mut u8 {
    // SAFETY: a `PluginAllocator` passes the size and alignment of the valid `Layout`
    // its own caller gave it (the `HostAllocator` contract).
    unsafe { std::alloc::alloc(Layout::from_size_align_unchecked(size, align)) }
}

unsafe extern "C" fn host_alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    // SAFETY: as in `host_alloc`.
    unsafe { std::alloc::alloc_zeroed(Layout::from_size_align_unchecked(size, align)) }
}

unsafe extern "C" fn host_dealloc(ptr: *mut u8, size: usize, align: usize) {
    // SAFETY: `ptr` was allocated by this allocator with this layout (the
    // `GlobalAlloc::dealloc` contract, passed through by `PluginAllocator`).
    unsafe { std::alloc::dealloc(ptr, Layout::from_size_align_unchecked(size, align)) }
}

unsafe extern "C" fn host_realloc(ptr: *mut u8, size: usize, align: usize, new: usize) -> *mut u8 {
    // SAFETY: as in `host_dealloc`; `new` satisfies `GlobalAlloc::realloc`'s contract.
    unsafe { std::alloc::realloc(ptr, Layout::from_size_align_unchecked(size, align), new) }
}

/// A plugin library's global allocator: the system allocator until the host lends its
/// own ([`PluginAllocator::lend`]), the host's from then on.
#[derive(Debug)]
pub struct PluginAllocator {
    /// One word for the whole decision, so that "may the host's allocator still be
    /// lent?" and "use the system allocator" cannot interleave: null while nothing was
    /// allocated and nothing lent; [`SYSTEM_MARK`] once the system allocator gave out memory
    /// (a loan is refused from then on); else the lent `&'static HostAllocator`. Every
    /// transition leaves null by one compare-exchange, and no state is ever left.
    state: AtomicPtr<HostAllocator>,
}

/// The address [`PluginAllocator::state`] holds once the system allocator was used: that
/// of a static of its own, so it can be no `HostAllocator`'s. Never dereferenced.
static SYSTEM_MARK: u8 = 0;

/// [`SYSTEM_MARK`]'s address as a state value.
fn system() -> *mut HostAllocator {
    std::ptr::from_ref(&SYSTEM_MARK).cast::<HostAllocator>().cast_mut()
}

/// Which allocator serves a call.
enum Serve {
    Host(&'static HostAllocator),
    System,
}

impl PluginAllocator {
    /// Not lent yet.
    pub const fn new() -> Self {
        Self { state: AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// Makes every later allocation go to `host`. Refused (`false`, nothing changes) if
    /// this allocator already gave out system memory, which would then be freed through
    /// `host`, or was lent a different allocator; lending the same one again is a no-op.
    ///
    /// Safe against concurrent allocations: the check that no system memory was given
    /// out and the loan are one atomic step, so either the loan or the first system
    /// allocation wins, never both.
    pub fn lend(&self, host: &'static HostAllocator) -> bool {
        let want = std::ptr::from_ref(host).cast_mut();
        match self.state.compare_exchange(
            std::ptr::null_mut(),
            want,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            // `SYSTEM_MARK` (memory given out) or another allocator: refused.
            Err(current) => current == want,
        }
    }

    /// Whether [`PluginAllocator::lend`] succeeded.
    pub fn is_lent(&self) -> bool {
        self.lent().is_some()
    }

    fn lent(&self) -> Option<&'static HostAllocator> {
        let state = self.state.load(Ordering::Acquire);
        if state == system() {
            return None;
        }
        // SAFETY: besides null and `SYSTEM_MARK`, the only value ever stored is a
        // `&'static HostAllocator` (in `lend`).
        unsafe { state.as_ref() }
    }

    /// The allocator for a new block. Choosing the system allocator records it in the
    /// same step (null → `SYSTEM_MARK`), so a loan can no longer slip in between.
    fn for_new_block(&self) -> Serve {
        let mut state = self.state.load(Ordering::Acquire);
        // Only the first allocation writes: a compare-exchange on every allocation
        // would make all threads contend for this word.
        if state.is_null() {
            state = match self.state.compare_exchange(
                std::ptr::null_mut(),
                system(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Serve::System,
                Err(current) => current,
            };
        }
        if state == system() {
            return Serve::System;
        }
        // SAFETY: not null (checked, or the exchange failed) and not `SYSTEM_MARK`: a lent
        // `&'static HostAllocator`.
        match unsafe { state.as_ref() } {
            Some(h) => Serve::Host(h),
            None => Serve::System,
        }
    }
}

impl Default for PluginAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to one allocator with the caller's arguments unchanged:
// the host's once lent, the system's before. A block is always freed by the allocator
// that made it: a block from the system allocator moved the state to `SYSTEM_MARK` (in the
// same atomic step as the choice), after which no loan is accepted; a block from the
// host's exists only once the state holds the host, which it then holds for ever.
unsafe impl GlobalAlloc for PluginAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.for_new_block() {
            // SAFETY: forwarded under `GlobalAlloc::alloc`'s contract.
            Serve::Host(h) => unsafe { (h.alloc)(layout.size(), layout.align()) },
            // SAFETY: as above.
            Serve::System => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.for_new_block() {
            // SAFETY: forwarded under `GlobalAlloc::alloc_zeroed`'s contract.
            Serve::Host(h) => unsafe { (h.alloc_zeroed)(layout.size(), layout.align()) },
            // SAFETY: as above.
            Serve::System => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.lent() {
            // SAFETY: `ptr` came from this allocator, hence (see `lend`) from the host's.
            Some(h) => unsafe { (h.dealloc)(ptr, layout.size(), layout.align()) },
            // SAFETY: not lent, so `ptr` came from the system allocator.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match self.lent() {
            // SAFETY: as in `dealloc`, under `GlobalAlloc::realloc`'s contract.
            Some(h) => unsafe { (h.realloc)(ptr, layout.size(), layout.align(), new_size) },
            // SAFETY: as in `dealloc`.
            None => unsafe { System.realloc(ptr, layout, new_size) },
        }
    }
}

/// Makes a plugin library allocate through the host's allocator; required of every
/// library loaded at run time (the loader refuses a library without it). Use it once,
/// next to [`declare_plugin!`](crate::declare_plugin), in the crate built as a
/// `cdylib`. It installs a [`PluginAllocator`] as the crate's `#[global_allocator]`, so
/// a crate that sets its own global allocator cannot use it — and must not be loaded at
/// run time.
///
/// It also makes the allocator global for every binary the crate is linked into as an
/// `rlib` (its tests, say), where it is never lent and behaves as the system allocator.
#[macro_export]
macro_rules! use_host_allocator {
    () => {
        #[global_allocator]
        static __STRATA_PLUGIN_ALLOCATOR: $crate::registry::PluginAllocator =
            $crate::registry::PluginAllocator::new();

        /// Called by the Strata loader, before anything else in this library, with the
        /// host's allocator; `false` if it cannot be used.
        #[unsafe(no_mangle)]
        pub extern "C" fn strata_plugin_use_host_allocator(
            host: ::core::option::Option<&'static $crate::registry::HostAllocator>,
        ) -> bool {
            host.is_some_and(|h| __STRATA_PLUGIN_ALLOCATOR.lend(h))
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn counting_alloc(size: usize, align: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded test allocator.
        unsafe { host_alloc(size, align) }
    }
    unsafe extern "C" fn counting_dealloc(ptr: *mut u8, size: usize, align: usize) {
        CALLS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded test allocator.
        unsafe { host_dealloc(ptr, size, align) }
    }

    static COUNTING: HostAllocator = HostAllocator {
        alloc: counting_alloc,
        alloc_zeroed: host_alloc_zeroed,
        dealloc: counting_dealloc,
        realloc: host_realloc,
    };

    #[test]
    fn a_lent_allocator_forwards_and_cannot_be_swapped() {
        let a = PluginAllocator::new();
        assert!(!a.is_lent());
        assert!(a.lend(&COUNTING));
        assert!(a.lend(&COUNTING), "lending the same allocator again is a no-op");
        assert!(!a.lend(&HOST_ALLOCATOR), "a second, different allocator is refused");
        let before = CALLS.load(Ordering::SeqCst);
        let layout = Layout::from_size_align(48, 16).expect("layout");
        // SAFETY: a valid non-zero layout; the block is freed with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0);
            p.write_bytes(7, 48);
            a.dealloc(p, layout);
        }
        assert_eq!(CALLS.load(Ordering::SeqCst) - before, 2, "alloc and dealloc went to the host");
    }

    /// Allocators raced per round.
    const RACED: usize = 2048;
    /// Blocks the race host made, per allocator of the round (see `SLOT`).
    static HOST_MADE: [AtomicUsize; RACED] = [const { AtomicUsize::new(0) }; RACED];

    thread_local! {
        /// Which allocator of the round the allocating thread is using.
        static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    unsafe extern "C" fn race_alloc(size: usize, align: usize) -> *mut u8 {
        HOST_MADE[SLOT.get()].fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded test allocator.
        unsafe { host_alloc(size, align) }
    }

    static RACE_HOST: HostAllocator = HostAllocator {
        alloc: race_alloc,
        alloc_zeroed: host_alloc_zeroed,
        dealloc: host_dealloc,
        realloc: host_realloc,
    };

    /// Spins until `progress` reaches `at`.
    fn wait_for(progress: &AtomicUsize, at: usize) {
        let mut spins = 0u32;
        while progress.load(Ordering::Acquire) < at {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // A busy machine may have descheduled the other thread.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// `lend` racing the first allocation: either the loan wins and the block comes from
    /// the host, or the allocation wins and the loan is refused. A loan granted although
    /// the block came from the system allocator means it will be freed by the host (the
    /// check-then-act race this guards against).
    ///
    /// Each round one thread allocates once from each of `RACED` fresh allocators in
    /// turn while the other lends each of them in turn. One sweep gets a head start of a
    /// few allocators; the faster sweep catches up with the slower one, and around that
    /// point both work on the same allocator at the same time. Rounds alternate which
    /// sweep leads and vary the head start.
    #[test]
    fn lend_racing_alloc_never_mixes_allocators() {
        const ROUNDS: usize = 200;
        let layout = Layout::from_size_align(32, 8).expect("layout");
        let mut outcomes = [0usize; 2];
        let mut mixed = Vec::new();
        for round in 0..ROUNDS {
            let allocators: Vec<PluginAllocator> =
                (0..RACED).map(|_| PluginAllocator::new()).collect();
            // Allocators each sweep has finished with (+1 once it is ready to start).
            let (allocated_upto, lent_upto) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let head_start = 1 + (round / 2) % 64;
            let allocation_leads = round % 2 == 0;
            let (allocated, lent) = std::thread::scope(|s| {
                let allocating = s.spawn(|| {
                    allocated_upto.store(1, Ordering::Release);
                    wait_for(&lent_upto, if allocation_leads { 1 } else { 1 + head_start });
                    let mut blocks = Vec::with_capacity(RACED);
                    for (k, a) in allocators.iter().enumerate() {
                        SLOT.set(k);
                        // SAFETY: a valid layout; freed below by the same allocator.
                        blocks.push(unsafe { a.alloc(layout) });
                        allocated_upto.store(k + 2, Ordering::Release);
                    }
                    let allocated = blocks.iter().all(|p| !p.is_null());
                    for (a, p) in allocators.iter().zip(blocks) {
                        // SAFETY: allocated above by `a` with `layout`. (The test binary's
                        // global allocator is the system's, so even a block freed by the
                        // wrong side is sound here; in a plugin it would not be.)
                        unsafe { a.dealloc(p, layout) };
                    }
                    allocated
                });
                lent_upto.store(1, Ordering::Release);
                wait_for(&allocated_upto, if allocation_leads { 1 + head_start } else { 1 });
                let mut lent = Vec::with_capacity(RACED);
                for (k, a) in allocators.iter().enumerate() {
                    lent.push(a.lend(&RACE_HOST));
                    lent_upto.store(k + 2, Ordering::Release);
                }
                (allocating.join().expect("allocating thread"), lent)
            });
            assert!(allocated, "an allocation failed");
            for (k, &lent) in lent.iter().enumerate() {
                let from_host = HOST_MADE[k].swap(0, Ordering::SeqCst);
                if from_host != usize::from(lent) {
                    mixed.push((round, k, lent, from_host));
                }
                outcomes[usize::from(lent)] += 1;
            }
        }
        assert!(
            mixed.is_empty(),
            "{} loans disagree with where the block came from (round, allocator, lent, \
             blocks from the host): {:?}",
            mixed.len(),
            &mixed[..mixed.len().min(5)]
        );
        // Both orders happened, or the test raced nothing.
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }

    #[test]
    fn an_allocator_that_gave_out_system_memory_refuses_a_loan() {
        let a = PluginAllocator::new();
        let layout = Layout::from_size_align(8, 8).expect("layout");
        // SAFETY: a valid layout; freed by the same (still unlent) allocator.
        let p = unsafe { a.alloc(layout) };
        assert!(!a.lend(&HOST_ALLOCATOR), "system blocks would be freed by the host");
        assert!(!a.is_lent());
        // SAFETY: allocated above by `a`, which was not lent.
        unsafe { a.dealloc(p, layout) };
    }
}

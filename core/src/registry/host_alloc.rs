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
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

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

/// The global allocator of the binary this copy of strata-core is linked into, as a
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
    host: AtomicPtr<HostAllocator>,
    /// Something was allocated from the system allocator (before a loan).
    allocated_alone: AtomicBool,
}

impl PluginAllocator {
    /// Not lent yet.
    pub const fn new() -> Self {
        Self { host: AtomicPtr::new(std::ptr::null_mut()), allocated_alone: AtomicBool::new(false) }
    }

    /// Makes every later allocation go to `host`. Refused (`false`, nothing changes) if
    /// this allocator already gave out system memory, which would then be freed through
    /// `host`, or was lent a different allocator; lending the same one again is a no-op.
    pub fn lend(&self, host: &'static HostAllocator) -> bool {
        if self.allocated_alone.load(Ordering::SeqCst) {
            return false;
        }
        let want = std::ptr::from_ref(host).cast_mut();
        match self.host.compare_exchange(
            std::ptr::null_mut(),
            want,
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            Ok(_) => true,
            Err(current) => current == want,
        }
    }

    /// Whether [`PluginAllocator::lend`] succeeded.
    pub fn is_lent(&self) -> bool {
        !self.host.load(Ordering::Acquire).is_null()
    }

    fn lent(&self) -> Option<&'static HostAllocator> {
        // SAFETY: the only non-null value ever stored is a `&'static HostAllocator`.
        unsafe { self.host.load(Ordering::Acquire).as_ref() }
    }
}

impl Default for PluginAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to one allocator with the caller's arguments unchanged:
// the host's once lent, the system's before. A block is always freed by the allocator
// that made it, because `lend` is refused once the system allocator gave out memory.
unsafe impl GlobalAlloc for PluginAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.lent() {
            // SAFETY: forwarded under `GlobalAlloc::alloc`'s contract.
            Some(h) => unsafe { (h.alloc)(layout.size(), layout.align()) },
            None => {
                self.allocated_alone.store(true, Ordering::SeqCst);
                // SAFETY: as above.
                unsafe { System.alloc(layout) }
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.lent() {
            // SAFETY: forwarded under `GlobalAlloc::alloc_zeroed`'s contract.
            Some(h) => unsafe { (h.alloc_zeroed)(layout.size(), layout.align()) },
            None => {
                self.allocated_alone.store(true, Ordering::SeqCst);
                // SAFETY: as above.
                unsafe { System.alloc_zeroed(layout) }
            }
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

//! Every `unsafe` operation of this crate: opening a plugin library, reading its ABI
//! stamp and calling its entry point.
//!
//! The protocol (written by [`crate::declare_plugin!`]): a library exports the
//! `#[repr(C)]` static [`AbiStamp`] `STRATA_PLUGIN_ABI`, plain bytes whose layout does
//! not depend on the compiler, and `extern "C" fn strata_plugin_entry() -> *const
//! c_void`, which returns its [`PluginDeclaration`]. The declaration is made of Rust
//! types, whose layout is only the same on both sides when strata-core's version, the
//! compiler and the shared types are; the stamp says exactly that, so the entry point
//! is only called, and its answer only read, after the stamp matched. Between the two,
//! `extern "C" fn strata_plugin_use_host_allocator` (written by
//! [`crate::use_host_allocator!`]) is given the host's global allocator, which the
//! library uses for everything from then on.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::Path;

use crate::registry::{
    ABI_MAGIC, ABI_STAMP_SYMBOL, ABI_STAMP_VERSION, AbiStamp, ENTRY_SYMBOL, HOST_ALLOCATOR,
    HostAllocator, PluginDeclaration, USE_HOST_ALLOCATOR_SYMBOL,
};
use libloading::{Library, Symbol};

/// Opens the shared library at `path`.
pub(crate) fn open(path: &Path) -> Result<Library, String> {
    // SAFETY: dlopen runs the library's initializers (ELF `.init_array`; for a Rust
    // plugin these are `inventory` registrations into the library's own copy of the
    // registry, which touch nothing of the host). Running code from a file is the point
    // of `[[load]]`: the user named this library explicitly and trusts it like any other
    // code of the process. libloading opens it RTLD_LOCAL, so the library's copies of
    // strata-core and std do not interpose the host's symbols.
    unsafe { Library::new(path) }.map_err(|e| e.to_string())
}

/// Reads the library's ABI stamp without calling anything in it. A stamp whose magic or
/// layout version differs is returned with only those two fields read (the rest zero),
/// so that [`AbiStamp::check`] reports it.
pub(crate) fn stamp(lib: &Library) -> Result<AbiStamp, String> {
    // SAFETY: asking for `*const AbiStamp` makes `get` return the symbol's address
    // itself; nothing is read through it here.
    let symbol: Symbol<'_, *const AbiStamp> =
        unsafe { lib.get(ABI_STAMP_SYMBOL.as_bytes()) }.map_err(|e| {
            format!("it exports no `{ABI_STAMP_SYMBOL}` ({e}); is it a Strata plugin built with declare_plugin!?")
        })?;
    let ptr: *const AbiStamp = *symbol;
    if ptr.is_null() {
        return Err(format!("its `{ABI_STAMP_SYMBOL}` symbol is null"));
    }
    let mut stamp = AbiStamp {
        magic: [0; 8],
        stamp_version: 0,
        core_version: [0; 32],
        rustc: [0; 128],
        fingerprint: [0; 64],
    };
    // SAFETY: by the plugin protocol the symbol is a static `AbiStamp`, and every stamp
    // layout starts with the 8 magic bytes, so they are readable. Unaligned reads: a
    // foreign library's alignment is not trusted.
    stamp.magic = unsafe { std::ptr::read_unaligned(&raw const (*ptr).magic) };
    if stamp.magic != ABI_MAGIC {
        return Ok(stamp);
    }
    // SAFETY: the magic matched, so this is a Strata stamp; every Strata stamp layout
    // has its version right after the magic.
    stamp.stamp_version = unsafe { std::ptr::read_unaligned(&raw const (*ptr).stamp_version) };
    if stamp.stamp_version != ABI_STAMP_VERSION {
        return Ok(stamp);
    }
    // SAFETY: magic and layout version match ours, so the whole static has our
    // `#[repr(C)]` layout (plain byte arrays and a u32: any bit pattern is valid).
    Ok(unsafe { std::ptr::read_unaligned(ptr) })
}

/// Lends the library the host's global allocator (see
/// [`crate::use_host_allocator!`]). Only call this after [`stamp`] matched, and
/// before anything else in the library.
pub(crate) fn lend_allocator(lib: &'static Library) -> Result<(), String> {
    // SAFETY: `use_host_allocator!` defines the symbol with exactly this signature, and
    // the stamp check established that the library was built by this protocol.
    let lend: Symbol<'static, extern "C" fn(Option<&'static HostAllocator>) -> bool> =
        unsafe { lib.get(USE_HOST_ALLOCATOR_SYMBOL.as_bytes()) }.map_err(|e| {
            format!(
                "it exports no `{USE_HOST_ALLOCATOR_SYMBOL}` ({e}): add \
                 `strata_plugins::use_host_allocator!();` next to `declare_plugin!` and rebuild \
                 it — values are freed on the other side of the library boundary, so the \
                 library must allocate with the host's allocator"
            )
        })?;
    if lend(Some(&HOST_ALLOCATOR)) {
        Ok(())
    } else {
        Err("it refused the host's allocator: it had already allocated memory of its own \
             (at load time, before the loader could lend it), or uses another one"
            .to_owned())
    }
}

/// Calls the library's entry point and returns its declaration. Only call this after
/// [`stamp`] matched the host's stamp; `lib` must never be unloaded (hence `'static`).
pub(crate) fn declaration(lib: &'static Library) -> Result<&'static PluginDeclaration, String> {
    // SAFETY: `declare_plugin!` defines the symbol with exactly this signature, and the
    // stamp check established that the library was built by this protocol.
    let entry: Symbol<'static, extern "C" fn() -> *const c_void> =
        unsafe { lib.get(ENTRY_SYMBOL.as_bytes()) }
            .map_err(|e| format!("it exports no `{ENTRY_SYMBOL}` ({e})"))?;
    let ptr = entry();
    // SAFETY: the pointer is the address of the library's `static PluginDeclaration`,
    // whose layout equals ours because the stamps (core version, rustc, fingerprint of
    // the shared types) matched. It lives as long as the library, which is never
    // unloaded (`lib: &'static`), so `'static` is sound.
    unsafe { ptr.cast::<PluginDeclaration>().as_ref() }
        .ok_or_else(|| format!("its `{ENTRY_SYMBOL}` returned a null declaration"))
}

//! File systems for crash and fsync-accounting tests.
//!
//! - [`SimFileSystem`] is an in-memory [`FileSystem`] that simulates power loss, torn
//!   writes and I/O errors (modelled on redb's crash-test backend).
//! - [`CountingFileSystem`] wraps any [`FileSystem`] (typically the real one) and counts
//!   the durability calls made through it, so a test can prove that group commit shares
//!   fsyncs.
//!
//! # Crash model of [`SimFileSystem`]
//!
//! Every file has two byte images and the tree has two namespaces:
//!
//! | state            | changed by                                             | made durable by |
//! |------------------|--------------------------------------------------------|-----------------|
//! | live file image  | [`File::write_all_at`], [`File::set_len`], [`File::allocate`] | [`File::sync_data`] on that file |
//! | live namespace   | [`FileSystem::open`] (`CreateNew`), [`FileSystem::rename`], [`FileSystem::remove_file`], [`FileSystem::lock`] (creates a missing lock file) | [`FileSystem::sync_dir`] on the parent directory |
//!
//! Everything a running program observes (reads, lengths, listings, `exists`) is the
//! live state. [`SimFileSystem::crash`] models a power loss: it returns a new file system
//! whose live and durable states are both the old *durable* state, so
//!
//! - bytes written but never covered by a successful `sync_data` are gone;
//! - a created, renamed or removed entry whose parent directory was never synced
//!   afterwards reverts (a new file vanishes even if its data was synced; a rename is
//!   undone; a removed file comes back);
//! - a durable entry whose data was never synced comes back empty (or with its last
//!   synced contents).
//!
//! [`CrashMode::TornTail`] additionally keeps a random prefix of the unsynced bytes, as a
//! disk that lost power in the middle of writing back a file would.
//!
//! Directories are simpler than files: [`FileSystem::create_dir_all`] is durable at once
//! and directories cannot be renamed or removed.
//!
//! After a crash the old `SimFileSystem` (every clone of it and every handle and lock
//! opened through it) refuses all operations with an `Error::Io` saying the file system
//! crashed, so a zombie writer thread left over from before the "power loss" cannot reach
//! the state the recovered store runs on.
//!
//! Errors carry Linux `errno` values (`ENOENT`, `EEXIST`, `EBADF`, `EIO`, `ENOSPC`, ...)
//! wrapped by [`Error::io`] with the operation and path, as [`OsFileSystem`] reports them.
//!
//! The simulator's parts: `image.rs` (the two images of a file and how a crash picks
//! between them), `state.rs` (the namespaces, counters and armed faults), `sim.rs` (the
//! [`FileSystem`] itself), `file.rs` (its open handles); `counting.rs` is the
//! fsync-counting wrapper.

use std::io;

#[cfg(doc)]
use strata_core::Error;
#[cfg(doc)]
use strata_core::fs::{File, FileSystem, OsFileSystem};

mod counting;
mod file;
mod image;
mod sim;
mod state;
#[cfg(test)]
mod tests;

pub use counting::CountingFileSystem;
pub use image::CrashMode;
pub use sim::SimFileSystem;

// Linux errno values (libc is not a dependency).
const ENOENT: i32 = 2;
const EIO: i32 = 5;
const EBADF: i32 = 9;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const EINVAL: i32 = 22;
const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn crashed_error() -> io::Error {
    io::Error::other(
        "file system crashed (simulated power loss); use the SimFileSystem returned by crash()",
    )
}

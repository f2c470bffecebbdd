//! The operating system's file system.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::{File, FileLock, FileSystem, OpenMode};

/// [`FileSystem`] backed by the real OS: `pread`/`pwrite`, `fdatasync`, `fallocate`,
/// `flock`-style exclusive locks.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFileSystem;

impl OsFileSystem {
    /// The OS file system as a shareable trait object.
    pub fn shared() -> Arc<dyn FileSystem> {
        Arc::new(OsFileSystem)
    }
}

#[derive(Debug)]
struct OsFile {
    file: fs::File,
    path: PathBuf,
}

#[derive(Debug)]
struct OsLock {
    _file: fs::File,
}

impl FileLock for OsLock {}

impl FileSystem for OsFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn File>> {
        let mut opts = fs::OpenOptions::new();
        match mode {
            OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
            OpenMode::ReadOnly => opts.read(true),
        };
        let file = opts.open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(Arc::new(OsFile { file, path: path.to_path_buf() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| Error::io("read_dir", dir, e))? {
            let entry = entry.map_err(|e| Error::io("read_dir", dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create_dir", dir, e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = fs::File::open(dir).map_err(|e| Error::io("open dir", dir, e))?;
        d.sync_all().map_err(|e| Error::io("fsync dir", dir, e))
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists().map_err(|e| Error::io("stat", path, e))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        fs::hard_link(from, to).map_err(|e| Error::io("hard_link", to, e))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: path.to_path_buf() }),
            Err(fs::TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
        }
    }
}

impl File for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file.write_all_at(buf, offset).map_err(|e| Error::io("write", &self.path, e))
    }

    fn sync_data(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io("fdatasync", &self.path, e))
    }

    fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(|e| Error::io("stat", &self.path, e))?.len())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| Error::io("truncate", &self.path, e))
    }

    fn allocate(&self, len: u64) -> Result<()> {
        let current = self.len()?;
        if len <= current {
            return Ok(());
        }
        match rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            // File systems without fallocate (tmpfs on old kernels, some FUSE mounts):
            // extending with zeros keeps the same on-disk meaning, only without the
            // up-front block reservation.
            Err(rustix::io::Errno::OPNOTSUPP) => self.set_len(len),
            Err(e) => Err(Error::io("fallocate", &self.path, e.into())),
        }
    }

    #[cfg(target_os = "linux")]
    #[expect(unsafe_code, reason = "sync_file_range has no safe wrapper in rustix or std")]
    fn start_writeback(&self, offset: u64, len: u64) -> Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Ok(());
        };
        // SAFETY: the descriptor is owned by `self.file` and open for the whole call;
        // sync_file_range reads no memory of ours, it only takes integers.
        let rc = unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // Not every file system supports it; the hint is then simply not given.
            Some(libc::ENOSYS | libc::EOPNOTSUPP) => Ok(()),
            _ => Err(Error::io("sync_file_range", &self.path, e)),
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.file.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_same_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = OsFileSystem;
        let path = dir.path().join("LOCK");
        let _held = fs.lock(&path).expect("first lock");
        let err = fs.lock(&path).expect_err("second lock must fail");
        assert!(matches!(err, Error::Locked { .. }), "{err}");
    }

    #[test]
    fn create_new_refuses_to_clobber_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = OsFileSystem;
        let path = dir.path().join("f");
        let f = fs.open(&path, OpenMode::CreateNew).expect("create");
        f.write_all_at(b"data", 0).expect("write");
        assert!(fs.open(&path, OpenMode::CreateNew).is_err());
        assert_eq!(f.len().expect("len"), 4);
    }

    #[test]
    fn allocate_extends_with_zeros_and_keeps_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = OsFileSystem;
        let f = fs.open(&dir.path().join("f"), OpenMode::CreateNew).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.allocate(4096).expect("allocate");
        assert_eq!(f.len().expect("len"), 4096);
        let mut buf = [1u8; 5];
        assert_eq!(f.read_at(&mut buf, 0).expect("read"), 5);
        assert_eq!(&buf, b"abc\0\0");
    }

    #[test]
    fn start_writeback_is_a_hint_that_leaves_the_bytes_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = OsFileSystem;
        let f = fs.open(&dir.path().join("f"), OpenMode::CreateNew).expect("create");
        f.write_all_at(&[7u8; 8192], 0).expect("write");
        f.start_writeback(0, 8192).expect("writeback of written bytes");
        f.start_writeback(4096, 1 << 20).expect("a range past the end is fine");
        let mut buf = [0u8; 8192];
        assert_eq!(f.read_at(&mut buf, 0).expect("read"), 8192);
        assert!(buf.iter().all(|b| *b == 7));
    }
}

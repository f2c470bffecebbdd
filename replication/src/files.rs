//! The small files replication keeps in the store directory: the cluster id and the
//! primary's in-sync set. Both are replaced atomically (temporary file, fsync, rename,
//! directory fsync) and checksummed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The cluster id file.
pub const CLUSTER_FILE: &str = "REPLICATION_CLUSTER";
/// The in-sync set file.
pub const IN_SYNC_FILE: &str = "REPLICATION_IN_SYNC";

#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    value: T,
    crc: u32,
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |op, e| Error::io(op, path.display().to_string(), e);
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("fsync directory of", e))
}

fn store<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let inner = serde_json::to_vec(value).map_err(|e| Error::BadFile {
        file: dir.join(name),
        reason: format!("cannot encode: {e}"),
    })?;
    let crc = crc32fast::hash(&inner);
    let sealed = Sealed { value, crc };
    let bytes = serde_json::to_vec_pretty(&sealed).map_err(|e| Error::BadFile {
        file: dir.join(name),
        reason: format!("cannot encode: {e}"),
    })?;
    write_atomic(dir, name, &bytes)
}

fn load<T: Serialize + for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path: PathBuf = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path.display().to_string(), e)),
    };
    let bad = |reason: String| Error::BadFile {
        file: path.clone(),
        reason: format!(
            "{reason}; it is replaced atomically, so this is damage: restore it from a backup"
        ),
    };
    let sealed: Sealed<T> =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("does not parse: {e}")))?;
    let inner = serde_json::to_vec(&sealed.value).map_err(|e| bad(e.to_string()))?;
    if crc32fast::hash(&inner) != sealed.crc {
        return Err(bad("checksum mismatch".into()));
    }
    Ok(Some(sealed.value))
}

/// The store's cluster id, if it has one.
pub fn load_cluster(dir: &Path) -> Result<Option<u64>> {
    load(dir, CLUSTER_FILE)
}

/// Records the store's cluster id.
pub fn store_cluster(dir: &Path, id: u64) -> Result<()> {
    store(dir, CLUSTER_FILE, &id)
}

/// The primary's in-sync set (replica names).
pub fn load_in_sync(dir: &Path) -> Result<BTreeSet<String>> {
    Ok(load(dir, IN_SYNC_FILE)?.unwrap_or_default())
}

/// Replaces the in-sync set.
pub fn store_in_sync(dir: &Path, set: &BTreeSet<String>) -> Result<()> {
    store(dir, IN_SYNC_FILE, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load_cluster(dir.path()).expect("none"), None);
        store_cluster(dir.path(), 0xABCD).expect("store");
        assert_eq!(load_cluster(dir.path()).expect("load"), Some(0xABCD));
        let set: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
        store_in_sync(dir.path(), &set).expect("store");
        assert_eq!(load_in_sync(dir.path()).expect("load"), set);
        let path = dir.path().join(IN_SYNC_FILE);
        let text = std::fs::read_to_string(&path).expect("read").replace("\"a\"", "\"x\"");
        std::fs::write(&path, text).expect("write");
        let err = load_in_sync(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
}

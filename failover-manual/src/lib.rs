//! # strata-failover-manual
//!
//! The manual [`FailoverPolicy`](strata_core::FailoverPolicy), name `"manual"`:
//! [`ManualPolicy`]. Nothing fails over on its own; an operator promotes a replica, or
//! removes one from the in-sync set, by committing a
//! [`Change`](strata_core::Change) to the authority record, under the same epochs and
//! fences as every policy (see the trait's documentation).
//!
//! The authority record is one checksummed file in a directory, written through the
//! [`FileSystem`](strata_core::fs::FileSystem) seam (temporary file, sync, rename,
//! directory sync); [`file`](mod@file) gives its byte layout. It is the truth for whoever opens
//! that directory: any number of processes may open it (every node of a cluster on one
//! host can share it, so an operator command sent to any of them commits there), and
//! each operation is atomic under the directory's lock file, reading the record afresh.
//! It is not replicated — the directory's disk is a single point of failure, and a
//! consensus-backed policy is what removes it.
//!
//! ```
//! use std::sync::Arc;
//! use strata_core::fs::OsFileSystem;
//! use strata_core::{AuthorityRecord, Change, Epoch, FailoverPolicy, LeaseSettings, SeqNo};
//! use strata_failover_manual::ManualPolicy;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let initial = AuthorityRecord::initial(1, "n1", Epoch(1), SeqNo(1), LeaseSettings::default());
//! let policy = ManualPolicy::create(Arc::new(OsFileSystem), dir.path(), initial)?;
//! // n2 caught up: the primary (n1, epoch 1) lets it join the in-sync set.
//! let record = policy.compare_and_set(1, Change::JoinInSync { node: "n2".into(), epoch: Epoch(1) }).await?;
//! // n1 is gone: the operator promotes n2, whose log ends at sequence 41.
//! let record = policy
//!     .compare_and_set(record.version, Change::Promote { node: "n2".into(), epoch: Epoch(2), first_seq: SeqNo(42) })
//!     .await?;
//! assert_eq!((record.primary.as_str(), record.epoch), ("n2", Epoch(2)));
//! // n1 comes back in epoch 1: fenced.
//! assert!(policy.renew_lease(&"n1".into(), Epoch(1)).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod file;
mod policy;

pub use policy::{ManualFactory, ManualPolicy};

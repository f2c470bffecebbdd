//! How a transport is set up, and the cleanup of dead iceoryx2 nodes.

use iceoryx2::node::NodeView;
use iceoryx2::prelude::*;
use strata_core::{Error, Result};

use crate::{NAME, Svc};

/// How an [`IceoryxTransport`](crate::IceoryxTransport) is set up.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IceoryxConfig {
    /// Service names are `<prefix>/<topic>/...`; transports with different prefixes never
    /// see each other.
    pub prefix: String,
    /// Publishers signal the topic's event service after every frame so subscribers
    /// blocked in `wait` wake at once. Only subscribers that have called `wait` register
    /// a listener, so the signal costs nothing measurable while every subscriber only
    /// polls; with `false`, `wait` polls with short sleeps instead (`poll` is unaffected
    /// either way).
    pub notify: bool,
    /// Remove stale resources of dead nodes when the transport is created.
    pub cleanup_dead_nodes: bool,
}

impl Default for IceoryxConfig {
    fn default() -> Self {
        Self { prefix: "strata".to_owned(), notify: true, cleanup_dead_nodes: true }
    }
}

impl IceoryxConfig {
    /// Sets [`IceoryxConfig::prefix`].
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`IceoryxConfig::notify`].
    #[must_use]
    pub fn with_notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }

    /// Sets [`IceoryxConfig::cleanup_dead_nodes`].
    #[must_use]
    pub fn with_cleanup_dead_nodes(mut self, on: bool) -> Self {
        self.cleanup_dead_nodes = on;
        self
    }
}

/// What a dead-node cleanup did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Dead nodes whose resources were removed.
    pub removed: usize,
    /// Dead nodes that could not be cleaned (permissions, or another process is on it).
    pub failed: usize,
}

/// Removes the stale shared-memory resources of every dead iceoryx2 node (a process
/// that died without dropping its endpoints), using iceoryx2's own node list.
pub fn cleanup_dead_nodes() -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    Node::<Svc>::list(Config::global_config(), |state| {
        if let NodeState::Dead(view) = state {
            let id = format!("{:?}", view.id());
            match view.try_remove_stale_resources() {
                Ok(()) => {
                    report.removed += 1;
                    tracing::info!(node = %id, "removed the stale resources of a dead iceoryx2 node");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(node = %id, error = ?e, "could not clean up a dead iceoryx2 node");
                }
            }
        }
        CallbackProgression::Continue
    })
    .map_err(|e| Error::transport(NAME, "", format!("listing iceoryx2 nodes failed: {e:?}")))?;
    Ok(report)
}

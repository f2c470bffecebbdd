//! Strata's shared-memory [`Transport`] on [iceoryx2](https://iceoryx.io): zero-copy
//! publish-subscribe of framed byte payloads between threads and processes of one host.
//!
//! Each topic maps to iceoryx2 services named `<prefix>/<topic>/<policy>` (publish-subscribe
//! on `[u8]` slices, 16-byte aligned so rkyv archives can be read in place, with the
//! [`FrameHeader`] in the user header) and `<prefix>/<topic>/event` (an event service whose
//! notifier wakes subscribers blocked in [`TopicSubscriber::wait`]). A subscriber registers
//! its event listener only when it first waits, so publishing to subscribers that only
//! `poll` (busy-polling consumers) signals nobody and costs no more than the sample.
//!
//! The slow-subscriber policy decides which publish-subscribe service a publisher uses:
//!
//! | policy | service | iceoryx2 setting |
//! |---|---|---|
//! | [`SlowSubscriberPolicy::Block`] | `<topic>/block` | no safe overflow, publisher backpressure `RetryUntilDelivered` |
//! | [`SlowSubscriberPolicy::DropOldest`] | `<topic>/drop-oldest` | safe overflow (the oldest queued sample is overwritten) |
//! | [`SlowSubscriberPolicy::Disconnect`] | — | refused with [`Error::Unsupported`]: iceoryx2 cannot cut one subscriber off |
//!
//! A subscriber listens on both services, so it receives from publishers of either policy
//! without knowing it in advance. `poll` receives only from services that have (or had
//! at the last look) a publisher, `wait` from both. Sequence gaps (frames overwritten
//! under drop-oldest) are reported by [`GapTracker`] from the frame numbers.
//!
//! Creating a transport removes the stale resources of dead iceoryx2 nodes (processes that
//! were killed while holding endpoints) through iceoryx2's own `Node::list` and
//! `DeadNodeView::try_remove_stale_resources`; `/dev/shm` is never wiped by hand.
//!
//! The crate's parts: `transport.rs` (the transport, its services and nodes),
//! `publisher.rs` and `subscriber.rs` (the endpoints and how they are opened),
//! `wire.rs` (the frame header in shared memory and the service layout every endpoint
//! agrees on), `config.rs` (set-up and dead-node cleanup).

#[cfg(feature = "bench")]
pub mod bench;
mod config;
mod publisher;
mod subscriber;
mod transport;
mod wire;

use iceoryx2::prelude::*;
#[cfg(doc)]
use strata_core::{
    Error, FrameHeader, GapTracker, SlowSubscriberPolicy, TopicSubscriber, Transport,
};

pub use config::{CleanupReport, IceoryxConfig, cleanup_dead_nodes};
pub use publisher::IceoryxPublisher;
pub use subscriber::IceoryxSubscriber;
pub use transport::IceoryxTransport;
pub use wire::WireHeader;
#[cfg(feature = "bench")]
pub(crate) use wire::alignment;

/// The iceoryx2 service flavour the transport uses: inter-process, single-threaded
/// ports. Its handles are reference-counted without atomics and so not `Send`; each
/// endpoint owns its own node and every handle created from it, and is `Send` as a
/// whole (see the `unsafe impl Send` on the endpoints). The thread-safe flavour
/// (`ipc_threadsafe`) would make them `Send` directly but puts a mutex in front of every
/// port operation: 1.5-1.7x the one-way latency of this one in `strata bench
/// distribution`.
pub type Svc = ipc::Service;

const NAME: &str = "iceoryx";

/// Publishers a topic admits at once (a restarting publisher needs a second slot while
/// the old one is being dropped).
const MAX_PUBLISHERS: usize = 8;
/// Notifiers and listeners the event service of a topic admits.
const MAX_EVENT_PORTS: usize = 256;
/// Nodes (transports) that may open one topic.
const MAX_NODES: usize = 64;
/// Payload alignment: enough for rkyv archives to be accessed in place.
pub const PAYLOAD_ALIGNMENT: usize = 16;

/// Lowers iceoryx2's own console logging to errors, unless `IOX2_LOG_LEVEL` says
/// otherwise. iceoryx2 warns on stderr about routine events — no config file loaded,
/// a dead node's storage already removed during cleanup — which drown a command-line
/// tool's output; its errors are still printed. Process-wide: call it once at start.
pub fn quiet_iceoryx_logs() {
    set_log_level_from_env_or(LogLevel::Error);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn endpoints_are_send() {
        assert_send::<IceoryxPublisher>();
        assert_send::<IceoryxSubscriber>();
    }
}

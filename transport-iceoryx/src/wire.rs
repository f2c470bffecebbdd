//! The frame header as it travels in shared memory, and the part of a topic's
//! publish-subscribe service every endpoint must agree on.

use iceoryx2::prelude::*;
use strata_core::{Error, FrameHeader, Result, SlowSubscriberPolicy, StreamId};

use crate::{PAYLOAD_ALIGNMENT, Svc};

pub(crate) fn alignment() -> Result<Alignment> {
    Alignment::new(PAYLOAD_ALIGNMENT).ok_or_else(|| {
        Error::Config(format!("payload alignment {PAYLOAD_ALIGNMENT} is not a power of two"))
    })
}

/// The part of a topic's publish-subscribe service that every endpoint must agree on:
/// payload and header types, alignment, and the policy's overflow behaviour.
pub(crate) fn pubsub_builder(
    node: &Node<Svc>,
    name: &ServiceName,
    policy: SlowSubscriberPolicy,
) -> Result<iceoryx2::service::builder::publish_subscribe::Builder<[u8], WireHeader, Svc>> {
    Ok(node
        .service_builder(name)
        .publish_subscribe::<[u8]>()
        .user_header::<WireHeader>()
        .payload_alignment(alignment()?)
        .enable_safe_overflow(policy == SlowSubscriberPolicy::DropOldest))
}

/// The frame numbering as it travels in the iceoryx2 user header.
///
/// `started_seq` and `started_ns` let a subscriber that has not received anything of
/// the stream yet tell what it missed: if it registered before the publisher's first
/// send, it was due every frame from `started_seq` on (iceoryx2 connects a publisher to
/// every subscriber registered before a send), so an overwritten beginning is a gap.
#[derive(Debug, Default, Clone, Copy, ZeroCopySend)]
#[repr(C)]
#[type_name("StrataFrameHeaderV3")]
pub struct WireHeader {
    /// [`FrameHeader::stream`].
    pub stream: u64,
    /// [`FrameHeader::seq`].
    pub seq: u64,
    /// [`FrameHeader::span`].
    pub span: u32,
    /// Zero; keeps the layout explicit.
    pub reserved: u32,
    /// The sequence of this publisher's first frame.
    pub started_seq: u64,
    /// `CLOCK_MONOTONIC` (host-wide) in ns, read just before this publisher's first send.
    pub started_ns: u64,
    /// [`FrameHeader::epoch`].
    pub epoch: u64,
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the host.
pub(crate) fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

impl WireHeader {
    pub(crate) fn frame(&self) -> FrameHeader {
        FrameHeader {
            stream: StreamId(self.stream),
            seq: self.seq,
            span: self.span,
            epoch: self.epoch,
        }
    }
}

//! Strata's distribution layer: the exchange schema ([`messages`]: the records an
//! exchange stores and streams, their keys and encodings), a publisher with its own dense
//! sequence and heartbeats, subscriber tiers (real-time, delayed, historical,
//! resumable), an in-process transport, a reliable publisher with acknowledgements and
//! redelivery, and the commit stream that publishes every batch the store commits.
//!
//! See `docs/stream.md` for the semantics of each piece.

pub mod commit;
pub mod error;
pub mod local;
pub mod messages;
pub mod publisher;
pub mod reliable;
pub mod resume;
pub mod tiers;

pub use commit::{CommitStream, CommittedOp, decode_batch};
pub use error::{Error, Result};
pub use local::LocalTransport;
pub use messages::{
    AccountUpdate, ArchivedMessage, ExchangeKey, Heartbeat, MarketL2, Message, MessageFrame,
    OrderInsert, Position, PriceLevel, Side, TimeInForce, TradeEvent,
};
pub use publisher::{Publisher, PublisherConfig};
pub use reliable::{
    ReliableHandle, ReliableOptions, ReliablePublisher, ReliableStats, ReliableSubscriber,
    ReliableSubscriberStats,
};
pub use resume::{
    Checkpoint, CommittedFrame, ResumableSubscriber, ResumeOptions, ResumeStats, Source,
};
pub use tiers::{
    CommitLog, DEFAULT_WINDOW, DelayedSubscriber, Event, HistoricalSubscriber, RealtimeStats,
    RealtimeSubscriber, Window, WindowAccuracy,
};

//! Strata's distribution layer: the exchange messages, a publisher with its own dense
//! sequence and heartbeats, subscriber tiers (real-time, delayed, historical,
//! resumable), an in-process transport, a reliable publisher with acknowledgements and
//! redelivery, and the commit stream that publishes every batch the store commits.
//!
//! See `docs/stream.md` for the semantics of each piece.

pub mod error;
pub mod messages;

pub use error::{Error, Result};
pub use messages::{
    AccountUpdate, ArchivedMessage, Heartbeat, MarketL2, Message, MessageFrame, Position,
    PriceLevel, Side, TradeEvent,
};

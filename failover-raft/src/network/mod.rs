//! Raft over plain TCP: length-prefixed, checksummed frames carrying JSON.

pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod messages;
pub(crate) mod server;

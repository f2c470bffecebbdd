//! The exchange schema: the one definition of the records an exchange stores and
//! streams. See the [module docs](super) for the encodings.

use serde::{Deserialize, Serialize};

use super::keys::ExchangeKey;

/// Side of an order; on a trade, the aggressor's side.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Bid: buys the instrument (on a trade: the buyer was the aggressor).
    Buy,
    /// Ask: sells the instrument (on a trade: the seller was the aggressor).
    Sell,
}

/// How long an order stays on the book.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Cancelled at the end of the trading day.
    Day,
    /// Rests until filled or cancelled.
    GoodTillCancel,
    /// Fills what it can immediately; the rest is cancelled.
    ImmediateOrCancel,
    /// Fills completely and immediately, or not at all.
    FillOrKill,
}

/// A new order entering the book. Stored under
/// [`order_key`](super::order_key)`(account, order_id)`.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct OrderInsert {
    /// Exchange-assigned order id, unique across the exchange.
    pub order_id: u64,
    /// Account placing the order.
    pub account: u32,
    /// The instrument.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks.
    pub price: i64,
    /// Quantity in lots.
    pub qty: u64,
    /// Lifetime of the order.
    pub time_in_force: TimeInForce,
    /// Time the exchange accepted the order, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// The client's own identifier for the order (free text).
    pub client_order_id: String,
}

/// A fill between a buy order and a sell order. Stored under
/// [`trade_key`](super::trade_key)`(trade_id)`.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct TradeEvent {
    /// Exchange-wide trade number.
    pub trade_id: u64,
    /// The instrument.
    pub symbol: String,
    /// Execution price in ticks.
    pub price: i64,
    /// Executed quantity in lots.
    pub qty: u64,
    /// Aggressor side.
    pub side: Side,
    /// The buying order.
    pub buy_order_id: u64,
    /// The selling order.
    pub sell_order_id: u64,
    /// Account owning the buying order.
    pub buy_account: u32,
    /// Account owning the selling order.
    pub sell_account: u32,
    /// Execution time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// Venue / clearing reference (free text).
    pub venue_ref: String,
}

/// A net position of an account in one instrument.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct Position {
    /// The instrument.
    pub symbol: String,
    /// Signed quantity in lots (negative: short).
    pub qty: i64,
}

/// An account's balance and positions after a change, overwritten on every change.
/// Stored under [`account_key`](super::account_key)`(account)`.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct AccountUpdate {
    /// The account.
    pub account: u32,
    /// Cash balance in the smallest currency unit.
    pub balance: i64,
    /// Balance not reserved by open orders, in the same unit.
    pub available: i64,
    /// Number of the account's orders resting on the book.
    pub open_orders: u32,
    /// Non-zero positions, one per instrument.
    pub positions: Vec<Position>,
    /// Time of the change, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// One price level of a book side.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct PriceLevel {
    /// Price in ticks.
    pub price: i64,
    /// Total quantity resting at the price.
    pub qty: u64,
}

/// Level-2 market data: the aggregated price levels of one symbol's book.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct MarketL2 {
    /// The instrument.
    pub symbol: String,
    /// Bid levels, best (highest) first.
    pub bids: Vec<PriceLevel>,
    /// Ask levels, best (lowest) first.
    pub asks: Vec<PriceLevel>,
    /// Book time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// A publisher's liveness beacon. It carries the last sequence the publisher sent
/// before it, so an idle subscriber that lost the last frames notices.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
pub struct Heartbeat {
    /// The publisher's stream id.
    pub stream: u64,
    /// The last sequence published before this heartbeat (0: none yet).
    pub last_seq: u64,
    /// Send time, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
}

/// Any record of the exchange: stored as a value ([`Message::encode`]), carried in
/// frames, sent as JSON. JSON form: `{"type": "trade", ...fields}`.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    PartialEq,
    Eq,
)]
#[rkyv(derive(Debug))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// A new order.
    Order(OrderInsert),
    /// A fill.
    Trade(TradeEvent),
    /// An account change.
    Account(AccountUpdate),
    /// Level-2 book data.
    L2(MarketL2),
    /// A heartbeat.
    Heartbeat(Heartbeat),
}

impl Message {
    /// A short name of the message kind (`"order"`, `"trade"`, `"account"`, `"l2"`,
    /// `"heartbeat"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Order(_) => "order",
            Message::Trade(_) => "trade",
            Message::Account(_) => "account",
            Message::L2(_) => "l2",
            Message::Heartbeat(_) => "heartbeat",
        }
    }

    /// The key the record is stored under: orders, trades and account updates have
    /// one ([`ExchangeKey`]); book data and heartbeats are not stored (`None`).
    pub fn exchange_key(&self) -> Option<ExchangeKey> {
        match self {
            Message::Order(o) => {
                Some(ExchangeKey::Order { account: o.account, order_id: o.order_id })
            }
            Message::Trade(t) => Some(ExchangeKey::Trade { trade_id: t.trade_id }),
            Message::Account(a) => Some(ExchangeKey::Account { account: a.account }),
            Message::L2(_) | Message::Heartbeat(_) => None,
        }
    }

    /// The encoded form of [`Message::exchange_key`].
    pub fn key(&self) -> Option<Vec<u8>> {
        self.exchange_key().map(|k| k.to_bytes())
    }
}

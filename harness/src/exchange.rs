//! The exchange schema: the records an exchange stores, their rkyv encoding and their keys.
//!
//! # Records
//!
//! Three record types, wrapped by [`ExchangeRecord`]: [`OrderInsert`] (a new order),
//! [`TradeExecuted`] (a fill between two orders) and [`AccountUpdate`] (an account's
//! balances and positions, overwritten on every change).
//!
//! # Value encoding
//!
//! A value is an [rkyv](https://docs.rs/rkyv/0.8) archive whose root holds
//! [`VALUE_MAGIC`], the value's total length and the [`ExchangeRecord`]. [`decode`]
//! validates it with bytecheck and checks magic and length: bytecheck only guarantees
//! memory safety, and a truncated archive can be a valid archive of some other record.
//!
//! An archive's length is always a multiple of [`ARCHIVE_ALIGN`] (the root object is last
//! and aligned). To reach an arbitrary byte length, [`encode_to_len`] adds zero padding:
//!
//! * whole multiples of [`ARCHIVE_ALIGN`] **before** the archive's objects (bytes no
//!   relative pointer refers to, which rkyv ignores), and
//! * `len % ARCHIVE_ALIGN` zero bytes **after** the archive.
//!
//! So for any value `v`, `&v[..v.len() - v.len() % ARCHIVE_ALIGN]` is a valid rkyv
//! archive and the remaining tail must be zero. [`encode`] never pads.
//!
//! # Keys
//!
//! Keys are binary and big-endian, so lexicographic order is numeric order:
//!
//! | kind | layout | length |
//! |---|---|---|
//! | order | `b'o'`, account id (u32 BE), order id (u64 BE) | [`ORDER_KEY_LEN`] |
//! | trade | `b't'`, trade sequence (u64 BE) | [`TRADE_KEY_LEN`] |
//! | account | `b'a'`, account id (u32 BE) | [`ACCOUNT_KEY_LEN`] |

use std::fmt;

use rkyv::rancor;
use rkyv::util::AlignedVec;

/// First byte of every order key.
pub const ORDER_PREFIX: u8 = b'o';
/// First byte of every trade key.
pub const TRADE_PREFIX: u8 = b't';
/// First byte of every account key.
pub const ACCOUNT_PREFIX: u8 = b'a';

/// Length of an order key: prefix, account id, order id.
pub const ORDER_KEY_LEN: usize = 1 + 4 + 8;
/// Length of a trade key: prefix, trade sequence.
pub const TRADE_KEY_LEN: usize = 1 + 8;
/// Length of an account key: prefix, account id.
pub const ACCOUNT_KEY_LEN: usize = 1 + 4;

/// Alignment of a value's archived root; every archive's length is a multiple of it, and a
/// value's trailing `len % ARCHIVE_ALIGN` bytes are padding.
pub const ARCHIVE_ALIGN: usize = align_of::<ArchivedEnvelope<'static>>();

/// Alignment of [`AlignedVec`]'s buffer, the one `decode` copies misaligned input into.
const BUFFER_ALIGN: usize = 16;

const _: () = assert!(ARCHIVE_ALIGN <= BUFFER_ALIGN && ARCHIVE_ALIGN.is_power_of_two());

/// Side of an order.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Bid: buys the instrument.
    Buy,
    /// Ask: sells the instrument.
    Sell,
}

/// How long an order stays on the book.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
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

/// A new order entering the book. Key: [`order_key`]`(account_id, order_id)`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OrderInsert {
    /// Account placing the order.
    pub account_id: u32,
    /// Exchange-assigned order id, unique across the exchange.
    pub order_id: u64,
    /// Instrument traded.
    pub instrument_id: u32,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks.
    pub price_ticks: i64,
    /// Quantity in lots.
    pub quantity: u64,
    /// Lifetime of the order.
    pub time_in_force: TimeInForce,
    /// Time the exchange accepted the order, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The client's own identifier for the order (free text).
    pub client_order_id: String,
}

/// A fill between a buy order and a sell order. Key: [`trade_key`]`(trade_seq)`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TradeExecuted {
    /// Exchange-wide trade sequence number.
    pub trade_seq: u64,
    /// Instrument traded.
    pub instrument_id: u32,
    /// Execution price in ticks.
    pub price_ticks: i64,
    /// Executed quantity in lots.
    pub quantity: u64,
    /// The buying order.
    pub buy_order_id: u64,
    /// The selling order.
    pub sell_order_id: u64,
    /// Account owning the buying order.
    pub buy_account: u32,
    /// Account owning the selling order.
    pub sell_account: u32,
    /// Execution time, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Venue / clearing reference (free text).
    pub venue_ref: String,
}

/// A net position of an account in one instrument.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Instrument held.
    pub instrument_id: u32,
    /// Signed quantity in lots (negative is short).
    pub quantity: i64,
}

/// The current state of an account, overwritten on every change.
/// Key: [`account_key`]`(account_id)`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AccountUpdate {
    /// The account.
    pub account_id: u32,
    /// Cash balance in ticks.
    pub balance_ticks: i64,
    /// Balance not reserved by open orders, in ticks.
    pub available_ticks: i64,
    /// Number of orders resting on the book.
    pub open_orders: u32,
    /// Non-zero positions, one per instrument.
    pub positions: Vec<Position>,
    /// Time of the update, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// Any record the exchange stores.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ExchangeRecord {
    /// A new order.
    Order(OrderInsert),
    /// An execution.
    Trade(TradeExecuted),
    /// An account snapshot.
    Account(AccountUpdate),
}

impl ExchangeRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> Vec<u8> {
        self.exchange_key().to_bytes()
    }

    /// The parsed form of [`ExchangeRecord::key`].
    pub fn exchange_key(&self) -> ExchangeKey {
        match self {
            Self::Order(o) => ExchangeKey::Order { account_id: o.account_id, order_id: o.order_id },
            Self::Trade(t) => ExchangeKey::Trade { trade_seq: t.trade_seq },
            Self::Account(a) => ExchangeKey::Account { account_id: a.account_id },
        }
    }
}

/// The key of an order: `b'o'`, `account_id` (BE), `order_id` (BE).
pub fn order_key(account_id: u32, order_id: u64) -> [u8; ORDER_KEY_LEN] {
    let mut key = [0u8; ORDER_KEY_LEN];
    key[0] = ORDER_PREFIX;
    key[1..5].copy_from_slice(&account_id.to_be_bytes());
    key[5..].copy_from_slice(&order_id.to_be_bytes());
    key
}

/// The key of a trade: `b't'`, `trade_seq` (BE).
pub fn trade_key(trade_seq: u64) -> [u8; TRADE_KEY_LEN] {
    let mut key = [0u8; TRADE_KEY_LEN];
    key[0] = TRADE_PREFIX;
    key[1..].copy_from_slice(&trade_seq.to_be_bytes());
    key
}

/// The key of an account: `b'a'`, `account_id` (BE).
pub fn account_key(account_id: u32) -> [u8; ACCOUNT_KEY_LEN] {
    let mut key = [0u8; ACCOUNT_KEY_LEN];
    key[0] = ACCOUNT_PREFIX;
    key[1..].copy_from_slice(&account_id.to_be_bytes());
    key
}

/// A parsed exchange key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKey {
    /// An [`OrderInsert`]'s key.
    Order {
        /// Account owning the order.
        account_id: u32,
        /// The order.
        order_id: u64,
    },
    /// A [`TradeExecuted`]'s key.
    Trade {
        /// The trade's sequence number.
        trade_seq: u64,
    },
    /// An [`AccountUpdate`]'s key.
    Account {
        /// The account.
        account_id: u32,
    },
}

impl ExchangeKey {
    /// Parses a key made by [`order_key`], [`trade_key`] or [`account_key`]; `None` when
    /// the prefix is unknown or the length does not match the prefix.
    pub fn parse(key: &[u8]) -> Option<Self> {
        let (&prefix, rest) = key.split_first()?;
        match prefix {
            ORDER_PREFIX => {
                let (account, order) = rest.split_first_chunk::<4>()?;
                let order: &[u8; 8] = order.try_into().ok()?;
                Some(Self::Order {
                    account_id: u32::from_be_bytes(*account),
                    order_id: u64::from_be_bytes(*order),
                })
            }
            TRADE_PREFIX => {
                let seq: &[u8; 8] = rest.try_into().ok()?;
                Some(Self::Trade { trade_seq: u64::from_be_bytes(*seq) })
            }
            ACCOUNT_PREFIX => {
                let account: &[u8; 4] = rest.try_into().ok()?;
                Some(Self::Account { account_id: u32::from_be_bytes(*account) })
            }
            _ => None,
        }
    }

    /// The encoded key.
    pub fn to_bytes(&self) -> Vec<u8> {
        match *self {
            Self::Order { account_id, order_id } => order_key(account_id, order_id).to_vec(),
            Self::Trade { trade_seq } => trade_key(trade_seq).to_vec(),
            Self::Account { account_id } => account_key(account_id).to_vec(),
        }
    }
}

/// Why a record could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(String);

impl EncodeError {
    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode exchange record: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Why bytes could not be decoded into an [`ExchangeRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    /// What was wrong with the bytes.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid exchange record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// First field of every encoded value's root ("STRX" in ASCII, big-endian).
pub const VALUE_MAGIC: u32 = 0x5354_5258;

/// The archived root of every value: a magic number and the value's total length guard
/// against garbage and truncation (bytecheck alone only guarantees memory safety: a
/// truncated archive can still be a valid archive of some other record).
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Envelope<'a> {
    magic: u32,
    /// Length of the whole value, padding included.
    len: u32,
    #[rkyv(with = rkyv::with::Inline)]
    record: &'a ExchangeRecord,
}

/// Encodes `record` as a plain rkyv archive (no padding); its length is a multiple of
/// [`ARCHIVE_ALIGN`].
pub fn encode(record: &ExchangeRecord) -> Result<AlignedVec, EncodeError> {
    encode_to_len(record, 0)
}

/// The length of `record`'s plain archive ([`encode`]), the smallest length
/// [`encode_to_len`] can produce for it.
pub fn encoded_len(record: &ExchangeRecord) -> Result<usize, EncodeError> {
    Ok(serialize(record, 0, 0)?.len())
}

/// Encodes `record` into exactly `len` bytes when `len` is at least [`encoded_len`]
/// (see the [module docs](self) for the padding layout); otherwise returns the plain
/// archive, which is then longer than `len`. The result always [`decode`]s.
pub fn encode_to_len(record: &ExchangeRecord, len: usize) -> Result<AlignedVec, EncodeError> {
    // Optimistically assume no lead padding is needed (callers usually size the record
    // for `len`): then one serialization suffices. The archive's length does not depend
    // on the recorded total length.
    let mut out = serialize(record, 0, len)?;
    let plain = out.len();
    if plain > len {
        return serialize(record, 0, plain);
    }
    let extra = len - plain;
    if extra >= ARCHIVE_ALIGN {
        out = serialize(record, extra - extra % ARCHIVE_ALIGN, len)?;
        if out.len() > len || len - out.len() >= ARCHIVE_ALIGN {
            return Err(EncodeError(format!(
                "padded archive is {} bytes, cannot pad it to {len}",
                out.len()
            )));
        }
    }
    out.resize(len, 0);
    Ok(out)
}

/// Serializes the envelope of `record` after `lead` zero bytes, recording `total_len`.
fn serialize(
    record: &ExchangeRecord,
    lead: usize,
    total_len: usize,
) -> Result<AlignedVec, EncodeError> {
    let len = u32::try_from(total_len)
        .map_err(|_| EncodeError(format!("a value of {total_len} bytes is too large")))?;
    let mut out = AlignedVec::with_capacity(lead.max(total_len));
    // Positions stay aligned (lead is a multiple of the archive alignment) and relative
    // pointers do not care where the archive starts, so the lead bytes are just ignored.
    out.resize(lead, 0);
    let envelope = Envelope { magic: VALUE_MAGIC, len, record };
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(&envelope, out)
        .map_err(|e| EncodeError(e.to_string()))
}

/// Validates and decodes a value made by [`encode`] or [`encode_to_len`].
///
/// Accepts any alignment of `bytes` (misaligned input is copied into an aligned buffer
/// first). bytecheck validates the archive; the root's magic number and recorded length
/// must match and trailing padding must be zero. Garbage, truncated or extended input
/// gives an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<ExchangeRecord, DecodeError> {
    let archive_len = bytes.len() - bytes.len() % ARCHIVE_ALIGN;
    let (archive, padding) = bytes.split_at(archive_len);
    if padding.iter().any(|&b| b != 0) {
        return Err(DecodeError(format!(
            "the {} trailing padding bytes are not zero",
            padding.len()
        )));
    }
    if archive.len() < size_of::<ArchivedEnvelope<'static>>() {
        return Err(DecodeError(format!("{} bytes is too short for a value", bytes.len())));
    }
    if archive.as_ptr().addr() % ARCHIVE_ALIGN == 0 {
        decode_aligned(archive, bytes.len())
    } else {
        let mut aligned = AlignedVec::<BUFFER_ALIGN>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        decode_aligned(&aligned, bytes.len())
    }
}

fn decode_aligned(archive: &[u8], total_len: usize) -> Result<ExchangeRecord, DecodeError> {
    let envelope = rkyv::access::<ArchivedEnvelope<'static>, rancor::Error>(archive)
        .map_err(|e| DecodeError(e.to_string()))?;
    let magic = envelope.magic.to_native();
    if magic != VALUE_MAGIC {
        return Err(DecodeError(format!("bad magic number {magic:#010x}")));
    }
    let len = envelope.len.to_native();
    if usize::try_from(len).ok() != Some(total_len) {
        return Err(DecodeError(format!(
            "value is {total_len} bytes but was encoded as {len} (truncated or extended)"
        )));
    }
    rkyv::deserialize::<ExchangeRecord, rancor::Error>(&envelope.record)
        .map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn order() -> ExchangeRecord {
        ExchangeRecord::Order(OrderInsert {
            account_id: 42,
            order_id: 0x0102_0304_0506_0708,
            instrument_id: 7,
            side: Side::Sell,
            price_ticks: -12_345,
            quantity: 100,
            time_in_force: TimeInForce::ImmediateOrCancel,
            timestamp_ns: 1_700_000_000_000_000_000,
            client_order_id: "CL-42-abcdefghijklmnopqrstuvwxyz".into(),
        })
    }

    fn trade() -> ExchangeRecord {
        ExchangeRecord::Trade(TradeExecuted {
            trade_seq: 99,
            instrument_id: 3,
            price_ticks: 1_000_250,
            quantity: 5,
            buy_order_id: 11,
            sell_order_id: 12,
            buy_account: 1,
            sell_account: 2,
            timestamp_ns: 1_700_000_000_000_000_001,
            venue_ref: "XNAS".into(),
        })
    }

    fn account() -> ExchangeRecord {
        ExchangeRecord::Account(AccountUpdate {
            account_id: 9,
            balance_ticks: 10_000_000,
            available_ticks: 9_000_000,
            open_orders: 3,
            positions: vec![
                Position { instrument_id: 1, quantity: -50 },
                Position { instrument_id: 4, quantity: 25 },
            ],
            timestamp_ns: 1_700_000_000_000_000_002,
        })
    }

    fn samples() -> [ExchangeRecord; 3] {
        [order(), trade(), account()]
    }

    #[test]
    fn each_record_round_trips() {
        for record in samples() {
            let bytes = encode(&record).expect("encode");
            assert_eq!(bytes.len() % ARCHIVE_ALIGN, 0);
            assert_eq!(decode(&bytes).expect("decode"), record);
        }
    }

    #[test]
    fn decode_accepts_misaligned_input() {
        for record in samples() {
            let bytes = encode(&record).expect("encode");
            let mut shifted = vec![0u8; bytes.len() + 1];
            shifted[1..].copy_from_slice(&bytes);
            assert_eq!(decode(&shifted[1..]).expect("decode"), record);
        }
    }

    #[test]
    fn encode_to_len_hits_every_length_from_the_plain_size() {
        for record in samples() {
            let plain = encode(&record).expect("encode").len();
            for len in plain..plain + 3 * ARCHIVE_ALIGN + 1 {
                let bytes = encode_to_len(&record, len).expect("encode");
                assert_eq!(bytes.len(), len);
                assert_eq!(decode(&bytes).expect("decode"), record, "len {len}");
                let mut shifted = vec![0u8; len + 3];
                shifted[3..].copy_from_slice(&bytes);
                assert_eq!(decode(&shifted[3..]).expect("decode"), record, "len {len}");
            }
            let short = encode_to_len(&record, 1).expect("encode");
            assert_eq!(short.len(), plain);
        }
    }

    #[test]
    fn non_zero_padding_is_rejected() {
        let mut bytes = encode(&order()).expect("encode").to_vec();
        bytes.push(1);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn truncated_and_empty_input_is_rejected() {
        assert!(decode(&[]).is_err());
        for record in samples() {
            let bytes = encode(&record).expect("encode");
            for cut in 0..bytes.len() {
                if let Ok(decoded) = decode(&bytes[..cut]) {
                    panic!("cut at {cut} decoded as {decoded:?}");
                }
            }
        }
    }

    #[test]
    fn truncated_padded_values_are_rejected() {
        for record in samples() {
            let plain = encode(&record).expect("encode").len();
            let bytes = encode_to_len(&record, plain + 2 * ARCHIVE_ALIGN + 3).expect("encode");
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
                assert!(decode(&bytes[cut + 1..]).is_err(), "front cut at {cut}");
                let mut longer = bytes.to_vec();
                longer.resize(bytes.len() + cut + 1, 0);
                assert!(decode(&longer).is_err(), "extended by {}", cut + 1);
            }
        }
    }

    #[test]
    fn corrupted_enum_tags_are_rejected() {
        let bytes = encode(&trade()).expect("encode");
        let root = bytes.len() - size_of::<ArchivedEnvelope<'static>>();
        let tag = root + std::mem::offset_of!(ArchivedEnvelope<'static>, record);
        let mut corrupt = bytes.to_vec();
        assert!(corrupt[tag] < 3, "the record's tag is the first byte of the record");
        corrupt[tag] = 0xEE;
        let err = decode(&corrupt).expect_err("bad tag");
        assert!(!err.message().is_empty());
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let bytes = encode(&account()).expect("encode");
        let root = bytes.len() - size_of::<ArchivedEnvelope<'static>>();
        let magic = root + std::mem::offset_of!(ArchivedEnvelope<'static>, magic);
        let mut corrupt = bytes.to_vec();
        corrupt[magic] ^= 0x01;
        let err = decode(&corrupt).expect_err("bad magic");
        assert!(err.to_string().contains("magic"), "{err}");
    }

    #[test]
    fn keys_have_the_documented_layout_and_parse_back() {
        let o = order_key(0x0A0B_0C0D, 0x1122_3344_5566_7788);
        assert_eq!(
            o,
            [b'o', 0x0A, 0x0B, 0x0C, 0x0D, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(trade_key(258), [b't', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(account_key(258), [b'a', 0, 0, 1, 2]);
        assert_eq!(
            ExchangeKey::parse(&o),
            Some(ExchangeKey::Order { account_id: 0x0A0B_0C0D, order_id: 0x1122_3344_5566_7788 })
        );
        assert_eq!(ExchangeKey::parse(&trade_key(5)), Some(ExchangeKey::Trade { trade_seq: 5 }));
        assert_eq!(
            ExchangeKey::parse(&account_key(5)),
            Some(ExchangeKey::Account { account_id: 5 })
        );
        for record in samples() {
            assert_eq!(ExchangeKey::parse(&record.key()), Some(record.exchange_key()));
        }
        assert_eq!(ExchangeKey::parse(b""), None);
        assert_eq!(ExchangeKey::parse(b"x1234"), None);
        assert_eq!(ExchangeKey::parse(&o[..12]), None);
        assert_eq!(ExchangeKey::parse(&account_key(1)[..4]), None);
    }

    #[test]
    fn key_order_is_numeric_order() {
        assert!(trade_key(255) < trade_key(256));
        assert!(account_key(255) < account_key(65_536));
        assert!(order_key(1, u64::MAX) < order_key(2, 0));
        assert!(order_key(1, 255) < order_key(1, 256));
    }

    proptest! {
        #[test]
        fn decode_of_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_of_mutated_archives_never_panics(
            pick in 0usize..3,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = encode(&samples()[pick]).expect("encode").to_vec();
            for (at, xor) in flips {
                let len = bytes.len();
                bytes[at % len] ^= xor;
            }
            let cut = cut % (bytes.len() + 1);
            let _ = decode(&bytes[..cut]);
            let _ = decode(&bytes);
        }

        #[test]
        fn any_order_round_trips(
            account_id in any::<u32>(),
            order_id in any::<u64>(),
            price_ticks in any::<i64>(),
            client_order_id in ".{0,80}",
            len in 0usize..400,
        ) {
            let record = ExchangeRecord::Order(OrderInsert {
                account_id,
                order_id,
                instrument_id: 1,
                side: Side::Buy,
                price_ticks,
                quantity: 1,
                time_in_force: TimeInForce::Day,
                timestamp_ns: 0,
                client_order_id,
            });
            let bytes = encode_to_len(&record, len).expect("encode");
            prop_assert!(bytes.len() >= len);
            prop_assert_eq!(decode(&bytes).expect("decode"), record.clone());
            prop_assert_eq!(ExchangeKey::parse(&record.key()), Some(record.exchange_key()));
        }
    }
}

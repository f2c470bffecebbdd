//! A seeded, deterministic exchange workload: the puts an exchange makes, with
//! realistic keys and rkyv-encoded values of the exchange schema
//! ([`strata_stream::messages`]).
//!
//! # Mix
//!
//! [`ExchangeWorkload::next_op`] draws:
//!
//! * ~50% order inserts: fresh order ids, increasing by one per generator, for an account
//!   derived from the order id (so orders land all over the key space);
//! * ~20% trades: dense trade sequence numbers, between orders this generator wrote;
//! * ~30% account updates: a uniformly random account, overwritten.
//!
//! Every operation is a put. The same [`WorkloadConfig`] and writer index always
//! produce the same operations (on the same platform and `rand` version: `SmallRng` is
//! not portable across them).
//!
//! # Writers
//!
//! [`ExchangeWorkload::for_writer`] gives each writer thread its own generator: order ids
//! and trade sequences carry the writer index in their top [`WRITER_BITS`] bits, so
//! writers never produce the same order or trade key (accounts are shared and
//! overwritten by everyone, as on a real exchange). Writers of one run must share one
//! [`WorkloadConfig`]. A writer generates at most 2^47 trades and 2^48 orders.
//!
//! # Value sizes
//!
//! By default each value's length is drawn uniformly from 100..=300 bytes. With
//! [`WorkloadConfig::value_size`] set to `Some(n)`, every value is exactly `n` bytes when
//! `n` is at least [`ExchangeWorkload::min_value_size`] (96 bytes with rkyv 0.8's default
//! format), and exactly that minimum otherwise. Lengths are reached by sizing the free-text
//! field (`client_order_id`, `venue_ref`) or the number of positions of an account, and
//! the last few bytes by [`Message::encode_to_len`]'s padding. Instruments are named
//! `I` + their id in base 36 (at most 8 bytes, which rkyv stores inline, so a record's
//! size does not depend on its instrument). `n` is capped at
//! [`strata_core::batch::MAX_VALUE_BYTES`].

use std::collections::HashSet;
use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_core::WriteBatch;
use strata_core::batch::MAX_VALUE_BYTES;

use strata_stream::messages::{
    ARCHIVE_ALIGN, AccountUpdate, Message, OrderInsert, Position, Side, TimeInForce, TradeEvent,
    account_key, order_key, trade_key,
};

/// Number of high bits of order ids and trade sequences holding the writer index.
pub const WRITER_BITS: u32 = 16;
/// Shift of the writer index inside order ids and trade sequences.
const WRITER_SHIFT: u32 = u64::BITS - WRITER_BITS;
/// Bit of a trade sequence's per-writer counter that generated trades never set; miss
/// keys for trades set it.
const TRADE_MISS_BIT: u64 = 1 << (WRITER_SHIFT - 1);

/// Smallest and largest default value length, in bytes.
const DEFAULT_VALUE_SIZES: std::ops::RangeInclusive<usize> = 100..=300;
/// Start of the simulated clock (2023-11-14), in nanoseconds since the Unix epoch.
const EPOCH_NS: u64 = 1_700_000_000_000_000_000;
/// Length a free-text field may have without enlarging the archive (rkyv inlines it).
const INLINE_STRING: usize = 8;
/// Characters of generated free text (ASCII, 64 of them: 6 random bits each).
const TEXT_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Archive bytes one account position costs, when the measurement fails.
const FALLBACK_POSITION_LEN: usize = 16;

/// Parameters of an [`ExchangeWorkload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of accounts, ids `0..accounts` (default 10 000; 0 is treated as 1).
    pub accounts: u32,
    /// Number of instruments, ids `0..instruments` (default 500; 0 is treated as 1).
    pub instruments: u32,
    /// Exact value length in bytes; `None` draws each from 100..=300 (see the
    /// [module docs](self) for values below the minimum).
    pub value_size: Option<usize>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self { seed: 0, accounts: 10_000, instruments: 500, value_size: None }
    }
}

/// What an [`Op`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// An [`OrderInsert`] under an order key.
    OrderInsert,
    /// A [`TradeEvent`] under a trade key.
    Trade,
    /// An [`AccountUpdate`] under an account key (overwrites).
    AccountUpdate,
}

/// One generated put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The key ([`order_key`], [`trade_key`] or [`account_key`]).
    pub key: Vec<u8>,
    /// The value, decodable with [`Message::decode`].
    pub value: Vec<u8>,
    /// Which record the value holds.
    pub kind: OpKind,
}

/// A deterministic generator of exchange puts and of keys to read back.
#[derive(Debug, Clone)]
pub struct ExchangeWorkload {
    config: WorkloadConfig,
    accounts: u32,
    instruments: u32,
    writer: u16,
    /// Writer index shifted into the id's top bits.
    id_base: u64,
    /// Drives the write stream.
    rng: SmallRng,
    /// Drives [`ExchangeWorkload::key_for_read`], so reads never perturb the writes.
    read_rng: SmallRng,
    orders: u64,
    trades: u64,
    ops: u64,
    clock_ns: u64,
    /// Accounts this generator updated, in first-update order, and the same as a set.
    touched: Vec<u32>,
    touched_set: HashSet<u32>,
    /// Encoded length of a record with empty free text and no positions.
    min_value_len: usize,
    position_len: usize,
}

impl ExchangeWorkload {
    /// A single generator (the same as writer 0 of [`ExchangeWorkload::for_writer`]).
    pub fn new(config: WorkloadConfig) -> Self {
        Self::for_writer(config, 0)
    }

    /// The generator of writer `writer_index`: order ids and trade sequences are
    /// `writer << 48 | counter`, so writers never collide on order or trade keys; each
    /// writer also draws its own random stream. Only the low [`WRITER_BITS`] bits of
    /// `writer_index` count (`writer = writer_index % 65536`): indices equal modulo 2^16
    /// are the same writer.
    pub fn for_writer(config: WorkloadConfig, writer_index: usize) -> Self {
        let writer_index = (writer_index & usize::from(u16::MAX)) as u16;
        let stream = u64::from(writer_index).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let seed = config.seed.wrapping_add(stream);
        let min_value_len =
            account_record(0, Vec::new()).encoded_len().unwrap_or(*DEFAULT_VALUE_SIZES.start());
        let one_position = vec![Position { symbol: symbol(u32::MAX), qty: 0 }];
        let position_len = account_record(0, one_position)
            .encoded_len()
            .ok()
            .and_then(|len| len.checked_sub(min_value_len))
            .filter(|&len| len > 0)
            .unwrap_or(FALLBACK_POSITION_LEN);
        Self {
            accounts: config.accounts.max(1),
            instruments: config.instruments.max(1),
            writer: writer_index,
            id_base: u64::from(writer_index) << WRITER_SHIFT,
            rng: SmallRng::seed_from_u64(seed),
            read_rng: SmallRng::seed_from_u64(splitmix64(seed ^ 0x5245_4144_5245_4144)),
            orders: 0,
            trades: 0,
            ops: 0,
            clock_ns: EPOCH_NS,
            touched: Vec::new(),
            touched_set: HashSet::new(),
            min_value_len,
            position_len,
            config,
        }
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// This generator's writer index (after folding to [`WRITER_BITS`] bits).
    pub fn writer_index(&self) -> u16 {
        self.writer
    }

    /// Number of operations generated so far.
    pub fn ops_generated(&self) -> u64 {
        self.ops
    }

    /// Number of order inserts generated so far.
    pub fn orders_generated(&self) -> u64 {
        self.orders
    }

    /// Number of trades generated so far.
    pub fn trades_generated(&self) -> u64 {
        self.trades
    }

    /// Number of distinct accounts updated so far.
    pub fn accounts_updated(&self) -> usize {
        self.touched.len()
    }

    /// The smallest value this generator can produce, in bytes (`value_size` below it
    /// yields values of exactly this length).
    pub fn min_value_size(&self) -> usize {
        self.min_value_len
    }

    /// The next put.
    pub fn next_op(&mut self) -> Op {
        self.ops += 1;
        self.clock_ns = self.clock_ns.saturating_add(self.rng.gen_range(1..=10_000));
        let target = match self.config.value_size {
            Some(n) => n.min(MAX_VALUE_BYTES),
            None => self.rng.gen_range(DEFAULT_VALUE_SIZES),
        };
        // Bytes the archive may take (padding covers `target % ARCHIVE_ALIGN`) beyond the
        // minimum; free text shorter than INLINE_STRING costs nothing, longer text costs
        // its length rounded up to the alignment.
        let budget = target - target % ARCHIVE_ALIGN;
        let spare = budget.saturating_sub(self.min_value_len);
        let text_len = if spare > INLINE_STRING { spare } else { INLINE_STRING.min(spare) };
        let (kind, record) = match self.rng.gen_range(0..100u32) {
            0..50 => (OpKind::OrderInsert, self.order(text_len)),
            50..70 => (OpKind::Trade, self.trade(text_len)),
            _ => (OpKind::AccountUpdate, self.account(spare / self.position_len)),
        };
        // Orders, trades and accounts always have a key.
        let key = record.key().unwrap_or_default();
        // Encoding cannot fail: every length involved is below MAX_VALUE_BYTES, far
        // below rkyv's 32-bit offsets. Should it ever, the empty value fails `decode`.
        let value = record.encode_to_len(target).map(|v| v.to_vec());
        debug_assert!(value.is_ok(), "encoding failed: {value:?}");
        Op { key, value: value.unwrap_or_default(), kind }
    }

    /// Appends `ops` generated puts to `batch`.
    pub fn fill_batch(&mut self, batch: &mut WriteBatch, ops: usize) {
        for _ in 0..ops {
            let op = self.next_op();
            batch.put(&op.key, &op.value);
        }
    }

    /// A key to read: with `hit`, one this generator has produced (uniform over the
    /// distinct keys generated so far); without, one no generator of the same
    /// [`WorkloadConfig`] ever produces, shaped like the real keys (~50% order keys
    /// interleaved with real orders, ~20% trade keys, ~30% account keys past the last
    /// account). A hit asked for before anything was generated returns a miss.
    ///
    /// Reads draw from their own random stream: they never change the operations
    /// generated.
    pub fn key_for_read(&mut self, hit: bool) -> Vec<u8> {
        let touched = self.touched.len() as u64;
        let total = self.orders + self.trades + touched;
        if hit && total > 0 {
            let pick = self.read_rng.gen_range(0..total);
            if pick < self.orders {
                let order_id = self.id_base | pick;
                return order_key(self.account_of(order_id), order_id).to_vec();
            }
            let pick = pick - self.orders;
            if pick < self.trades {
                return trade_key(self.id_base | pick).to_vec();
            }
            let index = usize::try_from(pick - self.trades).unwrap_or(0);
            let account = self.touched.get(index).copied().unwrap_or(0);
            return account_key(account).to_vec();
        }
        match self.read_rng.gen_range(0..100u32) {
            0..50 => {
                // Every generated order key uses `account_of(order_id)`; any other
                // account (or account 1 when only account 0 exists) is never written.
                let order_id = self.id_base | self.read_rng.gen_range(0..self.orders.max(1));
                let real = self.account_of(order_id);
                let account = if self.accounts < 2 {
                    1
                } else {
                    let shift = self.read_rng.gen_range(1..self.accounts);
                    let sum = u64::from(real) + u64::from(shift);
                    u32::try_from(sum % u64::from(self.accounts)).unwrap_or(0)
                };
                order_key(account, order_id).to_vec()
            }
            50..70 => {
                let counter = self.read_rng.gen_range(0..TRADE_MISS_BIT);
                trade_key(self.id_base | TRADE_MISS_BIT | counter).to_vec()
            }
            _ => account_key(self.read_rng.gen_range(self.accounts..=u32::MAX)).to_vec(),
        }
    }

    /// The account owning `order_id` (a fixed hash, so order keys can be re-derived).
    fn account_of(&self, order_id: u64) -> u32 {
        let h = splitmix64(order_id ^ self.config.seed);
        u32::try_from(h % u64::from(self.accounts)).unwrap_or(0)
    }

    /// Mid price of an instrument, in ticks.
    fn mid_price(&self, instrument_id: u32) -> i64 {
        let h = splitmix64(u64::from(instrument_id) ^ self.config.seed.rotate_left(17));
        1_000 + i64::try_from(h % 1_000_000).unwrap_or(0)
    }

    fn price_near(&mut self, instrument_id: u32) -> i64 {
        self.mid_price(instrument_id) + self.rng.gen_range(-100..=100)
    }

    /// `prefix` followed by random text, cut or filled to exactly `len` ASCII bytes.
    fn text(&mut self, prefix: std::fmt::Arguments<'_>, len: usize) -> String {
        let mut text = String::with_capacity(len.max(24));
        // Writing to a String cannot fail.
        let _ = text.write_fmt(prefix);
        text.truncate(len);
        let mut bytes = text.into_bytes();
        while bytes.len() < len {
            // Ten characters of a 64-symbol alphabet per random u64.
            let mut bits = self.rng.r#gen::<u64>();
            for _ in 0..(len - bytes.len()).min(10) {
                bytes.push(TEXT_ALPHABET[(bits & 63) as usize]);
                bits >>= 6;
            }
        }
        // All ASCII, so this never falls back.
        String::from_utf8(bytes).unwrap_or_default()
    }

    fn order(&mut self, text_len: usize) -> Message {
        let counter = self.orders;
        self.orders += 1;
        let order_id = self.id_base | counter;
        let account_id = self.account_of(order_id);
        let instrument_id = self.rng.gen_range(0..self.instruments);
        let side = if self.rng.gen_bool(0.5) { Side::Buy } else { Side::Sell };
        let time_in_force = match self.rng.gen_range(0..100u32) {
            0..50 => TimeInForce::Day,
            50..80 => TimeInForce::GoodTillCancel,
            80..95 => TimeInForce::ImmediateOrCancel,
            _ => TimeInForce::FillOrKill,
        };
        let price_ticks = self.price_near(instrument_id);
        let quantity = self.rng.gen_range(1..=1_000);
        let client_order_id = self.text(format_args!("C{account_id}-{counter}-"), text_len);
        Message::Order(OrderInsert {
            order_id,
            account: account_id,
            symbol: symbol(instrument_id),
            side,
            price: price_ticks,
            qty: quantity,
            time_in_force,
            ts_nanos: self.clock_ns,
            client_order_id,
        })
    }

    fn trade(&mut self, text_len: usize) -> Message {
        let counter = self.trades;
        self.trades += 1;
        let trade_seq = self.id_base | counter;
        let written = self.orders.max(1);
        let buy_order_id = self.id_base | self.rng.gen_range(0..written);
        let sell_order_id = self.id_base | self.rng.gen_range(0..written);
        let instrument_id = self.rng.gen_range(0..self.instruments);
        let price_ticks = self.price_near(instrument_id);
        let quantity = self.rng.gen_range(1..=500);
        let side = if self.rng.gen_bool(0.5) { Side::Buy } else { Side::Sell };
        let venue_ref = self.text(format_args!("XSTR-{trade_seq:x}-"), text_len);
        Message::Trade(TradeEvent {
            trade_id: trade_seq,
            symbol: symbol(instrument_id),
            price: price_ticks,
            qty: quantity,
            side,
            buy_order_id,
            sell_order_id,
            buy_account: self.account_of(buy_order_id),
            sell_account: self.account_of(sell_order_id),
            ts_nanos: self.clock_ns,
            venue_ref,
        })
    }

    fn account(&mut self, max_positions: usize) -> Message {
        let account_id = self.rng.gen_range(0..self.accounts);
        if self.touched_set.insert(account_id) {
            self.touched.push(account_id);
        }
        let count = max_positions.min(usize::try_from(self.instruments).unwrap_or(usize::MAX));
        let mut instruments: Vec<u32> =
            (0..count).map(|_| self.rng.gen_range(0..self.instruments)).collect();
        instruments.sort_unstable();
        instruments.dedup();
        let positions = instruments
            .into_iter()
            .map(|instrument_id| Position {
                symbol: symbol(instrument_id),
                qty: self.rng.gen_range(-10_000..=10_000),
            })
            .collect();
        let balance_ticks = self.rng.gen_range(0..1_000_000_000_000);
        let mut record = account_record(account_id, positions);
        if let Message::Account(update) = &mut record {
            update.balance = balance_ticks;
            update.available = balance_ticks - self.rng.gen_range(0..=balance_ticks);
            update.open_orders = self.rng.gen_range(0..64);
            update.ts_nanos = self.clock_ns;
        }
        record
    }
}

/// An account update with everything but the id and positions zero.
fn account_record(account: u32, positions: Vec<Position>) -> Message {
    Message::Account(AccountUpdate {
        account,
        balance: 0,
        available: 0,
        open_orders: 0,
        positions,
        ts_nanos: 0,
    })
}

/// The symbol of instrument `id`: `I` and the id in base 36 — at most 8 bytes, which
/// rkyv stores inline, so a record's archived size does not depend on the instrument.
fn symbol(id: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut digits = Vec::with_capacity(7);
    let mut rest = id;
    loop {
        digits.push(DIGITS[(rest % 36) as usize]);
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    digits.push(b'I');
    digits.reverse();
    // All ASCII, so this never falls back.
    String::from_utf8(digits).unwrap_or_default()
}

/// SplitMix64's output function: a fast, well-mixing 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use strata_stream::messages::ExchangeKey;

    fn decode(bytes: &[u8]) -> strata_stream::Result<Message> {
        Message::decode(bytes)
    }

    fn config(seed: u64) -> WorkloadConfig {
        WorkloadConfig { seed, ..WorkloadConfig::default() }
    }

    fn ops(workload: &mut ExchangeWorkload, n: usize) -> Vec<Op> {
        (0..n).map(|_| workload.next_op()).collect()
    }

    #[test]
    fn same_seed_same_ops_and_reads() {
        let mut a = ExchangeWorkload::new(config(7));
        let mut b = ExchangeWorkload::new(config(7));
        assert_eq!(ops(&mut a, 2_000), ops(&mut b, 2_000));
        for hit in [true, false, true, true, false] {
            assert_eq!(a.key_for_read(hit), b.key_for_read(hit));
        }
        let mut c = ExchangeWorkload::new(config(8));
        assert_ne!(ops(&mut a, 100), ops(&mut c, 100));
    }

    #[test]
    fn reads_do_not_change_the_write_stream() {
        let mut a = ExchangeWorkload::new(config(3));
        let mut b = ExchangeWorkload::new(config(3));
        let mut with_reads = Vec::new();
        for _ in 0..500 {
            with_reads.push(a.next_op());
            a.key_for_read(true);
            a.key_for_read(false);
        }
        assert_eq!(with_reads, ops(&mut b, 500));
    }

    #[test]
    fn new_is_writer_zero() {
        let mut a = ExchangeWorkload::new(config(11));
        let mut b = ExchangeWorkload::for_writer(config(11), 0);
        let mut c = ExchangeWorkload::for_writer(config(11), 1 << WRITER_BITS);
        assert_eq!(c.writer_index(), 0);
        let first = ops(&mut a, 300);
        assert_eq!(first, ops(&mut b, 300));
        assert_eq!(first, ops(&mut c, 300));
    }

    #[test]
    fn mix_is_roughly_50_20_30() {
        let mut w = ExchangeWorkload::new(config(1));
        let n = 20_000;
        let all = ops(&mut w, n);
        let share = |kind| all.iter().filter(|op| op.kind == kind).count() as f64 / n as f64;
        assert!((share(OpKind::OrderInsert) - 0.5).abs() < 0.03);
        assert!((share(OpKind::Trade) - 0.2).abs() < 0.03);
        assert!((share(OpKind::AccountUpdate) - 0.3).abs() < 0.03);
        assert_eq!(w.ops_generated(), n as u64);
        assert_eq!(
            w.orders_generated() + w.trades_generated(),
            all.iter().filter(|op| op.kind != OpKind::AccountUpdate).count() as u64
        );
    }

    #[test]
    fn default_value_sizes_are_100_to_300_bytes() {
        let mut w = ExchangeWorkload::new(config(2));
        let mut sizes = HashSet::new();
        for op in ops(&mut w, 5_000) {
            assert!((100..=300).contains(&op.value.len()), "{} bytes", op.value.len());
            sizes.insert(op.value.len());
        }
        assert!(sizes.len() > 150, "sizes vary: {}", sizes.len());
    }

    #[test]
    fn value_size_is_exact_from_the_minimum() {
        let min = ExchangeWorkload::new(config(0)).min_value_size();
        assert!(min < 100, "minimum value size {min}");
        let mut lens = vec![1, min - 1];
        lens.extend(min..min + 40);
        lens.extend([100, 128, 255, 256, 300, 1_000, 4_096, 65_536]);
        for len in lens {
            let cfg = WorkloadConfig { value_size: Some(len), ..config(5) };
            let mut w = ExchangeWorkload::new(cfg);
            for op in ops(&mut w, 200) {
                assert_eq!(op.value.len(), len.max(min), "{:?} at value_size {len}", op.kind);
                decode(&op.value).expect("decodes");
            }
        }
    }

    #[test]
    fn free_text_fills_the_value_instead_of_padding() {
        let cfg = WorkloadConfig { value_size: Some(256), ..config(9) };
        let mut w = ExchangeWorkload::new(cfg);
        for op in ops(&mut w, 300) {
            let spare = 256 - w.min_value_size();
            match decode(&op.value).expect("decodes") {
                Message::Order(o) => assert_eq!(o.client_order_id.len(), spare),
                Message::Trade(t) => assert_eq!(t.venue_ref.len(), spare),
                Message::Account(a) => assert!(!a.positions.is_empty()),
                other => panic!("generated a {}", other.kind()),
            }
        }
    }

    #[test]
    fn keys_parse_back_and_values_decode_to_their_key() {
        let mut w = ExchangeWorkload::new(config(4));
        for op in ops(&mut w, 3_000) {
            let parsed = ExchangeKey::parse(&op.key).expect("key parses");
            let expected_kind = match parsed {
                ExchangeKey::Order { .. } => OpKind::OrderInsert,
                ExchangeKey::Trade { .. } => OpKind::Trade,
                ExchangeKey::Account { account } => {
                    assert!(account < 10_000);
                    OpKind::AccountUpdate
                }
            };
            assert_eq!(op.kind, expected_kind);
            let record = decode(&op.value).expect("value decodes");
            assert_eq!(record.exchange_key(), Some(parsed));
            assert_eq!(record.key(), Some(op.key));
        }
    }

    #[test]
    fn order_ids_increase_and_trade_seqs_are_dense() {
        let mut w = ExchangeWorkload::for_writer(config(6), 3);
        let (mut orders, mut trades) = (Vec::new(), Vec::new());
        for op in ops(&mut w, 2_000) {
            match ExchangeKey::parse(&op.key).expect("key parses") {
                ExchangeKey::Order { order_id, .. } => orders.push(order_id),
                ExchangeKey::Trade { trade_id } => trades.push(trade_id),
                ExchangeKey::Account { .. } => {}
            }
        }
        let base = 3u64 << 48;
        assert_eq!(orders, (base..base + orders.len() as u64).collect::<Vec<_>>());
        assert_eq!(trades, (base..base + trades.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn writers_produce_disjoint_order_and_trade_keys() {
        let mut seen = HashSet::new();
        for writer in 0..4 {
            let mut w = ExchangeWorkload::for_writer(config(1), writer);
            for op in ops(&mut w, 2_000) {
                if op.kind != OpKind::AccountUpdate {
                    assert!(seen.insert(op.key), "writer {writer} repeats a key");
                }
            }
        }
        let mut a = ExchangeWorkload::for_writer(config(1), 0);
        let mut b = ExchangeWorkload::for_writer(config(1), 1);
        let values = |w: &mut ExchangeWorkload| {
            ops(w, 50).into_iter().map(|op| op.value).collect::<Vec<_>>()
        };
        assert_ne!(values(&mut a), values(&mut b), "writers draw different streams");
    }

    #[test]
    fn fill_batch_puts_the_generated_ops() {
        let mut w = ExchangeWorkload::new(config(12));
        let mut batch = WriteBatch::new();
        w.fill_batch(&mut batch, 64);
        assert_eq!(batch.count(), 64);
        batch.validate().expect("valid batch");
        let expected = ops(&mut ExchangeWorkload::new(config(12)), 64);
        let got: Vec<_> = batch.iter().collect::<Result<_, _>>().expect("decodes");
        for (op, put) in expected.iter().zip(&got) {
            assert_eq!(put.kind, strata_core::ValueKind::Put);
            assert_eq!((put.key, put.value), (&op.key[..], &op.value[..]));
        }
    }

    #[test]
    fn reads_hit_written_keys_and_miss_unwritten_ones() {
        let cfg = WorkloadConfig { accounts: 50, instruments: 10, ..config(13) };
        let mut writers: Vec<_> =
            (0..3).map(|i| ExchangeWorkload::for_writer(cfg.clone(), i)).collect();
        let mut written = HashSet::new();
        // Before anything is written a hit degrades to a miss.
        let early = writers[0].key_for_read(true);
        for w in &mut writers {
            for op in ops(w, 3_000) {
                written.insert(op.key);
            }
        }
        assert!(!written.contains(&early));
        let mut kinds = HashSet::new();
        for w in &mut writers {
            for _ in 0..3_000 {
                let hit = w.key_for_read(true);
                assert!(written.contains(&hit), "hit {hit:?} was never written");
                let miss = w.key_for_read(false);
                assert!(!written.contains(&miss), "miss {miss:?} was written");
                let parsed = ExchangeKey::parse(&miss).expect("miss keys are well formed");
                kinds.insert(std::mem::discriminant(&parsed));
            }
        }
        assert_eq!(kinds.len(), 3, "misses cover every key kind");
        // Misses stay unwritten however long the writers keep going.
        let misses: Vec<_> = (0..2_000).map(|_| writers[1].key_for_read(false)).collect();
        for w in &mut writers {
            for op in ops(w, 5_000) {
                assert!(!misses.contains(&op.key));
            }
        }
    }

    #[test]
    fn symbols_fit_inline_and_are_distinct() {
        assert_eq!(symbol(0), "I0");
        assert_eq!(symbol(35), "IZ");
        assert_eq!(symbol(36), "I10");
        assert_eq!(symbol(u32::MAX).len(), 8);
        let all: HashSet<_> = (0..5_000).map(symbol).collect();
        assert_eq!(all.len(), 5_000);
    }

    #[test]
    fn single_account_and_instrument_still_work() {
        let cfg = WorkloadConfig { accounts: 0, instruments: 0, value_size: Some(300), seed: 1 };
        let mut w = ExchangeWorkload::new(cfg);
        let mut written = HashSet::new();
        for op in ops(&mut w, 500) {
            assert_eq!(op.value.len(), 300);
            decode(&op.value).expect("decodes");
            written.insert(op.key);
        }
        for _ in 0..500 {
            assert!(written.contains(&w.key_for_read(true)));
            assert!(!written.contains(&w.key_for_read(false)));
        }
    }
}

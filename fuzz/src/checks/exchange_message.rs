//! The `exchange_message` target: exchange records from shared memory.

use strata_harness::exchange::{self, ExchangeRecord};

/// Target `exchange_message`: the validated rkyv decode of exchange values.
///
/// Input: the value's bytes.
///
/// Contract: `decode` returns an error or a record; the answer does not depend on the
/// input's alignment; a decoded record re-encodes (plain and padded to the input's
/// length) to values that decode to the same record, and its key parses back.
pub fn exchange_message(data: &[u8]) {
    let first = exchange::decode(data);
    // The same bytes at another alignment must give the same answer.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let second = exchange::decode(&shifted[1..]);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "decode depends on alignment"),
        (Err(a), Err(b)) => assert!(!a.message().is_empty() && !b.message().is_empty()),
        _ => panic!("decode depends on alignment: {first:?} vs {second:?}"),
    }
    if let Ok(record) = first {
        round_trip_record(&record, data.len());
    }
}

pub(crate) fn round_trip_record(record: &ExchangeRecord, len: usize) {
    let plain = match exchange::encode(record) {
        Ok(b) => b,
        Err(e) => panic!("a decoded record does not encode: {e}"),
    };
    match exchange::decode(&plain) {
        Ok(back) => assert_eq!(&back, record, "a decoded record does not round-trip"),
        Err(e) => panic!("a re-encoded record does not decode: {e}"),
    }
    match exchange::encode_to_len(record, len) {
        Ok(padded) => {
            assert_eq!(padded.len(), len.max(plain.len()));
            match exchange::decode(&padded) {
                Ok(back) => assert_eq!(&back, record, "padded record does not round-trip"),
                Err(e) => panic!("a padded record does not decode: {e}"),
            }
        }
        Err(e) => panic!("a decoded record cannot be padded to its own length: {e}"),
    }
    assert_eq!(
        exchange::ExchangeKey::parse(&record.key()),
        Some(record.exchange_key()),
        "a record's key does not parse back"
    );
}

pub(crate) fn exchange_seeds() -> Vec<Vec<u8>> {
    use strata_harness::exchange::{
        AccountUpdate, OrderInsert, Position, Side, TimeInForce, TradeExecuted,
    };
    let records = [
        ExchangeRecord::Order(OrderInsert {
            account_id: 7,
            order_id: 42,
            instrument_id: 3,
            side: Side::Buy,
            price_ticks: -5,
            quantity: 10,
            time_in_force: TimeInForce::GoodTillCancel,
            timestamp_ns: 1,
            client_order_id: "client-order".into(),
        }),
        ExchangeRecord::Trade(TradeExecuted {
            trade_seq: 9,
            instrument_id: 3,
            price_ticks: 100,
            quantity: 2,
            buy_order_id: 1,
            sell_order_id: 2,
            buy_account: 3,
            sell_account: 4,
            timestamp_ns: 5,
            venue_ref: "XNAS".into(),
        }),
        ExchangeRecord::Account(AccountUpdate {
            account_id: 1,
            balance_ticks: 1000,
            available_ticks: 900,
            open_orders: 2,
            positions: vec![Position { instrument_id: 1, quantity: -3 }],
            timestamp_ns: 6,
        }),
    ];
    let mut out = Vec::new();
    for r in &records {
        let plain = exchange::encode(r).expect("encoding a sample record");
        out.push(plain.to_vec());
        out.push(exchange::encode_to_len(r, plain.len() + 21).expect("padding").to_vec());
    }
    out
}

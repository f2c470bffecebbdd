//! The `exchange_message` target: the exchange schema's messages, from the store or
//! shared memory.

use strata_stream::messages::{self, Message};

/// Target `exchange_message`: the validated rkyv decode of the exchange schema's
/// messages (stored values and frame elements alike).
///
/// Input: the encoded message's bytes.
///
/// Contract: `Message::decode` returns an error or a message; the answer does not depend
/// on the input's alignment, and zero-copy `access` of aligned bytes agrees with it; a
/// decoded message re-encodes (plain and padded to the input's length) to bytes that
/// decode to the same message, and a stored kind's key parses back.
pub fn exchange_message(data: &[u8]) {
    let first = Message::decode(data);
    // The same bytes at another alignment must give the same answer.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let second = Message::decode(&shifted[1..]);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "decode depends on alignment"),
        (Err(a), Err(b)) => assert!(!a.to_string().is_empty() && !b.to_string().is_empty()),
        _ => panic!("decode depends on alignment: {first:?} vs {second:?}"),
    }
    let mut aligned = messages::AlignedVec::<{ messages::ALIGN }>::new();
    aligned.extend_from_slice(data);
    match (messages::access(&aligned).map(|a| a.to_owned_message()), &first) {
        (Ok(Ok(a)), Ok(b)) => assert_eq!(&a, b, "access and decode disagree"),
        (Err(_), Err(_)) => {}
        (other, _) => panic!("access and decode disagree: {other:?} vs {first:?}"),
    }
    if let Ok(message) = first {
        round_trip_message(&message, data.len());
    }
}

pub(crate) fn round_trip_message(message: &Message, len: usize) {
    let plain = match message.encode() {
        Ok(b) => b,
        Err(e) => panic!("a decoded message does not encode: {e}"),
    };
    match Message::decode(&plain) {
        Ok(back) => assert_eq!(&back, message, "a decoded message does not round-trip"),
        Err(e) => panic!("a re-encoded message does not decode: {e}"),
    }
    match message.encode_to_len(len) {
        Ok(padded) => {
            assert_eq!(padded.len(), len.max(plain.len()));
            match Message::decode(&padded) {
                Ok(back) => assert_eq!(&back, message, "padded message does not round-trip"),
                Err(e) => panic!("a padded message does not decode: {e}"),
            }
        }
        Err(e) => panic!("a decoded message cannot be padded to its own length: {e}"),
    }
    if let Some(key) = message.key() {
        assert_eq!(
            messages::ExchangeKey::parse(&key),
            message.exchange_key(),
            "a message's key does not parse back"
        );
    }
}

pub(crate) fn exchange_seeds() -> Vec<Vec<u8>> {
    use strata_stream::messages::{
        AccountUpdate, Heartbeat, MarketL2, OrderInsert, Position, PriceLevel, Side, TimeInForce,
        TradeEvent,
    };
    let records = [
        Message::Order(OrderInsert {
            order_id: 42,
            account: 7,
            symbol: "I3".into(),
            side: Side::Buy,
            price: -5,
            qty: 10,
            time_in_force: TimeInForce::GoodTillCancel,
            ts_nanos: 1,
            client_order_id: "client-order".into(),
        }),
        Message::Trade(TradeEvent {
            trade_id: 9,
            symbol: "I3".into(),
            price: 100,
            qty: 2,
            side: Side::Sell,
            buy_order_id: 1,
            sell_order_id: 2,
            buy_account: 3,
            sell_account: 4,
            ts_nanos: 5,
            venue_ref: "XNAS".into(),
        }),
        Message::Account(AccountUpdate {
            account: 1,
            balance: 1000,
            available: 900,
            open_orders: 2,
            positions: vec![Position { symbol: "I1".into(), qty: -3 }],
            ts_nanos: 6,
        }),
        Message::L2(MarketL2 {
            symbol: "BTC-USD".into(),
            bids: vec![PriceLevel { price: 99, qty: 3 }],
            asks: vec![PriceLevel { price: 101, qty: 4 }],
            ts_nanos: 7,
        }),
        Message::Heartbeat(Heartbeat { stream: 1, last_seq: 2, ts_nanos: 8 }),
    ];
    let mut out = Vec::new();
    for r in &records {
        let plain = r.encode().expect("encoding a sample message");
        out.push(plain.to_vec());
        out.push(r.encode_to_len(plain.len() + 21).expect("padding").to_vec());
    }
    out
}

//! Message and frame encodings: round trips of arbitrary messages, and random or
//! damaged bytes that must be refused without panicking.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use strata_stream::messages::{self, MessageFrame, encode_frame};
use strata_stream::{
    AccountUpdate, Heartbeat, MarketL2, Message, OrderInsert, Position, PriceLevel, Side,
    TimeInForce, TradeEvent,
};

fn level() -> impl Strategy<Value = PriceLevel> {
    (any::<i64>(), any::<u64>()).prop_map(|(price, qty)| PriceLevel { price, qty })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            (any::<u64>(), any::<u32>(), "[A-Z]{0,10}", any::<bool>()),
            (any::<i64>(), any::<u64>(), 0u8..4, any::<u64>(), ".{0,40}")
        )
            .prop_map(
                |((order_id, account, symbol, buy), (price, qty, tif, ts, client))| {
                    Message::Order(OrderInsert {
                        order_id,
                        account,
                        symbol,
                        side: if buy { Side::Buy } else { Side::Sell },
                        price,
                        qty,
                        time_in_force: match tif {
                            0 => TimeInForce::Day,
                            1 => TimeInForce::GoodTillCancel,
                            2 => TimeInForce::ImmediateOrCancel,
                            _ => TimeInForce::FillOrKill,
                        },
                        ts_nanos: ts,
                        client_order_id: client,
                    })
                }
            ),
        (
            (any::<u64>(), ".{0,12}", any::<i64>(), any::<u64>(), any::<bool>()),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>(), ".{0,20}")
        )
            .prop_map(
                |((trade_id, symbol, price, qty, buy), (bo, so, b, s, ts, venue))| {
                    Message::Trade(TradeEvent {
                        trade_id,
                        symbol,
                        price,
                        qty,
                        side: if buy { Side::Buy } else { Side::Sell },
                        buy_order_id: bo,
                        sell_order_id: so,
                        buy_account: b,
                        sell_account: s,
                        ts_nanos: ts,
                        venue_ref: venue,
                    })
                }
            ),
        (
            (any::<u32>(), any::<i64>(), any::<i64>(), any::<u32>()),
            proptest::collection::vec(("[A-Z]{1,6}", any::<i64>()), 0..5),
            any::<u64>()
        )
            .prop_map(|((account, balance, available, open_orders), pos, ts)| {
                Message::Account(AccountUpdate {
                    account,
                    balance,
                    available,
                    open_orders,
                    positions: pos
                        .into_iter()
                        .map(|(symbol, qty)| Position { symbol, qty })
                        .collect(),
                    ts_nanos: ts,
                })
            }),
        (
            "[A-Z]{0,8}",
            proptest::collection::vec(level(), 0..10),
            proptest::collection::vec(level(), 0..10),
            any::<u64>()
        )
            .prop_map(|(symbol, bids, asks, ts)| Message::L2(MarketL2 {
                symbol,
                bids,
                asks,
                ts_nanos: ts
            })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(stream, last_seq, ts)| {
            Message::Heartbeat(Heartbeat { stream, last_seq, ts_nanos: ts })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_messages_round_trip(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(&Message::decode(&bytes).unwrap(), &m);
        prop_assert_eq!(&messages::access(&bytes).unwrap().to_owned_message().unwrap(), &m);
        prop_assert_eq!(&Message::from_json(&m.to_json().unwrap()).unwrap(), &m);
    }

    #[test]
    fn arbitrary_messages_padded_to_any_length_round_trip(m in message(), extra in 0usize..100) {
        let plain = m.encoded_len().unwrap();
        let bytes = m.encode_to_len(plain + extra).unwrap();
        prop_assert_eq!(bytes.len(), plain + extra);
        prop_assert_eq!(&Message::decode(&bytes).unwrap(), &m);
        prop_assert_eq!(&messages::access(&bytes).unwrap().to_owned_message().unwrap(), &m);
        if let Some(key) = m.key() {
            prop_assert_eq!(messages::ExchangeKey::parse(&key), m.exchange_key());
        }
    }

    #[test]
    fn arbitrary_frames_round_trip(ms in proptest::collection::vec(message(), 1..8)) {
        let frame = encode_frame(&ms).unwrap();
        let parsed = MessageFrame::parse(&frame).unwrap();
        prop_assert_eq!(parsed.decode_all().unwrap(), ms);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
        let _ = messages::access(&bytes);
        if let Ok(f) = MessageFrame::parse(&bytes) {
            let _ = f.decode_all();
        }
        let _ = Message::from_json(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn truncated_and_mutated_messages_never_panic(
        m in message(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let bytes = m.encode().unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(Message::decode(&bytes[..n]).is_err(), "a {}-byte prefix decoded", n);
        let mut damaged = bytes.to_vec();
        for (at, x) in flips {
            let i = at.index(damaged.len());
            damaged[i] ^= x;
        }
        // A damaged archive is either refused or still a well-formed message; never a panic.
        let _ = Message::decode(&damaged);
        let frame = encode_frame(std::slice::from_ref(&m)).unwrap();
        let k = cut.index(frame.len());
        prop_assert!(MessageFrame::parse(&frame[..k]).is_err());
    }
}

//! The keys exchange records are stored under. See the [module docs](super) for the
//! layout table.

/// First byte of every order key.
pub const ORDER_PREFIX: u8 = b'o';
/// First byte of every trade key.
pub const TRADE_PREFIX: u8 = b't';
/// First byte of every account key.
pub const ACCOUNT_PREFIX: u8 = b'a';

/// Length of an order key: prefix, account, order id.
pub const ORDER_KEY_LEN: usize = 1 + size_of::<u32>() + size_of::<u64>();
/// Length of a trade key: prefix, trade id.
pub const TRADE_KEY_LEN: usize = 1 + size_of::<u64>();
/// Length of an account key: prefix, account.
pub const ACCOUNT_KEY_LEN: usize = 1 + size_of::<u32>();

/// The key of an order: `b'o'`, `account` (BE), `order_id` (BE).
pub fn order_key(account: u32, order_id: u64) -> [u8; ORDER_KEY_LEN] {
    let mut key = [0u8; ORDER_KEY_LEN];
    key[0] = ORDER_PREFIX;
    key[1..5].copy_from_slice(&account.to_be_bytes());
    key[5..].copy_from_slice(&order_id.to_be_bytes());
    key
}

/// The key of a trade: `b't'`, `trade_id` (BE).
pub fn trade_key(trade_id: u64) -> [u8; TRADE_KEY_LEN] {
    let mut key = [0u8; TRADE_KEY_LEN];
    key[0] = TRADE_PREFIX;
    key[1..].copy_from_slice(&trade_id.to_be_bytes());
    key
}

/// The key of an account: `b'a'`, `account` (BE).
pub fn account_key(account: u32) -> [u8; ACCOUNT_KEY_LEN] {
    let mut key = [0u8; ACCOUNT_KEY_LEN];
    key[0] = ACCOUNT_PREFIX;
    key[1..].copy_from_slice(&account.to_be_bytes());
    key
}

/// A parsed exchange key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKey {
    /// An [`OrderInsert`](super::OrderInsert)'s key.
    Order {
        /// Account owning the order.
        account: u32,
        /// The order.
        order_id: u64,
    },
    /// A [`TradeEvent`](super::TradeEvent)'s key.
    Trade {
        /// The trade's number.
        trade_id: u64,
    },
    /// An [`AccountUpdate`](super::AccountUpdate)'s key.
    Account {
        /// The account.
        account: u32,
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
                    account: u32::from_be_bytes(*account),
                    order_id: u64::from_be_bytes(*order),
                })
            }
            TRADE_PREFIX => {
                let id: &[u8; 8] = rest.try_into().ok()?;
                Some(Self::Trade { trade_id: u64::from_be_bytes(*id) })
            }
            ACCOUNT_PREFIX => {
                let account: &[u8; 4] = rest.try_into().ok()?;
                Some(Self::Account { account: u32::from_be_bytes(*account) })
            }
            _ => None,
        }
    }

    /// The encoded key.
    pub fn to_bytes(&self) -> Vec<u8> {
        match *self {
            Self::Order { account, order_id } => order_key(account, order_id).to_vec(),
            Self::Trade { trade_id } => trade_key(trade_id).to_vec(),
            Self::Account { account } => account_key(account).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Some(ExchangeKey::Order { account: 0x0A0B_0C0D, order_id: 0x1122_3344_5566_7788 })
        );
        assert_eq!(ExchangeKey::parse(&trade_key(5)), Some(ExchangeKey::Trade { trade_id: 5 }));
        assert_eq!(ExchangeKey::parse(&account_key(5)), Some(ExchangeKey::Account { account: 5 }));
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
}

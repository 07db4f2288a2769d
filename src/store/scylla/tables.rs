//! Where each read table's rows live on ScyllaDB.
//!
//! The `Store` trait speaks of rows `(table, key)`; keys are `|`-separated
//! with the owner first (`{customer}|{…}|{order}`). Scylla wants each query
//! to hit one known partition, so every read table says how a key maps to a
//! partition `p` (the clustering key `k` is the whole key, kept in order):
//!
//! - [`Layout::ByOwner`]: `p` is the key's first field, the owner every
//!   scan names (`scan(orders_by_customer, "{customer}|", …)`). With
//!   `buckets > 1` the owner's rows are spread over `owner#0 … owner#N-1`
//!   by a hash of the key, so that one large owner (a queue's 100,000
//!   claims, every customer in `users_by_role`) is not one large partition;
//!   a scan reads the owner's buckets and merges them in key order.
//! - [`Layout::Spread`]: `p` is one of N hash buckets. For tables read by
//!   key and scanned whole in key order (catalog listings, due timers).

use crate::store::tables::{
    ACTIVITY_FEED, ALSO_BOUGHT, CATALOG_FEED, CATEGORIES, CLAIMS_BY_QUEUE, CLAIMS_BY_USER,
    COUPONS_BY_SHOP, COURSES_BY_TRAINER, COURSES_TABLE, INVENTORY, LOW_STOCK, ORDERS_BY_CUSTOMER,
    ORDERS_BY_SHOP, ORDERS_BY_SHOP_STATUS, OUTBOX, OUTBOX_DEAD, PAYMENT_REFS, PRODUCTS_TABLE,
    QUEUE_TIMERS, RATINGS, RECENTLY_VIEWED, REVIEWS_BY_SUBJECT, REVIEWS_PENDING, SALES_BY_END,
    SALES_BY_OWNER, SHOPS_BY_OWNER, SHOPS_TABLE, STATS, STATS_FEED, STOCK_ALERTS, STOCK_MOVEMENTS,
    TIMERS_TABLE, TRACK_EXPIRY, TRACK_POINTS, USERS_BY_EMAIL, USERS_BY_ROLE, VOUCHER_WALLET,
};

/// How a read table's keys map to partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Partition by the key's first `|` field, over `buckets` partitions.
    ByOwner { buckets: u32 },
    /// Partition by a hash of the whole key, over `buckets` partitions.
    Spread { buckets: u32 },
}

/// One read table: its name (the CQL table in `schema/scylla/`) and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTable {
    pub name: &'static str,
    pub layout: Layout,
}

const fn owner(name: &'static str, buckets: u32) -> ReadTable {
    ReadTable {
        name,
        layout: Layout::ByOwner { buckets },
    }
}

const fn spread(name: &'static str, buckets: u32) -> ReadTable {
    ReadTable {
        name,
        layout: Layout::Spread { buckets },
    }
}

/// Every read table the product writes. A table missing here is refused by
/// the Scylla backend (and a test checks each has a CQL table in `schema/scylla/`).
pub const READ_TABLES: &[ReadTable] = &[
    owner(ORDERS_BY_CUSTOMER, 1),
    owner(ORDERS_BY_SHOP, 4),
    owner(CLAIMS_BY_QUEUE, 16),
    owner(CLAIMS_BY_USER, 1),
    owner(USERS_BY_ROLE, 16),
    spread(USERS_BY_EMAIL, 16),
    owner(ORDERS_BY_SHOP_STATUS, 4),
    owner(COURSES_BY_TRAINER, 1),
    owner(SALES_BY_OWNER, 1),
    spread(SALES_BY_END, 4),
    owner(COUPONS_BY_SHOP, 1),
    owner(VOUCHER_WALLET, 1),
    owner(STOCK_MOVEMENTS, 1),
    owner(INVENTORY, 4),
    owner(LOW_STOCK, 1),
    spread(STOCK_ALERTS, 4),
    spread(CATEGORIES, 1),
    spread(STATS_FEED, 4),
    spread(STATS, 4),
    owner(TRACK_POINTS, 1),
    spread(PRODUCTS_TABLE, 16),
    spread(COURSES_TABLE, 16),
    spread(PAYMENT_REFS, 16),
    spread(TIMERS_TABLE, 4),
    spread(QUEUE_TIMERS, 4),
    spread(OUTBOX, 4),
    spread(OUTBOX_DEAD, 4),
    spread(TRACK_EXPIRY, 4),
    owner(REVIEWS_BY_SUBJECT, 4),
    spread(REVIEWS_PENDING, 4),
    spread(RATINGS, 16),
    spread(SHOPS_TABLE, 16),
    owner(SHOPS_BY_OWNER, 1),
    spread(CATALOG_FEED, 4),
    owner(RECENTLY_VIEWED, 1),
    owner(ALSO_BOUGHT, 1),
    spread(ACTIVITY_FEED, 4),
];

/// The read table named `name`.
pub fn read_table(name: &str) -> Option<&'static ReadTable> {
    READ_TABLES.iter().find(|t| t.name == name)
}

fn bucket(key: &str, buckets: u32) -> u32 {
    if buckets <= 1 {
        0
    } else {
        // CRC-32 is fixed by its specification: the same key lands in the
        // same bucket on every node and every version.
        crc32fast::hash(key.as_bytes()) % buckets
    }
}

fn owner_partition(owner: &str, b: u32, buckets: u32) -> String {
    if buckets <= 1 {
        owner.to_owned()
    } else {
        format!("{owner}#{b}")
    }
}

impl ReadTable {
    /// The partition holding `key`.
    pub fn partition(&self, key: &str) -> String {
        match self.layout {
            Layout::ByOwner { buckets } => {
                let owner = key.split('|').next().unwrap_or_default();
                owner_partition(owner, bucket(key, buckets), buckets)
            }
            Layout::Spread { buckets } => bucket(key, buckets).to_string(),
        }
    }

    /// The partitions a scan of keys starting with `prefix` must read, or
    /// an error when the prefix does not name the owner a `ByOwner` table
    /// is partitioned by.
    pub fn scan_partitions(&self, prefix: &str) -> Result<Vec<String>, String> {
        match self.layout {
            Layout::ByOwner { buckets } => {
                let Some((owner, _)) = prefix.split_once('|') else {
                    return Err(format!(
                        "a scan of {} must name its owner (`owner|…`), not '{prefix}'",
                        self.name
                    ));
                };
                Ok((0..buckets.max(1))
                    .map(|b| owner_partition(owner, b, buckets))
                    .collect())
            }
            Layout::Spread { buckets } => Ok((0..buckets.max(1)).map(|b| b.to_string()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_by_the_scans_that_should_find_it() {
        let claims = read_table(CLAIMS_BY_QUEUE).unwrap();
        for i in 0..200 {
            let key = format!("q1|claim{i}");
            let p = claims.partition(&key);
            assert!(claims.scan_partitions("q1|").unwrap().contains(&p));
            assert!(!claims.scan_partitions("q2|").unwrap().contains(&p));
        }
        let spread_buckets: std::collections::HashSet<_> = (0..200)
            .map(|i| claims.partition(&format!("q1|claim{i}")))
            .collect();
        assert_eq!(spread_buckets.len(), 16, "a queue's claims use all buckets");
        let products = read_table(PRODUCTS_TABLE).unwrap();
        let p = products.partition("p123");
        assert!(products.scan_partitions("").unwrap().contains(&p));
        assert_eq!(
            read_table(ORDERS_BY_CUSTOMER).unwrap().partition("u1|x|o1"),
            "u1"
        );
        assert!(claims.scan_partitions("").is_err(), "owner required");
        assert!(read_table("no_such_table").is_none());
    }

    #[test]
    fn every_read_table_of_the_catalog_has_a_layout() {
        let mut laid_out: Vec<&str> = READ_TABLES.iter().map(|t| t.name).collect();
        let mut all = crate::store::tables::ALL.to_vec();
        laid_out.sort();
        all.sort();
        assert_eq!(laid_out, all);
    }
}

//! The catalog of read tables: every table the product writes beside the
//! journal, by name, with its key format. The backends' schemas (the CQL
//! migrations, the PostgreSQL tables) create exactly these; the modules that
//! write a table re-export its name beside the code that builds its keys.

// Written by `actors::order`.
/// Read table: `{due_ms:020}|{order_id}` → empty. Scanned in key order.
pub const TIMERS_TABLE: &str = "timers";
/// Read table: `{customer}|{inverted created ms}|{order}` → encoded order.
pub const ORDERS_BY_CUSTOMER: &str = "orders_by_customer";
/// Read table: `{shop}|{inverted created ms}|{order}` → encoded order.
pub const ORDERS_BY_SHOP: &str = "orders_by_shop";
/// Read table: `{shop}|{status}|{inverted created ms}|{order}` → encoded
/// order: a shop's orders in one status (the pending-orders queue).
pub const ORDERS_BY_SHOP_STATUS: &str = "orders_by_shop_status";
/// Read table: `{provider}|{provider reference}` → order id (webhooks name
/// the provider's reference).
pub const PAYMENT_REFS: &str = "payment_refs";

// Written by `actors::queue`.
/// Read table: `{due ms:020}|{queue id}` → empty: queues with orders to
/// place.
pub const QUEUE_TIMERS: &str = "queue_timers";
/// Read table: `{user}|{queue}|{claim}` → encoded `Claim` (a user's claims).
pub const CLAIMS_BY_USER: &str = "claims_by_user";
/// Read table: `{queue}|{claim}` → encoded `Claim` (a queue's claims).
pub const CLAIMS_BY_QUEUE: &str = "claims_by_queue";
/// Read table: `{owner}|{sale}` → encoded `QueueConfig`: a merchant's flash
/// sales (written when one opens).
pub const SALES_BY_OWNER: &str = "sales_by_owner";
/// Read table: `{closes ms:020 (none: u64::MAX)}|{sale}` → encoded
/// `QueueConfig`: every flash sale by its end, the storefront's list of
/// live and upcoming ones (scanned from now on).
pub const SALES_BY_END: &str = "sales_by_end";

// Written by `actors::coupon`.
/// Read table: `{shop}|{code}` → encoded `Coupon`: a shop's coupons (not
/// deleted), rewritten with every change. A coupon unchanged since before
/// migration 010 has no row until its next change.
pub const COUPONS_BY_SHOP: &str = "coupons_by_shop";
/// Read table: `{user}|{code}` → empty: the vouchers a customer collected
/// (their wallet; a voucher deleted since is left out when listed).
pub const VOUCHER_WALLET: &str = "voucher_wallet";

// Written by `actors::user`.
/// Read table: `{role}|{user id}` → encoded `UserView` (whom a broadcast
/// reaches; the admin's listing by role). Rows of accounts unchanged since
/// before migration 005 are empty.
pub const USERS_BY_ROLE: &str = "users_by_role";
/// Read table: `{email}` → encoded `UserView` (the admin's listing and
/// search by email prefix).
pub const USERS_BY_EMAIL: &str = "users_by_email";

// Written by `actors::product`.
/// Read table: product id → encoded `Product`.
pub const PRODUCTS_TABLE: &str = "products";

// Written by `actors::product` (its inventory).
/// Read table: `{product}|{u64::MAX - seq:020}` → encoded `Movement`: a
/// product's stock movements, newest first.
pub const STOCK_MOVEMENTS: &str = "stock_movements";
/// Read table: `{shop}|{product}` → encoded `InventoryItem`: a shop's stock
/// levels by product.
pub const INVENTORY: &str = "inventory";
/// Read table: `{shop}|{product}` → encoded `InventoryItem`: a shop's
/// products at or below their low-stock threshold.
pub const LOW_STOCK: &str = "low_stock";
/// Read table: `{product}|{crossing:020}` → encoded `StockAlert`: low-stock
/// crossings not yet told to the merchant (deleted once told).
pub const STOCK_ALERTS: &str = "stock_alerts";

// Written by `actors::category`.
/// Read table: `all` → the encoded category tree, in reading order.
pub const CATEGORIES: &str = "categories";

// Written by `actors::shop`.
/// Read table: shop id → encoded `Shop`.
pub const SHOPS_TABLE: &str = "shops";
/// Read table: `{owner}|{shop id}` → encoded `Shop` (a merchant's shops).
pub const SHOPS_BY_OWNER: &str = "shops_by_owner";

// Written by `actors::{product,shop,course,rating}`.
/// Read table: `{changed ms:020}|{kind}:{id}` → empty: what in the
/// catalog changed when (products, shops, courses, their ratings), tailed
/// by each node's search indexer and pruned after a day.
pub const CATALOG_FEED: &str = "catalog_feed";

// Written by `actors::course`.
/// Read table: course id → encoded `Course`.
pub const COURSES_TABLE: &str = "courses";
/// Read table: `{trainer}|{course}` → encoded `Course` (a trainer's courses).
pub const COURSES_BY_TRAINER: &str = "courses_by_trainer";

// Written by `actors::review`.
/// Read table: `{kind}:{subject}|{inverted created ms:020}|{review}` →
/// encoded `Review`: a product's, shop's or shipper's approved reviews,
/// newest first.
pub const REVIEWS_BY_SUBJECT: &str = "reviews_by_subject";
/// Read table: `{created ms:020}|{review}` → encoded `Review`: reviews
/// waiting for moderation, oldest first.
pub const REVIEWS_PENDING: &str = "reviews_pending";

// Written by `actors::rating`.
/// Read table: `{kind}:{subject}` → encoded `RatingSummary`.
pub const RATINGS: &str = "ratings";

// Written by `service::products::behavior`, each node its own rows.
/// Read table: `{user}|{node}` → encoded `RecentlyViewed`: a user's last
/// views as one node recorded them (a read merges the user's rows).
pub const RECENTLY_VIEWED: &str = "recently_viewed";
/// Read table: `{product}|{node}` → encoded `Partners`: what was bought
/// together with a product, as one node counted it.
pub const ALSO_BOUGHT: &str = "also_bought";
/// Read table: `{window end ms:020}|{node}` → encoded activity of one
/// node's window, tailed by every node's trending and pruned after a day.
pub const ACTIVITY_FEED: &str = "activity_feed";

// Written by `actors::{order,user,queue}` (the feed) and
// `service::platform::stats` (the hours).
/// Read table: `{ms:020}|{fact key}` → encoded `Fact`: what happened, for
/// the statistics worker to count (pruned after two days).
pub const STATS_FEED: &str = "stats_feed";
/// Read table: `h|{YYYYMMDDHH}` → encoded `Hour`; `cursor` → where the
/// statistics worker stands in the feed.
pub const STATS: &str = "stats";

// Written by `mail`.
/// Read table: `{due ms:020}|{mail id}` → encoded `OutMail`.
pub const OUTBOX: &str = "outbox";
/// Read table: mail id → encoded `OutMail` that could not be sent.
pub const OUTBOX_DEAD: &str = "outbox_dead";

// Written by `service::delivery::shipping`.
/// Read table: `{order_id}|{device ts ms:020}` → encoded `TrackPoint`.
pub const TRACK_POINTS: &str = "track_points";
/// Read table: `{expires ms:020}|{order_id}` → empty: when an order's
/// track is deleted.
pub const TRACK_EXPIRY: &str = "track_expiry";

/// Every read table, by name: what each backend's schema creates. A write
/// to a table not listed here is refused.
pub const ALL: &[&str] = &[
    ORDERS_BY_CUSTOMER,
    ORDERS_BY_SHOP,
    ORDERS_BY_SHOP_STATUS,
    CLAIMS_BY_QUEUE,
    CLAIMS_BY_USER,
    USERS_BY_ROLE,
    USERS_BY_EMAIL,
    TRACK_POINTS,
    PRODUCTS_TABLE,
    STOCK_MOVEMENTS,
    INVENTORY,
    LOW_STOCK,
    STOCK_ALERTS,
    CATEGORIES,
    STATS_FEED,
    STATS,
    COURSES_TABLE,
    COURSES_BY_TRAINER,
    SALES_BY_OWNER,
    SALES_BY_END,
    COUPONS_BY_SHOP,
    VOUCHER_WALLET,
    PAYMENT_REFS,
    TIMERS_TABLE,
    QUEUE_TIMERS,
    OUTBOX,
    OUTBOX_DEAD,
    TRACK_EXPIRY,
    REVIEWS_BY_SUBJECT,
    REVIEWS_PENDING,
    RATINGS,
    SHOPS_TABLE,
    SHOPS_BY_OWNER,
    CATALOG_FEED,
    RECENTLY_VIEWED,
    ALSO_BOUGHT,
    ACTIVITY_FEED,
];

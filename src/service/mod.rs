//! Use cases, one room per file: each file holds one struct with only the
//! entity clients and settings it uses (`Carts`, `Checkouts`, `Queues`…),
//! built in `Services::start`, the facade a handler calls into. Use cases
//! depend on each other downwards only: `Fulfilment` (each order's next
//! action) sits under everything that moves an order. No HTTP types here:
//! the edge maps `ServiceError` to responses.
//!
//! Grouped by area, each file named for the struct it holds: `account/`,
//! `commerce/`, `products/`, `queue/`, `delivery/`, `platform/`.

pub mod account;
pub mod commerce;
pub mod delivery;
pub mod platform;
pub mod products;
pub mod queue;

use std::sync::Arc;

use crate::actors::cart::CartEntity;
use crate::actors::category::CategoryTreeEntity;
use crate::actors::coupon::CouponEntity;
use crate::actors::course::CourseEntity;
use crate::actors::email::EmailClaim;
use crate::actors::order::OrderEntity;
use crate::actors::product::ProductEntity;
use crate::actors::queue::QueueEntity;
use crate::actors::rating::RatingEntity;
use crate::actors::review::ReviewEntity;
use crate::actors::shipper::ShipperEntity;
use crate::actors::shop::ShopEntity;
use crate::actors::stock_bucket::StockBucketEntity;
use crate::actors::user::User;
use crate::actors::{CallError, Entity, Registry, Runtime};
use crate::auth::{HashError, JwtKeys, PasswordHasher};
use crate::domain::pricing::FeeTable;
use crate::domain::DomainError;
use crate::live::Bus;
use crate::payments::sandbox::Sandbox;
use crate::payments::{Cod, Providers};
use crate::store::{Store, StoreError};

pub use account::auth::{AuthUser, TokenPair};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Too much work queued (password hashing, live actors); retry later.
    #[error("{0}")]
    Busy(String),
    /// A throttle refused the request before any work (429).
    #[error("too many {}: try again in {} s", .0.what, .0.retry_after_secs)]
    Throttled(crate::auth::Throttled),
    #[error("the request timed out inside the engine; its outcome is unknown")]
    Timeout,
    /// The account is suspended: no session starts (403 `account_suspended`).
    #[error("this account is suspended: contact the platform's support")]
    Suspended,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// An image refused, or the media store failing.
    #[error(transparent)]
    Media(crate::media::MediaError),
}

impl From<CallError<DomainError>> for ServiceError {
    fn from(e: CallError<DomainError>) -> Self {
        match e {
            CallError::Rejected(d) => ServiceError::Domain(d),
            CallError::Timeout => ServiceError::Timeout,
            CallError::Overloaded(m) => ServiceError::Busy(m),
            CallError::Unavailable(m) | CallError::Moved(m) => ServiceError::Unavailable(m),
            CallError::Storage(s) => ServiceError::Storage(s),
        }
    }
}

impl From<HashError> for ServiceError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ServiceError::Busy(e.to_string()),
            HashError::Internal(m) => ServiceError::Unavailable(m),
        }
    }
}

/// Commerce settings taken from the configuration.
#[derive(Debug, Clone)]
pub struct CommerceConfig {
    pub fees: FeeTable,
    pub tax_bps: u32,
    pub payment_timeout: chrono::Duration,
    pub return_window_secs: u64,
    /// The zone reports count days in.
    pub report_zone: crate::domain::zone::ReportZone,
}

impl CommerceConfig {
    /// Distance and fee from `shop` to `to` for `grams`.
    pub(crate) fn ship(
        &self,
        shop: &crate::domain::catalog::Shop,
        to: crate::domain::GeoPoint,
        grams: u64,
    ) -> Result<(f64, u64), ServiceError> {
        let km = crate::domain::pricing::haversine_km(shop.location, to);
        Ok((
            km,
            crate::domain::pricing::shipping_fee(&self.fees, km, grams)?,
        ))
    }
}

/// One client per entity kind (each a cheap handle). The use cases take
/// the ones they use; the facade keeps them all to stop them at shutdown.
#[derive(Clone)]
pub struct Entities {
    pub users: Registry<User>,
    pub emails: Registry<EmailClaim>,
    pub shops: Registry<ShopEntity>,
    pub products: Registry<ProductEntity>,
    pub courses: Registry<CourseEntity>,
    pub carts: Registry<CartEntity>,
    pub coupons: Registry<CouponEntity>,
    pub orders: Registry<OrderEntity>,
    pub shippers: Registry<ShipperEntity>,
    pub queues: Registry<QueueEntity>,
    pub stock_buckets: Registry<StockBucketEntity>,
    pub reviews: Registry<ReviewEntity>,
    pub ratings: Registry<RatingEntity>,
    pub categories: Registry<CategoryTreeEntity>,
}

impl Entities {
    async fn start(rt: &Runtime) -> Result<Self, ractor::SpawnErr> {
        Ok(Entities {
            users: Registry::start(rt.clone()).await?,
            emails: Registry::start(rt.clone()).await?,
            shops: Registry::start(rt.clone()).await?,
            products: Registry::start(rt.clone()).await?,
            courses: Registry::start(rt.clone()).await?,
            carts: Registry::start(rt.clone()).await?,
            coupons: Registry::start(rt.clone()).await?,
            orders: Registry::start(rt.clone()).await?,
            shippers: Registry::start(rt.clone()).await?,
            queues: Registry::start(rt.clone()).await?,
            stock_buckets: Registry::start(rt.clone()).await?,
            reviews: Registry::start(rt.clone()).await?,
            ratings: Registry::start(rt.clone()).await?,
            categories: Registry::start(rt.clone()).await?,
        })
    }

    /// Stops every entity actor (after in-flight requests have drained).
    async fn shutdown(&self) {
        self.users.shutdown().await;
        self.emails.shutdown().await;
        self.shops.shutdown().await;
        self.products.shutdown().await;
        self.courses.shutdown().await;
        self.carts.shutdown().await;
        self.coupons.shutdown().await;
        self.orders.shutdown().await;
        self.shippers.shutdown().await;
        self.queues.shutdown().await;
        self.stock_buckets.shutdown().await;
        self.reviews.shutdown().await;
        self.ratings.shutdown().await;
        self.categories.shutdown().await;
    }
}

/// The use cases, one per room: each holds only the entity clients and
/// settings it uses. A handler calls exactly one of them.
pub struct Services {
    pub auth: account::auth::Auth,
    /// The user's own account: export (and erasure).
    pub account: account::self_service::SelfService,
    /// Hiding products and shops (admins).
    pub moderation: products::moderation::CatalogModeration,
    /// The admin's console over accounts.
    pub accounts: account::accounts::Accounts,
    /// Online backups of the embedded store.
    pub backups: platform::backups::Backups,
    pub profiles: account::profiles::Profiles,
    pub catalog: products::catalog::Catalog,
    pub categories: products::categories::Categories,
    pub coupons: commerce::coupons::Coupons,
    pub carts: commerce::cart::Carts,
    pub checkout: commerce::checkout::Checkouts,
    pub orders: commerce::orders::Orders,
    /// Platform statistics (and the worker that counts them).
    pub stats: Arc<platform::stats::Stats>,
    /// Stock levels, movements, low-stock alerts (and their worker).
    pub inventory: Arc<commerce::inventory::Inventory>,
    /// A merchant's figures about a shop (revenue, product sales, CSV).
    pub reports: commerce::shop_reports::ShopReports,
    pub payments: commerce::payments::Payments,
    /// The order follow-up worker (and its scheduler).
    pub fulfilment: Arc<commerce::fulfilment::Fulfilment>,
    pub notifications: account::notifications::Notifications,
    pub queues: queue::queues::Queues,
    /// The queue worker (places the orders of won claims).
    pub queue_work: Arc<queue::work::QueueWork>,
    pub flash_sales: queue::flash_sales::FlashSales,
    pub reviews: products::reviews::Reviews,
    /// Images of products, courses and reviews.
    pub media: products::media::Media,
    /// Full-text search over this node's index (and its indexer).
    pub search: Arc<products::search::Search>,
    /// Views and checkouts as trending, recently viewed, bought together.
    pub behavior: Arc<products::behavior::Behavior>,
    pub course_sessions: queue::course_sessions::CourseSessions,
    pub shipping: delivery::shipping::Shipping,
    /// Configured payment providers by name.
    pub providers: Providers,
    /// The sandbox gateway (its hosted page needs it directly).
    pub sandbox: Arc<Sandbox>,
    pub mailer: Arc<crate::mail::Mailer>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<Bus>,
    pub entities: Entities,
    /// Cluster mode: this node's place in the cluster.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// What the use cases are configured with.
pub struct ServiceConfig {
    pub commerce: CommerceConfig,
    pub gateways: GatewayConfig,
    pub tracking: delivery::tracker::TrackingConfig,
    pub mail: crate::mail::MailConfig,
    pub reset: account::auth::ResetConfig,
    pub burst: queue::queues::BurstConfig,
    pub throttles: crate::auth::ThrottleConfig,
    pub reviews: crate::domain::review::ReviewPolicy,
    pub search: products::search::SearchConfig,
    pub behavior: products::behavior::BehaviorConfig,
    pub media: crate::media::MediaStore,
}

impl Services {
    pub async fn start(
        rt: Runtime,
        hasher: PasswordHasher,
        jwt: JwtKeys,
        cfg: ServiceConfig,
    ) -> Result<Self, ServiceError> {
        let ServiceConfig {
            commerce,
            gateways,
            tracking,
            mail,
            reset,
            burst,
            throttles,
            reviews: review_policy,
            search,
            behavior,
            media,
        } = cfg;
        let spawn = |e: ractor::SpawnErr| ServiceError::Unavailable(e.to_string());
        let e = Entities::start(&rt).await.map_err(spawn)?;
        let duty = crate::cluster::Duty::new(rt.cluster.clone());
        let store = rt.store.clone();
        let bus = rt.bus.clone();
        let mailer = Arc::new(
            crate::mail::Mailer::new(&mail, store.clone(), duty.clone(), rt.metrics.clone())
                .map_err(ServiceError::Unavailable)?,
        );
        let sandbox = Arc::new(Sandbox::new(
            Registry::start(rt.clone()).await.map_err(spawn)?,
            gateways.secret.clone(),
            gateways.public_url.clone(),
            gateways.webhook_addr,
        ));
        let providers = gateways.providers(&sandbox)?;
        let throttles = Arc::new(crate::auth::Throttles::new(throttles));
        let commerce = Arc::new(commerce);

        let profiles = account::profiles::Profiles {
            users: e.users.clone(),
        };
        let stock = commerce::stock::Stock::new(e.products.clone(), e.stock_buckets.clone());
        let categories = products::categories::Categories {
            tree: e.categories.clone(),
            store: store.clone(),
        };
        let catalog = products::catalog::Catalog {
            categories: categories.clone(),
            shops: e.shops.clone(),
            products: e.products.clone(),
            courses: e.courses.clone(),
            stock: stock.clone(),
            store: store.clone(),
        };
        let notifications = account::notifications::Notifications {
            users: e.users.clone(),
            mailer: mailer.clone(),
            store: store.clone(),
        };
        let carts = commerce::cart::Carts {
            carts: e.carts.clone(),
            quoter: commerce::cart_quote::Quoter {
                coupons: e.coupons.clone(),
                catalog: catalog.clone(),
                commerce: commerce.clone(),
            },
            coupons: e.coupons.clone(),
            store: store.clone(),
            commerce: commerce.clone(),
            catalog: catalog.clone(),
            profiles: profiles.clone(),
        };
        let bursts = Arc::new(queue::work::Bursts::default());
        let queue_work = Arc::new(queue::work::QueueWork {
            queues: e.queues.clone(),
            orders: e.orders.clone(),
            products: e.products.clone(),
            shops: e.shops.clone(),
            store: store.clone(),
            bus: bus.clone(),
            bursts: bursts.clone(),
            commerce: commerce.clone(),
            providers: providers.clone(),
            kick: tokio::sync::Notify::new(),
            notifications: notifications.clone(),
            duty: duty.clone(),
        });
        let dispatch = delivery::dispatch::Dispatch {
            tracker: Arc::new(delivery::tracker::Tracker::new(tracking)),
            shippers: e.shippers.clone(),
            orders: e.orders.clone(),
            shops: e.shops.clone(),
            store: store.clone(),
            bus: bus.clone(),
        };
        // Cluster mode: shippers whose fixes other nodes take.
        let tracker = Arc::downgrade(&dispatch.tracker);
        bus.on_fleet(Arc::new(move |update| {
            if let Some(t) = tracker.upgrade() {
                t.apply_remote(update);
            }
        }));
        let tally = products::ratings::Tally {
            reviews: e.reviews.clone(),
            ratings: e.ratings.clone(),
        };
        let fulfilment = Arc::new(commerce::fulfilment::Fulfilment {
            tally: tally.clone(),
            orders: e.orders.clone(),
            products: e.products.clone(),
            stock: stock.clone(),
            coupons: e.coupons.clone(),
            carts: e.carts.clone(),
            queues: e.queues.clone(),
            users: e.users.clone(),
            store: store.clone(),
            providers: providers.clone(),
            throttles: throttles.clone(),
            dispatch: dispatch.clone(),
            queue_work: queue_work.clone(),
            duty: duty.clone(),
        });
        let orders = commerce::orders::Orders {
            orders: e.orders.clone(),
            store: store.clone(),
            catalog: catalog.clone(),
            fulfilment: fulfilment.clone(),
        };
        let search = Arc::new(products::search::Search::open(
            &search,
            store.clone(),
            duty.clone(),
            rt.metrics.clone(),
        )?);
        let behavior = Arc::new(products::behavior::Behavior::new(
            store.clone(),
            search.clone(),
            behavior,
            duty.clone(),
            rt.metrics.clone(),
        ));
        let reviews = products::reviews::Reviews {
            reviews: e.reviews.clone(),
            tally: tally.clone(),
            orders: orders.clone(),
            catalog: catalog.clone(),
            users: e.users.clone(),
            store: store.clone(),
            policy: review_policy,
            throttles: throttles.clone(),
        };
        let account = account::self_service::SelfService {
            users: e.users.clone(),
            emails: e.emails.clone(),
            queues: e.queues.clone(),
            orders: orders.clone(),
            reviews: reviews.clone(),
            carts: carts.clone(),
            catalog: catalog.clone(),
            behavior: behavior.clone(),
            store: store.clone(),
            media: media.clone(),
            shippers: e.shippers.clone(),
        };
        let media = products::media::Media {
            store: media,
            catalog: catalog.clone(),
            reviews: reviews.clone(),
            orders: e.orders.clone(),
            throttles: throttles.clone(),
        };
        Ok(Services {
            media,
            account,
            search,
            behavior: behavior.clone(),
            cluster: rt.cluster.clone(),
            moderation: products::moderation::CatalogModeration {
                products: e.products.clone(),
                shops: e.shops.clone(),
                store: store.clone(),
            },
            accounts: account::accounts::Accounts {
                users: e.users.clone(),
                store: store.clone(),
                catalog: products::moderation::CatalogModeration {
                    products: e.products.clone(),
                    shops: e.shops.clone(),
                    store: store.clone(),
                },
            },
            auth: account::auth::Auth {
                users: e.users.clone(),
                emails: e.emails.clone(),
                hasher,
                jwt,
                mailer: mailer.clone(),
                reset,
                throttles,
            },
            coupons: commerce::coupons::Coupons {
                coupons: e.coupons.clone(),
                store: store.clone(),
                catalog: catalog.clone(),
                zone: commerce.report_zone,
            },
            checkout: commerce::checkout::Checkouts {
                carts: e.carts.clone(),
                stock: stock.clone(),
                coupons: e.coupons.clone(),
                orders: e.orders.clone(),
                providers: providers.clone(),
                commerce: commerce.clone(),
                cart: carts.clone(),
                profiles: profiles.clone(),
                fulfilment: fulfilment.clone(),
                behavior,
                store: store.clone(),
            },
            payments: commerce::payments::Payments {
                orders: e.orders.clone(),
                providers: providers.clone(),
                store: store.clone(),
                fulfilment: fulfilment.clone(),
            },
            queues: queue::queues::Queues {
                queues: e.queues.clone(),
                courses: e.courses.clone(),
                bursts,
                burst,
                metrics: rt.metrics.clone(),
                providers: providers.clone(),
                profiles: profiles.clone(),
                queue_work: queue_work.clone(),
                fulfilment: fulfilment.clone(),
                orders: e.orders.clone(),
                store: store.clone(),
            },
            reviews: reviews.clone(),
            flash_sales: queue::flash_sales::FlashSales {
                queues: e.queues.clone(),
                products: e.products.clone(),
                stock: stock.clone(),
                burst,
                store: store.clone(),
            },
            course_sessions: queue::course_sessions::CourseSessions {
                courses: e.courses.clone(),
                notifications: notifications.clone(),
                store: store.clone(),
            },
            shipping: delivery::shipping::Shipping {
                dispatch,
                orders: orders.clone(),
                fulfilment: fulfilment.clone(),
                store: store.clone(),
                bus: bus.clone(),
            },
            stats: Arc::new(platform::stats::Stats::new(
                store.clone(),
                bus.clone(),
                duty.clone(),
                commerce.report_zone,
            )),
            inventory: Arc::new(commerce::inventory::Inventory {
                products: e.products.clone(),
                orders: e.orders.clone(),
                users: e.users.clone(),
                catalog: catalog.clone(),
                store: store.clone(),
                duty: duty.clone(),
                wake: Arc::new(tokio::sync::Notify::new()),
            }),
            backups: platform::backups::Backups {
                store: store.clone(),
            },
            reports: commerce::shop_reports::ShopReports {
                store: store.clone(),
                catalog: catalog.clone(),
                zone: commerce.report_zone,
            },
            profiles,
            catalog,
            categories,
            carts,
            orders,
            fulfilment,
            notifications,
            queue_work,
            providers,
            sandbox,
            mailer,
            store,
            bus,
            entities: e,
        })
    }

    /// Stops every entity actor (after in-flight requests have drained).
    pub async fn shutdown(&self) {
        self.entities.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

/// `NotFound(what)` unless entity `id` of kind `E` has ever been written.
/// Lets lookups of unknown ids answer 404 without spawning an actor for
/// them (ids are UUIDs: anything else never was).
pub(crate) async fn found<E: Entity>(
    registry: &Registry<E>,
    id: &str,
    what: &'static str,
) -> Result<(), ServiceError> {
    if uuid::Uuid::try_parse(id).is_ok() && registry.exists(id).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound(what).into())
    }
}

/// Payment gateway settings: where the sandbox links customers and delivers
/// its webhooks, and the PayOS credentials when configured.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub secret: Vec<u8>,
    pub public_url: String,
    pub webhook_addr: std::net::SocketAddr,
    /// The PayOS provider's settings, when configured.
    pub payos: Option<crate::payments::payos::PayOsConfig>,
    /// Names of the enabled providers.
    pub enabled: Vec<String>,
}

impl GatewayConfig {
    /// The enabled providers.
    fn providers(&self, sandbox: &Arc<Sandbox>) -> Result<Providers, ServiceError> {
        let enabled = |name: &str| self.enabled.iter().any(|p| p == name);
        let mut providers = Providers::default();
        if enabled("cod") {
            providers = providers.with(Arc::new(Cod));
        }
        if enabled("sandbox") {
            providers = providers.with(sandbox.clone());
        }
        if let (true, Some(cfg)) = (enabled("payos"), self.payos.clone()) {
            let payos = crate::payments::payos::PayOs::new(cfg)
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
            providers = providers.with(Arc::new(payos));
        }
        Ok(providers)
    }
}

/// One row of a read table, decoded (written by entities of `version`).
pub(crate) async fn read_row<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    table: &str,
    key: &str,
    version: u16,
) -> Result<Option<T>, ServiceError> {
    match store.get(table, key).await? {
        Some(v) => Ok(Some(crate::store::codec::decode(version, &v)?)),
        None => Ok(None),
    }
}

/// A new, time-ordered entity id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

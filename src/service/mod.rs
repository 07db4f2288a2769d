//! Use cases that span entities (register = claim an email + create a
//! user; add a product = read the shop + create the product) and read-side
//! queries over the read tables. No HTTP types here: the edge maps
//! `ServiceError` to responses.

pub mod auth;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod coupons;
pub mod course_sessions;
pub mod dispatch;
pub mod flash_sales;
pub mod fulfilment;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod queue_work;
pub mod queues;
pub mod tracking;
pub mod users;

use std::sync::Arc;

use crate::actors::cart::CartEntity;
use crate::actors::coupon::CouponEntity;
use crate::actors::course::CourseEntity;
use crate::actors::email::EmailClaim;
use crate::actors::entity::stream_id;
use crate::actors::order::OrderEntity;
use crate::actors::product::ProductEntity;
use crate::actors::queue::QueueEntity;
use crate::actors::shipper::ShipperEntity;
use crate::actors::shop::ShopEntity;
use crate::actors::user::User;
use crate::actors::{CallError, Entity, Registry, Runtime};
use crate::auth::{HashError, JwtKeys, PasswordHasher};
use crate::domain::pricing::FeeTable;
use crate::domain::DomainError;
use crate::live::Bus;
use crate::payments::sandbox::Sandbox;
use crate::payments::{Cod, Providers};
use crate::store::{Store, StoreError};

pub use auth::{AuthUser, TokenPair};

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
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl From<CallError<DomainError>> for ServiceError {
    fn from(e: CallError<DomainError>) -> Self {
        match e {
            CallError::Rejected(d) => ServiceError::Domain(d),
            CallError::Timeout => ServiceError::Timeout,
            CallError::Overloaded(m) => ServiceError::Busy(m),
            CallError::Unavailable(m) => ServiceError::Unavailable(m),
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
}

/// A conflict with the state of things (409).
fn conflict(code: &'static str, message: impl Into<String>) -> ServiceError {
    DomainError::Conflict {
        code,
        message: message.into(),
    }
    .into()
}

/// Everything the use cases need: one registry per entity kind, the store
/// for read tables, the hasher and the token keys.
pub struct Services {
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
    pub bursts: Arc<queues::Bursts>,
    pub burst: queues::BurstConfig,
    /// Wakes the queue worker (claims just decided).
    pub queue_kick: tokio::sync::Notify,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Live shipper positions and dispatch.
    pub tracker: tracking::Tracker,
    /// Configured payment providers by name.
    pub providers: Providers,
    /// The sandbox gateway (its hosted page needs it directly).
    pub sandbox: Arc<Sandbox>,
    pub commerce: CommerceConfig,
    pub store: Arc<dyn Store>,
    pub bus: Arc<Bus>,
    pub hasher: PasswordHasher,
    pub jwt: JwtKeys,
    pub mailer: Arc<crate::mail::Mailer>,
    pub reset: auth::ResetConfig,
    pub throttles: crate::auth::Throttles,
}

/// What the use cases are configured with.
pub struct ServiceConfig {
    pub commerce: CommerceConfig,
    pub gateways: GatewayConfig,
    pub tracking: tracking::TrackingConfig,
    pub mail: crate::mail::MailConfig,
    pub reset: auth::ResetConfig,
    pub burst: queues::BurstConfig,
    pub throttles: crate::auth::ThrottleConfig,
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
        } = cfg;
        let mailer = Arc::new(
            crate::mail::Mailer::new(&mail, rt.store.clone()).map_err(ServiceError::Unavailable)?,
        );
        let spawn = |e: ractor::SpawnErr| ServiceError::Unavailable(e.to_string());
        let sandbox = Arc::new(Sandbox::new(
            Registry::start(rt.clone()).await.map_err(spawn)?,
            gateways.secret,
            gateways.public_url,
            gateways.webhook_addr,
        ));
        let enabled = |name: &str| gateways.enabled.iter().any(|p| p == name);
        let mut providers = Providers::default();
        if enabled("cod") {
            providers = providers.with(Arc::new(Cod));
        }
        if enabled("sandbox") {
            providers = providers.with(sandbox.clone());
        }
        if let (true, Some(cfg)) = (enabled("payos"), gateways.payos.clone()) {
            let payos = crate::payments::payos::PayOs::new(cfg)
                .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
            providers = providers.with(Arc::new(payos));
        }
        Ok(Services {
            carts: Registry::start(rt.clone()).await.map_err(spawn)?,
            coupons: Registry::start(rt.clone()).await.map_err(spawn)?,
            orders: Registry::start(rt.clone()).await.map_err(spawn)?,
            shippers: Registry::start(rt.clone()).await.map_err(spawn)?,
            queues: Registry::start(rt.clone()).await.map_err(spawn)?,
            bursts: Arc::default(),
            burst,
            queue_kick: tokio::sync::Notify::new(),
            metrics: rt.metrics.clone(),
            tracker: tracking::Tracker::new(tracking),
            providers,
            sandbox,
            commerce,
            users: Registry::start(rt.clone()).await.map_err(spawn)?,
            emails: Registry::start(rt.clone()).await.map_err(spawn)?,
            shops: Registry::start(rt.clone()).await.map_err(spawn)?,
            products: Registry::start(rt.clone()).await.map_err(spawn)?,
            courses: Registry::start(rt.clone()).await.map_err(spawn)?,
            bus: rt.bus,
            store: rt.store,
            hasher,
            jwt,
            mailer,
            reset,
            throttles: crate::auth::Throttles::new(throttles),
        })
    }

    /// Stops every entity actor (after in-flight requests have drained).
    pub async fn shutdown(&self) {
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
        self.sandbox.shutdown().await;
    }

    /// Whether entity `id` of kind `E` has ever been written. Lets lookups
    /// of unknown ids answer 404 without spawning an actor for them.
    pub(crate) async fn exists<E: Entity>(
        &self,
        registry: &Registry<E>,
        id: &str,
        what: &'static str,
    ) -> Result<(), ServiceError> {
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(DomainError::NotFound(what).into());
        }
        if registry.live_actor(id).await.is_some()
            || self.store.head(&stream_id::<E>(id)).await? > 0
        {
            Ok(())
        } else {
            Err(DomainError::NotFound(what).into())
        }
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

/// A new, time-ordered entity id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

//! What a queue decision leaves to do: placing the orders of confirmed
//! claims, telling users their result or promotion, and publishing the
//! counters on `queue:{id}` (at most every 100 ms). It runs right after
//! each decision and from the scheduler, so it survives a crash.

use crate::actors::order::OrderEntity;
use crate::actors::product::ProductEntity;
use crate::actors::shop::ShopEntity;
use crate::actors::Registry;
use crate::payments::open_checkout;
use crate::payments::Providers;
use crate::service::account::notifications::Notifications;
use crate::service::CommerceConfig;
use crate::store::Store;
use dashmap::DashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::actors::entity::stream_id;
use crate::actors::product::ProductCommand;
use crate::actors::queue::{
    part_id, Claim, ClaimOrder, ClaimStatus, PendingWork, QueueConfig, QueueEntity, QueueKind,
    QueueStatus,
};
use crate::actors::shop::ShopCommand;
use crate::domain::notification::Notification;
use crate::domain::order::{ClaimRef, Order, Party, Placement};
use crate::domain::pricing::{price, Line};
use crate::domain::user::Address;
use crate::domain::GeoPoint;
use crate::live::{LiveEvent, QueueLive, Topic};
use crate::service::ServiceError;

mod windows;
use windows::TimerDue;

/// The product hold that is a flash sale's reserve.
pub fn sale_hold(queue_id: &str) -> String {
    format!("sale:{queue_id}")
}

/// Per-queue live state of the service: pending claims and the queues
/// whose counters are due to be published.
#[derive(Default)]
pub struct Bursts {
    pub(in crate::service) pending: DashMap<String, Arc<AtomicUsize>>,
    pub(in crate::service) counters: dashmap::DashSet<String>,
    /// Queue configurations (fixed once open), so that a claim costs one
    /// call to its queue.
    pub(in crate::service) configs: DashMap<String, QueueConfig>,
    /// Split queues: one refill or rebalance at a time per queue.
    pub(in crate::service) refills: DashMap<String, Arc<Refills>>,
    /// Split queues found sold out (no unit unconfirmed anywhere): claims
    /// are waitlisted without a refill until units are freed.
    pub(in crate::service) exhausted: dashmap::DashSet<String>,
    /// Split queues: what each part confirmed, as last heard.
    pub(in crate::service) part_confirmed: DashMap<String, Arc<Vec<std::sync::atomic::AtomicU32>>>,
}

/// A split queue's refills: one at a time, counted.
#[derive(Default)]
pub(in crate::service) struct Refills {
    pub(in crate::service) lock: tokio::sync::Mutex<()>,
    /// Refills done so far.
    pub(in crate::service) generation: std::sync::atomic::AtomicU64,
}

/// The queue worker: what a decided claim still owes (the order of a won
/// flash-sale claim, notifications, the live counters).
pub struct QueueWork {
    pub(in crate::service) queues: Registry<QueueEntity>,
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) shops: Registry<ShopEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) bus: Arc<crate::live::Bus>,
    pub(in crate::service) bursts: Arc<Bursts>,
    pub(in crate::service) commerce: Arc<CommerceConfig>,
    pub(in crate::service) providers: Providers,
    /// Wakes the worker (claims just decided).
    pub(in crate::service) kick: tokio::sync::Notify,
    pub(in crate::service) notifications: Notifications,
    /// Cluster mode: a queue's work runs on the owner of its shard.
    pub(in crate::service) duty: crate::cluster::Duty,
}

impl QueueWork {
    /// Wakes the queue worker: work was just recorded (it finds which
    /// queues owe some in the `queue_timers` table).
    pub(in crate::service) fn kick_queue_worker(&self) {
        self.kick.notify_one();
    }

    /// Publishes the queue's counters on `queue:{id}` — at most every
    /// 100 ms per queue, always ending with the newest. The counters are read
    /// from the queue when the publication goes out: decisions racing to
    /// report their own could otherwise leave an older one last.
    pub(in crate::service) fn publish_counters(&self, queue_id: &str) {
        if !self.bursts.counters.insert(queue_id.to_owned()) {
            return;
        }
        let (bus, store, bursts, queues) = (
            self.bus.clone(),
            self.store.clone(),
            self.bursts.clone(),
            self.queues.clone(),
        );
        let id = queue_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A decision after this point schedules the next publication.
            bursts.counters.remove(&id);
            let Ok(status) = queues.status(&id).await else {
                return;
            };
            if let Ok(seq) = counters_seq(store.as_ref(), &id, &status.config).await {
                bus.publish(&Topic::queue(&id), seq, counters(&status));
            }
        });
    }

    /// A queue's configuration (fixed once open).
    pub(in crate::service) async fn config_of(
        &self,
        queue_id: &str,
    ) -> Result<QueueConfig, ServiceError> {
        if let Some(c) = self.bursts.configs.get(queue_id) {
            return Ok(c.clone());
        }
        Ok(self.queues.status(queue_id).await?.config)
    }

    /// The sequence number `queue:{id}`'s counters are published with.
    pub async fn queue_seq(&self, queue_id: &str) -> Result<u64, ServiceError> {
        let config = match self.config_of(queue_id).await {
            Ok(config) => config,
            // Not open yet (a course before its first enrollment).
            Err(ServiceError::Domain(crate::domain::DomainError::NotFound(_))) => {
                return Ok(self.store.head(&stream_id::<QueueEntity>(queue_id)).await?)
            }
            Err(e) => return Err(e),
        };
        Ok(counters_seq(self.store.as_ref(), queue_id, &config).await?)
    }

    /// `advance_queue` of queue `queue_id`, or of each of its parts.
    pub(in crate::service) async fn advance_all(&self, queue_id: &str) -> Result<(), ServiceError> {
        let config = self.config_of(queue_id).await?;
        if !config.is_split() {
            return self.advance_queue(queue_id).await;
        }
        for i in 0..config.parts {
            match self.advance_queue(&part_id(queue_id, i)).await {
                // Not opened: it decided nothing.
                Err(ServiceError::Domain(crate::domain::DomainError::NotFound(_))) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Places the orders confirmed claims need and tells users their
    /// results, a page at a time.
    pub async fn advance_queue(&self, queue_id: &str) -> Result<(), ServiceError> {
        for _ in 0..64 {
            let PendingWork {
                config,
                orders,
                notify,
            } = self.queues.pending(queue_id, 256).await?;
            if orders.is_empty() && notify.is_empty() {
                return Ok(());
            }
            for claim in &orders {
                self.place_claim_order(&config, claim).await?;
                self.queues.order_placed(queue_id, claim.id.clone()).await?;
            }
            let told: Vec<(String, ClaimStatus)> =
                notify.iter().map(|c| (c.id.clone(), c.status)).collect();
            self.notifications
                .notify_each(
                    notify
                        .iter()
                        .map(|c| (c.user_id.clone(), claim_notification(&config, c)))
                        .collect(),
                    256,
                )
                .await?;
            if !told.is_empty() {
                self.queues.notified(queue_id, told).await?;
            }
        }
        Ok(())
    }

    /// The order of a confirmed claim that must be paid: a flash sale's at
    /// the sale price, its units moved from the sale's reserve; a paid
    /// course's, with nothing to ship. Idempotent by claim id.
    pub(in crate::service) async fn place_claim_order(
        &self,
        config: &QueueConfig,
        claim: &Claim,
    ) -> Result<(), ServiceError> {
        let Some(details) = &claim.order else {
            return Ok(());
        };
        // Placed already (by a concurrent or earlier round): its units were
        // moved then, and may since have gone back to the reserve.
        if self
            .store
            .head(&stream_id::<crate::actors::order::OrderEntity>(&claim.id))
            .await?
            > 0
        {
            return Ok(());
        }
        let provider = self
            .providers
            .get(details.payment_method)
            .cloned()
            .ok_or_else(|| ServiceError::Unavailable("payment provider gone".into()))?;
        let what = match config.kind {
            QueueKind::FlashSale => self.flash_sale_goods(config, claim, details).await?,
            QueueKind::Course => course_goods(config, claim),
        };
        let ClaimGoods {
            shop_id,
            merchant_id,
            line,
            address,
            km,
            fee,
            digital,
        } = what;
        let priced = price(
            std::slice::from_ref(&line),
            Default::default(),
            fee,
            self.commerce.tax_bps,
        )?;
        let t = priced.totals;
        let now = Utc::now();
        // A checkout of its own: one payment, paid again after a decline.
        let (mut payments, payment_deadline) = open_checkout(
            self.commerce.payment_timeout,
            provider.as_ref(),
            &crate::payments::session_for(&claim.id),
            &[(claim.id.clone().into(), t.total)],
            &config.currency,
            now,
        )
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let payment = payments.remove(0);
        let order = Order::placed(
            Placement {
                id: claim.id.clone().into(),
                customer_id: claim.user_id.clone(),
                shop_id,
                merchant_id,
                lines: vec![line],
                coupon: None,
                platform_voucher: None,
                priced,
                address,
                distance_km: km,
                payment,
                payment_deadline,
                return_window_secs: self.commerce.return_window_secs,
                by: Party::System,
                reason: Some(match config.kind {
                    QueueKind::FlashSale => "flash-sale claim".into(),
                    QueueKind::Course => "course enrollment".into(),
                }),
            },
            now,
        )
        .for_claim(
            ClaimRef {
                queue_id: claim.queue_id.clone(),
                claim_id: claim.id.clone(),
            },
            digital,
        );
        self.orders.place(order).await?;
        Ok(())
    }

    /// A flash sale's line: the product at the sale price, shipped from the
    /// shop; its units move from the sale's reserve to the order.
    async fn flash_sale_goods(
        &self,
        config: &QueueConfig,
        claim: &Claim,
        details: &ClaimOrder,
    ) -> Result<ClaimGoods, ServiceError> {
        let shop_id = config.shop_id.clone().unwrap_or_default();
        let shop = self.shops.call(&shop_id, ShopCommand::Get).await?;
        let product = self
            .products
            .call(&config.subject_id, ProductCommand::Get)
            .await?
            .product;
        let address = details
            .address
            .clone()
            .ok_or_else(|| ServiceError::Unavailable("claim without address".into()))?;
        let to = GeoPoint {
            lat: address.lat,
            lng: address.lng,
        };
        let (km, fee) = self
            .commerce
            .ship(&shop, to, product.weight_grams * u64::from(claim.quantity))
            .unwrap_or((0.0, 0));
        // Units from the sale's reserve to this order (no-op on a retry).
        self.products
            .call(
                &product.id,
                ProductCommand::Transfer {
                    from: sale_hold(&claim.queue_id),
                    to: claim.id.clone(),
                    quantity: u64::from(claim.quantity),
                },
            )
            .await?;
        let line = Line {
            product_id: product.id.clone(),
            shop_id: shop.id.clone(),
            name: format!("{} (flash sale)", product.name),
            unit_price: config.price,
            currency: config.currency.clone(),
            quantity: claim.quantity,
            weight_grams: product.weight_grams,
            list_price: (config.price < product.price).then_some(product.price),
        };
        Ok(ClaimGoods {
            shop_id: shop.id,
            merchant_id: shop.owner_id,
            line,
            address,
            km,
            fee,
            digital: false,
        })
    }

    pub async fn run_queue_work(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        match self.backfill_sale_windows().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "flash-sale windows backfilled"),
            Err(e) => tracing::warn!(error = %e, "flash-sale windows not backfilled"),
        }
        let mut wait = interval;
        loop {
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|d| *d) => return,
            }
            let (due, next) = match self.timers_due().await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "queue timer scan failed");
                    wait = interval;
                    continue;
                }
            };
            // A window opening before the next round is opened on time.
            wait = next.map_or(interval, |at| {
                let until = (at - Utc::now().timestamp_millis()).max(1) as u64;
                interval.min(Duration::from_millis(until))
            });
            for timer in due {
                let (queue_id, done) = match timer {
                    TimerDue::Work(id) => {
                        let r = self.advance_queue(&id).await;
                        (id, r)
                    }
                    TimerDue::Opening { id, key } => {
                        let r = self.open_window(&id, key).await;
                        (id, r)
                    }
                };
                if let Err(e) = done {
                    tracing::warn!(queue = %queue_id, error = %e, "queue work failed; retrying");
                }
            }
        }
    }
}

/// The sequence number of a queue's counters: its journal head, plus its
/// parts' for a split queue (each only grows, so the sum does).
async fn counters_seq(
    store: &dyn Store,
    queue_id: &str,
    config: &QueueConfig,
) -> Result<u64, crate::store::StoreError> {
    let mut seq = store.head(&stream_id::<QueueEntity>(queue_id)).await?;
    if config.is_split() {
        for i in 0..config.parts {
            seq += store
                .head(&stream_id::<QueueEntity>(&part_id(queue_id, i)))
                .await?;
        }
    }
    Ok(seq)
}

/// The public counters of a queue.
pub fn counters(s: &QueueStatus) -> LiveEvent {
    LiveEvent::Queue(QueueLive::Capacity {
        capacity: s.config.capacity,
        confirmed: s.confirmed,
        remaining: s.remaining,
        waitlisted: s.waitlisted,
        state: s.state(Utc::now()),
    })
}

/// What a claimant is told.
pub(in crate::service) fn claim_notification(config: &QueueConfig, c: &Claim) -> Notification {
    let what = match config.kind {
        QueueKind::Course => "the course",
        QueueKind::FlashSale => "the flash sale",
    };
    let (kind, title, body) = match c.status {
        ClaimStatus::Confirmed if c.notified == Some(ClaimStatus::Waitlisted) => (
            "enrollment_promoted",
            "A place opened up: you're in".to_owned(),
            format!("You moved up from the waitlist of {what} {}.", config.title),
        ),
        ClaimStatus::Confirmed => (
            "enrollment_confirmed",
            "You're in".to_owned(),
            format!("Your place in {what} {} is confirmed.", config.title),
        ),
        ClaimStatus::Waitlisted => (
            "enrollment_waitlisted",
            "You're on the waitlist".to_owned(),
            format!(
                "{} is full; you are number {} on the waitlist.",
                config.title,
                c.position.unwrap_or(0)
            ),
        ),
        ClaimStatus::Cancelled => (
            "enrollment_cancelled",
            "Cancelled".to_owned(),
            format!("Your place in {what} {} is cancelled.", config.title),
        ),
        ClaimStatus::Expired => (
            "enrollment_expired",
            "Your claim expired".to_owned(),
            format!(
                "Your claim in {what} {} expired: its order was not paid in time.",
                config.title
            ),
        ),
    };
    Notification {
        id: format!("claim:{}:{}", c.id, kind),
        kind: kind.into(),
        title,
        body,
        order_id: (config.needs_order() && c.status == ClaimStatus::Confirmed)
            .then(|| c.id.clone().into()),
        created_at: Utc::now(),
        read: false,
    }
}

/// What a claim's order is for, and where it goes.
struct ClaimGoods {
    shop_id: crate::domain::ids::ShopId,
    merchant_id: crate::domain::ids::UserId,
    line: Line,
    address: Address,
    km: f64,
    fee: u64,
    /// Nothing to ship (a course place).
    digital: bool,
}

/// A course place: the trainer is paid; nothing is shipped.
fn course_goods(config: &QueueConfig, claim: &Claim) -> ClaimGoods {
    let line = Line {
        product_id: config.subject_id.clone().into(),
        shop_id: config.subject_id.clone().into(),
        name: format!("{} (course)", config.title),
        unit_price: config.price,
        currency: config.currency.clone(),
        quantity: claim.quantity,
        weight_grams: 0,
        list_price: None,
    };
    let online = Address {
        id: String::new(),
        label: "online".into(),
        line1: "course".into(),
        city: String::new(),
        lat: 0.0,
        lng: 0.0,
        is_default: false,
    };
    ClaimGoods {
        shop_id: config.subject_id.clone().into(),
        merchant_id: config.owner_id.clone(),
        line,
        address: online,
        km: 0.0,
        fee: 0,
        digital: true,
    }
}

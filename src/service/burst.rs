//! Burst signups: free-course enrollments and flash-sale claims through the
//! queue actors (`actors::queue`).
//!
//! - Admission control: at most `max_pending` claims per queue wait for
//!   their decision; beyond, 429 with `Retry-After` at once.
//! - A flash sale reserves its stock on the product when it is created
//!   (held under `sale:{id}`); each confirmed claim's order takes its units
//!   from that reserve, and a cancelled or unpaid order gives them back.
//! - The queue's next actions (placing orders, telling users their result
//!   or promotion) run right after each decision and from the scheduler,
//!   so they survive a crash.
//! - `queue:{id}` gets the capacity counters at most every 100 ms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{new_id, ServiceError, Services};
use crate::actors::course::CourseCommand;
use crate::actors::entity::stream_id;
use crate::actors::order::OrderCommand;
use crate::actors::product::ProductCommand;
use crate::actors::queue::{
    Claim, ClaimOrder, ClaimStatus, QueueCommand, QueueConfig, QueueEntity, QueueKind, QueueReply,
    QueueStatus, CLAIMS_BY_QUEUE, CLAIMS_BY_USER,
};
use crate::actors::shop::ShopCommand;
use crate::actors::CallError;
use crate::domain::notification::Notification;
use crate::domain::order::{ClaimRef, Order, Party, Placement};
use crate::domain::pricing::{totals, Line};
use crate::domain::{Caller, DomainError, GeoPoint, Role};
use crate::live::{LiveEvent, QueueLive, Topic};
use crate::store::codec;

/// The product hold that is a flash sale's reserve.
pub fn sale_hold(queue_id: &str) -> String {
    format!("sale:{queue_id}")
}

#[derive(Debug, Clone, Copy)]
pub struct BurstConfig {
    /// Claims waiting for a decision per queue before 429.
    pub max_pending: usize,
    /// Waitlist bound per queue.
    pub max_waitlist: u32,
}

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            max_pending: 20_000,
            max_waitlist: 10_000,
        }
    }
}

/// Per-queue live state of the service: pending claims and the queues
/// whose counters are due to be published.
#[derive(Default)]
pub struct Bursts {
    pending: DashMap<String, Arc<AtomicUsize>>,
    counters: dashmap::DashSet<String>,
    /// Queue configurations (fixed once open), so that a claim costs one
    /// call to its queue.
    configs: DashMap<String, QueueConfig>,
}

/// Counts one waiting claim until dropped.
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlashSaleInput {
    pub product_id: String,
    /// Units reserved for the sale (taken from the product's stock).
    pub stock: u32,
    pub per_user_limit: u32,
    /// Sale price per unit, in the product's currency.
    pub price: u64,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlashSaleView {
    pub id: String,
    #[serde(flatten)]
    pub status: QueueStatus,
    /// `scheduled`, `open`, `sold_out` (only the waitlist is left) or `closed`.
    pub state: &'static str,
}

/// A course's seats: the same counters `queue:{id}` publishes live.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CourseSeats {
    pub capacity: u32,
    pub confirmed: u32,
    pub remaining: u32,
    pub waitlisted: u32,
}

/// How a claim is answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaimOutcome {
    #[serde(flatten)]
    pub claim: Claim,
    /// Capacity left after the decision.
    pub remaining: u32,
    /// An idempotent retry: this is the first decision.
    pub replayed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    #[serde(default = "one")]
    pub quantity: u32,
    /// Flash sales: where to deliver (default: your default address).
    pub address_id: Option<String>,
    /// Flash sales: `sandbox` (default), `payos` or `cod`.
    pub payment_method: Option<String>,
}

fn one() -> u32 {
    1
}

impl Default for ClaimRequest {
    fn default() -> Self {
        ClaimRequest {
            quantity: 1,
            address_id: None,
            payment_method: None,
        }
    }
}

fn view(id: &str, status: QueueStatus, now: DateTime<Utc>) -> FlashSaleView {
    let state = if status.config.opens_at.is_some_and(|t| now < t) {
        "scheduled"
    } else if status.config.closes_at.is_some_and(|t| now >= t) {
        "closed"
    } else if status.remaining == 0 {
        "sold_out"
    } else {
        "open"
    };
    FlashSaleView {
        id: id.to_owned(),
        status,
        state,
    }
}

fn status_of(reply: QueueReply) -> Result<QueueStatus, ServiceError> {
    match reply {
        QueueReply::Status(s) => Ok(s),
        QueueReply::Claim { status, .. } => Ok(*status),
        QueueReply::Pending { .. } => Err(ServiceError::Unavailable("unexpected reply".into())),
    }
}

impl Services {
    /// `POST /flash-sales` (the product's merchant): reserves `stock` units
    /// and opens the queue.
    pub async fn create_flash_sale(
        &self,
        caller: &Caller,
        input: FlashSaleInput,
    ) -> Result<FlashSaleView, ServiceError> {
        if !matches!(caller.role, Role::Merchant | Role::Admin) {
            return Err(DomainError::Forbidden("only merchants open flash sales".into()).into());
        }
        if input.stock == 0 || input.per_user_limit == 0 {
            return Err(DomainError::invalid(
                "stock",
                "stock and per_user_limit must be at least 1",
            )
            .into());
        }
        if let (Some(o), Some(c)) = (input.opens_at, input.closes_at) {
            if c <= o {
                return Err(
                    DomainError::invalid("closes_at", "closes_at must be after opens_at").into(),
                );
            }
        }
        self.exists(&self.products, &input.product_id, "product")
            .await?;
        let product = self
            .products
            .call(&input.product_id, ProductCommand::Get)
            .await?;
        caller.ensure_owner(&product.owner_id, "product")?;
        if input.price == 0 || input.price > product.price {
            return Err(DomainError::invalid(
                "price",
                "the sale price must be between 1 and the product's price",
            )
            .into());
        }
        let id = new_id();
        self.products
            .call(
                &product.id,
                ProductCommand::Hold {
                    order_id: sale_hold(&id),
                    quantity: u64::from(input.stock),
                },
            )
            .await?;
        let config = QueueConfig {
            kind: QueueKind::FlashSale,
            owner_id: product.owner_id.clone(),
            subject_id: product.id.clone(),
            shop_id: Some(product.shop_id.clone()),
            title: product.name.clone(),
            capacity: input.stock,
            per_user_limit: input.per_user_limit,
            price: input.price,
            currency: product.currency.clone(),
            opens_at: input.opens_at,
            closes_at: input.closes_at,
            max_waitlist: self.burst.max_waitlist,
        };
        let opened = self.queues.call(&id, QueueCommand::Open(config)).await;
        let status = match opened {
            Ok(reply) => status_of(reply)?,
            Err(e) => {
                // The sale never opened: its reserve goes back (nobody saw it).
                let release = ProductCommand::Release {
                    order_id: sale_hold(&id),
                };
                let _ = self.products.call(&product.id, release).await;
                return Err(e.into());
            }
        };
        Ok(view(&id, status, Utc::now()))
    }

    /// `GET /flash-sales/{id}`.
    pub async fn flash_sale(&self, id: &str) -> Result<FlashSaleView, ServiceError> {
        self.exists(&self.queues, id, "flash sale").await?;
        let status = status_of(self.queues.call(id, QueueCommand::Status).await?)?;
        if status.config.kind != QueueKind::FlashSale {
            return Err(DomainError::NotFound("flash sale").into());
        }
        Ok(view(id, status, Utc::now()))
    }

    /// `GET /courses/{id}/seats`: the course's counters (all seats free
    /// before its first enrollment opens its queue; reading opens nothing).
    pub async fn course_seats(&self, id: &str) -> Result<CourseSeats, ServiceError> {
        let (capacity, confirmed, remaining, waitlisted) =
            match self.exists(&self.queues, id, "course").await {
                Ok(()) => {
                    let s = status_of(self.queues.call(id, QueueCommand::Status).await?)?;
                    if s.config.kind != QueueKind::Course {
                        return Err(DomainError::NotFound("course").into());
                    }
                    (s.config.capacity, s.confirmed, s.remaining, s.waitlisted)
                }
                // No queue yet: nobody has enrolled.
                Err(ServiceError::Domain(DomainError::NotFound(_))) => {
                    let c = self.course_queue(id).await?;
                    (c.capacity, 0, c.capacity, 0)
                }
                Err(e) => return Err(e),
            };
        Ok(CourseSeats {
            capacity,
            confirmed,
            remaining,
            waitlisted,
        })
    }

    /// The queue of course `id`, opened from the course on first use.
    async fn course_queue(&self, id: &str) -> Result<QueueConfig, ServiceError> {
        self.exists(&self.courses, id, "course").await?;
        let course = self.courses.call(id, CourseCommand::Get).await?;
        Ok(QueueConfig {
            kind: QueueKind::Course,
            owner_id: course.trainer_id,
            subject_id: course.id,
            shop_id: None,
            title: course.title,
            capacity: course.capacity,
            per_user_limit: 1,
            price: course.price,
            currency: course.currency,
            opens_at: None,
            closes_at: None,
            max_waitlist: self.burst.max_waitlist,
        })
    }

    /// The queue's configuration; a course's queue is opened on first use.
    async fn queue_config(
        &self,
        queue_id: &str,
        course: bool,
    ) -> Result<QueueConfig, ServiceError> {
        if let Some(c) = self.bursts.configs.get(queue_id) {
            return Ok(c.clone());
        }
        let status = if course {
            let config = self.course_queue(queue_id).await?;
            status_of(
                self.queues
                    .call(queue_id, QueueCommand::Open(config))
                    .await?,
            )?
        } else {
            self.exists(&self.queues, queue_id, "flash sale").await?;
            status_of(self.queues.call(queue_id, QueueCommand::Status).await?)?
        };
        if self.bursts.configs.len() < 100_000 {
            self.bursts
                .configs
                .insert(queue_id.to_owned(), status.config.clone());
        }
        Ok(status.config)
    }

    fn admit(&self, queue_id: &str) -> Result<Admitted, ServiceError> {
        let counter = self
            .bursts
            .pending
            .entry(queue_id.to_owned())
            .or_default()
            .clone();
        if counter.fetch_add(1, Ordering::AcqRel) >= self.burst.max_pending {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(ServiceError::Busy(format!(
                "more than {} claims are waiting for this queue; retry in a moment",
                self.burst.max_pending
            )));
        }
        Ok(Admitted(counter))
    }

    /// `POST /courses/{id}/enrollments` (`course == true`) or
    /// `POST /flash-sales/{id}/claims`. The answer is sent once the
    /// decision is durable.
    pub async fn claim(
        &self,
        caller: &Caller,
        queue_id: &str,
        course: bool,
        req: ClaimRequest,
        idempotency_key: Option<crate::domain::IdempotencyKey>,
    ) -> Result<ClaimOutcome, ServiceError> {
        // Known queues only: unknown ids answer 404 before taking a slot.
        let config = self.queue_config(queue_id, course).await?;
        let _admitted = self.admit(queue_id)?;
        if (config.kind == QueueKind::Course) != course {
            return Err(DomainError::NotFound(if course { "course" } else { "flash sale" }).into());
        }
        let order = if config.needs_order() {
            // A course place is not delivered; a flash sale's order is.
            let address = match config.kind {
                QueueKind::Course => None,
                QueueKind::FlashSale => Some(
                    self.address(&caller.user_id, req.address_id.as_deref())
                        .await?
                        .ok_or_else(|| {
                            DomainError::invalid(
                                "address_id",
                                "add a delivery address to your profile first",
                            )
                        })?,
                ),
            };
            let method = req.payment_method.unwrap_or_else(|| "sandbox".into());
            let online = self.providers.get(&method).map(|p| p.online());
            if config.kind == QueueKind::Course && online == Some(false) {
                return Err(DomainError::invalid(
                    "payment_method",
                    "a course place is paid online",
                )
                .into());
            }
            if online.is_none() {
                return Err(DomainError::invalid(
                    "payment_method",
                    format!("payment method {method} is not available"),
                )
                .into());
            }
            Some(ClaimOrder {
                address,
                payment_method: method,
            })
        } else {
            None
        };
        let decided = self
            .queues
            .call(
                queue_id,
                QueueCommand::Claim {
                    claim_id: new_id(),
                    user_id: caller.user_id.clone(),
                    quantity: req.quantity,
                    idempotency_key,
                    order,
                },
            )
            .await;
        // Every claim the queue decided counts, refusals included: they are
        // what a burst is made of.
        if matches!(
            &decided,
            Ok(QueueReply::Claim {
                replayed: false,
                ..
            }) | Err(CallError::Rejected(DomainError::Conflict { .. }))
        ) {
            self.metrics.queue_claims.inc();
            let claims = self.metrics.queue_claims.get() as f64;
            self.metrics
                .journal_commits_per_claim
                .set(self.metrics.journal_commits.get() as f64 / claims.max(1.0));
        }
        let reply = decided?;
        let QueueReply::Claim {
            claim,
            replayed,
            status,
        } = reply
        else {
            return Err(ServiceError::Unavailable("unexpected reply".into()));
        };
        if !replayed {
            self.publish_counters(queue_id);
            self.kick_queue_worker();
        }
        Ok(ClaimOutcome {
            remaining: status.remaining,
            claim,
            replayed,
        })
    }

    /// The user gives a claim up; the waitlist moves up.
    pub async fn cancel_claim(
        &self,
        caller: &Caller,
        kind: QueueKind,
        queue_id: &str,
        claim_id: &str,
    ) -> Result<Claim, ServiceError> {
        self.queue_of_kind(kind, queue_id).await?;
        let reply = self
            .queues
            .call(
                queue_id,
                QueueCommand::Cancel {
                    user_id: caller.user_id.clone(),
                    claim_id: claim_id.to_owned(),
                },
            )
            .await?;
        let QueueReply::Claim { claim, .. } = reply else {
            return Err(ServiceError::Unavailable("unexpected reply".into()));
        };
        // A cancelled flash-sale claim whose order exists: cancel the order
        // too (its units go back to the sale).
        if claim.order_placed && claim.status == ClaimStatus::Cancelled {
            let _ = self
                .orders
                .call(
                    &claim.id,
                    OrderCommand::System {
                        step: crate::domain::order::Step::Cancel,
                        reason: "claim cancelled".into(),
                    },
                )
                .await;
            let _ = self.advance_order(&claim.id).await;
        }
        self.publish_counters(queue_id);
        self.advance_queue(queue_id).await?;
        Ok(claim)
    }

    /// The status of queue `queue_id` if it is a `kind` queue: a course's
    /// id on a flash-sale path (or the other way round) is 404.
    async fn queue_of_kind(
        &self,
        kind: QueueKind,
        queue_id: &str,
    ) -> Result<QueueStatus, ServiceError> {
        let what = match kind {
            QueueKind::Course => "course",
            QueueKind::FlashSale => "flash sale",
        };
        self.exists(&self.queues, queue_id, what).await?;
        let status = status_of(self.queues.call(queue_id, QueueCommand::Status).await?)?;
        if status.config.kind != kind {
            return Err(DomainError::NotFound(what).into());
        }
        Ok(status)
    }

    /// Wakes the queue worker: work was just recorded (it finds which
    /// queues owe some in the `queue_timers` table).
    fn kick_queue_worker(&self) {
        self.queue_kick.notify_one();
    }

    /// Publishes the queue's counters on `queue:{id}` — at most every
    /// 100 ms per queue, always ending with the newest. The counters are read
    /// from the queue when the publication goes out: decisions racing to
    /// report their own could otherwise leave an older one last.
    fn publish_counters(&self, queue_id: &str) {
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
            let Ok(Ok(status)) = queues.call(&id, QueueCommand::Status).await.map(status_of) else {
                return;
            };
            if let Ok(head) = store.head(&stream_id::<QueueEntity>(&id)).await {
                bus.publish(&Topic::queue(&id), head, counters(&status));
            }
        });
    }

    /// Places the orders confirmed claims need and tells users their
    /// results, a page at a time.
    pub async fn advance_queue(&self, queue_id: &str) -> Result<(), ServiceError> {
        for _ in 0..64 {
            let QueueReply::Pending {
                config,
                orders,
                notify,
            } = self
                .queues
                .call(queue_id, QueueCommand::Pending { limit: 256 })
                .await?
            else {
                return Err(ServiceError::Unavailable("unexpected reply".into()));
            };
            if orders.is_empty() && notify.is_empty() {
                return Ok(());
            }
            for claim in &orders {
                self.place_claim_order(&config, claim).await?;
                self.queues
                    .call(
                        queue_id,
                        QueueCommand::OrderPlaced {
                            claim_id: claim.id.clone(),
                        },
                    )
                    .await?;
            }
            let told: Vec<(String, ClaimStatus)> =
                notify.iter().map(|c| (c.id.clone(), c.status)).collect();
            self.notify_each(
                notify
                    .iter()
                    .map(|c| (c.user_id.clone(), claim_notification(&config, c)))
                    .collect(),
                256,
            )
            .await?;
            if !told.is_empty() {
                self.queues
                    .call(queue_id, QueueCommand::Notified { claims: told })
                    .await?;
            }
        }
        Ok(())
    }

    /// The order of a confirmed claim that must be paid: a flash sale's at
    /// the sale price, its units moved from the sale's reserve; a paid
    /// course's, with nothing to ship. Idempotent by claim id.
    async fn place_claim_order(
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
            .get(&details.payment_method)
            .cloned()
            .ok_or_else(|| ServiceError::Unavailable("payment provider gone".into()))?;
        let subtotal = config.price * u64::from(claim.quantity);
        let (shop_id, merchant_id, line, address, km, fee, digital) = match config.kind {
            QueueKind::FlashSale => {
                let shop_id = config.shop_id.clone().unwrap_or_default();
                let shop = self.shops.call(&shop_id, ShopCommand::Get).await?;
                let product = self
                    .products
                    .call(&config.subject_id, ProductCommand::Get)
                    .await?;
                let address = details
                    .address
                    .clone()
                    .ok_or_else(|| ServiceError::Unavailable("claim without address".into()))?;
                let to = GeoPoint {
                    lat: address.lat,
                    lng: address.lng,
                };
                let (km, fee) = self
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
                };
                (shop.id, shop.owner_id, line, address, km, fee, false)
            }
            QueueKind::Course => {
                let line = Line {
                    product_id: config.subject_id.clone(),
                    shop_id: config.subject_id.clone(),
                    name: format!("{} (course)", config.title),
                    unit_price: config.price,
                    currency: config.currency.clone(),
                    quantity: claim.quantity,
                    weight_grams: 0,
                };
                let online = crate::domain::user::Address {
                    id: String::new(),
                    label: "online".into(),
                    line1: "course".into(),
                    city: String::new(),
                    lat: 0.0,
                    lng: 0.0,
                    is_default: false,
                };
                let trainer = config.owner_id.clone();
                (
                    config.subject_id.clone(),
                    trainer,
                    line,
                    online,
                    0.0,
                    0,
                    true,
                )
            }
        };
        let t = totals(subtotal, 0, fee, self.commerce.tax_bps)?;
        let now = Utc::now();
        let (payment, payment_deadline) = self
            .open_payment(provider.as_ref(), &claim.id, t.total, &config.currency, now)
            .await?;
        let order = Order::placed(
            Placement {
                id: claim.id.clone(),
                customer_id: claim.user_id.clone(),
                shop_id,
                merchant_id,
                lines: vec![line],
                coupon: None,
                totals: t,
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
        self.orders
            .call(
                &claim.id,
                OrderCommand::Place {
                    order: Box::new(order),
                },
            )
            .await?;
        Ok(())
    }

    /// `GET /users/me/enrollments`: your claims and enrollments, newest
    /// queue first.
    pub async fn my_claims(&self, user_id: &str) -> Result<Vec<Claim>, ServiceError> {
        let rows = self
            .store
            .scan(CLAIMS_BY_USER, &format!("{user_id}|"), None, 1000)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
            .collect())
    }

    /// `GET /courses/{id}/enrollments` and `GET /flash-sales/{id}/claims`
    /// (the owner).
    pub async fn queue_claims(
        &self,
        caller: &Caller,
        kind: QueueKind,
        queue_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Claim>, Option<String>), ServiceError> {
        let status = self.queue_of_kind(kind, queue_id).await?;
        caller.ensure_owner(&status.config.owner_id, "queue")?;
        let prefix = format!("{queue_id}|");
        let start = after.map(|a| format!("{prefix}{a}"));
        let rows = self
            .store
            .scan(CLAIMS_BY_QUEUE, &prefix, start.as_deref(), limit)
            .await?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|(k, _)| k[prefix.len()..].to_owned()))
            .flatten();
        Ok((
            rows.iter()
                .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
                .collect(),
            next,
        ))
    }

    /// Runs the work of queues that owe some (after a restart, or when a
    /// kick was missed).
    pub async fn run_queue_work(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = self.queue_kick.notified() => {}
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|d| *d) => return,
            }
            let rows = match self
                .store
                .scan(crate::actors::queue::QUEUE_TIMERS, "", None, 64)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "queue timer scan failed");
                    continue;
                }
            };
            for (key, _) in rows {
                let Some((_, queue_id)) = key.split_once('|') else {
                    continue;
                };
                if let Err(e) = self.advance_queue(queue_id).await {
                    tracing::warn!(queue = %queue_id, error = %e, "queue work failed; retrying");
                }
            }
        }
    }
}

/// The public counters of a queue.
pub fn counters(s: &QueueStatus) -> LiveEvent {
    LiveEvent::Queue(QueueLive::Capacity {
        capacity: s.config.capacity,
        confirmed: s.confirmed,
        remaining: s.remaining,
        waitlisted: s.waitlisted,
    })
}

/// What a claimant is told.
fn claim_notification(config: &QueueConfig, c: &Claim) -> Notification {
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
            .then(|| c.id.clone()),
        created_at: Utc::now(),
        read: false,
    }
}

/// Course schedules: sessions and their exercises, for the enrolled.
impl Services {
    /// Whether `user_id` holds a confirmed place in course `course_id`.
    async fn enrolled(&self, user_id: &str, course_id: &str) -> Result<bool, ServiceError> {
        let rows = self
            .store
            .scan(CLAIMS_BY_USER, &format!("{user_id}|{course_id}|"), None, 64)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
            .any(|c| c.status == ClaimStatus::Confirmed))
    }

    /// `POST /courses/{id}/sessions` (the trainer): adds a session and
    /// tells everyone enrolled.
    pub async fn add_course_session(
        &self,
        caller: &Caller,
        course_id: &str,
        mut session: crate::domain::catalog::CourseSession,
    ) -> Result<crate::domain::catalog::CourseSession, ServiceError> {
        self.exists(&self.courses, course_id, "course").await?;
        let session_id = new_id();
        session.id = Some(session_id.clone());
        let course = self
            .courses
            .call(
                course_id,
                CourseCommand::AddSession {
                    caller: caller.clone(),
                    session,
                },
            )
            .await?;
        let added = course
            .sessions
            .iter()
            .find(|s| s.id.as_deref() == Some(session_id.as_str()))
            .cloned()
            .ok_or_else(|| ServiceError::Unavailable("the session vanished".into()))?;
        let note = Notification {
            id: format!("session:{session_id}"),
            kind: "new_session".into(),
            title: format!("New session in {}", course.title),
            body: format!(
                "{} on {} ({} min).",
                added.title.clone().unwrap_or_else(|| "A session".into()),
                added.starts_at.format("%Y-%m-%d %H:%M UTC"),
                added.duration_min
            ),
            order_id: None,
            created_at: Utc::now(),
            read: false,
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(
                    CLAIMS_BY_QUEUE,
                    &format!("{course_id}|"),
                    after.as_deref(),
                    512,
                )
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let users: Vec<String> = page
                .iter()
                .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
                .filter(|c| c.status == ClaimStatus::Confirmed)
                .map(|c| c.user_id)
                .collect();
            self.notify_each(users.into_iter().map(|u| (u, note.clone())).collect(), 32)
                .await?;
        }
        Ok(added)
    }

    /// `GET /courses/{id}/sessions`: the schedule with exercises, for the
    /// enrolled, the trainer and admins.
    pub async fn course_sessions(
        &self,
        caller: &Caller,
        course_id: &str,
    ) -> Result<Vec<crate::domain::catalog::CourseSession>, ServiceError> {
        self.exists(&self.courses, course_id, "course").await?;
        let course = self.courses.call(course_id, CourseCommand::Get).await?;
        if !caller.may_modify(&course.trainer_id)
            && !self.enrolled(&caller.user_id, course_id).await?
        {
            return Err(
                DomainError::Forbidden("enroll in this course to see its sessions".into()).into(),
            );
        }
        Ok(course.sessions)
    }
}

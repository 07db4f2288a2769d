//! The order follow-up worker: each order's durable next action (payment
//! timeout, releasing or consuming stock, refunds, escrow, notifications,
//! dispatch) carried out by the scheduler, which also resolves abandoned
//! checkouts; and undoing what a checkout that failed holds.

use crate::actors::cart::CartEntity;
use crate::actors::cart::{CartCommand, CartItem, Checkout};
use crate::actors::coupon::CouponEntity;
use crate::actors::entity::stream_id;
use crate::actors::order::OrderEntity;
use crate::actors::product::ProductEntity;
use crate::actors::queue::QueueEntity;
use crate::actors::review::ReviewEntity;
use crate::actors::user::User;
use crate::actors::CallError;
use crate::actors::Registry;
use crate::domain::DomainError;
use crate::payments::Providers;
use crate::service::delivery::dispatch::Dispatch;
use crate::service::found;
use crate::service::queue::work::QueueWork;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::actors::coupon::CouponCommand;
use crate::actors::order::{timer_order, OrderCommand, PaymentReport, TIMERS_TABLE};
use crate::actors::product::ProductCommand;
use crate::domain::notification::notifications_for;
use crate::domain::order::{next_action, Action, Order, OrderStatus, Step, StockStatus};
use crate::payments::{Provider, ProviderError, RemoteStatus};
use crate::service::ServiceError;

/// The order follow-up worker: it touches every entity an order holds
/// something of.
pub struct Fulfilment {
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) stock: crate::service::commerce::stock::Stock,
    pub(in crate::service) coupons: Registry<CouponEntity>,
    pub(in crate::service) carts: Registry<CartEntity>,
    pub(in crate::service) queues: Registry<QueueEntity>,
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) providers: Providers,
    pub(in crate::service) throttles: Arc<crate::auth::Throttles>,
    pub(in crate::service) dispatch: Dispatch,
    pub(in crate::service) queue_work: Arc<QueueWork>,
    /// Cluster mode: a timer runs on the owner of its order (or cart).
    pub(in crate::service) duty: crate::cluster::Duty,
    /// Settles reviews whose rating summary was not told (their timers).
    pub(in crate::service) tally: crate::service::products::ratings::Tally,
}

impl Fulfilment {
    /// Gives back what a checkout that did not complete holds: orders it
    /// placed are cancelled (their next action returns their stock and
    /// coupon use); for the others, held stock and the coupon use are
    /// released directly. Whether everything went back.
    pub(in crate::service) async fn undo_checkout(&self, checkout: &Checkout) -> bool {
        let items = &checkout.items;
        let codes: Vec<&str> = checkout
            .coupon
            .iter()
            .map(String::as_str)
            .chain(checkout.vouchers.iter().map(|v| v.code.as_str()))
            .collect();
        let mut clean = true;
        for p in &checkout.orders {
            if found(&self.orders, &p.order_id, "order").await.is_ok() {
                let cancel = OrderCommand::System {
                    step: Step::Cancel,
                    reason: "checkout failed".into(),
                };
                clean &= self.orders.call(&p.order_id, cancel).await.is_ok();
                let _ = self.advance_order(&p.order_id).await;
                continue;
            }
            clean &= self.release_reservations(items, &codes, &p.order_id).await;
        }
        clean
    }

    /// Releases stock held and the coupon and voucher uses made for
    /// `order_id` (a no-op where nothing is held). Whether every release
    /// went through.
    pub(in crate::service) async fn release_reservations(
        &self,
        items: &[CartItem],
        codes: &[&str],
        order_id: &str,
    ) -> bool {
        let mut clean = true;
        for item in items {
            match self.stock.release(&item.product_id, order_id).await {
                Ok(()) | Err(ServiceError::Domain(DomainError::NotFound(_))) => {}
                Err(e) => {
                    tracing::warn!(order = %order_id, product = %item.product_id, error = %e, "stock not released");
                    clean = false;
                }
            }
        }
        for code in codes {
            let release = CouponCommand::Release {
                order_id: order_id.into(),
            };
            match self.coupons.call(code, release).await {
                Ok(_) | Err(CallError::Rejected(DomainError::NotFound(_))) => {}
                Err(e) => {
                    tracing::warn!(order = %order_id, coupon = %code, error = %e, "coupon use not released");
                    clean = false;
                }
            }
        }
        clean
    }

    /// A checkout still open at its deadline was interrupted (the process
    /// stopped mid-way): completed if every order was placed, otherwise
    /// undone.
    pub async fn resolve_open_checkout(&self, user_id: &str) -> Result<(), ServiceError> {
        let cart = self.carts.send(user_id, CartCommand::Get).await?;
        let Some(open) = cart.checkouts.iter().find(|c| !c.completed) else {
            return Ok(());
        };
        let mut placed = 0;
        for p in &open.orders {
            if found(&self.orders, &p.order_id, "order").await.is_ok() {
                placed += 1;
            }
        }
        let key = open.key.clone();
        if placed == open.orders.len() {
            self.carts
                .send(user_id, CartCommand::CompleteCheckout { key })
                .await?;
        } else if self.undo_checkout(open).await {
            self.carts
                .send(user_id, CartCommand::AbandonCheckout { key })
                .await?;
        } else {
            return Err(ServiceError::Unavailable(
                "an interrupted checkout could not be undone yet".into(),
            ));
        }
        Ok(())
    }

    /// Carries out an order's due next actions (a few at most per call;
    /// the scheduler picks up the rest). Idempotent: every step is keyed by
    /// the order id.
    pub async fn advance_order(&self, id: &str) -> Result<(), ServiceError> {
        for _ in 0..8 {
            if !self.advance_once(id).await? {
                break;
            }
        }
        Ok(())
    }

    /// One due action of order `id`; whether there was one.
    pub(in crate::service) async fn advance_once(&self, id: &str) -> Result<bool, ServiceError> {
        let order = self.orders.get(id).await?;
        let Some((due, action)) = next_action(&order) else {
            return Ok(false);
        };
        if due > Utc::now() {
            return Ok(false);
        }
        let cmd = match action {
            Action::PaymentTimeout => self.payment_timeout(&order).await?,
            Action::ReleaseStock => self.release_holds(&order).await?,
            Action::ConsumeStock => self.consume_stock(&order).await?,
            Action::Refund => self.refund(&order).await?,
            Action::ReleaseEscrow => OrderCommand::ReleaseEscrow,
            Action::Notify => self.notify_timeline(&order).await?,
            Action::Complete => OrderCommand::System {
                step: Step::Complete,
                reason: "paid: nothing to ship".into(),
            },
            Action::Dispatch => self.dispatch.dispatch(&order).await?,
            Action::BindShipper => self.dispatch.bind_shipper(&order).await?,
            Action::ReleaseShipper => self.dispatch.release_shipper(&order).await?,
        };
        if let OrderCommand::Offer { shipper_id, .. } = &cmd {
            // The order may have moved on since it was read: give the
            // shipper's half of the offer back at once.
            let shipper_id = shipper_id.clone();
            if let Err(e) = self.orders.call(id, cmd).await {
                self.dispatch
                    .shippers
                    .call(
                        &shipper_id,
                        crate::actors::shipper::ShipperCommand::Withdraw {
                            order_id: id.into(),
                        },
                    )
                    .await?;
                return Err(e.into());
            }
            return Ok(true);
        }
        self.orders.call(id, cmd).await?;
        Ok(true)
    }

    fn provider_of(&self, order: &Order) -> Result<Arc<dyn Provider>, ServiceError> {
        self.providers
            .get(order.payment.provider)
            .cloned()
            .ok_or_else(|| {
                ServiceError::Unavailable(format!(
                    "payment provider {} is not configured",
                    order.payment.provider
                ))
            })
    }

    /// Unpaid at the deadline: the provider is asked once more; paid is
    /// recorded (this order's share of a checkout's payment), anything
    /// else closes the payment at the provider, so that it can no longer
    /// be paid, and cancels. Every order of a checkout shares its deadline,
    /// so they go together; a payment that lands anyway (a provider that
    /// cannot close one) is refunded by the cancelled orders.
    async fn payment_timeout(&self, order: &Order) -> Result<OrderCommand, ServiceError> {
        let provider = self.provider_of(order)?;
        let unavailable = |e: ProviderError| ServiceError::Unavailable(e.to_string());
        let reference = &order.payment.reference;
        let paid = |amount| {
            OrderCommand::Payment(PaymentReport {
                event_id: None,
                amount: order.payment.share_of(amount).unwrap_or(amount),
                paid: true,
            })
        };
        Ok(
            match provider.status(reference).await.map_err(unavailable)? {
                RemoteStatus::Paid { amount } => paid(amount),
                RemoteStatus::Pending | RemoteStatus::Failed => {
                    match provider.cancel(reference).await {
                        Ok(()) => {}
                        // Paid between the two questions: the next look records it.
                        Err(ProviderError::AlreadyPaid) => {
                            return Err(ServiceError::Unavailable(
                                "paid while its deadline passed; looked at again".into(),
                            ))
                        }
                        Err(e) => return Err(unavailable(e)),
                    }
                    OrderCommand::System {
                        step: Step::Cancel,
                        reason: crate::domain::order::PAYMENT_TIMEOUT.into(),
                    }
                }
            },
        )
    }

    /// Cancelled: what the order held goes back (stock and coupon use, or
    /// a flash-sale claim's units to the sale's reserve).
    async fn release_holds(&self, order: &Order) -> Result<OrderCommand, ServiceError> {
        let id = order.id.as_str();
        if let Some(claim) = &order.claim {
            // Its units go back to the sale's reserve and the claim lapses,
            // which lets the waitlist in.
            if order.stock == StockStatus::Held && !order.digital {
                for l in &order.lines {
                    let back = ProductCommand::Return {
                        from: id.to_owned(),
                        to: crate::service::queue::work::sale_hold(&claim.queue_id),
                    };
                    self.products.call(&l.product_id, back).await?;
                }
            }
            self.queues
                .expire(&claim.queue_id, &order.customer_id, claim.claim_id.clone())
                .await?;
            self.queue_work.rebalance(&claim.queue_id).await?;
            self.queue_work.advance_all(&claim.queue_id).await?;
            return Ok(OrderCommand::StockReleased);
        }
        if order.stock == StockStatus::Held {
            for l in &order.lines {
                self.stock.release(&l.product_id, id).await?;
            }
        }
        if let (Some(code), false) = (&order.coupon, order.coupon_released) {
            let release = CouponCommand::Release {
                order_id: id.into(),
            };
            self.coupons.call(code, release).await?;
        }
        if let (Some(v), false) = (&order.platform_voucher, order.coupon_released) {
            self.release_platform_voucher(order, v).await?;
        }
        Ok(OrderCommand::StockReleased)
    }

    /// The checkout's platform voucher use goes back once every order of
    /// the checkout is cancelled (or was never placed). Each order checks
    /// after its own cancellation is recorded, so the last one to be
    /// cancelled sees all the others cancelled; a release twice is a no-op.
    async fn release_platform_voucher(
        &self,
        order: &Order,
        v: &crate::domain::order::PlatformVoucher,
    ) -> Result<(), ServiceError> {
        for other in v.orders.iter().filter(|o| **o != order.id) {
            match self.orders.get(other).await {
                Ok(o) if o.status != OrderStatus::Cancelled => return Ok(()),
                Ok(_) | Err(CallError::Rejected(DomainError::NotFound(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let release = CouponCommand::Release {
            order_id: v.redemption.clone(),
        };
        match self.coupons.call(&v.code, release).await {
            Ok(_) | Err(CallError::Rejected(DomainError::NotFound(_))) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Delivered: the held stock is sold.
    async fn consume_stock(&self, order: &Order) -> Result<OrderCommand, ServiceError> {
        for l in &order.lines {
            self.stock.consume(&l.product_id, &order.id).await?;
        }
        Ok(OrderCommand::StockConsumed)
    }

    /// Paid money goes back, through the provider when it can refund.
    async fn refund(&self, order: &Order) -> Result<OrderCommand, ServiceError> {
        let provider = self.provider_of(order)?;
        let amount = order.refund_amount();
        match provider
            .refund(&order.payment.reference, amount, &order.id)
            .await
        {
            Ok(refund_reference) => Ok(OrderCommand::Refunded {
                refund_reference,
                amount,
            }),
            Err(ProviderError::Unsupported(_)) => Ok(OrderCommand::RefundDue),
            Err(e) => Err(ServiceError::Unavailable(e.to_string())),
        }
    }

    /// The timeline entries nobody was told about yet become notifications.
    async fn notify_timeline(&self, order: &Order) -> Result<OrderCommand, ServiceError> {
        for index in order.notified as usize..order.timeline.len() {
            for (to, notification) in notifications_for(order, index) {
                self.users.notify(&to, notification).await?;
            }
        }
        Ok(OrderCommand::NotificationsSent {
            upto: order.timeline.len() as u32,
        })
    }

    /// Runs due order actions every `interval` until `shutdown` flips. An
    /// order whose action fails is retried after a back-off.
    /// Due timers, oldest first, with the stream whose owner runs each
    /// (`order:{id}`, `cart:{user}` for an open checkout, `review:{id}` for
    /// a review whose rating is not yet counted): up to 256 of
    /// this node's, reading at most 16 pages to get past other nodes'.
    async fn due_timers(
        &self,
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        use crate::store::Pick;
        crate::store::scan_picking(self.store.as_ref(), TIMERS_TABLE, 256, 16, |key, _| {
            let Some((due_ms, id)) = timer_order(&key) else {
                return Pick::Skip;
            };
            if due_ms > now.timestamp_millis() {
                return Pick::Stop;
            }
            let stream = match timer_of(id) {
                Timer::Checkout(user) => stream_id::<CartEntity>(user),
                Timer::Review(review) => stream_id::<ReviewEntity>(review),
                Timer::Order(order) => stream_id::<OrderEntity>(order),
            };
            match self.duty.mine(&stream) {
                true => Pick::Take((id.to_owned(), stream)),
                false => Pick::Skip,
            }
        })
        .await
    }

    pub async fn run_scheduler(
        self: std::sync::Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff: BTreeMap<String, chrono::DateTime<Utc>> = BTreeMap::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|d| *d) => return,
            }
            let now = Utc::now();
            backoff.retain(|_, until| *until > now);
            self.throttles.sweep();
            if self.duty.chores() {
                if let Err(e) = self.dispatch.expire_tracks(4096).await {
                    tracing::warn!(error = %e, "track expiry failed");
                }
            }
            let due = match self.due_timers(now).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "timer scan failed");
                    continue;
                }
            };
            for (order_id, stream) in due {
                let order_id = order_id.as_str();
                if backoff.contains_key(order_id) || !self.duty.mine(&stream) {
                    continue;
                }
                let done = match timer_of(order_id) {
                    Timer::Checkout(user_id) => self.resolve_open_checkout(user_id).await,
                    Timer::Review(review_id) => self.tally.settle(review_id).await,
                    Timer::Order(order_id) => self.advance_order(order_id).await,
                };
                if let Err(e) = done {
                    tracing::warn!(order = %order_id, error = %e, "order action failed; retrying later");
                    if backoff.len() < 10_000 {
                        backoff.insert(order_id.to_owned(), now + chrono::Duration::seconds(5));
                    }
                }
            }
        }
    }
}

/// What a row of the timers table is for.
enum Timer<'a> {
    Order(&'a str),
    /// A checkout left open (the cart's user).
    Checkout(&'a str),
    /// A review whose rating summary was not told.
    Review(&'a str),
}

fn timer_of(id: &str) -> Timer<'_> {
    if let Some(user) = id.strip_prefix(crate::actors::cart::CHECKOUT_TIMER_PREFIX) {
        Timer::Checkout(user)
    } else if let Some(review) = id.strip_prefix(crate::actors::review::REVIEW_TIMER_PREFIX) {
        Timer::Review(review)
    } else {
        Timer::Order(id)
    }
}

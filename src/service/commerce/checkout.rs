//! Checkout: one order per shop, idempotent by key.
//!
//! Checkout reserves first (stock holds and coupon redemptions under the
//! planned order ids), then opens the checkout's one payment (online; cash
//! on delivery is due per order) and places the orders. An
//! open checkout has a `timers` row, so one abandoned half-way (or cut off
//! by a crash) is resolved by the scheduler: its reservations go back.

use crate::actors::cart::CartEntity;
use crate::actors::coupon::CouponEntity;
use crate::actors::order::OrderEntity;
use crate::actors::Registry;
use crate::payments::open_checkout;
use crate::payments::Providers;
use crate::service::account::profiles::Profiles;
use crate::service::commerce::cart::Carts;
use crate::service::commerce::fulfilment::Fulfilment;
use crate::service::found;
use crate::service::CommerceConfig;
use chrono::Utc;
use std::sync::Arc;

use crate::actors::cart::{CartCommand, CartItem, Checkout, PlannedOrder};
use crate::actors::coupon::CouponCommand;
use crate::domain::catalog::Shop;
use crate::domain::ids::OrderId;
use crate::domain::order::{Order, OrderStatus, Party, Payment, Placement, PlatformVoucher};
use crate::domain::pricing::{Base, Line};
use crate::domain::user::Address;
use crate::domain::{Caller, DomainError};
use crate::service::commerce::cart_quote::ShopQuote;
use crate::service::commerce::cart_quote::{Codes, PlatformUse};
use crate::service::{new_id, ServiceError};

/// One order of a checkout, priced and planned, before it is placed.
struct Planned<'a> {
    order_id: crate::domain::ids::OrderId,
    shop: &'a Shop,
    lines: &'a [Line],
    quote: &'a ShopQuote,
    /// The shop's coupon or voucher whose discount it has.
    coupon: Option<String>,
}

/// Checking out a cart: reserve, open the payment, place the orders.
pub struct Checkouts {
    pub(in crate::service) carts: Registry<CartEntity>,
    pub(in crate::service) stock: crate::service::commerce::stock::Stock,
    pub(in crate::service) coupons: Registry<CouponEntity>,
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) providers: Providers,
    pub(in crate::service) commerce: Arc<CommerceConfig>,
    /// Prices and quotes the cart.
    pub(in crate::service) cart: Carts,
    pub(in crate::service) profiles: Profiles,
    /// Undoes what a failed checkout holds.
    pub(in crate::service) fulfilment: Arc<Fulfilment>,
    /// Told of each checkout placed (trending, bought together).
    pub(in crate::service) behavior: Arc<crate::service::products::behavior::Behavior>,
    /// Finds a checkout's orders by its payment (`PAYMENT_REFS`).
    pub(in crate::service) store: Arc<dyn crate::store::Store>,
}

impl Checkouts {
    /// Checks out the caller's cart: one order per shop. Retrying with the
    /// same `key` answers the same orders.
    pub async fn checkout(
        &self,
        caller: &Caller,
        address_id: &str,
        method: &str,
        key: Option<crate::domain::IdempotencyKey>,
    ) -> Result<Vec<Order>, ServiceError> {
        let provider = self.providers.named(method).cloned().ok_or_else(|| {
            DomainError::invalid(
                "payment_method",
                format!(
                    "payment_method must be one of {}",
                    self.providers.names().join(", ")
                ),
            )
        })?;
        let address = self
            .profiles
            .address(&caller.user_id, Some(address_id))
            .await?
            .expect("found or rejected");
        // Only a client's own key can be retried: a checkout without one
        // is undone on any failure (see `finish_checkout`).
        let (key, request) = match key {
            Some(k) => (k.key, Some(k.request)),
            None => (new_id(), None),
        };
        let resumable = request.is_some();
        let cart = self.carts.send(&caller.user_id, CartCommand::Get).await?;
        let plan = self.plan_orders(&cart.items).await?;
        let checkout = self
            .carts
            .begin_checkout(&caller.user_id, key.clone(), request, plan)
            .await?;
        if checkout.completed {
            let mut orders = Vec::new();
            for p in &checkout.orders {
                orders.push(self.orders.get(&p.order_id).await?);
            }
            return Ok(orders);
        }
        let codes = Codes {
            coupon: checkout.coupon.as_deref(),
            vouchers: &checkout.vouchers,
        };
        let placed = self
            .place_checkout(
                caller,
                &address,
                provider.as_ref(),
                &checkout.items,
                codes,
                &checkout.orders,
            )
            .await;
        let orders = self
            .finish_checkout(&caller.user_id, key, resumable, &checkout, placed)
            .await?;
        self.behavior.ordered(
            orders
                .iter()
                .flat_map(|o| o.lines.iter().map(|l| l.product_id.as_str())),
        );
        Ok(orders)
    }

    /// One planned order (and its id) per shop the cart's lines come from.
    async fn plan_orders(&self, items: &[CartItem]) -> Result<Vec<PlannedOrder>, ServiceError> {
        let priced = self.cart.price(items).await?;
        let mut shops: Vec<crate::domain::ids::ShopId> =
            priced.lines.iter().map(|l| l.shop_id.clone()).collect();
        shops.sort();
        shops.dedup();
        Ok(shops
            .into_iter()
            .map(|shop_id| PlannedOrder {
                shop_id,
                order_id: OrderId::generate(),
            })
            .collect())
    }

    /// Closes the checkout: completed when its orders were placed; when
    /// not, nothing was placed (a refused reservation) or what was placed
    /// has been cancelled, so the checkout is abandoned. Should a release
    /// itself fail, the checkout stays open and the scheduler resolves it
    /// at its deadline. So does a `resumable` checkout (one under the
    /// client's `Idempotency-Key`) whose placement ended with an unknown
    /// outcome (a timeout, the store or an entity's owner unreachable):
    /// its orders may exist, and the client's retry under the same key
    /// resumes the same planned orders (every step is idempotent by order
    /// id) instead of placing new ones beside cancelled ones.
    async fn finish_checkout(
        &self,
        user_id: &str,
        key: String,
        resumable: bool,
        checkout: &Checkout,
        placed: Result<Vec<Order>, ServiceError>,
    ) -> Result<Vec<Order>, ServiceError> {
        match placed {
            Ok(orders) => {
                self.carts
                    .send(user_id, CartCommand::CompleteCheckout { key })
                    .await?;
                Ok(orders)
            }
            Err(
                e @ (ServiceError::Timeout
                | ServiceError::Unavailable(_)
                | ServiceError::Storage(_)),
            ) if resumable => Err(e),
            Err(e) => {
                if self.fulfilment.undo_checkout(checkout).await {
                    let _ = self
                        .carts
                        .send(user_id, CartCommand::AbandonCheckout { key })
                        .await;
                }
                Err(e)
            }
        }
    }

    /// The payment of each planned order (in `planned`'s order) and the
    /// deadline to pay by: online, one payment of the checkout's total
    /// (session `pay_{first order id}`) which each order names with its
    /// share; cash on delivery, one due per order. When an earlier attempt
    /// under this key placed some orders, the rest join their session
    /// rather than open another.
    async fn open_payment(
        &self,
        provider: &dyn crate::payments::Provider,
        planned: &[Planned<'_>],
        placed: &[Order],
        now: chrono::DateTime<Utc>,
    ) -> Result<(Vec<Payment>, Option<chrono::DateTime<Utc>>), ServiceError> {
        let shares: Vec<(OrderId, u64)> = planned
            .iter()
            .map(|p| (p.order_id.clone(), p.quote.totals.total))
            .collect();
        if let Some(earlier) = placed.iter().find(|o| o.payment.session.is_some()) {
            let payments = shares
                .into_iter()
                .map(|(id, amount)| Payment {
                    id: id.to_string(),
                    amount,
                    ..earlier.payment.clone()
                })
                .collect();
            return Ok((payments, earlier.payment_deadline));
        }
        let (Some(first), Some(line)) = (
            planned.first(),
            planned.first().and_then(|p| p.lines.first()),
        ) else {
            return Err(DomainError::conflict("cart_empty", "the cart is empty").into());
        };
        let session = crate::payments::session_for(&first.order_id);
        let currency = &line.currency;
        open_checkout(
            self.commerce.payment_timeout,
            provider,
            &session,
            &shares,
            currency,
            now,
        )
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// Holds the stock (idempotent per order), then the shops' coupon or
    /// voucher uses for the planned orders, then the platform voucher's
    /// one use for the checkout (under its first order's id). A retry of a
    /// checkout whose orders were placed and then cancelled (its release
    /// already happened) must not hold anything again. Returns the orders
    /// an earlier attempt under this key placed already.
    async fn reserve(
        &self,
        user_id: &str,
        planned: &[Planned<'_>],
        platform: Option<&PlatformUse>,
    ) -> Result<Vec<Order>, ServiceError> {
        let mut placed = Vec::new();
        for p in planned {
            if found(&self.orders, &p.order_id, "order").await.is_ok() {
                let o = self.orders.get(&p.order_id).await?;
                if o.status != OrderStatus::PendingPayment {
                    return Err(DomainError::conflict(
                        "checkout_expired",
                        "this checkout was cancelled; check out again with a new Idempotency-Key",
                    )
                    .into());
                }
                placed.push(o);
            }
        }
        for p in planned {
            for l in p.lines.iter() {
                self.stock
                    .hold(&l.product_id, &p.order_id, u64::from(l.quantity))
                    .await?;
            }
        }
        for p in planned {
            if let Some(code) = &p.coupon {
                let t = p.quote.totals;
                let redeem = CouponCommand::Redeem {
                    user_id: user_id.into(),
                    order_id: p.order_id.clone(),
                    base: Base {
                        items: t.subtotal,
                        shipping: t.shipping_fee,
                    },
                };
                self.coupons.call(code, redeem).await?;
            }
        }
        if let (Some(v), Some(first)) = (platform, planned.first()) {
            let redeem = CouponCommand::Redeem {
                user_id: user_id.into(),
                order_id: first.order_id.clone(),
                base: v.base,
            };
            self.coupons.call(&v.code, redeem).await?;
        }
        Ok(placed)
    }

    /// Reserves first, then places: stock line by line and the coupon use
    /// are held under the planned order ids, and only when every one held
    /// are payments opened and orders placed. A refusal (out of stock,
    /// coupon used up) therefore leaves no order, no notification and no
    /// analytics row behind; the caller releases what was held.
    pub(in crate::service) async fn place_checkout(
        &self,
        caller: &Caller,
        address: &Address,
        provider: &dyn crate::payments::Provider,
        items: &[CartItem],
        codes: Codes<'_>,
        plan: &[PlannedOrder],
    ) -> Result<Vec<Order>, ServiceError> {
        let priced = self.cart.price(items).await?;
        let quoted = self
            .cart
            .quoter
            .quote(
                &caller.user_id,
                &priced.lines,
                codes,
                Some(address),
                crate::service::commerce::cart_quote::Area::Refuse,
            )
            .await?;
        let (quotes, groups) = (&quoted.shops, &quoted.groups);
        let now = Utc::now();
        let mut planned = Vec::new();
        for ((shop, lines), quote) in groups.iter().zip(quotes.iter()) {
            let order_id = plan
                .iter()
                .find(|p| p.shop_id == shop.id)
                .map(|p| p.order_id.clone())
                .ok_or_else(|| {
                    DomainError::conflict(
                        "cart_changed",
                        "the cart changed during checkout; try again",
                    )
                })?;
            let coupon = quote.code.clone();
            planned.push(Planned {
                order_id,
                shop,
                lines,
                quote,
                coupon,
            });
        }
        let platform = quoted.platform.as_ref();
        let mut placed = self.reserve(&caller.user_id, &planned, platform).await?;
        let platform_voucher = platform.map(|v| PlatformVoucher {
            code: v.code.clone(),
            redemption: planned[0].order_id.clone(),
            orders: planned.iter().map(|p| p.order_id.clone()).collect(),
        });
        // 2. Everything held: open the checkout's one payment and place the
        // orders (idempotent by id).
        let (mut payments, payment_deadline) =
            self.open_payment(provider, &planned, &placed, now).await?;
        let mut orders = Vec::new();
        for Planned {
            order_id,
            shop,
            lines,
            quote,
            coupon,
        } in planned
        {
            let payment = payments.remove(0);
            // Placed by an earlier attempt under this key (whose answer was
            // lost): its payment is open already.
            if let Some(at) = placed.iter().position(|o| o.id == order_id) {
                orders.push(placed.swap_remove(at));
                continue;
            }
            let order = Order::placed(
                Placement {
                    id: order_id.clone(),
                    customer_id: caller.user_id.clone(),
                    shop_id: shop.id.clone(),
                    merchant_id: shop.owner_id.clone(),
                    lines: lines.to_vec(),
                    coupon,
                    platform_voucher: platform_voucher.clone(),
                    priced: crate::domain::pricing::Priced {
                        totals: quote.totals,
                        lines: quote.lines.clone(),
                    },
                    address: address.clone(),
                    distance_km: quote.distance_km.unwrap_or(0.0),
                    payment,
                    payment_deadline,
                    return_window_secs: self.commerce.return_window_secs,
                    by: Party::Customer,
                    reason: None,
                },
                now,
            );
            orders.push(self.orders.place(order).await?);
        }
        Ok(orders)
    }
}

//! Commerce use cases: the cart and its quote, checkout (stock holds,
//! coupon redemption, one order per shop, idempotent by key), the order
//! lifecycle, payments and webhooks, and the scheduler that carries out
//! each order's durable next action.
//!
//! Checkout places every order *before* holding any stock, so each hold has
//! an owner whose durable next action gives it back if the checkout fails,
//! is abandoned, or the server dies half-way.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::catalog::{decode_cursor, encode_cursor, Page};
use super::{new_id, ServiceError, Services};
use crate::actors::cart::{CartCommand, CartItem, CartReply, CartState, PlannedOrder, SavedCart};
use crate::actors::coupon::{normalize_code, Coupon, CouponCommand, CouponEntity, CouponInput};
use crate::actors::entity::stream_id;
use crate::actors::order::{
    timer_order, OrderCommand, OrderEntity, OrderReply, PaymentReport, ORDERS_BY_CUSTOMER,
    ORDERS_BY_SHOP, PAYMENT_REFS, TIMERS_TABLE,
};
use crate::actors::product::ProductCommand;
use crate::actors::user::{UserCommand, UserReply};
use crate::actors::{CallError, Entity};
use crate::domain::catalog::{Product, Shop};
use crate::domain::notification::{notifications_for, Notification};
use crate::domain::order::{
    next_action, Action, Order, OrderStatus, Party, Payment, PaymentStatus, Placement, Step,
    StockStatus,
};
use crate::domain::pricing::{
    haversine_km, shipping_fee, subtotal, total_weight, totals, FeeTable, Line, Totals,
};
use crate::domain::user::Address;
use crate::domain::{Caller, DomainError, GeoPoint};
use crate::payments::{NewPayment, ProviderError, RemoteStatus};
use crate::store::codec;

/// Commerce settings taken from the configuration.
#[derive(Debug, Clone)]
pub struct CommerceConfig {
    pub fees: FeeTable,
    pub tax_bps: u32,
    pub payment_timeout: chrono::Duration,
    pub return_window_secs: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartLine {
    #[serde(flatten)]
    pub line: Line,
    pub line_total: u64,
    /// Whether the product is on sale with enough stock right now.
    pub available: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShopQuote {
    pub shop_id: String,
    pub distance_km: Option<f64>,
    pub totals: Totals,
}

/// A cart with current prices; with an address, shipping is included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartView {
    pub items: Vec<CartLine>,
    pub coupon: Option<String>,
    pub currency: Option<String>,
    /// One entry per shop (each becomes one order at checkout).
    pub shops: Vec<ShopQuote>,
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShippingQuote {
    pub distance_km: f64,
    pub weight_grams: u64,
    pub fee: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevenueDay {
    /// `YYYY-MM-DD` (UTC), by order creation.
    pub day: String,
    pub orders: u64,
    /// Sum of totals of paid (or cash-collected) orders not refunded.
    pub revenue: u64,
}

/// What a webhook did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookOutcome {
    /// `processed`; `duplicate` for an event already handled; `ignored` for
    /// a correctly signed event about no known payment (e.g. a provider's
    /// test event).
    pub status: &'static str,
    pub order_id: Option<String>,
    pub order_status: Option<OrderStatus>,
}

struct Priced {
    lines: Vec<Line>,
    products: Vec<Product>,
}

fn order_reply(r: OrderReply) -> Order {
    match r {
        OrderReply::Order(o) | OrderReply::Duplicate(o) => *o,
    }
}

fn cart_state(r: CartReply) -> CartState {
    match r {
        CartReply::Cart(c) => c,
        CartReply::Checkout(_) => CartState::default(),
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> ServiceError {
    DomainError::Conflict {
        code,
        message: message.into(),
    }
    .into()
}

impl Services {
    /// Opens the payment of a new order with `provider`: the order's
    /// payment record and, for online providers, its deadline.
    pub(crate) async fn open_payment(
        &self,
        provider: &dyn crate::payments::Provider,
        order_id: &str,
        amount: u64,
        currency: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<(Payment, Option<chrono::DateTime<Utc>>), ServiceError> {
        let opened = provider
            .open(&NewPayment {
                reference: order_id.to_owned(),
                amount,
                currency: currency.to_owned(),
            })
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let payment = Payment {
            id: order_id.to_owned(),
            provider: provider.name().to_owned(),
            status: if provider.online() {
                PaymentStatus::Pending
            } else {
                PaymentStatus::DueOnDelivery
            },
            amount,
            currency: currency.to_owned(),
            checkout_url: opened.checkout_url,
            reference: opened.reference.unwrap_or_else(|| order_id.to_owned()),
            paid_at: None,
            refund_reference: None,
        };
        let deadline = provider
            .online()
            .then(|| now + self.commerce.payment_timeout);
        Ok((payment, deadline))
    }

    async fn cart(&self, user_id: &str, cmd: CartCommand) -> Result<CartReply, ServiceError> {
        Ok(self.carts.call(user_id, cmd).await?)
    }

    async fn price(&self, items: &[CartItem]) -> Result<Priced, ServiceError> {
        let mut lines = Vec::with_capacity(items.len());
        let mut products = Vec::with_capacity(items.len());
        for item in items {
            let p = self.get_product(&item.product_id).await?;
            lines.push(Line {
                product_id: p.id.clone(),
                shop_id: p.shop_id.clone(),
                name: p.name.clone(),
                unit_price: p.price,
                currency: p.currency.clone(),
                quantity: item.quantity,
                weight_grams: p.weight_grams,
            });
            products.push(p);
        }
        if let Some(first) = lines.first() {
            if lines.iter().any(|l| l.currency != first.currency) {
                return Err(conflict(
                    "mixed_currency",
                    "all products of one checkout must share a currency",
                ));
            }
        }
        Ok(Priced { lines, products })
    }

    pub(crate) async fn address(
        &self,
        user_id: &str,
        address_id: Option<&str>,
    ) -> Result<Option<Address>, ServiceError> {
        let list = match self.users.call(user_id, UserCommand::ListAddresses).await? {
            UserReply::Addresses(a) => a,
            _ => vec![],
        };
        match address_id {
            Some(id) => list
                .into_iter()
                .find(|a| a.id == id)
                .map(Some)
                // Someone else's address is as unknown as a made-up one.
                .ok_or_else(|| DomainError::NotFound("address").into()),
            None => Ok(list.into_iter().find(|a| a.is_default)),
        }
    }

    /// Distance and fee from `shop` to `to` for `grams`.
    pub(crate) fn ship(
        &self,
        shop: &Shop,
        to: GeoPoint,
        grams: u64,
    ) -> Result<(f64, u64), ServiceError> {
        let km = haversine_km(shop.location, to);
        Ok((km, shipping_fee(&self.commerce.fees, km, grams)?))
    }

    /// Prices `items` per shop, with the coupon and (given an address)
    /// shipping and tax.
    async fn quote(
        &self,
        user_id: &str,
        priced: &Priced,
        coupon: Option<&str>,
        address: Option<&Address>,
    ) -> Result<(Vec<ShopQuote>, Vec<(Shop, Vec<Line>)>, u64), ServiceError> {
        let mut by_shop: BTreeMap<String, Vec<Line>> = BTreeMap::new();
        for l in &priced.lines {
            by_shop
                .entry(l.shop_id.clone())
                .or_default()
                .push(l.clone());
        }
        let coupon = match coupon {
            Some(code) => Some(self.coupons.call(code, CouponCommand::Get).await?.coupon),
            None => None,
        };
        let mut quotes = Vec::new();
        let mut groups = Vec::new();
        let mut coupon_discount = 0;
        for (shop_id, lines) in by_shop {
            let shop = self.get_shop(&shop_id).await?;
            let sub = subtotal(&lines)?;
            let discount = match &coupon {
                Some(c) if c.shop_id == shop_id => {
                    let reply = self
                        .coupons
                        .call(
                            &c.code,
                            CouponCommand::Quote {
                                user_id: user_id.to_owned(),
                                eligible: sub,
                            },
                        )
                        .await?;
                    coupon_discount = reply.discount;
                    reply.discount
                }
                _ => 0,
            };
            let (km, fee) = match address {
                Some(a) => {
                    let (km, fee) = self.ship(
                        &shop,
                        GeoPoint {
                            lat: a.lat,
                            lng: a.lng,
                        },
                        total_weight(&lines)?,
                    )?;
                    (Some(km), fee)
                }
                None => (None, 0),
            };
            quotes.push(ShopQuote {
                shop_id: shop_id.clone(),
                distance_km: km,
                totals: totals(sub, discount, fee, self.commerce.tax_bps)?,
            });
            groups.push((shop, lines));
        }
        Ok((quotes, groups, coupon_discount))
    }

    async fn view(
        &self,
        user_id: &str,
        cart: &CartState,
        address: Option<&Address>,
    ) -> Result<CartView, ServiceError> {
        let priced = self.price(&cart.items).await?;
        let (shops, _, _) = self
            .quote(user_id, &priced, cart.coupon.as_deref(), address)
            .await?;
        let items = priced
            .lines
            .iter()
            .zip(&priced.products)
            .map(|(l, p)| CartLine {
                line: l.clone(),
                line_total: l.unit_price.saturating_mul(u64::from(l.quantity)),
                available: p.active && p.stock >= u64::from(l.quantity),
            })
            .collect();
        let sum = shops
            .iter()
            .fold(Totals::default(), |acc, s| acc + s.totals);
        Ok(CartView {
            items,
            coupon: cart.coupon.clone(),
            currency: priced.lines.first().map(|l| l.currency.clone()),
            shops,
            totals: sum,
        })
    }

    pub async fn get_cart(&self, user_id: &str) -> Result<CartView, ServiceError> {
        let cart = cart_state(self.cart(user_id, CartCommand::Get).await?);
        self.view(user_id, &cart, None).await
    }

    pub async fn cart_total(
        &self,
        user_id: &str,
        address_id: Option<&str>,
    ) -> Result<CartView, ServiceError> {
        let address = self.address(user_id, address_id).await?;
        let cart = cart_state(self.cart(user_id, CartCommand::Get).await?);
        self.view(user_id, &cart, address.as_ref()).await
    }

    /// Sets (`add = false`) or adds to (`add = true`) a product's quantity,
    /// checked against the product's availability.
    pub async fn put_cart_item(
        &self,
        user_id: &str,
        product_id: &str,
        quantity: u32,
        add: bool,
    ) -> Result<CartView, ServiceError> {
        let product = self.get_product(product_id).await?;
        if !product.active {
            return Err(conflict(
                "product_unavailable",
                format!("{} is no longer sold", product.name),
            ));
        }
        let cart = cart_state(self.cart(user_id, CartCommand::Get).await?);
        let current = cart
            .items
            .iter()
            .find(|i| i.product_id == product_id)
            .map(|i| i.quantity)
            .unwrap_or(0);
        let wanted = if add {
            current.saturating_add(quantity)
        } else {
            quantity
        };
        if quantity == 0 && add {
            return Err(DomainError::invalid("quantity", "quantity must be at least 1").into());
        }
        if wanted == 0 {
            return self.remove_cart_item(user_id, product_id).await;
        }
        if u64::from(wanted) > product.stock {
            return Err(conflict(
                "out_of_stock",
                format!("only {} of {} left", product.stock, product.name),
            ));
        }
        let cart = cart_state(
            self.cart(
                user_id,
                CartCommand::SetItem {
                    product_id: product_id.to_owned(),
                    quantity: wanted,
                },
            )
            .await?,
        );
        self.view(user_id, &cart, None).await
    }

    pub async fn remove_cart_item(
        &self,
        user_id: &str,
        product_id: &str,
    ) -> Result<CartView, ServiceError> {
        let cart = cart_state(
            self.cart(
                user_id,
                CartCommand::RemoveItem {
                    product_id: product_id.to_owned(),
                },
            )
            .await?,
        );
        self.view(user_id, &cart, None).await
    }

    pub async fn clear_cart(&self, user_id: &str) -> Result<CartView, ServiceError> {
        let cart = cart_state(self.cart(user_id, CartCommand::Clear).await?);
        self.view(user_id, &cart, None).await
    }

    pub async fn apply_coupon(&self, user_id: &str, code: &str) -> Result<CartView, ServiceError> {
        let code = normalize_code(code)?;
        if self.store.head(&stream_id::<CouponEntity>(&code)).await? == 0 {
            return Err(DomainError::NotFound("coupon").into());
        }
        let cart = cart_state(self.cart(user_id, CartCommand::Get).await?);
        let coupon = self.coupons.call(&code, CouponCommand::Get).await?.coupon;
        let priced = self.price(&cart.items).await?;
        let eligible: Vec<Line> = priced
            .lines
            .iter()
            .filter(|l| l.shop_id == coupon.shop_id)
            .cloned()
            .collect();
        if eligible.is_empty() {
            return Err(conflict(
                "coupon_not_applicable",
                "this coupon is for a shop with nothing in your cart",
            ));
        }
        self.coupons
            .call(
                &code,
                CouponCommand::Quote {
                    user_id: user_id.to_owned(),
                    eligible: subtotal(&eligible)?,
                },
            )
            .await?;
        let cart = cart_state(
            self.cart(user_id, CartCommand::ApplyCoupon { code })
                .await?,
        );
        self.view(user_id, &cart, None).await
    }

    pub async fn remove_coupon(&self, user_id: &str) -> Result<CartView, ServiceError> {
        let cart = cart_state(self.cart(user_id, CartCommand::RemoveCoupon).await?);
        self.view(user_id, &cart, None).await
    }

    pub async fn save_cart(&self, user_id: &str) -> Result<SavedCart, ServiceError> {
        let id = new_id();
        let cart = cart_state(
            self.cart(user_id, CartCommand::Save { id: id.clone() })
                .await?,
        );
        Ok(cart
            .saved
            .into_iter()
            .find(|s| s.id == id)
            .expect("just saved"))
    }

    pub async fn saved_carts(&self, user_id: &str) -> Result<Vec<SavedCart>, ServiceError> {
        Ok(cart_state(self.cart(user_id, CartCommand::Get).await?).saved)
    }

    pub async fn restore_cart(&self, user_id: &str, id: &str) -> Result<CartView, ServiceError> {
        let cart = cart_state(
            self.cart(user_id, CartCommand::Restore { id: id.to_owned() })
                .await?,
        );
        self.view(user_id, &cart, None).await
    }

    pub async fn create_coupon(
        &self,
        caller: Caller,
        shop_id: &str,
        input: CouponInput,
    ) -> Result<Coupon, ServiceError> {
        let code = normalize_code(&input.code)?;
        let shop = self.get_shop(shop_id).await?;
        Ok(self
            .coupons
            .call(
                &code,
                CouponCommand::Create {
                    caller,
                    shop,
                    input,
                },
            )
            .await?
            .coupon)
    }

    pub async fn get_coupon(&self, code: &str) -> Result<Coupon, ServiceError> {
        let code = normalize_code(code).map_err(|_| DomainError::NotFound("coupon"))?;
        if self.store.head(&stream_id::<CouponEntity>(&code)).await? == 0 {
            return Err(DomainError::NotFound("coupon").into());
        }
        Ok(self.coupons.call(&code, CouponCommand::Get).await?.coupon)
    }

    /// The shipping fee from a shop to `to`, else to `user_id`'s address
    /// `address_id`, else to their default address (409 `no_address`
    /// without one).
    pub async fn shipping_quote(
        &self,
        user_id: &str,
        shop_id: &str,
        to: Option<GeoPoint>,
        address_id: Option<&str>,
        weight_grams: u64,
    ) -> Result<ShippingQuote, ServiceError> {
        if weight_grams > crate::domain::catalog::MAX_WEIGHT_GRAMS {
            return Err(DomainError::invalid(
                "weight_grams",
                format!(
                    "weight_grams must be at most {}",
                    crate::domain::catalog::MAX_WEIGHT_GRAMS
                ),
            )
            .into());
        }
        let to = match to {
            Some(p) => crate::domain::check_point("to", p)?,
            None => {
                let a = self.address(user_id, address_id).await?.ok_or_else(|| {
                    conflict(
                        "no_address",
                        "give to or address_id, or add a default address first",
                    )
                })?;
                GeoPoint {
                    lat: a.lat,
                    lng: a.lng,
                }
            }
        };
        let shop = self.get_shop(shop_id).await?;
        let (km, fee) = self.ship(&shop, to, weight_grams)?;
        Ok(ShippingQuote {
            distance_km: (km * 1000.0).round() / 1000.0,
            weight_grams,
            fee,
        })
    }

    /// Checks out the caller's cart: one order per shop. Retrying with the
    /// same `key` answers the same orders.
    pub async fn checkout(
        &self,
        caller: &Caller,
        address_id: &str,
        method: &str,
        key: Option<crate::domain::IdempotencyKey>,
    ) -> Result<Vec<Order>, ServiceError> {
        let provider = self.providers.get(method).cloned().ok_or_else(|| {
            DomainError::invalid(
                "payment_method",
                format!(
                    "payment_method must be one of {}",
                    self.providers.names().join(", ")
                ),
            )
        })?;
        let address = self
            .address(&caller.user_id, Some(address_id))
            .await?
            .expect("found or rejected");
        let (key, request) = match key {
            Some(k) => (k.key, Some(k.request)),
            None => (new_id(), None),
        };
        let cart = cart_state(self.cart(&caller.user_id, CartCommand::Get).await?);
        let planned_priced = self.price(&cart.items).await?;
        let mut shops: Vec<String> = planned_priced
            .lines
            .iter()
            .map(|l| l.shop_id.clone())
            .collect();
        shops.sort();
        shops.dedup();
        let plan = shops
            .into_iter()
            .map(|shop_id| PlannedOrder {
                shop_id,
                order_id: new_id(),
            })
            .collect();
        let checkout = match self
            .cart(
                &caller.user_id,
                CartCommand::BeginCheckout {
                    key: key.clone(),
                    request,
                    orders: plan,
                },
            )
            .await?
        {
            CartReply::Checkout(c) => c,
            CartReply::Cart(_) => {
                return Err(ServiceError::Unavailable("unexpected cart reply".into()))
            }
        };
        if checkout.completed {
            let mut orders = Vec::new();
            for p in &checkout.orders {
                orders.push(order_reply(
                    self.orders
                        .call(&p.order_id, OrderCommand::Get { caller: None })
                        .await?,
                ));
            }
            return Ok(orders);
        }
        let placed = self
            .place_checkout(
                caller,
                &address,
                provider.as_ref(),
                &checkout.items,
                checkout.coupon.as_deref(),
                &checkout.orders,
            )
            .await;
        match placed {
            Ok(orders) => {
                self.cart(&caller.user_id, CartCommand::CompleteCheckout { key })
                    .await?;
                Ok(orders)
            }
            Err(e) => {
                // Nothing was placed (a refused reservation), or what was
                // placed has been cancelled: the checkout is over. Should a
                // release itself fail, the checkout stays open and the
                // scheduler resolves it at its deadline.
                if self
                    .undo_checkout(
                        &checkout.items,
                        checkout.coupon.as_deref(),
                        &checkout.orders,
                    )
                    .await
                {
                    let _ = self
                        .cart(&caller.user_id, CartCommand::AbandonCheckout { key })
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Gives back what a checkout that did not complete holds: orders it
    /// placed are cancelled (their next action returns their stock and
    /// coupon use); for the others, held stock and the coupon use are
    /// released directly. Whether everything went back.
    async fn undo_checkout(
        &self,
        items: &[CartItem],
        coupon: Option<&str>,
        plan: &[PlannedOrder],
    ) -> bool {
        let mut clean = true;
        for p in plan {
            if self.order_exists(&p.order_id).await.is_ok() {
                let cancel = OrderCommand::System {
                    step: Step::Cancel,
                    reason: "checkout failed".into(),
                };
                clean &= self.orders.call(&p.order_id, cancel).await.is_ok();
                let _ = self.advance_order(&p.order_id).await;
                continue;
            }
            clean &= self.release_reservations(items, coupon, &p.order_id).await;
        }
        clean
    }

    /// Releases stock held and a coupon use made for `order_id` (a no-op
    /// where nothing is held). Whether every release went through.
    async fn release_reservations(
        &self,
        items: &[CartItem],
        coupon: Option<&str>,
        order_id: &str,
    ) -> bool {
        let mut clean = true;
        for item in items {
            let release = ProductCommand::Release {
                order_id: order_id.to_owned(),
            };
            match self.products.call(&item.product_id, release).await {
                Ok(_) | Err(CallError::Rejected(DomainError::NotFound(_))) => {}
                Err(e) => {
                    tracing::warn!(order = %order_id, product = %item.product_id, error = %e, "stock not released");
                    clean = false;
                }
            }
        }
        if let Some(code) = coupon {
            let release = CouponCommand::Release {
                order_id: order_id.to_owned(),
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
        let cart = cart_state(self.cart(user_id, CartCommand::Get).await?);
        let Some(open) = cart.checkouts.iter().find(|c| !c.completed) else {
            return Ok(());
        };
        let mut placed = 0;
        for p in &open.orders {
            if self.order_exists(&p.order_id).await.is_ok() {
                placed += 1;
            }
        }
        let key = open.key.clone();
        if placed == open.orders.len() {
            self.cart(user_id, CartCommand::CompleteCheckout { key })
                .await?;
        } else if self
            .undo_checkout(&open.items, open.coupon.as_deref(), &open.orders)
            .await
        {
            self.cart(user_id, CartCommand::AbandonCheckout { key })
                .await?;
        } else {
            return Err(ServiceError::Unavailable(
                "an interrupted checkout could not be undone yet".into(),
            ));
        }
        Ok(())
    }

    /// Reserves first, then places: stock line by line and the coupon use
    /// are held under the planned order ids, and only when every one held
    /// are payments opened and orders placed. A refusal (out of stock,
    /// coupon used up) therefore leaves no order, no notification and no
    /// analytics row behind; the caller releases what was held.
    async fn place_checkout(
        &self,
        caller: &Caller,
        address: &Address,
        provider: &dyn crate::payments::Provider,
        items: &[CartItem],
        coupon: Option<&str>,
        plan: &[PlannedOrder],
    ) -> Result<Vec<Order>, ServiceError> {
        let priced = self.price(items).await?;
        let (quotes, groups, _) = self
            .quote(&caller.user_id, &priced, coupon, Some(address))
            .await?;
        let now = Utc::now();
        let mut planned = Vec::new();
        for ((shop, lines), quote) in groups.iter().zip(&quotes) {
            let order_id = plan
                .iter()
                .find(|p| p.shop_id == shop.id)
                .map(|p| p.order_id.clone())
                .ok_or_else(|| {
                    conflict(
                        "cart_changed",
                        "the cart changed during checkout; try again",
                    )
                })?;
            let coupon = coupon
                .filter(|_| quote.totals.discount > 0)
                .map(str::to_owned);
            planned.push((order_id, shop, lines, quote, coupon));
        }
        // A retry of a checkout whose orders were placed and then cancelled
        // (its release already happened) must not hold anything again.
        for (order_id, ..) in &planned {
            if self.order_exists(order_id).await.is_ok() {
                let o = order_reply(
                    self.orders
                        .call(order_id, OrderCommand::Get { caller: None })
                        .await?,
                );
                if o.status != OrderStatus::PendingPayment {
                    return Err(conflict(
                        "checkout_expired",
                        "this checkout was cancelled; check out again with a new Idempotency-Key",
                    ));
                }
            }
        }
        // 1. Reserve: stock (idempotent per order), then the coupon use.
        for (order_id, _, lines, _, _) in &planned {
            for l in lines.iter() {
                self.products
                    .call(
                        &l.product_id,
                        ProductCommand::Hold {
                            order_id: order_id.clone(),
                            quantity: u64::from(l.quantity),
                        },
                    )
                    .await?;
            }
        }
        for (order_id, _, _, quote, coupon) in &planned {
            if let Some(code) = coupon {
                self.coupons
                    .call(
                        code,
                        CouponCommand::Redeem {
                            user_id: caller.user_id.clone(),
                            order_id: order_id.clone(),
                            eligible: quote.totals.subtotal,
                        },
                    )
                    .await?;
            }
        }
        // 2. Everything held: open the payments and place the orders
        // (idempotent by id).
        let mut orders = Vec::new();
        for (order_id, shop, lines, quote, coupon) in planned {
            let currency = lines[0].currency.clone();
            let (payment, payment_deadline) = self
                .open_payment(provider, &order_id, quote.totals.total, &currency, now)
                .await?;
            let order = Order::placed(
                Placement {
                    id: order_id.clone(),
                    customer_id: caller.user_id.clone(),
                    shop_id: shop.id.clone(),
                    merchant_id: shop.owner_id.clone(),
                    lines: lines.clone(),
                    coupon,
                    totals: quote.totals,
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
            orders.push(order_reply(
                self.orders
                    .call(
                        &order_id,
                        OrderCommand::Place {
                            order: Box::new(order),
                        },
                    )
                    .await?,
            ));
        }
        Ok(orders)
    }

    pub(crate) async fn order_exists(&self, id: &str) -> Result<(), ServiceError> {
        self.exists(&self.orders, id, "order").await
    }

    pub async fn get_order(&self, caller: &Caller, id: &str) -> Result<Order, ServiceError> {
        self.order_exists(id).await?;
        Ok(order_reply(
            self.orders
                .call(
                    id,
                    OrderCommand::Get {
                        caller: Some(caller.clone()),
                    },
                )
                .await?,
        ))
    }

    /// A person's lifecycle step; follow-up work (stock, refunds) starts at once.
    pub async fn order_step(
        &self,
        caller: &Caller,
        id: &str,
        step: Step,
        reason: Option<String>,
    ) -> Result<Order, ServiceError> {
        self.order_exists(id).await?;
        let order = order_reply(
            self.orders
                .call(
                    id,
                    OrderCommand::Act {
                        caller: caller.clone(),
                        step,
                        reason,
                    },
                )
                .await?,
        );
        if let Some((due, _)) = next_action(&order) {
            if due <= Utc::now() {
                if let Err(e) = self.advance_order(id).await {
                    tracing::warn!(order = %id, error = %e, "follow-up deferred to the scheduler");
                }
                return Ok(order_reply(
                    self.orders
                        .call(id, OrderCommand::Get { caller: None })
                        .await?,
                ));
            }
        }
        Ok(order)
    }

    async fn list_orders_in(
        &self,
        table: &str,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        let prefix = format!("{owner}|");
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .scan(table, &prefix, after.as_deref(), limit)
            .await?;
        let next_cursor = (rows.len() == limit)
            .then(|| rows.last().map(|(k, _)| encode_cursor(k)))
            .flatten();
        let mut items = Vec::with_capacity(rows.len());
        for (_, v) in rows {
            items.push(codec::decode::<Order>(OrderEntity::VERSION, &v)?);
        }
        Ok(Page { items, next_cursor })
    }

    /// The caller's orders, newest first.
    pub async fn my_orders(
        &self,
        user_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        self.list_orders_in(ORDERS_BY_CUSTOMER, user_id, cursor, limit)
            .await
    }

    /// A shop's orders, newest first (its owner or an admin).
    pub async fn shop_orders(
        &self,
        caller: &Caller,
        shop_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        let shop = self.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        self.list_orders_in(ORDERS_BY_SHOP, shop_id, cursor, limit)
            .await
    }

    /// Revenue and order count by day (at most the newest 10,000 orders).
    pub async fn shop_revenue(
        &self,
        caller: &Caller,
        shop_id: &str,
    ) -> Result<Vec<RevenueDay>, ServiceError> {
        let shop = self.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        let rows = self
            .store
            .scan(ORDERS_BY_SHOP, &format!("{shop_id}|"), None, 10_000)
            .await?;
        let mut days: BTreeMap<String, RevenueDay> = BTreeMap::new();
        for (_, v) in rows {
            let o: Order = codec::decode(OrderEntity::VERSION, &v)?;
            let day = o.created_at.format("%Y-%m-%d").to_string();
            let entry = days.entry(day.clone()).or_insert(RevenueDay {
                day,
                orders: 0,
                revenue: 0,
            });
            entry.orders += 1;
            if matches!(
                o.payment.status,
                PaymentStatus::Paid | PaymentStatus::Collected
            ) {
                entry.revenue = entry.revenue.saturating_add(o.totals.total);
            }
        }
        Ok(days.into_values().collect())
    }

    /// A provider's webhook: verified, deduplicated, applied to its order.
    pub async fn payment_webhook(
        &self,
        provider: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookOutcome, ServiceError> {
        // Only providers that take payments online send webhooks.
        let provider = self
            .providers
            .get(provider)
            .filter(|p| p.online())
            .ok_or(DomainError::NotFound("payment provider"))?;
        let event = provider
            .verify_webhook(headers, body, Utc::now().timestamp())
            .map_err(|e| match e {
                ProviderError::Signature(s) => ServiceError::Domain(DomainError::Unauthorized(
                    format!("webhook rejected: {s}"),
                )),
                ProviderError::Payload(m) => ServiceError::Domain(DomainError::invalid("body", m)),
                other => ServiceError::Unavailable(other.to_string()),
            })?;
        let ref_key = format!("{}|{}", provider.name(), event.reference);
        let Some(order_id) = self
            .store
            .get(PAYMENT_REFS, &ref_key)
            .await?
            .and_then(|v| String::from_utf8(v).ok())
        else {
            tracing::info!(provider = provider.name(), reference = %event.reference, "webhook for an unknown payment ignored");
            return Ok(WebhookOutcome {
                status: "ignored",
                order_id: None,
                order_status: None,
            });
        };
        let report = PaymentReport {
            event_id: Some(event.event_id),
            amount: event.amount,
            paid: event.paid,
        };
        let (status, order) = match self
            .orders
            .call(&order_id, OrderCommand::Payment(report))
            .await?
        {
            OrderReply::Duplicate(o) => ("duplicate", *o),
            OrderReply::Order(o) => ("processed", *o),
        };
        if next_action(&order).is_some_and(|(due, _)| due <= Utc::now()) {
            let _ = self.advance_order(&order.id).await;
        }
        Ok(WebhookOutcome {
            status,
            order_id: Some(order.id.clone()),
            order_status: Some(order.status),
        })
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
    async fn advance_once(&self, id: &str) -> Result<bool, ServiceError> {
        let order = order_reply(
            self.orders
                .call(id, OrderCommand::Get { caller: None })
                .await?,
        );
        let Some((due, action)) = next_action(&order) else {
            return Ok(false);
        };
        if due > Utc::now() {
            return Ok(false);
        }
        let provider = || {
            self.providers
                .get(&order.payment.provider)
                .cloned()
                .ok_or_else(|| {
                    ServiceError::Unavailable(format!(
                        "payment provider {} is not configured",
                        order.payment.provider
                    ))
                })
        };
        let cmd = match action {
            Action::PaymentTimeout => match provider()?.status(&order.payment.reference).await {
                Ok(RemoteStatus::Paid { amount }) => OrderCommand::Payment(PaymentReport {
                    event_id: None,
                    amount,
                    paid: true,
                }),
                Ok(_) => OrderCommand::System {
                    step: Step::Cancel,
                    reason: "payment timeout".into(),
                },
                Err(e) => return Err(ServiceError::Unavailable(e.to_string())),
            },
            Action::ReleaseStock if order.claim.is_some() => {
                // A flash-sale order: its units go back to the sale's reserve
                // and the claim lapses, which lets the waitlist in.
                let claim = order.claim.as_ref().expect("checked");
                if order.stock == StockStatus::Held && !order.digital {
                    for l in &order.lines {
                        self.products
                            .call(
                                &l.product_id,
                                ProductCommand::Return {
                                    from: id.to_owned(),
                                    to: crate::service::burst::sale_hold(&claim.queue_id),
                                },
                            )
                            .await?;
                    }
                }
                self.queues
                    .call(
                        &claim.queue_id,
                        crate::actors::queue::QueueCommand::Expire {
                            claim_id: claim.claim_id.clone(),
                        },
                    )
                    .await?;
                self.advance_queue(&claim.queue_id).await?;
                OrderCommand::StockReleased
            }
            Action::ReleaseStock => {
                if order.stock == StockStatus::Held {
                    for l in &order.lines {
                        self.products
                            .call(
                                &l.product_id,
                                ProductCommand::Release {
                                    order_id: id.to_owned(),
                                },
                            )
                            .await?;
                    }
                }
                if let (Some(code), false) = (&order.coupon, order.coupon_released) {
                    self.coupons
                        .call(
                            code,
                            CouponCommand::Release {
                                order_id: id.to_owned(),
                            },
                        )
                        .await?;
                }
                OrderCommand::StockReleased
            }
            Action::ConsumeStock => {
                for l in &order.lines {
                    self.products
                        .call(
                            &l.product_id,
                            ProductCommand::Consume {
                                order_id: id.to_owned(),
                            },
                        )
                        .await?;
                }
                OrderCommand::StockConsumed
            }
            Action::Refund => match provider()?
                .refund(&order.payment.reference, order.payment.amount)
                .await
            {
                Ok(refund_reference) => OrderCommand::Refunded { refund_reference },
                Err(ProviderError::Unsupported(_)) => OrderCommand::RefundDue,
                Err(e) => return Err(ServiceError::Unavailable(e.to_string())),
            },
            Action::ReleaseEscrow => OrderCommand::ReleaseEscrow,
            Action::Notify => {
                for index in order.notified as usize..order.timeline.len() {
                    for (to, notification) in notifications_for(&order, index) {
                        self.users
                            .call(&to, UserCommand::Notify(notification))
                            .await?;
                    }
                }
                OrderCommand::NotificationsSent {
                    upto: order.timeline.len() as u32,
                }
            }
            Action::Complete => OrderCommand::System {
                step: Step::Complete,
                reason: "paid: nothing to ship".into(),
            },
            Action::Dispatch => self.dispatch(&order).await?,
            Action::BindShipper => self.bind_shipper(&order).await?,
            Action::ReleaseShipper => self.release_shipper(&order).await?,
        };
        if let OrderCommand::Offer { shipper_id, .. } = &cmd {
            // The order may have moved on since it was read: give the
            // shipper's half of the offer back at once.
            let shipper_id = shipper_id.clone();
            if let Err(e) = self.orders.call(id, cmd).await {
                self.shippers
                    .call(
                        &shipper_id,
                        crate::actors::shipper::ShipperCommand::Withdraw {
                            order_id: id.to_owned(),
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

    /// The caller's notifications, newest first, and how many are unread.
    pub async fn notifications(
        &self,
        user_id: &str,
    ) -> Result<(Vec<Notification>, usize), ServiceError> {
        match self.users.call(user_id, UserCommand::Notifications).await? {
            UserReply::Notifications(items) => {
                let unread = items.iter().filter(|n| !n.read).count();
                Ok((items, unread))
            }
            _ => Err(ServiceError::Unavailable("unexpected reply".into())),
        }
    }

    pub async fn mark_notification_read(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<(), ServiceError> {
        self.users
            .call(user_id, UserCommand::MarkRead { id: id.to_owned() })
            .await?;
        Ok(())
    }

    /// Runs due order actions every `interval` until `shutdown` flips. An
    /// order whose action fails is retried after a back-off.
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
            if let Err(e) = self.expire_tracks(4096).await {
                tracing::warn!(error = %e, "track expiry failed");
            }
            let rows = match self.store.scan(TIMERS_TABLE, "", None, 256).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "timer scan failed");
                    continue;
                }
            };
            for (key, _) in rows {
                let Some((due_ms, order_id)) = timer_order(&key) else {
                    continue;
                };
                if due_ms > now.timestamp_millis() {
                    break;
                }
                if backoff.contains_key(order_id) {
                    continue;
                }
                let done = match order_id.strip_prefix(crate::actors::cart::CHECKOUT_TIMER_PREFIX) {
                    Some(user_id) => self.resolve_open_checkout(user_id).await,
                    None => self.advance_order(order_id).await,
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

//! The cart entity: one actor per customer (id = user id). It keeps item
//! quantities and the applied coupon code (prices are read fresh from the
//! products when totals are computed), saved carts, and the record of
//! checkouts by idempotency key, so a retried checkout finds its orders.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CallError, Ctx, Entity};
use crate::domain::ids::ProductId;
use crate::domain::DomainError;

pub const MAX_ITEMS: usize = 50;
pub const MAX_QUANTITY: u32 = 1_000;
pub const MAX_SAVED: usize = 10;
/// Checkouts remembered for idempotency.
pub const MAX_CHECKOUTS: usize = 20;

pub struct CartEntity;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartItem {
    pub product_id: ProductId,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SavedCart {
    pub id: String,
    pub items: Vec<CartItem>,
    pub coupon: Option<String>,
    pub saved_at: DateTime<Utc>,
}

/// A voucher applied to the cart: its code and its shop (none: the
/// platform's). A cart holds at most one per shop (with the shop's
/// coupon, if any, counting as that shop's) and one of the platform's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliedVoucher {
    pub code: String,
    pub shop_id: Option<crate::domain::ids::ShopId>,
}

/// One order a checkout creates: the shop and the order id chosen for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOrder {
    pub shop_id: crate::domain::ids::ShopId,
    pub order_id: crate::domain::ids::OrderId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    pub key: String,
    pub items: Vec<CartItem>,
    pub coupon: Option<String>,
    /// The vouchers applied when it began.
    #[serde(default)]
    pub vouchers: Vec<AppliedVoucher>,
    pub orders: Vec<PlannedOrder>,
    pub completed: bool,
    /// When it began; one still open `CHECKOUT_DEADLINE_SECS` later was
    /// interrupted (a crash) and is resolved by the scheduler.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// SHA-256 of the request that began it (method, path, body): the same
    /// key with another request is refused.
    #[serde(default)]
    pub request: Option<String>,
}

/// A checkout takes milliseconds; one open this long was interrupted.
pub const CHECKOUT_DEADLINE_SECS: i64 = 60;

/// The `timers` row of a cart's open checkout: due when it counts as
/// interrupted (the order scheduler scans the same table).
pub fn checkout_timer_key(started_at: DateTime<Utc>, user_id: &str) -> String {
    let due = started_at + chrono::Duration::seconds(CHECKOUT_DEADLINE_SECS);
    super::order::timer_key(due, &format!("{CHECKOUT_TIMER_PREFIX}{user_id}"))
}

/// What marks a cart's row among the order timers.
pub const CHECKOUT_TIMER_PREFIX: &str = "checkout:";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CartState {
    pub items: Vec<CartItem>,
    pub coupon: Option<String>,
    /// Vouchers applied (one per shop, one of the platform's).
    #[serde(default)]
    pub vouchers: Vec<AppliedVoucher>,
    pub saved: Vec<SavedCart>,
    /// Newest last; at most `MAX_CHECKOUTS`.
    pub checkouts: VecDeque<Checkout>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CartEvent {
    ItemSet {
        product_id: ProductId,
        quantity: u32,
    },
    ItemRemoved {
        product_id: ProductId,
    },
    Cleared,
    CouponApplied {
        code: String,
    },
    CouponRemoved,
    VoucherApplied {
        voucher: AppliedVoucher,
    },
    VoucherRemoved {
        code: String,
    },
    Saved {
        saved: SavedCart,
    },
    Restored {
        id: String,
    },
    CheckoutStarted {
        checkout: Checkout,
    },
    CheckoutCompleted {
        key: String,
    },
    CheckoutAbandoned {
        key: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CartCommand {
    Get,
    /// Set a product's quantity (validated against the product by the caller).
    SetItem {
        product_id: ProductId,
        quantity: u32,
    },
    RemoveItem {
        product_id: ProductId,
    },
    Clear,
    /// Apply coupon `code` of `shop_id`: it replaces a voucher of that
    /// shop.
    ApplyCoupon {
        code: String,
        shop_id: crate::domain::ids::ShopId,
    },
    RemoveCoupon,
    /// Apply a voucher: it replaces the voucher (and, for a shop's, the
    /// coupon when `coupon_of_shop`) in the same place.
    ApplyVoucher {
        voucher: AppliedVoucher,
        coupon_of_shop: bool,
    },
    RemoveVoucher {
        code: String,
    },
    Save {
        id: String,
    },
    Restore {
        id: String,
    },
    /// Start (or find) the checkout of `key` with the given plan.
    BeginCheckout {
        key: String,
        /// Digest of the request (see `IdempotencyKey`); `None` when the
        /// key was generated by the server.
        request: Option<String>,
        orders: Vec<PlannedOrder>,
    },
    CompleteCheckout {
        key: String,
    },
    AbandonCheckout {
        key: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CartReply {
    Cart(CartState),
    Checkout(Checkout),
}

/// Checkout `key` starts (one open checkout per cart; a retry under the
/// same key answers the checkout it started).
fn begin_checkout(
    state: &CartState,
    key: String,
    request: Option<String>,
    orders: Vec<PlannedOrder>,
    ctx: &Ctx<'_>,
) -> Result<(Vec<CartEvent>, CartReply), DomainError> {
    if let Some(existing) = state.checkouts.iter().find(|c| c.key == key) {
        if let Some(request) = &request {
            crate::domain::IdempotencyKey {
                key: key.clone(),
                request: request.clone(),
            }
            .check(existing.request.as_deref())?;
        }
        return Ok((vec![], CartReply::Checkout(existing.clone())));
    }
    if state.checkouts.iter().any(|c| !c.completed) {
        return Err(DomainError::conflict(
            "checkout_in_progress",
            "another checkout of this cart is in progress",
        ));
    }
    if state.items.is_empty() {
        return Err(DomainError::conflict("cart_empty", "the cart is empty"));
    }
    let checkout = Checkout {
        key,
        items: state.items.clone(),
        coupon: state.coupon.clone(),
        vouchers: state.vouchers.clone(),
        orders,
        completed: false,
        started_at: Some(ctx.now),
        request,
    };
    Ok((
        vec![CartEvent::CheckoutStarted {
            checkout: checkout.clone(),
        }],
        CartReply::Checkout(checkout),
    ))
}

fn set_item(
    state: &CartState,
    product_id: ProductId,
    quantity: u32,
) -> Result<Vec<CartEvent>, DomainError> {
    if quantity == 0 || quantity > MAX_QUANTITY {
        return Err(DomainError::invalid(
            "quantity",
            format!("quantity must be between 1 and {MAX_QUANTITY}"),
        ));
    }
    let present = state.items.iter().any(|i| i.product_id == product_id);
    if !present && state.items.len() >= MAX_ITEMS {
        return Err(DomainError::conflict(
            "cart_full",
            format!("a cart holds at most {MAX_ITEMS} products"),
        ));
    }
    Ok(vec![CartEvent::ItemSet {
        product_id,
        quantity,
    }])
}

/// Saves the cart's lines under `id` (the cart itself stays as it is).
fn save(state: &CartState, id: String, ctx: &Ctx<'_>) -> Result<Vec<CartEvent>, DomainError> {
    if state.items.is_empty() {
        return Err(DomainError::conflict(
            "cart_empty",
            "there is nothing in the cart to save",
        ));
    }
    if state.saved.len() >= MAX_SAVED {
        return Err(DomainError::conflict(
            "saved_carts_full",
            format!("at most {MAX_SAVED} saved carts"),
        ));
    }
    let saved = SavedCart {
        id,
        items: state.items.clone(),
        coupon: state.coupon.clone(),
        saved_at: ctx.now,
    };
    Ok(vec![CartEvent::Saved { saved }])
}

impl Entity for CartEntity {
    const KIND: &'static str = "cart";
    type State = CartState;
    type Command = CartCommand;
    type Event = CartEvent;
    type Reply = CartReply;
    type Rejection = DomainError;

    fn decide(
        state: &CartState,
        cmd: CartCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<CartEvent>, CartReply), DomainError> {
        let events = match cmd {
            CartCommand::Get => vec![],
            CartCommand::SetItem {
                product_id,
                quantity,
            } => set_item(state, product_id, quantity)?,
            CartCommand::RemoveItem { product_id } => {
                if !state.items.iter().any(|i| i.product_id == product_id) {
                    return Err(DomainError::NotFound("cart item"));
                }
                vec![CartEvent::ItemRemoved { product_id }]
            }
            CartCommand::Clear => vec![CartEvent::Cleared],
            CartCommand::ApplyCoupon { code, shop_id } => state
                .vouchers
                .iter()
                .filter(|v| v.shop_id.as_ref() == Some(&shop_id))
                .map(|v| CartEvent::VoucherRemoved {
                    code: v.code.clone(),
                })
                .chain([CartEvent::CouponApplied { code }])
                .collect(),
            CartCommand::ApplyVoucher {
                voucher,
                coupon_of_shop,
            } => {
                if state.vouchers.contains(&voucher) {
                    vec![]
                } else {
                    let coupon = (coupon_of_shop && state.coupon.is_some())
                        .then_some(CartEvent::CouponRemoved);
                    let place = voucher.shop_id.clone();
                    let same_place = state
                        .vouchers
                        .iter()
                        .filter(move |v| v.shop_id == place)
                        .map(|v| CartEvent::VoucherRemoved {
                            code: v.code.clone(),
                        });
                    coupon
                        .into_iter()
                        .chain(same_place)
                        .chain([CartEvent::VoucherApplied { voucher }])
                        .collect()
                }
            }
            CartCommand::RemoveVoucher { code } => {
                if !state.vouchers.iter().any(|v| v.code == code) {
                    return Err(DomainError::NotFound("voucher"));
                }
                vec![CartEvent::VoucherRemoved { code }]
            }
            CartCommand::RemoveCoupon => match state.coupon {
                Some(_) => vec![CartEvent::CouponRemoved],
                None => vec![],
            },
            CartCommand::Save { id } => save(state, id, ctx)?,
            CartCommand::Restore { id } => {
                if !state.saved.iter().any(|s| s.id == id) {
                    return Err(DomainError::NotFound("saved cart"));
                }
                vec![CartEvent::Restored { id }]
            }
            CartCommand::BeginCheckout {
                key,
                request,
                orders,
            } => return begin_checkout(state, key, request, orders, ctx),
            CartCommand::CompleteCheckout { key } => {
                match state.checkouts.iter().find(|c| c.key == key) {
                    Some(c) if !c.completed => vec![CartEvent::CheckoutCompleted { key }],
                    Some(_) => vec![],
                    None => return Err(DomainError::NotFound("checkout")),
                }
            }
            CartCommand::AbandonCheckout { key } => {
                match state.checkouts.iter().find(|c| c.key == key) {
                    Some(c) if !c.completed => vec![CartEvent::CheckoutAbandoned { key }],
                    _ => vec![],
                }
            }
        };
        let next = Self::evolve(state, &events);
        Ok((events, CartReply::Cart(next)))
    }

    /// The open checkout's timer row, while one is open.
    fn index(
        id: &str,
        before: &CartState,
        after: &CartState,
        _events: &[CartEvent],
    ) -> Vec<crate::store::IndexOp> {
        let open = |s: &CartState| {
            s.checkouts
                .iter()
                .find(|c| !c.completed)
                .and_then(|c| c.started_at)
                .map(|at| checkout_timer_key(at, id))
        };
        let (old, new) = (open(before), open(after));
        if old == new {
            return vec![];
        }
        let table = super::order::TIMERS_TABLE;
        old.map(|key| crate::store::IndexOp::Delete { table, key })
            .into_iter()
            .chain(new.map(|key| crate::store::IndexOp::Put {
                table,
                key,
                value: Vec::new(),
            }))
            .collect()
    }

    fn apply(state: &mut CartState, event: &CartEvent) {
        match event {
            CartEvent::ItemSet {
                product_id,
                quantity,
            } => match state.items.iter_mut().find(|i| &i.product_id == product_id) {
                Some(i) => i.quantity = *quantity,
                None => state.items.push(CartItem {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                }),
            },
            CartEvent::ItemRemoved { product_id } => {
                state.items.retain(|i| &i.product_id != product_id)
            }
            CartEvent::Cleared => {
                state.items.clear();
                state.coupon = None;
                state.vouchers.clear();
            }
            CartEvent::CouponApplied { code } => state.coupon = Some(code.clone()),
            CartEvent::CouponRemoved => state.coupon = None,
            CartEvent::VoucherApplied { voucher } => state.vouchers.push(voucher.clone()),
            CartEvent::VoucherRemoved { code } => state.vouchers.retain(|v| &v.code != code),
            CartEvent::Saved { saved } => state.saved.push(saved.clone()),
            CartEvent::Restored { id } => {
                if let Some(pos) = state.saved.iter().position(|s| &s.id == id) {
                    let saved = state.saved.remove(pos);
                    state.items = saved.items;
                    state.coupon = saved.coupon;
                }
            }
            CartEvent::CheckoutStarted { checkout } => {
                state.checkouts.push_back(checkout.clone());
                while state.checkouts.len() > MAX_CHECKOUTS {
                    state.checkouts.pop_front();
                }
            }
            CartEvent::CheckoutCompleted { key } => {
                if let Some(c) = state.checkouts.iter_mut().find(|c| &c.key == key) {
                    c.completed = true;
                    // Only what was checked out leaves the cart.
                    let bought = c.items.clone();
                    state
                        .items
                        .retain(|i| !bought.iter().any(|b| b.product_id == i.product_id));
                    state.coupon = None;
                    state.vouchers.clear();
                }
            }
            CartEvent::CheckoutAbandoned { key } => state.checkouts.retain(|c| &c.key != key),
        }
    }
}

/// The typed client of cart actors: every command answers the cart as it
/// is after it, except `BeginCheckout`, which answers the checkout. The
/// reply enum is matched here and nowhere else.
impl crate::actors::Registry<CartEntity> {
    /// `cmd` (anything but `BeginCheckout`), answered with the cart after it.
    pub async fn send(
        &self,
        id: &str,
        cmd: CartCommand,
    ) -> Result<CartState, CallError<DomainError>> {
        match self.call(id, cmd).await? {
            CartReply::Cart(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    /// Starts checkout `key` with `orders` planned (or answers the
    /// checkout already started under `key`).
    pub async fn begin_checkout(
        &self,
        id: &str,
        key: String,
        request: Option<String>,
        orders: Vec<PlannedOrder>,
    ) -> Result<Checkout, CallError<DomainError>> {
        let cmd = CartCommand::BeginCheckout {
            key,
            request,
            orders,
        };
        match self.call(id, cmd).await? {
            CartReply::Checkout(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(reply: CartReply) -> CallError<DomainError> {
    CallError::Unavailable(format!("unexpected reply from a cart actor: {reply:?}"))
}

#[cfg(test)]
mod tests;

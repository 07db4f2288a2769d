//! The cart and its quote: items priced from the catalog, the coupon, the
//! shipping fee to an address, saved carts.

use crate::actors::cart::CartEntity;
use crate::actors::Registry;
use crate::service::account::profiles::Profiles;
use crate::service::products::catalog::Catalog;
use crate::service::CommerceConfig;
use crate::store::Store;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::cart::AppliedVoucher;
use crate::actors::cart::{CartCommand, CartItem, CartState, SavedCart};
use crate::actors::coupon::{normalize_code, CouponCommand, CouponEntity};
use crate::actors::entity::stream_id;
use crate::domain::catalog::Product;
use crate::domain::pricing::{subtotal, Base, Line, Totals};
use crate::domain::user::Address;
use crate::domain::{DomainError, GeoPoint};
pub(in crate::service) use crate::service::commerce::cart_quote::Area;
use crate::service::commerce::cart_quote::{refusal, Codes, Quoter};
pub use crate::service::commerce::cart_quote::{LeftOut, ShopQuote};
use crate::service::{new_id, ServiceError};

/// How a cart line's quantity changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityChange {
    /// Add this many (at least 1) to what the cart holds.
    Add(u32),
    /// Hold exactly this many (0 removes the line).
    Set(u32),
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartLine {
    #[serde(flatten)]
    pub line: Line,
    pub line_total: u64,
    /// Whether the product is on sale with enough stock right now.
    pub available: bool,
}

/// A cart with current prices; with an address, shipping is included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartView {
    pub items: Vec<CartLine>,
    /// The address shipping is quoted to: the one asked for, else the
    /// owner's default; `null`: none, so no shipping is quoted.
    pub address_id: Option<String>,
    pub coupon: Option<String>,
    /// Why the applied coupon gives nothing now (paused, expired, used
    /// up, deleted, below its minimum spend): the totals leave it out, and
    /// checking out with it is refused with that code until it is removed.
    pub coupon_problem: Option<LeftOut>,
    /// The vouchers applied: at most one per shop and one of the
    /// platform's (`shop_id` null).
    pub vouchers: Vec<AppliedVoucher>,
    /// Applied vouchers that give nothing now, each with why (as
    /// `coupon_problem`).
    pub voucher_problems: Vec<CodeProblem>,
    pub currency: Option<String>,
    /// One entry per shop (each becomes one order at checkout).
    pub shops: Vec<ShopQuote>,
    pub totals: Totals,
}

/// What "buy again" did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BuyAgain {
    pub cart: CartView,
    /// Lines now in the cart, with the quantity they hold.
    pub added: Vec<BoughtAgain>,
    /// Lines left out, each with why (the code adding it would answer).
    pub skipped: Vec<NotBoughtAgain>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoughtAgain {
    pub product_id: crate::domain::ids::ProductId,
    pub quantity: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotBoughtAgain {
    pub product_id: crate::domain::ids::ProductId,
    pub name: String,
    /// `not_found`, `product_unavailable`, `out_of_stock`, `mixed_currency`.
    pub code: String,
    pub message: String,
}

/// An applied code left out of the totals, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodeProblem {
    pub code: String,
    pub problem: LeftOut,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShippingQuote {
    pub distance_km: f64,
    pub weight_grams: u64,
    pub fee: u64,
}

pub(in crate::service) struct Priced {
    pub(in crate::service) lines: Vec<Line>,
    pub(in crate::service) products: Vec<Product>,
}

/// The lines priced in the first line's currency (a cart shows the others
/// unavailable and leaves them out of its totals).
fn in_first_currency(lines: &[Line]) -> Vec<Line> {
    let currency = lines.first().map(|l| l.currency.clone());
    lines
        .iter()
        .filter(|l| Some(&l.currency) == currency.as_ref())
        .cloned()
        .collect()
}

/// Whether `lines` are priced in more than one currency.
fn mixed_currency(lines: &[Line]) -> bool {
    lines
        .first()
        .is_some_and(|first| lines.iter().any(|l| l.currency != first.currency))
}

/// The caller's cart, saved carts, and what a cart costs (lines, coupon,
/// shipping, tax).
#[derive(Clone)]
pub struct Carts {
    pub(in crate::service) carts: Registry<CartEntity>,
    /// Prices a cart per shop with its codes stacked.
    pub(in crate::service) quoter: Quoter,
    pub(in crate::service) coupons: Registry<CouponEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) commerce: Arc<CommerceConfig>,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) profiles: Profiles,
}

impl Carts {
    /// Prices `items` for a checkout: every product in one currency, else
    /// 409 `mixed_currency`.
    pub(in crate::service) async fn price(
        &self,
        items: &[CartItem],
    ) -> Result<Priced, ServiceError> {
        let priced = self.lines_of(items).await?;
        if mixed_currency(&priced.lines) {
            return Err(DomainError::conflict(
                "mixed_currency",
                "all products of one checkout must share a currency",
            )
            .into());
        }
        Ok(priced)
    }

    /// The cart's lines in its currency (see `view`).
    pub(in crate::service) async fn lines_in_currency(
        &self,
        items: &[CartItem],
    ) -> Result<Vec<Line>, ServiceError> {
        Ok(in_first_currency(&self.lines_of(items).await?.lines))
    }

    /// The cart's lines at today's product records.
    async fn lines_of(&self, items: &[CartItem]) -> Result<Priced, ServiceError> {
        let mut lines = Vec::with_capacity(items.len());
        let mut products = Vec::with_capacity(items.len());
        let now = chrono::Utc::now();
        for item in items {
            let p = self.catalog.product_record(&item.product_id).await?;
            let unit_price = p.price_at(now);
            lines.push(Line {
                product_id: p.id.clone(),
                shop_id: p.shop_id.clone(),
                name: p.name.clone(),
                unit_price,
                currency: p.currency.clone(),
                quantity: item.quantity,
                weight_grams: p.weight_grams,
                list_price: (unit_price != p.price).then_some(p.price),
            });
            products.push(p);
        }
        Ok(Priced { lines, products })
    }

    /// The cart as its owner sees it. A line whose product has since moved
    /// to another currency than the cart's (its first line's) is shown
    /// unavailable and left out of the totals, so the cart can still be
    /// seen and fixed; checking it out is refused (`mixed_currency`).
    pub(in crate::service) async fn view(
        &self,
        user_id: &str,
        cart: &CartState,
        address: Option<&Address>,
        area: Area,
    ) -> Result<CartView, ServiceError> {
        let priced = self.lines_of(&cart.items).await?;
        let currency = priced.lines.first().map(|l| l.currency.clone());
        let in_currency = |l: &Line| Some(&l.currency) == currency.as_ref();
        let quoted = in_first_currency(&priced.lines);
        let codes = Codes {
            coupon: cart.coupon.as_deref(),
            vouchers: &cart.vouchers,
        };
        let quote = self
            .quoter
            .quote(user_id, &quoted, codes, address, area)
            .await?;
        let mut coupon_problem = None;
        let mut voucher_problems = Vec::new();
        for (code, e) in &quote.problems {
            let problem = refusal(e).expect("a quote's problems are code refusals");
            if cart.coupon.as_deref() == Some(code.as_str()) {
                coupon_problem = Some(problem);
            } else {
                voucher_problems.push(CodeProblem {
                    code: code.clone(),
                    problem,
                });
            }
        }
        let shops = quote.shops;
        let items = priced
            .lines
            .iter()
            .zip(&priced.products)
            .map(|(l, p)| CartLine {
                line: l.clone(),
                line_total: l.unit_price.saturating_mul(u64::from(l.quantity)),
                available: p.on_sale() && p.stock >= u64::from(l.quantity) && in_currency(l),
            })
            .collect();
        let sum = shops
            .iter()
            .fold(Totals::default(), |acc, s| acc + s.totals);
        Ok(CartView {
            items,
            address_id: address.map(|a| a.id.clone()),
            coupon: cart.coupon.clone(),
            coupon_problem,
            vouchers: cart.vouchers.clone(),
            voucher_problems,
            currency,
            shops,
            totals: sum,
        })
    }

    pub async fn get_cart(&self, user_id: &str) -> Result<CartView, ServiceError> {
        let cart = self.carts.send(user_id, CartCommand::Get).await?;
        self.shown(user_id, &cart).await
    }

    /// The cart as every cart operation answers it: shipping quoted to the
    /// owner's default address (if any), a shop beyond its delivery area
    /// quoted without it and saying so.
    pub(in crate::service) async fn shown(
        &self,
        user_id: &str,
        cart: &CartState,
    ) -> Result<CartView, ServiceError> {
        let address = self.profiles.address(user_id, None).await?;
        self.view(user_id, cart, address.as_ref(), Area::Note).await
    }

    pub async fn cart_total(
        &self,
        user_id: &str,
        address_id: Option<&str>,
    ) -> Result<CartView, ServiceError> {
        let address = self.profiles.address(user_id, address_id).await?;
        let cart = self.carts.send(user_id, CartCommand::Get).await?;
        self.view(user_id, &cart, address.as_ref(), Area::Refuse)
            .await
    }

    /// Sets or adds to a product's quantity, checked against the product's
    /// availability.
    pub async fn put_cart_item(
        &self,
        user_id: &str,
        product_id: &str,
        change: QuantityChange,
    ) -> Result<CartView, ServiceError> {
        let cart = self.set_item(user_id, product_id, change).await?;
        self.shown(user_id, &cart).await
    }

    /// `put_cart_item`'s checks and change, without rendering the cart.
    async fn set_item(
        &self,
        user_id: &str,
        product_id: &str,
        change: QuantityChange,
    ) -> Result<CartState, ServiceError> {
        let (quantity, add) = match change {
            QuantityChange::Add(q) => (q, true),
            QuantityChange::Set(q) => (q, false),
        };
        let product = self.catalog.get_product(product_id).await?;
        // One an admin hid is not there for a shopper (not even its name).
        if product.hidden.is_some() {
            return Err(DomainError::NotFound("product").into());
        }
        if !product.on_sale() {
            return Err(DomainError::conflict(
                "product_unavailable",
                format!("{} is no longer sold", product.name),
            )
            .into());
        }
        let cart = self.carts.send(user_id, CartCommand::Get).await?;
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
            let remove = CartCommand::RemoveItem {
                product_id: product_id.into(),
            };
            return Ok(self.carts.send(user_id, remove).await?);
        }
        let others = cart.items.iter().filter(|i| i.product_id != product_id);
        let others: Vec<CartItem> = others.cloned().collect();
        if self
            .lines_of(&others)
            .await?
            .lines
            .iter()
            .any(|l| l.currency != product.currency)
        {
            return Err(DomainError::conflict(
                "mixed_currency",
                format!(
                    "{} is priced in {}, the cart in another currency: one checkout is in one currency",
                    product.name, product.currency
                ),
            )
            .into());
        }
        if u64::from(wanted) > product.stock {
            return Err(DomainError::conflict(
                "out_of_stock",
                format!("only {} of {} left", product.stock, product.name),
            )
            .into());
        }
        Ok(self
            .carts
            .send(
                user_id,
                CartCommand::SetItem {
                    product_id: product_id.into(),
                    quantity: wanted,
                },
            )
            .await?)
    }

    pub async fn remove_cart_item(
        &self,
        user_id: &str,
        product_id: &str,
    ) -> Result<CartView, ServiceError> {
        let cart = self
            .carts
            .send(
                user_id,
                CartCommand::RemoveItem {
                    product_id: product_id.into(),
                },
            )
            .await?;
        self.shown(user_id, &cart).await
    }

    /// "Buy again": `order`'s lines back in its customer's cart at today's
    /// prices, each product at least at the quantity ordered (a line that
    /// already holds more keeps it, so doing it twice changes nothing).
    /// What cannot be bought now (gone, hidden, no longer sold, short of
    /// stock, another currency, a course place) is left out and said why.
    pub async fn buy_again(
        &self,
        caller: &crate::domain::Caller,
        order: &crate::domain::order::Order,
    ) -> Result<BuyAgain, ServiceError> {
        if order.customer_id != caller.user_id {
            return Err(
                DomainError::Forbidden("only the order's customer buys it again".into()).into(),
            );
        }
        let cart = self.carts.send(&caller.user_id, CartCommand::Get).await?;
        let mut added = Vec::new();
        let mut skipped = Vec::new();
        for line in &order.lines {
            let held = cart
                .items
                .iter()
                .find(|i| i.product_id == line.product_id)
                .map_or(0, |i| i.quantity);
            let wanted = held.max(line.quantity);
            let change = QuantityChange::Set(wanted);
            match self
                .set_item(&caller.user_id, &line.product_id, change)
                .await
            {
                Ok(_) => added.push(BoughtAgain {
                    product_id: line.product_id.clone(),
                    quantity: wanted,
                }),
                Err(ServiceError::Domain(e)) => skipped.push(NotBoughtAgain {
                    product_id: line.product_id.clone(),
                    name: line.name.clone(),
                    code: e.code().to_owned(),
                    message: e.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        let cart = self.get_cart(&caller.user_id).await?;
        Ok(BuyAgain {
            cart,
            added,
            skipped,
        })
    }

    pub async fn clear_cart(&self, user_id: &str) -> Result<CartView, ServiceError> {
        let cart = self.carts.send(user_id, CartCommand::Clear).await?;
        self.shown(user_id, &cart).await
    }

    /// Applies a code: a shop's coupon (it replaces that shop's voucher),
    /// or a voucher from the wallet (see `put_voucher`). 422 for a code
    /// of another shape, 404 for one that does not exist; 409 `coupon_not_applicable` for a shop with
    /// nothing in the cart; the code's own refusals.
    pub async fn apply_code(&self, user_id: &str, code: &str) -> Result<CartView, ServiceError> {
        let code = normalize_code(code)?;
        if self.store.head(&stream_id::<CouponEntity>(&code)).await? == 0 {
            return Err(DomainError::NotFound("coupon").into());
        }
        let reply = self.coupons.call(&code, CouponCommand::Get).await?;
        if reply.deleted {
            return Err(DomainError::NotFound("coupon").into());
        }
        let coupon = reply.coupon;
        let cart = self.carts.send(user_id, CartCommand::Get).await?;
        self.check_applies(user_id, &cart, &coupon).await?;
        if coupon.voucher {
            return self.put_voucher(user_id, &cart, coupon).await;
        }
        let apply = CartCommand::ApplyCoupon {
            code,
            shop_id: coupon.shop_id,
        };
        let cart = self.carts.send(user_id, apply).await?;
        self.shown(user_id, &cart).await
    }

    /// Whether `coupon` applies to `cart` for `user_id` now, before it is
    /// applied: 409 `coupon_not_applicable` when its shop has nothing in
    /// the cart, else the code's own refusals on what it would discount
    /// (its shop's subtotal, or for a platform voucher the whole cart's;
    /// shipping is not known before an address).
    async fn check_applies(
        &self,
        user_id: &str,
        cart: &CartState,
        coupon: &crate::actors::coupon::Coupon,
    ) -> Result<(), ServiceError> {
        let priced = self.price(&cart.items).await?;
        let eligible: Vec<Line> = priced
            .lines
            .into_iter()
            .filter(|l| coupon.shop().is_none_or(|s| &l.shop_id == s))
            .collect();
        if eligible.is_empty() {
            return Err(DomainError::conflict(
                "coupon_not_applicable",
                "this coupon is for a shop with nothing in your cart",
            )
            .into());
        }
        let quote = CouponCommand::Quote {
            user_id: user_id.into(),
            base: Base::items(subtotal(&eligible)?),
        };
        self.coupons.call(&coupon.code, quote).await?;
        Ok(())
    }

    pub async fn remove_coupon(&self, user_id: &str) -> Result<CartView, ServiceError> {
        let cart = self.carts.send(user_id, CartCommand::RemoveCoupon).await?;
        self.shown(user_id, &cart).await
    }

    pub async fn save_cart(&self, user_id: &str) -> Result<SavedCart, ServiceError> {
        let id = new_id();
        let cart = self
            .carts
            .send(user_id, CartCommand::Save { id: id.clone() })
            .await?;
        Ok(cart
            .saved
            .into_iter()
            .find(|s| s.id == id)
            .expect("just saved"))
    }

    pub async fn saved_carts(&self, user_id: &str) -> Result<Vec<SavedCart>, ServiceError> {
        Ok(self.carts.send(user_id, CartCommand::Get).await?.saved)
    }

    pub async fn restore_cart(&self, user_id: &str, id: &str) -> Result<CartView, ServiceError> {
        let cart = self
            .carts
            .send(user_id, CartCommand::Restore { id: id.to_owned() })
            .await?;
        self.shown(user_id, &cart).await
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
                let a = self
                    .profiles
                    .address(user_id, address_id)
                    .await?
                    .ok_or_else(|| {
                        DomainError::conflict(
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
        let shop = self.catalog.get_shop(shop_id).await?;
        let (km, fee) = self.commerce.ship(&shop, to, weight_grams)?;
        Ok(ShippingQuote {
            distance_km: (km * 1000.0).round() / 1000.0,
            weight_grams,
            fee,
        })
    }
}

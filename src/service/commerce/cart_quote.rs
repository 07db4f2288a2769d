//! What a cart costs: its lines priced per shop (one future order each),
//! with the cart's codes stacked by the rules below, and shipping and tax
//! to an address.
//!
//! Stacking, in this order:
//! 1. **Sale prices** are the lines' prices (`Line::unit_price`).
//! 2. **One shop discount per shop**: the shop's coupon or one of its
//!    vouchers (the cart holds at most one per shop), on that shop's
//!    subtotal; `min_spend` is checked on it.
//! 3. **One platform voucher per checkout**, on what is left of all shops
//!    after their discounts (`min_spend` checked on that sum), or, for free
//!    shipping, on the shipping fees (up to its cap). Its discount is
//!    shared among the shops' orders in proportion to what it discounts
//!    (largest remainder), so each order and each line carries its part.
//! 4. **Tax** on the items after both discounts; shipping is not taxed.
//!
//! A code that gives nothing now (paused, expired, used up, not collected,
//! below its minimum spend, deleted) is left out of the cart's totals and
//! said why; checking out with it is refused with that code.

use std::collections::BTreeMap;

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::cart::AppliedVoucher;
use crate::actors::coupon::CouponEntity;
use crate::actors::coupon::{Coupon, CouponCommand};
use crate::actors::Registry;
use crate::domain::catalog::Shop;
use crate::domain::ids::ShopId;
use crate::domain::pricing::{
    price, share, subtotal, total_weight, Base, DiscountKind, Discounts, Line,
};
use crate::domain::pricing::{LinePrice, Totals};
use crate::domain::user::Address;
use crate::domain::{DomainError, GeoPoint};
use crate::service::products::catalog::Catalog;
use crate::service::{CommerceConfig, ServiceError};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShopQuote {
    pub shop_id: crate::domain::ids::ShopId,
    pub distance_km: Option<f64>,
    pub totals: Totals,
    /// Each line's money: list total, sale saving, its part of the
    /// discount and tax, its total (they add up to `totals` with shipping).
    pub lines: Vec<LinePrice>,
    /// Why this shop's shipping is not in its totals: the address is
    /// beyond the delivery area (`out_of_delivery_area`, what checking
    /// out to it would answer). Absent when shipping is quoted.
    pub shipping_problem: Option<LeftOut>,
    /// The code whose discount is in `totals.discount`: the shop's coupon
    /// or voucher. Absent when none gives anything.
    pub code: Option<String>,
}

/// What a quote does with an address beyond a shop's delivery area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::service) enum Area {
    /// Refuses (409 `out_of_delivery_area`): a checkout, an explicit total.
    Refuse,
    /// Quotes that shop without shipping and says why (`shipping_problem`):
    /// the cart as it is shown.
    Note,
}

/// Why something is left out of a cart's totals (the applied coupon, or a
/// shop's shipping), by the code checking out would answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeftOut {
    /// The error code checkout would answer (`coupon_paused`, …,
    /// `not_found`; `out_of_delivery_area`).
    pub code: String,
    pub message: String,
}

/// Prices carts: the coupon entity's answers, the catalog's shops, the
/// shipping table and the tax rate.
#[derive(Clone)]
pub struct Quoter {
    pub(in crate::service) coupons: Registry<CouponEntity>,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) commerce: Arc<CommerceConfig>,
}

/// The codes a cart holds: its coupon (one shop's) and its vouchers.
#[derive(Clone, Copy, Default)]
pub(in crate::service) struct Codes<'a> {
    pub(in crate::service) coupon: Option<&'a str>,
    pub(in crate::service) vouchers: &'a [AppliedVoucher],
}

/// The platform voucher a quote used: its code and what it discounted.
#[derive(Debug, Clone)]
pub(in crate::service) struct PlatformUse {
    pub(in crate::service) code: String,
    pub(in crate::service) base: Base,
}

/// A cart priced per shop.
pub(in crate::service) struct Quote {
    pub(in crate::service) shops: Vec<ShopQuote>,
    /// Each shop (in `shops`' order) with its lines.
    pub(in crate::service) groups: Vec<(Shop, Vec<Line>)>,
    /// The platform voucher in the totals, if any.
    pub(in crate::service) platform: Option<PlatformUse>,
    /// Codes left out of the totals, each with why.
    pub(in crate::service) problems: Vec<(String, ServiceError)>,
}

/// One shop's part before the platform voucher.
struct ShopPart {
    shop: Shop,
    lines: Vec<Line>,
    subtotal: u64,
    km: Option<f64>,
    fee: u64,
    shipping_problem: Option<LeftOut>,
    code: Option<String>,
    discount: u64,
}

/// Whether `e` is a coupon's or voucher's own refusal (not a product's,
/// not the store's): the cart is still shown, without it.
pub(in crate::service) fn refusal(e: &ServiceError) -> Option<LeftOut> {
    match e {
        ServiceError::Domain(DomainError::Conflict { code, message })
            if code.starts_with("coupon_") || code.starts_with("voucher_") =>
        {
            Some(LeftOut {
                code: (*code).to_owned(),
                message: message.clone(),
            })
        }
        ServiceError::Domain(DomainError::NotFound("coupon")) => Some(LeftOut {
            code: "not_found".into(),
            message: "this coupon no longer exists".into(),
        }),
        _ => None,
    }
}

/// A coupon entity's answer with its own refusal inside (`Ok(Err(..))`)
/// and any other failure outside.
fn refused_or<T>(
    answer: Result<T, crate::actors::CallError<DomainError>>,
) -> Result<Result<T, ServiceError>, ServiceError> {
    match answer {
        Ok(t) => Ok(Ok(t)),
        Err(e) => {
            let e = ServiceError::from(e);
            match refusal(&e) {
                Some(_) => Ok(Err(e)),
                None => Err(e),
            }
        }
    }
}

impl Quoter {
    /// The record of `code`, or why it is left out.
    async fn record(
        &self,
        code: &str,
        problems: &mut Vec<(String, ServiceError)>,
    ) -> Result<Option<Coupon>, ServiceError> {
        let reply = refused_or(self.coupons.call(code, CouponCommand::Get).await)?;
        match reply {
            Ok(r) if !r.deleted => Ok(Some(r.coupon)),
            Ok(_) => {
                problems.push((code.into(), DomainError::NotFound("coupon").into()));
                Ok(None)
            }
            Err(e) => {
                problems.push((code.into(), e));
                Ok(None)
            }
        }
    }

    /// What `coupon` takes off `base` for `user_id`, or (the inner error)
    /// the code's own refusal; any other failure is the outer error.
    pub(in crate::service) async fn code_discount(
        &self,
        user_id: &str,
        coupon: &Coupon,
        base: Base,
    ) -> Result<Result<u64, ServiceError>, ServiceError> {
        let quote = CouponCommand::Quote {
            user_id: user_id.into(),
            base,
        };
        let reply = refused_or(self.coupons.call(&coupon.code, quote).await)?;
        Ok(reply.map(|r| r.discount))
    }

    /// What `coupon` takes off `base` for `user_id` (none with a problem,
    /// which joins `problems`).
    async fn discount_of(
        &self,
        user_id: &str,
        coupon: &Coupon,
        base: Base,
        problems: &mut Vec<(String, ServiceError)>,
    ) -> Result<u64, ServiceError> {
        Ok(match self.code_discount(user_id, coupon, base).await? {
            Ok(off) => off,
            Err(e) => {
                problems.push((coupon.code.clone(), e));
                0
            }
        })
    }

    /// Prices `lines` per shop with `codes` stacked (see the module), and
    /// (given an address) shipping and tax. With `Area::Refuse` (a
    /// checkout, an explicit total) a code left out or an address beyond a
    /// shop's area is the error; with `Area::Note` they are said.
    pub(in crate::service) async fn quote(
        &self,
        user_id: &str,
        lines: &[Line],
        codes: Codes<'_>,
        address: Option<&Address>,
        area: Area,
    ) -> Result<Quote, ServiceError> {
        let mut by_shop: BTreeMap<String, Vec<Line>> = BTreeMap::new();
        for l in lines {
            by_shop
                .entry(l.shop_id.clone().into())
                .or_default()
                .push(l.clone());
        }
        let mut problems = Vec::new();
        let coupon = match codes.coupon {
            Some(code) => self.record(code, &mut problems).await?,
            None => None,
        };
        let mut vouchers = Vec::new();
        for v in codes.vouchers {
            if let Some(c) = self.record(&v.code, &mut problems).await? {
                vouchers.push(c);
            }
        }
        let mut parts = Vec::new();
        for (shop_id, lines) in by_shop {
            let shop = self.catalog.get_shop(&shop_id).await?;
            let sub = subtotal(&lines)?;
            let (km, fee, shipping_problem) = self.shipping(&shop, &lines, address, area)?;
            let shop_id = ShopId::from(shop_id);
            let code = coupon
                .iter()
                .chain(&vouchers)
                .find(|c| c.shop() == Some(&shop_id));
            let mut discount = 0;
            if let Some(c) = code {
                let base = Base {
                    items: sub,
                    shipping: fee,
                };
                discount = self.discount_of(user_id, c, base, &mut problems).await?;
            }
            parts.push(ShopPart {
                shop,
                lines,
                subtotal: sub,
                km,
                fee,
                shipping_problem,
                code: code.filter(|_| discount > 0).map(|c| c.code.clone()),
                discount,
            });
        }
        let after_shop: Vec<u64> = parts.iter().map(|p| p.subtotal - p.discount).collect();
        let fees: Vec<u64> = parts.iter().map(|p| p.fee).collect();
        let mut platform = None;
        let mut item_shares = vec![0; parts.len()];
        let mut shipping_shares = vec![0; parts.len()];
        if let Some(v) = vouchers.iter().find(|c| c.shop().is_none()) {
            let base = Base {
                items: after_shop.iter().sum(),
                shipping: fees.iter().sum(),
            };
            let off = self.discount_of(user_id, v, base, &mut problems).await?;
            if off > 0 {
                if v.kind == DiscountKind::FreeShipping {
                    shipping_shares = share(off, &fees);
                } else {
                    item_shares = share(off, &after_shop);
                }
                platform = Some(PlatformUse {
                    code: v.code.clone(),
                    base,
                });
            }
        }
        if area == Area::Refuse {
            if let Some((_, e)) = problems.drain(..).next() {
                return Err(e);
            }
        }
        let mut shops = Vec::with_capacity(parts.len());
        let mut groups = Vec::with_capacity(parts.len());
        for (i, p) in parts.into_iter().enumerate() {
            let discounts = Discounts {
                shop: p.discount,
                platform: item_shares[i],
                shipping: shipping_shares[i],
            };
            let priced = price(&p.lines, discounts, p.fee, self.commerce.tax_bps)?;
            shops.push(ShopQuote {
                shop_id: p.shop.id.clone(),
                distance_km: p.km,
                totals: priced.totals,
                lines: priced.lines,
                shipping_problem: p.shipping_problem,
                code: p.code,
            });
            groups.push((p.shop, p.lines));
        }
        Ok(Quote {
            shops,
            groups,
            platform,
            problems,
        })
    }

    /// The distance and fee from `shop` to `address` (none without one);
    /// beyond the delivery area, with `Area::Note`, no fee and why.
    fn shipping(
        &self,
        shop: &Shop,
        lines: &[Line],
        address: Option<&Address>,
        area: Area,
    ) -> Result<(Option<f64>, u64, Option<LeftOut>), ServiceError> {
        let Some(a) = address else {
            return Ok((None, 0, None));
        };
        let to = GeoPoint {
            lat: a.lat,
            lng: a.lng,
        };
        match self.commerce.ship(shop, to, total_weight(lines)?) {
            Ok((km, fee)) => Ok((Some(km), fee, None)),
            Err(ServiceError::Domain(DomainError::Conflict { code, message }))
                if area == Area::Note && code == "out_of_delivery_area" =>
            {
                let km = crate::domain::pricing::haversine_km(shop.location, to);
                let problem = LeftOut {
                    code: code.to_owned(),
                    message,
                };
                Ok((Some(km), 0, Some(problem)))
            }
            Err(e) => Err(e),
        }
    }
}

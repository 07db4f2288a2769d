//! Vouchers in the cart: applying one from the wallet (it takes the place
//! of the one there: a shop's replaces that shop's voucher or coupon, the
//! platform's the platform's), removing it, and the best combination of
//! the wallet's vouchers for the cart as it is.

use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::cart::{AppliedVoucher, CartCommand, CartState};
use crate::actors::coupon::{Coupon, CouponCommand};
use crate::domain::pricing::Base;
use crate::service::commerce::cart::{CartView, Carts};
use crate::service::commerce::cart_quote::{refusal, Codes};
use crate::service::commerce::cart_quote::{Area, LeftOut};
use crate::service::commerce::coupons::CouponView;
use crate::service::ServiceError;

/// `GET /cart/vouchers`: the wallet's vouchers against the cart as it is
/// (shipping to the default address), and the best combination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VoucherChoice {
    /// Applied now.
    pub applied: Vec<AppliedVoucher>,
    /// Each voucher of the wallet, what it would take off alone (its
    /// shop's at most one, the platform's on top of the best shop ones),
    /// or why it cannot be used now.
    pub wallet: Vec<WalletVoucher>,
    /// The best valid combination: for each shop in the cart its voucher
    /// (or applied coupon) taking off the most, then the platform voucher
    /// taking off the most from what is left. Apply each code to use it.
    pub best: Vec<String>,
    /// What `best` takes off in all (items and shipping), minor units.
    pub best_saving: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalletVoucher {
    #[serde(flatten)]
    pub voucher: CouponView,
    /// What it takes off this cart (0 with a `problem`).
    pub saving: u64,
    /// Why it cannot be used on this cart now (`coupon_min_spend`,
    /// `coupon_expired`, `coupon_exhausted`, `coupon_paused`,
    /// `coupon_limit_reached`, `coupon_not_applicable`).
    pub problem: Option<LeftOut>,
}

impl Carts {
    /// Applies voucher `coupon` from `user_id`'s wallet to `cart` (checked
    /// by `apply_code`, which refuses `voucher_not_collected`,
    /// `coupon_not_applicable` and the voucher's own refusals): a shop's
    /// replaces that shop's voucher or coupon, the platform's the
    /// platform's.
    pub(in crate::service) async fn put_voucher(
        &self,
        user_id: &str,
        cart: &CartState,
        coupon: Coupon,
    ) -> Result<CartView, ServiceError> {
        let code = coupon.code.clone();
        let coupon_of_shop = match (&cart.coupon, coupon.shop()) {
            (Some(c), Some(shop)) => self
                .coupons
                .call(c, CouponCommand::Get)
                .await
                .map(|r| r.coupon.shop() == Some(shop))
                .unwrap_or(true),
            _ => false,
        };
        let apply = CartCommand::ApplyVoucher {
            voucher: AppliedVoucher {
                code,
                shop_id: coupon.shop().cloned(),
            },
            coupon_of_shop,
        };
        let cart = self.carts.send(user_id, apply).await?;
        self.shown(user_id, &cart).await
    }

    pub async fn remove_voucher(
        &self,
        user_id: &str,
        code: &str,
    ) -> Result<CartView, ServiceError> {
        let code = code.trim().to_ascii_uppercase();
        let cart = self
            .carts
            .send(user_id, CartCommand::RemoveVoucher { code })
            .await?;
        self.shown(user_id, &cart).await
    }

    /// The wallet against the cart, and the best combination (see
    /// `VoucherChoice`). Shipping is quoted to the default address.
    pub async fn voucher_choice(
        &self,
        user_id: &str,
        wallet: Vec<CouponView>,
    ) -> Result<VoucherChoice, ServiceError> {
        let cart = self.carts.send(user_id, CartCommand::Get).await?;
        let address = self.profiles.address(user_id, None).await?;
        let priced = self.lines_in_currency(&cart.items).await?;
        // The cart without any code: each shop's subtotal and fee.
        let bare = self
            .quoter
            .quote(
                user_id,
                &priced,
                Codes::default(),
                address.as_ref(),
                Area::Note,
            )
            .await?;
        let in_hand: Vec<Coupon> = match &cart.coupon {
            Some(c) => match self.coupons.call(c, CouponCommand::Get).await {
                Ok(r) if !r.deleted => vec![r.coupon],
                _ => vec![],
            },
            None => vec![],
        };
        let mut out = Vec::with_capacity(wallet.len());
        // For each shop, the most a shop code takes off and which.
        let mut best_shop: Vec<(u64, Option<String>)> = vec![(0, None); bare.shops.len()];
        let candidates = wallet
            .iter()
            .map(|v| (v.coupon.clone(), true))
            .chain(in_hand.into_iter().map(|c| (c, false)));
        for (c, listed) in candidates {
            let Some(shop) = c.shop() else {
                continue;
            };
            let (saving, problem) = match bare.shops.iter().position(|s| &s.shop_id == shop) {
                Some(i) => {
                    let t = bare.shops[i].totals;
                    let base = Base {
                        items: t.subtotal,
                        shipping: t.shipping_fee,
                    };
                    let (saving, problem) = self.try_quote(user_id, &c, base).await?;
                    if saving > best_shop[i].0 {
                        best_shop[i] = (saving, Some(c.code.clone()));
                    }
                    (saving, problem)
                }
                None => (0, Some(not_applicable())),
            };
            if listed {
                out.push(WalletVoucher {
                    voucher: c.into(),
                    saving,
                    problem,
                });
            }
        }
        let left: u64 = bare
            .shops
            .iter()
            .zip(&best_shop)
            .map(|(s, (off, _))| s.totals.subtotal - off)
            .sum();
        let base = Base {
            items: left,
            shipping: bare.shops.iter().map(|s| s.totals.shipping_fee).sum(),
        };
        let mut best_platform: (u64, Option<String>) = (0, None);
        for v in wallet.iter().filter(|v| v.coupon.shop().is_none()) {
            let (saving, problem) = if priced.is_empty() {
                (0, Some(not_applicable()))
            } else {
                self.try_quote(user_id, &v.coupon, base).await?
            };
            if saving > best_platform.0 {
                best_platform = (saving, Some(v.coupon.code.clone()));
            }
            out.push(WalletVoucher {
                voucher: v.clone(),
                saving,
                problem,
            });
        }
        let chosen = best_shop.into_iter().chain([best_platform]);
        let (mut best, mut best_saving) = (Vec::new(), 0);
        for (off, code) in chosen {
            if let Some(code) = code {
                best.push(code);
                best_saving += off;
            }
        }
        out.sort_by(|a, b| a.voucher.coupon.code.cmp(&b.voucher.coupon.code));
        Ok(VoucherChoice {
            applied: cart.vouchers,
            wallet: out,
            best,
            best_saving,
        })
    }

    /// What `c` would take off `base` for `user_id`, or why not.
    async fn try_quote(
        &self,
        user_id: &str,
        c: &Coupon,
        base: Base,
    ) -> Result<(u64, Option<LeftOut>), ServiceError> {
        Ok(match self.quoter.code_discount(user_id, c, base).await? {
            Ok(off) => (off, None),
            Err(e) => (0, refusal(&e)),
        })
    }
}

fn not_applicable() -> LeftOut {
    LeftOut {
        code: "coupon_not_applicable".into(),
        message: "this voucher is for a shop with nothing in your cart".into(),
    }
}

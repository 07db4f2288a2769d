//! A cart's lines and saved carts as the API sees them, and their bounds.
//! The cart entity (`actors::cart`) keeps them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::ProductId;

pub const MAX_ITEMS: usize = 50;

pub const MAX_QUANTITY: u32 = 1_000;

pub const MAX_SAVED: usize = 10;

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

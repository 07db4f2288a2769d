//! Coupons: created by merchants and admins, read by code.

use super::catalog::Catalog;
use super::ServiceError;
use crate::actors::coupon::{normalize_code, Coupon, CouponCommand, CouponEntity, CouponInput};
use crate::actors::entity::stream_id;
use crate::actors::Registry;
use crate::domain::{Caller, DomainError};
use crate::store::Store;
use std::sync::Arc;

/// A shop's coupons.
pub struct Coupons {
    pub(super) coupons: Registry<CouponEntity>,
    pub(super) store: Arc<dyn Store>,
    pub(super) catalog: Catalog,
}

impl Coupons {
    pub async fn create_coupon(
        &self,
        caller: Caller,
        shop_id: &str,
        input: CouponInput,
    ) -> Result<Coupon, ServiceError> {
        let code = normalize_code(&input.code)?;
        let shop = self.catalog.get_shop(shop_id).await?;
        Ok(self
            .coupons
            .call(
                &code,
                CouponCommand::Create {
                    caller,
                    shop: Box::new(shop),
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
}

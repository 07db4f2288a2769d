//! Coupons: created by merchants and admins, read by code; listed,
//! edited, paused, resumed, deleted and reported on by their shop's
//! merchant (or an admin).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::coupon::{
    normalize_code, Coupon, CouponCommand, CouponEntity, CouponInput, CouponStatus, CouponUsage,
    PLATFORM_KEY,
};
use crate::actors::entity::{stream_id, Entity};
use crate::actors::Registry;
use crate::domain::{Caller, DomainError};
use crate::service::products::catalog::{decode_cursor, encode_cursor, Catalog, Page};
use crate::service::ServiceError;
use crate::store::tables::{COUPONS_BY_SHOP, VOUCHER_WALLET};
use crate::store::{codec, Store};
use std::sync::Arc;

/// A coupon with where it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CouponView {
    #[serde(flatten)]
    pub coupon: Coupon,
    pub status: CouponStatus,
}

impl From<Coupon> for CouponView {
    fn from(coupon: Coupon) -> Self {
        let status = coupon.status(Utc::now());
        CouponView { coupon, status }
    }
}

/// Vouchers a wallet lists (the newest collections past this are not
/// shown; a customer rarely holds more).
pub const MAX_WALLET: usize = 100;

/// A shop's coupons and vouchers, the platform's vouchers, customers'
/// wallets.
pub struct Coupons {
    pub(in crate::service) coupons: Registry<CouponEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) zone: crate::domain::zone::ReportZone,
}

impl Coupons {
    pub async fn create_coupon(
        &self,
        caller: Caller,
        shop_id: &str,
        input: CouponInput,
    ) -> Result<CouponView, ServiceError> {
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
            .coupon
            .into())
    }

    /// An admin issues a platform voucher (always collected before use).
    pub async fn create_platform_voucher(
        &self,
        caller: Caller,
        input: CouponInput,
    ) -> Result<CouponView, ServiceError> {
        let code = normalize_code(&input.code)?;
        let cmd = CouponCommand::CreatePlatform { caller, input };
        Ok(self.coupons.call(&code, cmd).await?.coupon.into())
    }

    /// `user_id` collects voucher `code` into their wallet (again: the
    /// same answer).
    pub async fn collect(&self, user_id: &str, code: &str) -> Result<CouponView, ServiceError> {
        let code = self.existing(code).await?;
        let cmd = CouponCommand::Collect {
            user_id: user_id.into(),
        };
        Ok(self.coupons.call(&code, cmd).await?.coupon.into())
    }

    /// The vouchers `user_id` collected and that still exist, by code
    /// (at most `MAX_WALLET`), each with its status now.
    pub async fn wallet(&self, user_id: &str) -> Result<Vec<CouponView>, ServiceError> {
        let rows = self
            .store
            .scan(VOUCHER_WALLET, &format!("{user_id}|"), None, MAX_WALLET)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            let Some((_, code)) = key.split_once('|') else {
                continue;
            };
            let reply = self.coupons.call(code, CouponCommand::Get).await?;
            if !reply.deleted {
                out.push(reply.coupon.into());
            }
        }
        Ok(out)
    }

    /// The vouchers customers can collect now (active), of a shop or
    /// (`shop_id` none) of the platform, by code; a page may hold fewer
    /// than `limit`: follow `next_cursor`.
    pub async fn collectible(
        &self,
        shop_id: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CouponView>, ServiceError> {
        if let Some(shop_id) = shop_id {
            self.catalog.get_shop(shop_id).await?;
        }
        let prefix = format!("{}|", shop_id.unwrap_or(PLATFORM_KEY));
        let mut page = self.listed(&prefix, cursor, limit).await?;
        page.items
            .retain(|v| v.coupon.voucher && v.status == CouponStatus::Active);
        Ok(page)
    }

    /// A page of `coupons_by_shop` under `prefix`.
    async fn listed(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CouponView>, ServiceError> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .scan(COUPONS_BY_SHOP, prefix, after.as_deref(), limit)
            .await?;
        let next_cursor = (rows.len() == limit)
            .then(|| rows.last().map(|(k, _)| encode_cursor(k)))
            .flatten();
        let mut items = Vec::with_capacity(rows.len());
        for (_, value) in rows {
            let coupon: Coupon = codec::decode(CouponEntity::VERSION, &value)?;
            items.push(CouponView::from(coupon));
        }
        Ok(Page { items, next_cursor })
    }

    /// The code of a coupon that was created (404 otherwise, without
    /// starting an actor for it).
    async fn existing(&self, code: &str) -> Result<String, ServiceError> {
        let code = normalize_code(code).map_err(|_| DomainError::NotFound("coupon"))?;
        if self.store.head(&stream_id::<CouponEntity>(&code)).await? == 0 {
            return Err(DomainError::NotFound("coupon").into());
        }
        Ok(code)
    }

    pub async fn get_coupon(&self, code: &str) -> Result<CouponView, ServiceError> {
        let code = self.existing(code).await?;
        let reply = self.coupons.call(&code, CouponCommand::Get).await?;
        if reply.deleted {
            return Err(DomainError::NotFound("coupon").into());
        }
        Ok(reply.coupon.into())
    }

    /// Edit, pause, resume or delete, by the coupon's shop's merchant.
    async fn change(&self, code: &str, cmd: CouponCommand) -> Result<CouponView, ServiceError> {
        let code = self.existing(code).await?;
        Ok(self.coupons.call(&code, cmd).await?.coupon.into())
    }

    /// A merchant's change to their coupon (absent fields stay).
    pub async fn edit(
        &self,
        caller: Caller,
        code: &str,
        patch: crate::domain::coupon::CouponPatch,
    ) -> Result<CouponView, ServiceError> {
        self.change(code, CouponCommand::Edit { caller, patch })
            .await
    }

    /// Paused: refused by carts and checkouts until resumed.
    pub async fn pause(&self, caller: Caller, code: &str) -> Result<CouponView, ServiceError> {
        self.change(code, CouponCommand::Pause { caller }).await
    }

    pub async fn resume(&self, caller: Caller, code: &str) -> Result<CouponView, ServiceError> {
        self.change(code, CouponCommand::Resume { caller }).await
    }

    /// Not found from now on (its code may be created again, afresh).
    pub async fn delete(&self, caller: Caller, code: &str) -> Result<CouponView, ServiceError> {
        self.change(code, CouponCommand::Delete { caller }).await
    }

    pub async fn usage(&self, caller: Caller, code: &str) -> Result<CouponUsage, ServiceError> {
        let code = self.existing(code).await?;
        let reply = self
            .coupons
            .call(
                &code,
                CouponCommand::Usage {
                    caller,
                    zone: self.zone,
                },
            )
            .await?;
        reply
            .usage
            .ok_or_else(|| ServiceError::Unavailable("the coupon answered no report".into()))
    }

    /// A shop's coupons by code, for its merchant (or an admin); with
    /// `status`, only those standing so (a page may then hold fewer than
    /// `limit`: follow `next_cursor`).
    pub async fn coupons_of(
        &self,
        caller: &Caller,
        shop_id: &str,
        status: Option<CouponStatus>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<CouponView>, ServiceError> {
        let shop = self.catalog.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        let mut page = self.listed(&format!("{shop_id}|"), cursor, limit).await?;
        page.items.retain(|v| status.is_none_or(|s| s == v.status));
        Ok(page)
    }
}

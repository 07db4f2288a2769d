//! Catalog moderation (admins): hiding a product or a whole shop from
//! listings, search and sale, and lifting it. A shop's hiding reaches its
//! products (marked as by the shop, so lifting the shop's lifts only
//! those, not ones hidden on their own).

use std::sync::Arc;

use chrono::Utc;

use super::{found, ServiceError};
use crate::actors::product::{ProductCommand, ProductEntity, INVENTORY};
use crate::actors::shop::{ShopCommand, ShopEntity};
use crate::actors::Registry;
use crate::domain::catalog::{Moderation, Product, Shop};
use crate::domain::{check_text, Caller, DomainError, Role};
use crate::store::Store;

pub struct CatalogModeration {
    pub(super) products: Registry<ProductEntity>,
    pub(super) shops: Registry<ShopEntity>,
    pub(super) store: Arc<dyn Store>,
}

fn admin_only(caller: &Caller) -> Result<(), ServiceError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only admins moderate".into()).into())
    }
}

fn note(reason: &str, by_shop: bool) -> Result<Moderation, ServiceError> {
    Ok(Moderation {
        reason: check_text("reason", reason, 500)?,
        at: Utc::now(),
        by_shop,
    })
}

impl CatalogModeration {
    async fn moderate_product(
        &self,
        caller: &Caller,
        id: &str,
        hidden: Option<Moderation>,
        only_by_shop: bool,
    ) -> Result<Product, ServiceError> {
        let cmd = ProductCommand::Moderate {
            caller: caller.clone(),
            hidden,
            only_by_shop,
        };
        Ok(self.products.call(id, cmd).await?.product)
    }

    /// Hides a product (a hidden one keeps its first reason).
    pub async fn hide_product(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<Product, ServiceError> {
        admin_only(caller)?;
        let hidden = note(reason, false)?;
        found(&self.products, id, "product").await?;
        self.moderate_product(caller, id, Some(hidden), false).await
    }

    pub async fn unhide_product(&self, caller: &Caller, id: &str) -> Result<Product, ServiceError> {
        admin_only(caller)?;
        found(&self.products, id, "product").await?;
        self.moderate_product(caller, id, None, false).await
    }

    /// Hides a shop and, with it, each of its products.
    pub async fn hide_shop(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<Shop, ServiceError> {
        admin_only(caller)?;
        let hidden = note(reason, false)?;
        found(&self.shops, id, "shop").await?;
        let cmd = ShopCommand::Moderate {
            caller: caller.clone(),
            hidden: Some(hidden.clone()),
        };
        let shop = self.shops.call(id, cmd).await?;
        let by_shop = Moderation {
            by_shop: true,
            ..hidden
        };
        for p in self.products_of(id).await? {
            self.moderate_product(caller, &p, Some(by_shop.clone()), false)
                .await?;
        }
        Ok(shop)
    }

    /// Lifts a shop's hiding and the hiding it gave its products.
    pub async fn unhide_shop(&self, caller: &Caller, id: &str) -> Result<Shop, ServiceError> {
        admin_only(caller)?;
        found(&self.shops, id, "shop").await?;
        let cmd = ShopCommand::Moderate {
            caller: caller.clone(),
            hidden: None,
        };
        let shop = self.shops.call(id, cmd).await?;
        for p in self.products_of(id).await? {
            self.moderate_product(caller, &p, None, true).await?;
        }
        Ok(shop)
    }

    /// The products of shop `id`, as its inventory lists them.
    async fn products_of(&self, id: &str) -> Result<Vec<String>, ServiceError> {
        let mut out = Vec::new();
        crate::store::walk_rows(
            self.store.as_ref(),
            INVENTORY,
            &format!("{id}|"),
            None,
            500,
            |k, _| {
                out.extend(k.split_once('|').map(|(_, p)| p.to_owned()));
                Ok::<_, ServiceError>(true)
            },
        )
        .await?;
        Ok(out)
    }
}

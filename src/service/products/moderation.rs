//! Catalog moderation (admins): hiding a product or a whole shop from
//! listings, search and sale, and lifting it. A shop's hiding reaches its
//! products (marked as by the shop, so lifting the shop's lifts only
//! those, not ones hidden on their own). A seller's shops also follow their
//! seller rights: hidden while they are not a merchant or are suspended.

use std::sync::Arc;

use chrono::Utc;

use crate::actors::product::{ProductCommand, ProductEntity, INVENTORY};
use crate::actors::shop::{ShopCommand, ShopEntity, SHOPS_BY_OWNER};
use crate::actors::Registry;
use crate::domain::catalog::{Moderation, Product, Shop};
use crate::domain::user::UserView;
use crate::domain::{check_text, Caller, DomainError, Role};
use crate::service::{found, ServiceError};
use crate::store::Store;

pub struct CatalogModeration {
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) shops: Registry<ShopEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
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
        by_owner: false,
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
        self.hide_shop_as(caller, id, hidden).await
    }

    async fn hide_shop_as(
        &self,
        caller: &Caller,
        id: &str,
        hidden: Moderation,
    ) -> Result<Shop, ServiceError> {
        let cmd = ShopCommand::Moderate {
            caller: caller.clone(),
            hidden: Some(hidden.clone()),
            only_by_owner: false,
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
        self.unhide_shop_as(caller, id, false).await
    }

    async fn unhide_shop_as(
        &self,
        caller: &Caller,
        id: &str,
        only_by_owner: bool,
    ) -> Result<Shop, ServiceError> {
        let cmd = ShopCommand::Moderate {
            caller: caller.clone(),
            hidden: None,
            only_by_owner,
        };
        let shop = self.shops.call(id, cmd).await?;
        if shop.hidden.is_none() {
            for p in self.products_of(id).await? {
                self.moderate_product(caller, &p, None, true).await?;
            }
        }
        Ok(shop)
    }

    /// Makes `owner`'s shops follow their seller rights, as an admin
    /// (`caller`) changed them: while the owner is neither a merchant nor
    /// an admin, or is suspended, every shop of theirs (and its products)
    /// is hidden from the storefront for that reason; when the rights
    /// return, those hidings are lifted (not one an admin gave a shop for
    /// a reason of their own). Open orders stay as they are: the customer
    /// may cancel as ever, and an admin finishes the rest (admins pass
    /// every merchant check). Running it again changes nothing.
    pub async fn follow_seller_rights(
        &self,
        caller: &Caller,
        owner: &UserView,
    ) -> Result<(), ServiceError> {
        admin_only(caller)?;
        let rights =
            matches!(owner.role, Role::Merchant | Role::Admin) && owner.suspension.is_none();
        let shops = self.shops_of(&owner.id).await?;
        for id in shops {
            if rights {
                self.unhide_shop_as(caller, &id, true).await?;
            } else {
                let why = if owner.suspension.is_some() {
                    "the owner's account is suspended"
                } else {
                    "the owner is no longer a merchant"
                };
                let hidden = Moderation {
                    by_owner: true,
                    ..note(why, false)?
                };
                self.hide_shop_as(caller, &id, hidden).await?;
            }
        }
        Ok(())
    }

    /// The ids of the shops `owner` opened.
    async fn shops_of(&self, owner: &str) -> Result<Vec<String>, ServiceError> {
        self.second_keys(SHOPS_BY_OWNER, owner).await
    }

    /// The products of shop `id`, as its inventory lists them.
    async fn products_of(&self, id: &str) -> Result<Vec<String>, ServiceError> {
        self.second_keys(INVENTORY, id).await
    }

    /// The second halves of `table`'s `{first}|{second}` keys under `first`.
    async fn second_keys(&self, table: &str, first: &str) -> Result<Vec<String>, ServiceError> {
        let mut out = Vec::new();
        crate::store::walk_rows(
            self.store.as_ref(),
            table,
            &format!("{first}|"),
            None,
            500,
            |k, _| {
                out.extend(k.split_once('|').map(|(_, id)| id.to_owned()));
                Ok::<_, ServiceError>(true)
            },
        )
        .await?;
        Ok(out)
    }
}

//! Flash sales: created with a reserve of the product's stock (held under
//! `sale:{id}`), read with their live counters. Claims go through the
//! queue service (`queues`).

use crate::actors::product::ProductEntity;
use crate::actors::queue::QueueEntity;
use crate::actors::Registry;
use crate::service::found;
use crate::service::queue::work::sale_hold;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::product::ProductCommand;
use crate::actors::queue::{QueueConfig, QueueKind, QueueStatus, SALES_BY_END, SALES_BY_OWNER};
use crate::domain::window::WindowState;
use crate::domain::{Caller, DomainError};
use crate::service::{new_id, ServiceError};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlashSaleInput {
    pub product_id: crate::domain::ids::ProductId,
    /// Units reserved for the sale (taken from the product's stock).
    pub stock: u32,
    pub per_user_limit: u32,
    /// Sale price per unit, in the product's currency.
    pub price: u64,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlashSaleView {
    pub id: String,
    #[serde(flatten)]
    pub status: QueueStatus,
    /// Its window now: `scheduled`, `open`, `sold_out` (only the waitlist
    /// is left) or `closed`.
    pub state: WindowState,
}

pub(in crate::service) fn view(id: &str, status: QueueStatus, now: DateTime<Utc>) -> FlashSaleView {
    FlashSaleView {
        id: id.to_owned(),
        state: status.state(now),
        status,
    }
}

/// Which sales the storefront lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleListing {
    /// Open or sold out, not ended.
    Live,
    /// Not started yet.
    Upcoming,
}

impl SaleListing {
    fn takes(self, state: WindowState) -> bool {
        match self {
            SaleListing::Live => matches!(state, WindowState::Open | WindowState::SoldOut),
            SaleListing::Upcoming => state == WindowState::Scheduled,
        }
    }
}

/// Opening and reading flash sales.
pub struct FlashSales {
    pub(in crate::service) queues: Registry<QueueEntity>,
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) stock: crate::service::commerce::stock::Stock,
    pub(in crate::service) burst: crate::service::queue::queues::BurstConfig,
    pub(in crate::service) store: std::sync::Arc<dyn crate::store::Store>,
}

impl FlashSales {
    /// `POST /flash-sales` (the product's merchant): reserves `stock` units
    /// and opens the queue.
    pub async fn create_flash_sale(
        &self,
        caller: &Caller,
        input: FlashSaleInput,
    ) -> Result<FlashSaleView, ServiceError> {
        if input.stock == 0 || input.per_user_limit == 0 {
            return Err(DomainError::invalid(
                "stock",
                "stock and per_user_limit must be at least 1",
            )
            .into());
        }
        crate::domain::window::validate(input.opens_at, input.closes_at)?;
        found(&self.products, &input.product_id, "product").await?;
        let product = self
            .products
            .call(&input.product_id, ProductCommand::Get)
            .await?
            .product;
        if product.deleted_at.is_some() {
            return Err(DomainError::NotFound("product").into());
        }
        caller.ensure_owner(&product.owner_id, "product")?;
        if input.price == 0 || input.price > product.price {
            return Err(DomainError::invalid(
                "price",
                "the sale price must be between 1 and the product's price",
            )
            .into());
        }
        let id = new_id();
        self.stock
            .hold_on_product(&product.id, &sale_hold(&id), u64::from(input.stock))
            .await?;
        let config = QueueConfig {
            kind: QueueKind::FlashSale,
            owner_id: product.owner_id.clone(),
            subject_id: product.id.clone().into(),
            shop_id: Some(product.shop_id.clone()),
            title: product.name.clone(),
            capacity: input.stock,
            per_user_limit: input.per_user_limit,
            price: input.price,
            currency: product.currency.clone(),
            opens_at: input.opens_at,
            closes_at: input.closes_at,
            max_waitlist: self.burst.max_waitlist,
            parts: self.burst.parts_for(input.stock),
            part_of: None,
        };
        let opened = self.queues.open(&id, config).await;
        let status = match opened {
            Ok(status) => status,
            Err(e) => {
                // The sale never opened: its reserve goes back (nobody saw it).
                let release = ProductCommand::Release {
                    order_id: sale_hold(&id),
                };
                let _ = self.products.call(&product.id, release).await;
                return Err(e.into());
            }
        };
        Ok(view(&id, status, Utc::now()))
    }

    /// A merchant's flash sales, oldest first, each with its live counters.
    pub async fn sales_of(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::service::products::catalog::Page<FlashSaleView>, ServiceError> {
        let after = cursor
            .map(crate::service::products::catalog::decode_cursor)
            .transpose()?;
        let rows = self
            .store
            .scan(
                SALES_BY_OWNER,
                &format!("{owner}|"),
                after.as_deref(),
                limit,
            )
            .await?;
        let next_cursor = (rows.len() == limit)
            .then(|| {
                rows.last()
                    .map(|(k, _)| crate::service::products::catalog::encode_cursor(k))
            })
            .flatten();
        let now = Utc::now();
        let reads = rows.iter().map(|(key, _)| async move {
            let id = key.split_once('|').map(|(_, id)| id).unwrap_or(key);
            let status = self.queues.status(id).await?;
            Ok::<_, ServiceError>(view(id, status, now))
        });
        let items = futures_util::future::try_join_all(reads).await?;
        Ok(crate::service::products::catalog::Page { items, next_cursor })
    }

    /// `GET /flash-sales`: the storefront's sales that have not ended,
    /// soonest ending first (those without an end last), each with its
    /// live counters: `live` ones (open or sold out), `upcoming` ones, or
    /// both. A sale of a hidden or deleted product is not listed. Reads
    /// from `sales_by_end` at now, so ended sales cost nothing; a page may
    /// hold fewer than `limit` (the cursor goes on).
    pub async fn listed_sales(
        &self,
        which: Option<SaleListing>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::service::products::catalog::Page<FlashSaleView>, ServiceError> {
        let now = Utc::now();
        let from = match cursor {
            Some(c) => crate::service::products::catalog::decode_cursor(c)?,
            // Every key of a sale ending at or before now sorts before this.
            None => format!("{:020}|", now.timestamp_millis()),
        };
        let rows = self
            .store
            .scan(SALES_BY_END, "", Some(&from), limit)
            .await?;
        let next_cursor = (rows.len() == limit)
            .then(|| {
                rows.last()
                    .map(|(k, _)| crate::service::products::catalog::encode_cursor(k))
            })
            .flatten();
        let reads = rows.iter().map(|(key, _)| async move {
            let id = key.split_once('|').map_or(key.as_str(), |(_, id)| id);
            let status = self.queues.status(id).await?;
            let shown = match self
                .products
                .call(&status.config.subject_id, ProductCommand::Get)
                .await
            {
                Ok(r) => r.product.on_sale(),
                Err(crate::actors::entity::CallError::Rejected(_)) => false,
                Err(e) => return Err(e.into()),
            };
            let sale = view(id, status, now);
            let wanted = match which {
                Some(w) => w.takes(sale.state),
                None => sale.state != WindowState::Closed,
            };
            Ok::<_, ServiceError>((shown && wanted).then_some(sale))
        });
        let items = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(crate::service::products::catalog::Page { items, next_cursor })
    }

    /// `GET /flash-sales/{id}`.
    pub async fn flash_sale(&self, id: &str) -> Result<FlashSaleView, ServiceError> {
        found(&self.queues, id, "flash sale").await?;
        let status = self.queues.status(id).await?;
        if status.config.kind != QueueKind::FlashSale {
            return Err(DomainError::NotFound("flash sale").into());
        }
        Ok(view(id, status, Utc::now()))
    }
}

//! Inventory: a product's levels and movement history, the movements a
//! merchant records, a shop's inventory (listing, low stock, CSV), and the
//! worker that tells merchants of low-stock crossings.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::order::OrderEntity;
use crate::actors::product::{
    ProductCommand, ProductEntity, StockAlert, INVENTORY, INVENTORY_ROW_VERSION, LOW_STOCK,
    STOCK_ALERTS, STOCK_MOVEMENTS,
};
use crate::actors::user::User;
use crate::actors::Registry;
use crate::domain::inventory::{
    AdjustmentInput, AdjustmentKind, InventoryItem, Movement, StockLevels,
};
use crate::domain::notification::Notification;
use crate::domain::order::OrderStatus;
use crate::domain::{Caller, DomainError};
use crate::service::products::catalog::{scan_page, Catalog, Page};
use crate::service::{found, ServiceError};
use crate::store::{codec, IndexOp, Store};

/// Products one CSV export holds at most.
pub const MAX_EXPORT: usize = 50_000;
/// Alerts told per round of the worker.
const ALERT_ROUND: usize = 100;

/// A product's stock: levels now and a page of its history, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductInventory {
    pub product_id: String,
    #[serde(flatten)]
    pub levels: StockLevels,
    pub low_stock_threshold: Option<u64>,
    pub low: bool,
    pub movements: Vec<Movement>,
    /// `cursor` for the next (older) page of movements.
    pub next_cursor: Option<String>,
}

/// A shop's inventory as CSV.
pub struct InventoryExport {
    pub csv: Vec<u8>,
    pub truncated: bool,
}

#[derive(Clone)]
pub struct Inventory {
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) duty: crate::cluster::Duty,
    /// Rung when a crossing may be waiting (after an adjustment).
    pub(in crate::service) wake: Arc<tokio::sync::Notify>,
}

impl Inventory {
    async fn own_product(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<crate::actors::product::ProductReply, ServiceError> {
        found(&self.products, id, "product").await?;
        let reply = self.products.call(id, ProductCommand::Get).await?;
        if reply.product.deleted_at.is_some() {
            return Err(crate::domain::DomainError::NotFound("product").into());
        }
        caller.ensure_owner(&reply.product.owner_id, "product")?;
        Ok(reply)
    }

    /// `GET /products/{id}/inventory` (its merchant).
    pub async fn product(
        &self,
        caller: &Caller,
        id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ProductInventory, ServiceError> {
        let reply = self.own_product(caller, id).await?;
        let page: Page<Movement> = scan_page(
            self.store.as_ref(),
            STOCK_MOVEMENTS,
            &format!("{id}|"),
            INVENTORY_ROW_VERSION,
            cursor,
            limit,
        )
        .await?;
        let threshold = reply.product.low_stock_threshold;
        Ok(ProductInventory {
            product_id: id.to_owned(),
            levels: reply.levels,
            low_stock_threshold: threshold,
            low: crate::domain::inventory::is_low(threshold, reply.levels.available),
            movements: page.items,
            next_cursor: page.next_cursor,
        })
    }

    /// `POST /products/{id}/inventory/adjustments` (its merchant): the
    /// levels after the movement. A return must name a returned order of
    /// the product's shop holding the product.
    pub async fn adjust(
        &self,
        caller: &Caller,
        id: &str,
        input: AdjustmentInput,
    ) -> Result<StockLevels, ServiceError> {
        let reply = self.own_product(caller, id).await?;
        let input = crate::domain::inventory::check_adjustment(&input)?;
        let returnable = match (input.kind, &input.order_id) {
            (AdjustmentKind::Returned, Some(order_id)) => {
                self.returnable(caller, &reply.product, order_id).await?
            }
            _ => 0,
        };
        let reply = self
            .products
            .call(
                id,
                ProductCommand::Adjust {
                    caller: caller.clone(),
                    input,
                    returnable,
                },
            )
            .await?;
        self.wake.notify_one();
        Ok(reply.levels)
    }

    /// Units of `product` the returned order `order_id` had.
    async fn returnable(
        &self,
        caller: &Caller,
        product: &crate::domain::catalog::Product,
        order_id: &str,
    ) -> Result<u64, ServiceError> {
        let not_returned = || -> ServiceError {
            DomainError::invalid(
                "order_id",
                "not a returned order of this shop holding this product",
            )
            .into()
        };
        if found(&self.orders, order_id, "order").await.is_err() {
            return Err(not_returned());
        }
        let order = self
            .orders
            .get_for(order_id, caller)
            .await
            .map_err(|_| not_returned())?;
        let units: u64 = order
            .lines
            .iter()
            .filter(|l| l.product_id == product.id)
            .map(|l| u64::from(l.quantity))
            .sum();
        let returned = matches!(order.status, OrderStatus::Returned | OrderStatus::Refunded)
            && order.delivered_at.is_some();
        if order.shop_id != product.shop_id || units == 0 || !returned {
            return Err(not_returned());
        }
        Ok(units)
    }

    /// A shop's inventory, by product id (its merchant).
    pub async fn shop(
        &self,
        caller: &Caller,
        shop_id: &str,
        low_only: bool,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<InventoryItem>, ServiceError> {
        self.own_shop(caller, shop_id).await?;
        scan_page(
            self.store.as_ref(),
            if low_only { LOW_STOCK } else { INVENTORY },
            &format!("{shop_id}|"),
            INVENTORY_ROW_VERSION,
            cursor,
            limit,
        )
        .await
    }

    async fn own_shop(&self, caller: &Caller, shop_id: &str) -> Result<(), ServiceError> {
        let shop = self.catalog.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        Ok(())
    }

    /// The shop's inventory as CSV, one row per product (at most
    /// `MAX_EXPORT`).
    pub async fn export_csv(
        &self,
        caller: &Caller,
        shop_id: &str,
    ) -> Result<InventoryExport, ServiceError> {
        self.own_shop(caller, shop_id).await?;
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "product_id",
            "name",
            "category",
            "on_hand",
            "reserved",
            "available",
            "low_stock_threshold",
            "low",
            "active",
        ])
        .expect("writing to memory");
        let mut written = 0;
        let truncated = crate::store::walk_rows(
            self.store.as_ref(),
            INVENTORY,
            &format!("{shop_id}|"),
            None,
            500,
            |_, v| {
                if written == MAX_EXPORT {
                    return Ok::<_, ServiceError>(false);
                }
                let i: InventoryItem = codec::decode(INVENTORY_ROW_VERSION, &v)?;
                w.write_record([
                    i.product_id.to_string(),
                    crate::service::commerce::shop_reports::text_cell(&i.name),
                    crate::service::commerce::shop_reports::text_cell(&i.category),
                    i.levels.on_hand.to_string(),
                    i.levels.reserved.to_string(),
                    i.levels.available.to_string(),
                    i.low_stock_threshold
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    i.low.to_string(),
                    i.active.to_string(),
                ])
                .expect("writing to memory");
                written += 1;
                Ok(true)
            },
        )
        .await?;
        Ok(InventoryExport {
            csv: w.into_inner().expect("writing to memory"),
            truncated,
        })
    }

    /// Tells merchants of the low-stock crossings waiting in
    /// `stock_alerts` (this node's products, in cluster mode): an in-app
    /// notification (live on `user:{id}`, mailed per their preferences),
    /// then the row goes. The notification's id is the crossing's, so a
    /// crash between the two tells it once.
    pub async fn tell_alerts(&self) -> Result<usize, ServiceError> {
        let rows = crate::store::scan_picking(
            self.store.as_ref(),
            STOCK_ALERTS,
            ALERT_ROUND,
            4,
            |key, value| {
                let product = key.split_once('|').map_or("", |(p, _)| p);
                if self
                    .duty
                    .mine(&crate::actors::entity::stream_id::<ProductEntity>(product))
                {
                    crate::store::Pick::Take((key, value))
                } else {
                    crate::store::Pick::Skip
                }
            },
        )
        .await?;
        let told = rows.len();
        let mut done = Vec::with_capacity(told);
        for (key, value) in rows {
            match codec::decode::<StockAlert>(INVENTORY_ROW_VERSION, &value) {
                Ok(a) => {
                    let n = Notification {
                        id: format!("low-stock:{}:{}", a.product_id, a.crossing),
                        kind: "low_stock".into(),
                        title: "Low stock".into(),
                        body: format!(
                            "{} is down to {} available (your alert is at {}).",
                            a.name, a.available, a.threshold
                        ),
                        order_id: None,
                        created_at: a.at,
                        read: false,
                    };
                    match self.users.notify(&a.merchant_id, n).await {
                        Ok(()) => {}
                        // The merchant is gone: nobody to tell.
                        Err(crate::actors::CallError::Rejected(DomainError::NotFound(_))) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => tracing::error!(%key, error = %e, "undecodable stock alert dropped"),
            }
            done.push(IndexOp::Delete {
                table: STOCK_ALERTS,
                key,
            });
        }
        if !done.is_empty() {
            self.store.write_rows(done).await?;
        }
        Ok(told)
    }

    /// The alert worker: a round every `every` (or when woken) until shutdown.
    pub async fn run_alerts(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while crate::worker::next_round(every, Some(&self.wake), &mut shutdown).await {
            match self.tell_alerts().await {
                Ok(ALERT_ROUND..) => self.wake.notify_one(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "stock alerts: round failed"),
            }
        }
    }
}

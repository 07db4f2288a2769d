//! Order reads and steps: one order, a customer's or a shop's list, a
//! shop's revenue, and the lifecycle steps people take.

use super::catalog::Catalog;
use super::found;
use super::fulfilment::Fulfilment;
use crate::actors::Registry;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::catalog::Page;
use super::ServiceError;
use crate::actors::order::{OrderEntity, ORDERS_BY_CUSTOMER, ORDERS_BY_SHOP};
use crate::actors::Entity;
use crate::domain::order::{next_action, Order, PaymentStatus, Step};
use crate::domain::Caller;
use crate::store::codec;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevenueDay {
    /// `YYYY-MM-DD` (UTC), by order creation.
    pub day: String,
    pub orders: u64,
    /// Sum of totals of paid (or cash-collected) orders not refunded.
    pub revenue: u64,
}

/// Reading orders (the customer's, a shop's, one by id) and moving them
/// along their lifecycle.
#[derive(Clone)]
pub struct Orders {
    pub(super) orders: Registry<OrderEntity>,
    pub(super) store: Arc<dyn Store>,
    pub(super) catalog: Catalog,
    pub(super) fulfilment: Arc<Fulfilment>,
}

impl Orders {
    pub(crate) async fn order_exists(&self, id: &str) -> Result<(), ServiceError> {
        found(&self.orders, id, "order").await
    }

    pub async fn get_order(&self, caller: &Caller, id: &str) -> Result<Order, ServiceError> {
        self.order_exists(id).await?;
        Ok(self.orders.get_for(id, caller).await?)
    }

    /// A person's lifecycle step; follow-up work (stock, refunds) starts at once.
    pub async fn order_step(
        &self,
        caller: &Caller,
        id: &str,
        step: Step,
        reason: Option<String>,
    ) -> Result<Order, ServiceError> {
        self.order_exists(id).await?;
        let order = self.orders.act(id, caller, step, reason).await?;
        if let Some((due, _)) = next_action(&order) {
            if due <= Utc::now() {
                if let Err(e) = self.fulfilment.advance_order(id).await {
                    tracing::warn!(order = %id, error = %e, "follow-up deferred to the scheduler");
                }
                return Ok(self.orders.get(id).await?);
            }
        }
        Ok(order)
    }

    pub(super) async fn list_orders_in(
        &self,
        table: &str,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        super::catalog::scan_page(
            self.store.as_ref(),
            table,
            &format!("{owner}|"),
            OrderEntity::VERSION,
            cursor,
            limit,
        )
        .await
    }

    /// The caller's orders, newest first.
    pub async fn my_orders(
        &self,
        user_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        self.list_orders_in(ORDERS_BY_CUSTOMER, user_id, cursor, limit)
            .await
    }

    /// A shop's orders, newest first (its owner or an admin).
    pub async fn shop_orders(
        &self,
        caller: &Caller,
        shop_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        let shop = self.catalog.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        self.list_orders_in(ORDERS_BY_SHOP, shop_id, cursor, limit)
            .await
    }

    /// Revenue and order count by day (at most the newest 10,000 orders).
    pub async fn shop_revenue(
        &self,
        caller: &Caller,
        shop_id: &str,
    ) -> Result<Vec<RevenueDay>, ServiceError> {
        let shop = self.catalog.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        let rows = self
            .store
            .scan(ORDERS_BY_SHOP, &format!("{shop_id}|"), None, 10_000)
            .await?;
        let mut days: BTreeMap<String, RevenueDay> = BTreeMap::new();
        for (_, v) in rows {
            let o: Order = codec::decode(OrderEntity::VERSION, &v)?;
            let day = o.created_at.format("%Y-%m-%d").to_string();
            let entry = days.entry(day.clone()).or_insert(RevenueDay {
                day,
                orders: 0,
                revenue: 0,
            });
            entry.orders += 1;
            if matches!(
                o.payment.status,
                PaymentStatus::Paid | PaymentStatus::Collected
            ) {
                entry.revenue = entry.revenue.saturating_add(o.totals.total);
            }
        }
        Ok(days.into_values().collect())
    }
}

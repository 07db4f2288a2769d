//! Order reads and steps: one order, a customer's or a shop's list (by
//! status too), and the lifecycle steps people take (one by one, or a
//! merchant's bulk confirmation).

use crate::actors::Registry;
use crate::service::commerce::fulfilment::Fulfilment;
use crate::service::found;
use crate::service::products::catalog::Catalog;
use crate::store::Store;
use std::sync::Arc;

use chrono::Utc;

use crate::actors::order::{
    OrderEntity, ORDERS_BY_CUSTOMER, ORDERS_BY_SHOP, ORDERS_BY_SHOP_STATUS,
};
use crate::actors::Entity;
use crate::domain::order::{next_action, Order, OrderStatus, Step};
use crate::domain::{Caller, DomainError};
use crate::service::products::catalog::Page;
use crate::service::ServiceError;
use futures_util::StreamExt;

/// Orders a page of a filtered history reads at most.
pub const FILTER_SCAN: usize = 500;

/// What `GET /orders` narrows the caller's history to.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub from: Option<chrono::DateTime<Utc>>,
    pub to: Option<chrono::DateTime<Utc>>,
}

/// Orders one bulk request may name.
pub const MAX_BULK: usize = 100;
/// Orders of one bulk request worked on at once.
const BULK_CONCURRENCY: usize = 8;

/// Reading orders (the customer's, a shop's, one by id) and moving them
/// along their lifecycle.
#[derive(Clone)]
pub struct Orders {
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) fulfilment: Arc<Fulfilment>,
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
        self.follow_up(id, order).await
    }

    /// The customer asks to return lines of a delivered order (see
    /// `domain::order::returns`).
    pub async fn request_return(
        &self,
        caller: &Caller,
        id: &str,
        input: crate::domain::order::returns::ReturnInput,
    ) -> Result<Order, ServiceError> {
        self.order_exists(id).await?;
        let order = self.orders.request_return(id, caller, input).await?;
        self.follow_up(id, order).await
    }

    /// Carries out what `order` owes at once (a refund, a release), the
    /// scheduler retrying what fails; answers the order after it.
    async fn follow_up(&self, id: &str, order: Order) -> Result<Order, ServiceError> {
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

    pub(in crate::service) async fn list_orders_in(
        &self,
        table: &str,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        crate::service::products::catalog::scan_page(
            self.store.as_ref(),
            table,
            &format!("{owner}|"),
            OrderEntity::VERSION,
            cursor,
            limit,
        )
        .await
    }

    /// The caller's orders, newest first: with `filter.status` only those
    /// in it now, with `from`/`to` only those created in `[from, to)`. A
    /// page reads at most `FILTER_SCAN` orders, so one narrowed by status
    /// may hold fewer than `limit`: `next_cursor` goes on until null.
    pub async fn my_orders(
        &self,
        user_id: &str,
        filter: OrderFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        crate::domain::window::check_period(filter.from, filter.to)?;
        let after = match cursor {
            Some(c) => Some(crate::service::products::catalog::decode_cursor(c)?),
            None => filter
                .to
                .map(|t| crate::actors::order::listing_key_before(user_id, t)),
        };
        let (mut items, mut last, mut scanned, mut more) = (Vec::new(), None, 0, false);
        crate::store::walk_rows(
            self.store.as_ref(),
            ORDERS_BY_CUSTOMER,
            &format!("{user_id}|"),
            after,
            limit,
            |key, value| {
                let o: Order = crate::store::codec::decode(OrderEntity::VERSION, &value)?;
                if filter.from.is_some_and(|f| o.created_at < f) {
                    return Ok::<_, ServiceError>(false);
                }
                if items.len() == limit || scanned == FILTER_SCAN {
                    more = true;
                    return Ok(false);
                }
                scanned += 1;
                last = Some(key);
                if filter.status.is_none_or(|s| s == o.status) {
                    items.push(o);
                }
                Ok(true)
            },
        )
        .await?;
        let next_cursor = last
            .filter(|_| more)
            .map(|k| crate::service::products::catalog::encode_cursor(&k));
        Ok(Page { items, next_cursor })
    }

    /// A shop's orders, newest first (its owner or an admin); with
    /// `status`, only those in it now (`paid`: the queue waiting for the
    /// merchant's confirmation).
    pub async fn shop_orders(
        &self,
        caller: &Caller,
        shop_id: &str,
        status: Option<OrderStatus>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Order>, ServiceError> {
        self.own_shop(caller, shop_id).await?;
        match status {
            None => {
                self.list_orders_in(ORDERS_BY_SHOP, shop_id, cursor, limit)
                    .await
            }
            Some(status) => {
                let owner = format!("{shop_id}|{}", status.as_str());
                self.list_orders_in(ORDERS_BY_SHOP_STATUS, &owner, cursor, limit)
                    .await
            }
        }
    }

    async fn own_shop(&self, caller: &Caller, shop_id: &str) -> Result<(), ServiceError> {
        let shop = self.catalog.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        Ok(())
    }

    /// Confirms several of a shop's orders (its owner or an admin), each on
    /// its own: the answer says, in the order asked, which were confirmed
    /// and why each other one was not (nothing happens to those).
    pub async fn confirm_many(
        &self,
        caller: &Caller,
        shop_id: &str,
        order_ids: Vec<String>,
    ) -> Result<Vec<(String, Result<Order, ServiceError>)>, ServiceError> {
        if order_ids.is_empty() || order_ids.len() > MAX_BULK {
            return Err(DomainError::invalid(
                "order_ids",
                format!("order_ids must hold 1 to {MAX_BULK} ids"),
            )
            .into());
        }
        // An id is 1 to 100 visible characters: anything else names no
        // order and is a mistake in the request, not an outcome.
        if let Some(bad) = order_ids
            .iter()
            .find(|id| id.is_empty() || id.len() > 100 || !id.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(DomainError::invalid(
                "order_ids",
                format!("{bad:?} is not an order id (1 to 100 visible characters)"),
            )
            .into());
        }
        self.own_shop(caller, shop_id).await?;
        let mut seen = std::collections::HashSet::new();
        let asked: Vec<_> = order_ids
            .into_iter()
            .map(|id| {
                let first = seen.insert(id.clone());
                async move {
                    let result = if first {
                        self.confirm_in_shop(caller, shop_id, &id).await
                    } else {
                        Err(DomainError::invalid("order_ids", "this id was already given").into())
                    };
                    (id, result)
                }
            })
            .collect();
        Ok(futures_util::stream::iter(asked)
            .buffered(BULK_CONCURRENCY)
            .collect()
            .await)
    }

    async fn confirm_in_shop(
        &self,
        caller: &Caller,
        shop_id: &str,
        id: &str,
    ) -> Result<Order, ServiceError> {
        let order = self.get_order(caller, id).await?;
        if order.shop_id != shop_id {
            return Err(DomainError::NotFound("order").into());
        }
        self.order_step(caller, id, Step::Confirm, None).await
    }

    /// The customer erased their account: the order forgets their address.
    pub(crate) async fn erase_customer(&self, id: &str) -> Result<(), ServiceError> {
        self.orders
            .call(id, crate::actors::order::OrderCommand::EraseCustomer)
            .await?;
        Ok(())
    }
}

//! A merchant's figures about one shop: revenue by day, sales by product
//! (top products), and the orders as CSV. Read from the shop's order
//! listing (`orders_by_shop`), newest first and bounded per request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::order::{OrderEntity, ORDERS_BY_SHOP};
use crate::actors::Entity;
use crate::domain::order::{Order, PaymentStatus};
use crate::domain::Caller;
use crate::service::products::catalog::Catalog;
use crate::service::ServiceError;
use crate::store::{codec, walk_rows, Store};

/// Orders a report reads at most (the newest).
pub const MAX_REPORT_ORDERS: usize = 10_000;
/// Rows read from the store at a time.
const PAGE: usize = 500;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevenueDay {
    /// `YYYY-MM-DD` (UTC), by order creation.
    pub day: String,
    pub orders: u64,
    /// Sum of totals of paid (or cash-collected) orders not refunded.
    pub revenue: u64,
}

/// What one product sold.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProductSales {
    pub product_id: String,
    /// Its name on the newest order holding it.
    pub name: String,
    /// Orders holding it (any status but cancelled).
    pub orders: u64,
    /// Units in those orders.
    pub units: u64,
    /// Units of paid (or cash-collected) orders not refunded …
    pub units_paid: u64,
    /// … and what they brought, before discounts, tax and shipping.
    pub revenue: u64,
}

/// A CSV export and whether it stopped at the bound.
pub struct Export {
    pub csv: Vec<u8>,
    /// More orders of the range exist than one export holds
    /// (`MAX_REPORT_ORDERS`): narrow the range.
    pub truncated: bool,
}

/// A shop's reports, for its owner (and admins).
pub struct ShopReports {
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) zone: crate::domain::zone::ReportZone,
}

fn paid(o: &Order) -> bool {
    matches!(
        o.payment.status,
        PaymentStatus::Paid | PaymentStatus::Collected
    )
}

impl ShopReports {
    /// The shop's orders created in `[from, to)`, newest first: at most
    /// `max`, and whether more were left.
    async fn orders(
        &self,
        caller: &Caller,
        shop_id: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        max: usize,
    ) -> Result<(Vec<Order>, bool), ServiceError> {
        let shop = self.catalog.get_shop(shop_id).await?;
        caller.ensure_owner(&shop.owner_id, "shop")?;
        crate::domain::window::check_period(from, to)?;
        let (mut out, mut more) = (Vec::new(), false);
        let after = to.map(|t| crate::actors::order::listing_key_before(shop_id, t));
        walk_rows(
            self.store.as_ref(),
            ORDERS_BY_SHOP,
            &format!("{shop_id}|"),
            after,
            PAGE,
            |_, v| {
                let o: Order = codec::decode(OrderEntity::VERSION, &v)?;
                if from.is_some_and(|f| o.created_at < f) {
                    return Ok::<_, ServiceError>(false);
                }
                if out.len() == max {
                    more = true;
                    return Ok(false);
                }
                out.push(o);
                Ok(true)
            },
        )
        .await?;
        Ok((out, more))
    }

    /// Revenue and order count by day in `report_time_zone` (the newest
    /// `MAX_REPORT_ORDERS` orders).
    pub async fn revenue(
        &self,
        caller: &Caller,
        shop_id: &str,
    ) -> Result<Vec<RevenueDay>, ServiceError> {
        let (orders, _) = self
            .orders(caller, shop_id, None, None, MAX_REPORT_ORDERS)
            .await?;
        let mut days: BTreeMap<String, RevenueDay> = BTreeMap::new();
        for o in orders {
            let day = self.zone.day_of(o.created_at).to_string();
            let entry = days.entry(day.clone()).or_insert(RevenueDay {
                day,
                orders: 0,
                revenue: 0,
            });
            entry.orders += 1;
            if paid(&o) {
                entry.revenue = entry.revenue.saturating_add(o.totals.total);
            }
        }
        Ok(days.into_values().collect())
    }

    /// Sales by product over the orders created in `[from, to)` (at most
    /// the newest `MAX_REPORT_ORDERS`), best revenue first (then units):
    /// the top `limit`.
    pub async fn product_sales(
        &self,
        caller: &Caller,
        shop_id: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<ProductSales>, ServiceError> {
        let (orders, _) = self
            .orders(caller, shop_id, from, to, MAX_REPORT_ORDERS)
            .await?;
        Ok(product_sales(&orders, limit))
    }

    /// The orders created in `[from, to)` as CSV, newest first, one row
    /// per order (at most `MAX_REPORT_ORDERS`).
    pub async fn export_csv(
        &self,
        caller: &Caller,
        shop_id: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Export, ServiceError> {
        let (orders, truncated) = self
            .orders(caller, shop_id, from, to, MAX_REPORT_ORDERS)
            .await?;
        Ok(Export {
            csv: orders_csv(&orders),
            truncated,
        })
    }
}

/// Sales by product of `orders`, best revenue first (then units, then id).
pub fn product_sales(orders: &[Order], limit: usize) -> Vec<ProductSales> {
    let mut by_product: HashMap<&str, ProductSales> = HashMap::new();
    // Newest first: the first name seen is the newest.
    for o in orders {
        if o.status == crate::domain::order::OrderStatus::Cancelled {
            continue;
        }
        let paid = paid(o);
        let mut counted = std::collections::HashSet::new();
        for line in &o.lines {
            let p = by_product
                .entry(line.product_id.as_str())
                .or_insert_with(|| ProductSales {
                    product_id: line.product_id.to_string(),
                    name: line.name.clone(),
                    orders: 0,
                    units: 0,
                    units_paid: 0,
                    revenue: 0,
                });
            if counted.insert(line.product_id.as_str()) {
                p.orders += 1;
            }
            p.units += u64::from(line.quantity);
            if paid {
                p.units_paid += u64::from(line.quantity);
                p.revenue = p
                    .revenue
                    .saturating_add(line.unit_price.saturating_mul(u64::from(line.quantity)));
            }
        }
    }
    let mut out: Vec<ProductSales> = by_product.into_values().collect();
    out.sort_by(|a, b| {
        b.revenue
            .cmp(&a.revenue)
            .then(b.units.cmp(&a.units))
            .then(a.product_id.cmp(&b.product_id))
    });
    out.truncate(limit);
    out
}

/// Free text as a CSV cell a spreadsheet shows as text: one starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return (a formula to Excel and
/// LibreOffice) gets a leading `'`, as OWASP advises against CSV injection.
pub(crate) fn text_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// One row per order: what accounting and a fulfilment sheet need.
/// Money in minor units; free text (coupon, city) kept as text.
pub fn orders_csv(orders: &[Order]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "order_id",
        "created_at",
        "status",
        "customer_id",
        "lines",
        "units",
        "subtotal",
        "discount",
        "shipping_fee",
        "tax",
        "total",
        "currency",
        "payment_method",
        "payment_status",
        "coupon",
        "city",
    ])
    .expect("writing to memory");
    for o in orders {
        let units: u64 = o.lines.iter().map(|l| u64::from(l.quantity)).sum();
        let status = serde_json::to_value(o.payment.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        w.write_record([
            o.id.to_string(),
            o.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            o.status.as_str().to_owned(),
            o.customer_id.to_string(),
            o.lines.len().to_string(),
            units.to_string(),
            o.totals.subtotal.to_string(),
            o.totals.discount.to_string(),
            o.totals.shipping_fee.to_string(),
            o.totals.tax.to_string(),
            o.totals.total.to_string(),
            o.currency.clone(),
            o.payment.provider.as_str().to_owned(),
            status,
            text_cell(o.coupon.as_deref().unwrap_or_default()),
            text_cell(&o.address.city),
        ])
        .expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_never_becomes_a_formula() {
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("-1+2"), "'-1+2");
        assert_eq!(text_cell("Hà Nội"), "Hà Nội");
        assert_eq!(text_cell(""), "");
    }
}

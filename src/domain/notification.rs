//! In-app notifications and the text people read in them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::ids::UserId;
use crate::domain::order::{Order, TimelineEvent as E};

/// An in-app notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Stable per cause (e.g. `{order}:{n}`), so producing it twice keeps one.
    pub id: String,
    /// `order_placed`, `order_confirmed`, `new_order`, …
    pub kind: String,
    pub title: String,
    pub body: String,
    pub order_id: Option<crate::domain::ids::OrderId>,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

/// What kinds of notification a user may get by mail as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailPrefs {
    /// Order placed, paid, confirmed, shipped, delivered, cancelled, refunded.
    pub orders: bool,
    /// Shipper assigned or arriving; delivery offers (shippers).
    pub delivery: bool,
    /// Enrollment and flash-sale results, new course sessions.
    pub enrollment: bool,
    /// Messages from the platform's admins.
    pub announcements: bool,
    /// Low-stock alerts (merchants).
    #[serde(default = "yes")]
    pub inventory: bool,
}

fn yes() -> bool {
    true
}

impl Default for MailPrefs {
    fn default() -> Self {
        MailPrefs {
            orders: true,
            delivery: false,
            enrollment: true,
            announcements: true,
            inventory: true,
        }
    }
}

impl MailPrefs {
    /// Whether a notification of `kind` is also mailed.
    pub fn wants(&self, kind: &str) -> bool {
        if kind == "announcement" {
            self.announcements
        } else if kind == "low_stock" {
            self.inventory
        } else if kind.starts_with("enrollment")
            || kind.starts_with("claim")
            || kind == "new_session"
        {
            self.enrollment
        } else if kind.starts_with("shipper") || kind == "delivery_offer" {
            self.delivery
        } else {
            self.orders
        }
    }
}

/// The notifications timeline entry `index` of `o` produces:
/// `(recipient user id, notification)`.
pub fn notifications_for(o: &Order, index: usize) -> Vec<(UserId, Notification)> {
    let Some(entry) = o.timeline.get(index) else {
        return vec![];
    };
    let short = &o.id[o.id.len().saturating_sub(8)..];
    let total = format!("{} {}", o.totals.total, o.currency);
    let to_customer = |kind: &str, title: &str, body: String| {
        (
            o.customer_id.clone(),
            kind.to_owned(),
            title.to_owned(),
            body,
        )
    };
    let to_merchant = |kind: &str, title: &str, body: String| {
        (
            o.merchant_id.clone(),
            kind.to_owned(),
            title.to_owned(),
            body,
        )
    };
    let mut out = Vec::new();
    match entry.event {
        E::Placed => {
            out.push(to_customer(
                "order_placed",
                "Order placed",
                format!("Order …{short} ({total}) is placed."),
            ));
            out.push(to_merchant(
                "new_order",
                "New order",
                format!("Order …{short} ({total}) was placed at your shop."),
            ));
        }
        E::PaymentReceived => {
            out.push(to_customer(
                "payment_received",
                "Payment received",
                format!("We received {total} for order …{short}."),
            ));
            out.push(to_merchant(
                "order_paid",
                "Order paid",
                format!("Order …{short} is paid; please confirm it."),
            ));
        }
        E::Cancelled => {
            let why = entry
                .reason
                .clone()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push(to_customer(
                "order_cancelled",
                "Order cancelled",
                format!("Order …{short} was cancelled{why}."),
            ));
            out.push(to_merchant(
                "order_cancelled",
                "Order cancelled",
                format!("Order …{short} was cancelled{why}."),
            ));
        }
        E::ReturnRequested => {
            out.push(to_merchant(
                "return_requested",
                "Return requested",
                format!("The customer asked to return order …{short}."),
            ));
        }
        E::EscrowReleased => {
            out.push(to_merchant(
                "payout_released",
                "Payout released",
                format!("{total} for order …{short} was released to your shop."),
            ));
        }
        E::RefundDue => {
            out.push(to_merchant(
                "refund_due",
                "Refund due",
                format!("Order …{short} must be refunded by hand ({total})."),
            ));
        }
        E::PaymentRefunded => {
            let refunded = match o.refunded {
                0 => total.clone(),
                n => format!("{n} {}", o.currency),
            };
            out.push(to_customer(
                "order_refunded",
                "Refunded",
                format!("{refunded} for order …{short} was refunded."),
            ));
        }
        E::ReturnRefused => {
            let why = entry.reason.clone().unwrap_or_default();
            out.push(to_customer(
                "return_refused",
                "Return refused",
                format!("The shop refused the return of order …{short}: {why}"),
            ));
        }
        E::ShipperOffered => {
            if let (Some(shipper), Some(offer)) = (&entry.actor_id, &o.delivery.offer) {
                out.push((
                    shipper.clone().into(),
                    "delivery_offer".to_owned(),
                    "New delivery offer".to_owned(),
                    format!(
                        "Order …{short}: the shop is {:.1} km away. Accept before {}.",
                        offer.distance_m / 1000.0,
                        offer.expires_at.format("%H:%M:%S UTC")
                    ),
                ));
            }
        }
        E::ShipperAssigned => out.push(to_customer(
            "shipper_assigned",
            "Shipper on the way",
            format!("A shipper accepted order …{short}; follow them live on the order page."),
        )),
        E::Arriving => out.push(to_customer(
            "shipper_arriving",
            "Your shipper is arriving",
            format!("The shipper with order …{short} is at your address."),
        )),
        E::Confirmed
        | E::ReadyForPickup
        | E::PickedUp
        | E::Delivering
        | E::Delivered
        | E::Returned
        | E::Refunded => {
            let status = entry.event.status().map_or("", |s| s.as_str());
            let human = status.replace('_', " ");
            out.push(to_customer(
                &format!("order_{status}"),
                &format!("Order {human}"),
                format!("Order …{short} is {human}."),
            ));
        }
        E::PendingPayment | E::Paid | E::CashCollected | E::StockReleased => {}
    }
    out.into_iter()
        .map(|(to, kind, title, body)| {
            let n = Notification {
                id: format!("{}:{index}:{kind}", o.id),
                kind,
                title,
                body,
                order_id: Some(o.id.clone()),
                created_at: entry.at,
                read: false,
            };
            (to, n)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::order::{
        EscrowStatus, OrderStatus, Party, Payment, PaymentStatus, Placement, TimelineEntry,
        TimelineEvent,
    };
    use crate::domain::pricing::Totals;
    use crate::domain::user::Address;

    /// A paid order whose timeline holds `events`.
    pub(crate) fn order_with(events: &[TimelineEvent]) -> Order {
        let now = Utc::now();
        let mut o = Order::placed(
            Placement {
                id: "0192a2b3-0000-7000-8000-00000000abcd".into(),
                customer_id: "cust".into(),
                shop_id: "shop".into(),
                merchant_id: "merch".into(),
                lines: vec![],
                coupon: None,
                platform_voucher: None,
                priced: crate::domain::pricing::Priced {
                    totals: Totals {
                        total: 1000,
                        ..Totals::default()
                    },
                    lines: vec![],
                },
                address: Address {
                    id: "a".into(),
                    label: "l".into(),
                    line1: "1".into(),
                    city: "c".into(),
                    lat: 0.0,
                    lng: 0.0,
                    is_default: true,
                },
                distance_km: 1.0,
                payment: Payment {
                    id: "p".into(),
                    provider: crate::domain::payment::PaymentMethod::Sandbox,
                    status: PaymentStatus::Paid,
                    amount: 1000,
                    currency: "VND".into(),
                    checkout_url: None,
                    reference: "p".into(),
                    paid_at: None,
                    refund_reference: None,
                    session: None,
                },
                payment_deadline: None,
                return_window_secs: 0,
                by: Party::System,
                reason: None,
            },
            now,
        );
        o.status = OrderStatus::Paid;
        o.escrow = EscrowStatus::Held;
        o.timeline = events
            .iter()
            .map(|&event| TimelineEntry {
                at: now,
                event,
                status: OrderStatus::Paid,
                by: Party::System,
                actor_id: None,
                reason: None,
            })
            .collect();
        o
    }

    #[test]
    fn who_is_told_what() {
        let o = order_with(&[
            E::Placed,
            E::PaymentReceived,
            E::Confirmed,
            E::ReturnRequested,
            E::EscrowReleased,
            E::StockReleased,
        ]);
        let told = |i: usize| -> Vec<(String, String)> {
            notifications_for(&o, i)
                .into_iter()
                .map(|(to, n)| (to.into_string(), n.kind))
                .collect()
        };
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            told(0),
            vec![pair("cust", "order_placed"), pair("merch", "new_order")]
        );
        assert_eq!(
            told(1),
            vec![
                pair("cust", "payment_received"),
                pair("merch", "order_paid")
            ]
        );
        assert_eq!(told(2), vec![pair("cust", "order_confirmed")]);
        assert_eq!(told(3), vec![pair("merch", "return_requested")]);
        assert_eq!(told(4), vec![pair("merch", "payout_released")]);
        assert!(told(5).is_empty(), "internal bookkeeping tells nobody");
        assert!(told(99).is_empty());
        let ids: Vec<String> = (0..6)
            .flat_map(|i| notifications_for(&o, i))
            .map(|(_, n)| n.id)
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            ids.len(),
            unique.len(),
            "ids are unique, so redelivery keeps one"
        );
    }

    #[test]
    fn preferences_pick_by_kind() {
        let p = MailPrefs::default();
        assert!(p.wants("order_confirmed"));
        assert!(p.wants("payment_received"));
        assert!(!p.wants("shipper_arriving"));
        assert!(p.wants("enrollment_confirmed"));
        assert!(p.wants("announcement"));
        assert!(p.wants("low_stock"));
        let none = MailPrefs {
            orders: false,
            delivery: false,
            enrollment: false,
            announcements: false,
            inventory: false,
        };
        assert!(!none.wants("order_confirmed"));
        assert!(!none.wants("low_stock"));
    }
}

//! An order as it is kept and shown: lines, totals, payment, escrow, stock,
//! delivery and its timeline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{OrderStatus, Party, TimelineEvent};
use crate::domain::ids::{OrderId, QueueId, ShopId, UserId};
use crate::domain::pricing::{Line, LinePrice, Priced, Totals};
use crate::domain::user::Address;
use crate::domain::{Caller, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the gateway.
    Pending,
    Paid,
    Refunded,
    /// Cash on delivery, not yet collected.
    DueOnDelivery,
    /// Cash on delivery, collected.
    Collected,
    /// Never paid; the order was cancelled.
    Voided,
    /// Must be refunded by hand: the provider has no refund API.
    RefundDue,
    /// The gateway declined the last attempt: the checkout can be paid
    /// again (`POST /checkouts/{id}/pay`) until its deadline.
    Declined,
}

/// The one online payment of a checkout, which each of its orders names:
/// paid once for `total`, each order's share is its own total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSession {
    /// The checkout's payment id (`POST /checkouts/{id}/pay`).
    pub id: String,
    /// What the customer pays for the whole checkout, in minor units.
    pub total: u64,
    /// The checkout's orders, one per shop (this one among them).
    pub orders: Vec<OrderId>,
    /// 0 for the first attempt, one more for each payment link asked again.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    pub id: String,
    pub provider: crate::domain::payment::PaymentMethod,
    pub status: PaymentStatus,
    pub amount: u64,
    pub currency: String,
    /// Where the customer pays (hosted payment page), for online providers.
    pub checkout_url: Option<String>,
    /// The provider's reference for this payment.
    pub reference: String,
    pub paid_at: Option<DateTime<Utc>>,
    pub refund_reference: Option<String>,
    /// The checkout's one payment this order's share belongs to; `None`
    /// for cash on delivery (paid per order) and orders placed before
    /// checkouts paid once.
    #[serde(default)]
    pub session: Option<PaymentSession>,
}

/// The reason Surge records when it cancels an order unpaid at its deadline.
pub const PAYMENT_TIMEOUT: &str = "payment timeout";

impl Payment {
    /// This order's part of `paid`, an amount the provider reports for the
    /// payment: its share when the checkout's whole total was paid (`None`
    /// when any other amount was), all of it for an order paid alone.
    pub fn share_of(&self, paid: u64) -> Option<u64> {
        match &self.session {
            Some(s) => (paid == s.total).then_some(self.amount),
            None => Some(paid),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscrowStatus {
    /// Nothing held (cash on delivery, or not paid yet).
    None,
    /// Paid money held for the shop.
    Held,
    /// Paid out to the shop (delivered, return window over).
    Released,
    /// Given back to the customer.
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    Held,
    Released,
    Consumed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// What happened: a status reached, or `payment_received`, `escrow_released`…
    pub event: TimelineEvent,
    pub status: OrderStatus,
    pub by: Party,
    pub actor_id: Option<String>,
    pub reason: Option<String>,
}

/// The platform voucher a checkout used, as each of its orders records
/// it. Its use is counted once for the checkout (under its first order's
/// id, `redemption`) and given back only when every order of the checkout
/// (`orders`) is cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlatformVoucher {
    pub code: String,
    pub redemption: OrderId,
    pub orders: Vec<OrderId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: UserId,
    pub shop_id: ShopId,
    pub merchant_id: UserId,
    pub lines: Vec<Line>,
    /// The shop's coupon or voucher whose discount it has.
    pub coupon: Option<String>,
    /// The checkout's platform voucher, when its part is in this order's
    /// totals (`platform_discount`, `shipping_discount`).
    #[serde(default)]
    pub platform_voucher: Option<PlatformVoucher>,
    pub currency: String,
    pub totals: Totals,
    pub address: Address,
    pub distance_km: f64,
    pub status: OrderStatus,
    pub payment: Payment,
    pub escrow: EscrowStatus,
    pub stock: StockStatus,
    pub coupon_released: bool,
    pub payment_deadline: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub return_deadline: Option<DateTime<Utc>>,
    /// How long after delivery a return may be requested (seconds).
    pub return_window_secs: u64,
    /// The return asked (once per order): its lines, reason, photos and
    /// what accepting it refunds; `refused` once the merchant refused it.
    #[serde(default)]
    pub return_request: Option<super::returns::ReturnRequest>,
    /// Photos of the goods uploaded for the return to come (at most 6);
    /// the request carries them.
    #[serde(default)]
    pub return_photos: Vec<String>,
    /// What was refunded (minor units): the payment, or a partial
    /// return's amount.
    #[serde(default)]
    pub refunded: u64,
    pub timeline: Vec<TimelineEntry>,
    /// Timeline entries already turned into notifications.
    #[serde(default)]
    pub notified: u32,
    /// Who carries it, and the dispatch that finds them.
    #[serde(default)]
    pub delivery: Delivery,
    /// The flash-sale claim this order pays for: its stock comes from the
    /// sale's reserve and goes back there if the order is cancelled.
    #[serde(default)]
    pub claim: Option<ClaimRef>,
    /// Nothing to ship (a course place): fulfilled once paid.
    #[serde(default)]
    pub digital: bool,
    /// The claim behind it was told the order ended unpaid or cancelled.
    #[serde(default)]
    pub claim_released: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Each line's money as it was priced (`pricing::price`): its sale
    /// saving, its part of the discount and tax, its total. Empty for
    /// orders placed before lines were priced one by one.
    #[serde(default)]
    pub line_prices: Vec<LinePrice>,
}

/// The queue claim behind an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClaimRef {
    pub queue_id: QueueId,
    pub claim_id: String,
}

/// Shippers remembered as having declined (or let lapse) an order.
pub const MAX_DECLINED: usize = 32;

/// A delivery offer waiting for the shipper's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryOffer {
    pub shipper_id: crate::domain::ids::UserId,
    pub expires_at: DateTime<Utc>,
    /// From the shipper to the shop when offered.
    pub distance_m: f64,
}

/// The delivery side of an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// The shipper who accepted.
    pub shipper_id: Option<crate::domain::ids::UserId>,
    pub offer: Option<DeliveryOffer>,
    /// Shippers not to offer again (declined or let the offer lapse).
    pub declined: Vec<String>,
    /// No shipper was available: look again at this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// The shipper actor was told it carries this order.
    pub shipper_bound: bool,
    /// The shipper actor was told the delivery is over.
    pub shipper_released: bool,
    /// The shipper dwelt inside the delivery geofence.
    pub arriving_at: Option<DateTime<Utc>>,
}

impl Order {
    pub fn is_cod(&self) -> bool {
        self.payment.provider == crate::domain::payment::PaymentMethod::Cod
    }

    /// Waiting for a shipper: confirmed (or ready) and nobody accepted yet.
    pub fn awaits_shipper(&self) -> bool {
        !self.digital
            && matches!(
                self.status,
                OrderStatus::Confirmed | OrderStatus::ReadyForPickup
            )
            && self.delivery.shipper_id.is_none()
    }

    /// The parcel is (or is about to be) on its way with the shipper.
    pub fn in_delivery(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::Confirmed
                | OrderStatus::ReadyForPickup
                | OrderStatus::PickedUp
                | OrderStatus::Delivering
        )
    }

    /// `caller` holds a live offer for this order.
    pub fn offered_to(&self, caller: &Caller, now: DateTime<Utc>) -> bool {
        self.delivery
            .offer
            .as_ref()
            .is_some_and(|o| o.shipper_id == caller.user_id && o.expires_at > now)
    }

    /// Which party `caller` is to this order, if any.
    pub fn party_of(&self, caller: &Caller) -> Option<Party> {
        if caller.role == Role::Admin {
            Some(Party::Admin)
        } else if caller.user_id == self.merchant_id {
            Some(Party::Merchant)
        } else if caller.user_id == self.customer_id {
            Some(Party::Customer)
        } else if self.delivery.shipper_id.as_deref() == Some(caller.user_id.as_str()) {
            Some(Party::Shipper)
        } else {
            None
        }
    }
}

/// What placing an order takes; everything else starts at its initial
/// value (pending payment, stock held, escrow empty).
pub struct Placement {
    pub id: OrderId,
    pub customer_id: UserId,
    pub shop_id: ShopId,
    pub merchant_id: UserId,
    pub lines: Vec<Line>,
    pub coupon: Option<String>,
    pub platform_voucher: Option<PlatformVoucher>,
    /// `pricing::price`'s answer for the lines.
    pub priced: Priced,
    pub address: Address,
    pub distance_km: f64,
    /// The payment opened for it; its currency is the order's.
    pub payment: Payment,
    pub payment_deadline: Option<DateTime<Utc>>,
    pub return_window_secs: u64,
    /// Who placed it (the customer at checkout; Surge for a queue claim).
    pub by: Party,
    pub reason: Option<String>,
}

impl Order {
    /// Whether it used a coupon or voucher (the shop's or the platform's),
    /// whose use goes back when it is cancelled (`coupon_released`).
    pub fn holds_codes(&self) -> bool {
        self.coupon.is_some() || self.platform_voucher.is_some()
    }

    /// What a refund of it gives back now: an accepted partial return's
    /// amount, else the whole payment.
    pub fn refund_amount(&self) -> u64 {
        match &self.return_request {
            Some(r) if r.refused.is_none() && !r.whole => r.amount.min(self.payment.amount),
            _ => self.payment.amount,
        }
    }

    /// Cancelled by Surge because it was not paid by its deadline.
    pub fn expired_unpaid(&self) -> bool {
        self.status == OrderStatus::Cancelled
            && self
                .timeline
                .iter()
                .any(|t| t.by == Party::System && t.reason.as_deref() == Some(PAYMENT_TIMEOUT))
    }

    /// A new order, its timeline opened with `placed`.
    pub fn placed(p: Placement, now: DateTime<Utc>) -> Order {
        Order {
            timeline: vec![TimelineEntry {
                at: now,
                event: TimelineEvent::Placed,
                status: OrderStatus::PendingPayment,
                by: p.by,
                actor_id: Some(p.customer_id.clone().into()),
                reason: p.reason,
            }],
            id: p.id,
            customer_id: p.customer_id,
            shop_id: p.shop_id,
            merchant_id: p.merchant_id,
            lines: p.lines,
            coupon: p.coupon,
            platform_voucher: p.platform_voucher,
            currency: p.payment.currency.clone(),
            totals: p.priced.totals,
            line_prices: p.priced.lines,
            address: p.address,
            distance_km: p.distance_km,
            status: OrderStatus::PendingPayment,
            payment: p.payment,
            escrow: EscrowStatus::None,
            stock: StockStatus::Held,
            coupon_released: false,
            payment_deadline: p.payment_deadline,
            delivered_at: None,
            return_deadline: None,
            return_window_secs: p.return_window_secs,
            return_request: None,
            return_photos: Vec::new(),
            refunded: 0,
            notified: 0,
            delivery: Delivery::default(),
            claim: None,
            digital: false,
            claim_released: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// The order pays for queue claim `claim`: it has no coupon, and a
    /// `digital` one (a course place) holds no stock.
    pub fn for_claim(mut self, claim: ClaimRef, digital: bool) -> Order {
        self.claim = Some(claim);
        self.coupon = None;
        self.coupon_released = true;
        self.digital = digital;
        if digital {
            self.stock = StockStatus::Consumed;
        }
        self
    }
}

//! A return: which lines and how many of each, why, with photos; what it
//! refunds. The customer asks within the return window, once per order;
//! the merchant accepts (receives the goods: the amount is refunded) or
//! refuses with a reason (the order is delivered again and the shop is
//! paid at the window's end).
//!
//! What a return refunds: everything returned, the order's total (its
//! shipping too); part of it, each returned unit's share of its line's
//! total as the order was priced (`line_prices`: its price less its part
//! of the discounts, plus its part of the tax), rounded down; shipping
//! stays paid.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Order;
use crate::domain::ids::ProductId;
use crate::domain::DomainError;

/// A line returned: its product and how many units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    pub product_id: ProductId,
    /// At least 1, at most what was ordered.
    pub quantity: u32,
}

/// `POST /orders/{id}/return`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnInput {
    /// What is returned; absent: every line, every unit.
    pub lines: Option<Vec<ReturnLine>>,
    /// Why (1–500 characters).
    pub reason: Option<String>,
}

/// A return as the order records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReturnRequest {
    pub lines: Vec<ReturnLine>,
    pub reason: Option<String>,
    pub photos: Vec<String>,
    /// Every unit of every line.
    pub whole: bool,
    /// What accepting it refunds (minor units).
    pub amount: u64,
    pub requested_at: DateTime<Utc>,
    /// Refused by the merchant, with this reason.
    #[serde(default)]
    pub refused: Option<String>,
}

/// Photos a return may carry.
pub const MAX_RETURN_PHOTOS: usize = 6;

/// Whether `caller` may add a photo for a return of `o` now: its customer,
/// while it is delivered, within the return window and before a return
/// was asked, at most `MAX_RETURN_PHOTOS`.
pub fn may_add_photo(
    o: &Order,
    caller: &crate::domain::Caller,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    if o.customer_id != caller.user_id {
        return Err(DomainError::Forbidden(
            "only the order's customer returns it".into(),
        ));
    }
    let open = o.status == super::OrderStatus::Delivered
        && o.return_request.is_none()
        && o.return_deadline.is_some_and(|d| now <= d);
    if !open {
        return Err(DomainError::conflict(
            "return_closed",
            "photos are added to a delivered order within its return window, before the return is asked",
        ));
    }
    if o.return_photos.len() >= MAX_RETURN_PHOTOS {
        return Err(DomainError::conflict(
            "media_limit",
            format!("at most {MAX_RETURN_PHOTOS} photos"),
        ));
    }
    Ok(())
}

/// The return `input` asks of `o`, checked: known lines, each at most
/// once and at most as many units as ordered, a reason checked as every
/// text is; the photos uploaded for it (`return_photos`) go with it.
pub fn request(
    o: &Order,
    input: &ReturnInput,
    now: DateTime<Utc>,
) -> Result<ReturnRequest, DomainError> {
    let reason = input
        .reason
        .as_deref()
        .map(|r| crate::domain::check_text("reason", r, 500))
        .transpose()?;
    let photos = o.return_photos.clone();
    let lines = match &input.lines {
        None => o
            .lines
            .iter()
            .map(|l| ReturnLine {
                product_id: l.product_id.clone(),
                quantity: l.quantity,
            })
            .collect(),
        Some(lines) => lines.clone(),
    };
    if lines.is_empty() {
        return Err(DomainError::invalid("lines", "return at least one line"));
    }
    let mut units = 0u64;
    // Each returned line's place in the order.
    let mut places = Vec::with_capacity(lines.len());
    for (i, r) in lines.iter().enumerate() {
        if lines[..i].iter().any(|p| p.product_id == r.product_id) {
            return Err(DomainError::invalid(
                "lines",
                "name each product at most once",
            ));
        }
        let Some(at) = o.lines.iter().position(|l| l.product_id == r.product_id) else {
            return Err(DomainError::invalid(
                "lines",
                format!("{} is not in this order", r.product_id),
            ));
        };
        let ordered = o.lines[at].quantity;
        if r.quantity == 0 || r.quantity > ordered {
            return Err(DomainError::invalid(
                "lines",
                format!("return 1 to {ordered} of {}", r.product_id),
            ));
        }
        units += u64::from(r.quantity);
        places.push(at);
    }
    let ordered: u64 = o.lines.iter().map(|l| u64::from(l.quantity)).sum();
    let whole = units == ordered;
    let amount = if whole {
        o.totals.total
    } else {
        let mut sum = 0u64;
        for (r, &at) in lines.iter().zip(&places) {
            sum += share_of(o, at, r.quantity)?;
        }
        sum
    };
    Ok(ReturnRequest {
        lines,
        reason,
        photos,
        whole,
        amount,
        requested_at: now,
        refused: None,
    })
}

/// `quantity` units' share of line `at`'s total as it was priced, rounded
/// down. An order priced before lines kept their price is returned whole
/// only.
fn share_of(o: &Order, at: usize, quantity: u32) -> Result<u64, DomainError> {
    let Some(p) = o.line_prices.get(at).filter(|p| p.quantity > 0) else {
        return Err(DomainError::conflict(
            "partial_return_unavailable",
            "this order was placed before lines kept their price: return all of it",
        ));
    };
    Ok((u128::from(p.total) * u128::from(quantity) / u128::from(p.quantity)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::tests::order_with;
    use crate::domain::pricing::{price, Discounts, Line};

    /// A delivered order of 3 × 100,000 and 1 × 30,000 with 10,000 off and
    /// 10 % tax, 15,000 shipping.
    fn order() -> Order {
        let line = |id: &str, unit, quantity| Line {
            product_id: id.into(),
            shop_id: "shop".into(),
            name: id.into(),
            unit_price: unit,
            currency: "VND".into(),
            quantity,
            weight_grams: 1,
            list_price: None,
        };
        let lines = vec![line("mat", 100_000, 3), line("strap", 30_000, 1)];
        let d = Discounts {
            shop: 10_000,
            ..Discounts::default()
        };
        let priced = price(&lines, d, 15_000, 1_000).unwrap();
        let mut o = order_with(&[]);
        o.lines = lines;
        o.totals = priced.totals;
        o.line_prices = priced.lines;
        o.payment.amount = o.totals.total;
        o
    }

    fn lines(ls: &[(&str, u32)]) -> ReturnInput {
        ReturnInput {
            lines: Some(
                ls.iter()
                    .map(|(p, q)| ReturnLine {
                        product_id: (*p).into(),
                        quantity: *q,
                    })
                    .collect(),
            ),
            reason: None,
        }
    }

    #[test]
    fn a_part_refunds_its_units_share_of_the_line_and_the_whole_refunds_the_total() {
        let o = order();
        let now = Utc::now();
        let mat = o.line_prices[0].total;
        let one = request(&o, &lines(&[("mat", 1)]), now).unwrap();
        assert_eq!((one.amount, one.whole), (mat / 3, false));
        let two = request(&o, &lines(&[("mat", 2), ("strap", 1)]), now).unwrap();
        assert_eq!(two.amount, mat * 2 / 3 + o.line_prices[1].total);
        let all = request(&o, &lines(&[("mat", 3), ("strap", 1)]), now).unwrap();
        assert_eq!((all.amount, all.whole), (o.totals.total, true));
        let absent = request(&o, &ReturnInput::default(), now).unwrap();
        assert_eq!(absent, all, "no lines: every line, every unit");
        assert!(
            one.amount + mat * 2 / 3 <= mat,
            "parts never add up above the line"
        );
    }

    #[test]
    fn lines_unknown_repeated_or_beyond_the_quantity_are_refused() {
        let o = order();
        let now = Utc::now();
        for bad in [
            lines(&[("mat", 4)]),
            lines(&[("mat", 0)]),
            lines(&[("nope", 1)]),
            lines(&[("mat", 1), ("mat", 1)]),
            lines(&[]),
        ] {
            assert!(
                matches!(request(&o, &bad, now), Err(DomainError::Invalid { .. })),
                "{bad:?}"
            );
        }
        // Placed before lines kept their price: only the whole.
        let mut old = order();
        old.line_prices.clear();
        let e = request(&old, &lines(&[("mat", 1)]), now).unwrap_err();
        assert_eq!(e.code(), "partial_return_unavailable");
        assert!(request(&old, &ReturnInput::default(), now).is_ok());
    }
}

//! The demo's simulated people: An (orders whenever nothing is on its way,
//! reviews what was delivered), the merchants (confirm, hand over) and the
//! shippers (accept, drive along the streets, deliver).

use std::time::Duration;

use serde_json::{json, Value};

use super::seed::SAID;
use super::{Client, Login, METRES_PER_DEG, SHOP, SPEED_MPS, TICK};

/// An: whenever An has nothing on its way, orders something again (cash on
/// delivery), so whoever opens the demo finds a delivery to follow.
pub(super) async fn run_customer(c: &Client, who: &Login) -> anyhow::Result<()> {
    let (token, _) = c.account(who).await?;
    loop {
        let orders = c.get("/api/v1/orders?limit=20", &token).await?;
        let busy = orders["items"].as_array().into_iter().flatten().any(|o| {
            matches!(
                o["status"].as_str(),
                Some(
                    "pending_payment"
                        | "paid"
                        | "confirmed"
                        | "ready_for_pickup"
                        | "picked_up"
                        | "delivering"
                )
            )
        });
        review_delivered(c, &token, &orders).await?;
        if !busy {
            tokio::time::sleep(Duration::from_secs(15)).await;
            let products = c.get("/api/v1/products?limit=20", &token).await?;
            let address = c.get("/api/v1/users/addresses", &token).await?;
            if let (Some(p), Some(a)) = (
                products["items"]
                    .as_array()
                    .and_then(|i| i.iter().find(|p| p["stock"].as_u64() > Some(0))),
                address[0]["id"].as_str(),
            ) {
                c.post(
                    "/api/v1/cart/items",
                    Some(&token),
                    json!({"product_id": p["id"], "quantity": 1}),
                )
                .await?;
                c.post(
                    "/api/v1/orders",
                    Some(&token),
                    json!({"address_id": a, "payment_method": "cod"}),
                )
                .await?;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// An reviews each delivered order (its first product and the shop), so
/// ratings and reviews fill in as the demo runs.
async fn review_delivered(c: &Client, token: &str, orders: &Value) -> anyhow::Result<()> {
    let delivered = orders["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["status"] == "delivered");
    for (n, o) in delivered.enumerate() {
        let id = o["id"].as_str().unwrap_or_default();
        let written = c
            .get(&format!("/api/v1/orders/{id}/reviews"), token)
            .await?;
        if written.as_array().is_some_and(|w| !w.is_empty()) {
            continue;
        }
        let (stars, text) = SAID[n % SAID.len()];
        let body = json!({"order_id": id, "stars": stars, "text": text});
        if let Some(p) = o["lines"][0]["product_id"].as_str() {
            c.post(
                &format!("/api/v1/products/{p}/reviews"),
                Some(token),
                body.clone(),
            )
            .await?;
        }
        if let Some(shop) = o["shop_id"].as_str() {
            c.post(&format!("/api/v1/shops/{shop}/reviews"), Some(token), body)
                .await?;
        }
    }
    Ok(())
}

/// The merchant: confirms what is paid (or cash on delivery) and hands
/// orders with a shipper over for pickup.
pub(super) async fn run_merchant(c: &Client, who: &Login, shop: &str) -> anyhow::Result<()> {
    let (token, _) = c.account(who).await?;
    loop {
        let page = c
            .get(&format!("/api/v1/shops/{shop}/orders?limit=50"), &token)
            .await?;
        for o in page["items"].as_array().into_iter().flatten() {
            let id = o["id"].as_str().unwrap_or_default();
            let cod = o["payment"]["provider"] == "cod";
            match o["status"].as_str() {
                Some("paid") => {
                    c.put(&format!("/api/v1/orders/{id}/confirm"), &token, json!({}))
                        .await
                        .ok();
                }
                Some("pending_payment") if cod => {
                    c.put(&format!("/api/v1/orders/{id}/confirm"), &token, json!({}))
                        .await
                        .ok();
                }
                Some("confirmed") if !o["delivery"]["shipper_id"].is_null() => {
                    c.put(
                        &format!("/api/v1/shipping/{id}/status"),
                        &token,
                        json!({"status": "ready_for_pickup"}),
                    )
                    .await
                    .ok();
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One step of `speed × TICK` along the streets from `from` to `to`:
/// north–south first, then east–west. `None` once there.
pub fn step_towards(from: (f64, f64), to: (f64, f64), metres: f64) -> Option<(f64, f64)> {
    let step = metres / METRES_PER_DEG;
    let (dlat, dlng) = (to.0 - from.0, to.1 - from.1);
    if dlat.abs() > 1e-7 {
        Some((from.0 + dlat.signum() * dlat.abs().min(step), from.1))
    } else if dlng.abs() > 1e-7 {
        Some((from.0, from.1 + dlng.signum() * dlng.abs().min(step)))
    } else {
        None
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A shipper: online near the shop, accepts the offers it gets, picks up,
/// drives to the customer reporting its position every second, delivers,
/// drives back.
pub(super) async fn run_shipper(c: &Client, who: &Login) -> anyhow::Result<()> {
    let (token, _) = c.account(who).await?;
    // Spread around the shop so dispatch has a nearest one.
    let jitter = (who.email.len() as f64 % 5.0 - 2.0) * 0.0006;
    let mut pos = (SHOP.0 + jitter, SHOP.1 - jitter);
    let mut last_online = None::<std::time::Instant>;
    loop {
        // Stay online with a fresh position (dispatch wants one < 2 min old).
        if last_online.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            c.put("/api/v1/shipping/shippers/me/status", &token,
                json!({"status": "online", "location": {"lat": pos.0, "lng": pos.1, "ts": now_ms()}})).await?;
            last_online = Some(std::time::Instant::now());
        }
        let me = c.get("/api/v1/shipping/shippers/me", &token).await?;
        if let (Some(order), true) = (
            me["offer"]["order_id"].as_str(),
            me["active_order"].is_null(),
        ) {
            c.post(
                &format!("/api/v1/shipping/{order}/accept"),
                Some(&token),
                json!({}),
            )
            .await
            .ok();
        } else if let Some(order) = me["active_order"].as_str() {
            let o = c.get(&format!("/api/v1/orders/{order}"), &token).await?;
            let home = (
                o["address"]["lat"].as_f64().unwrap_or(SHOP.0),
                o["address"]["lng"].as_f64().unwrap_or(SHOP.1),
            );
            match o["status"].as_str() {
                Some("ready_for_pickup") => {
                    c.put(
                        &format!("/api/v1/shipping/{order}/status"),
                        &token,
                        json!({"status": "picked_up"}),
                    )
                    .await?;
                }
                Some("picked_up") => {
                    c.put(
                        &format!("/api/v1/shipping/{order}/status"),
                        &token,
                        json!({"status": "delivering"}),
                    )
                    .await?;
                }
                Some("delivering") => {
                    pos = drive(c, &token, order, pos, home).await?;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    c.put(
                        &format!("/api/v1/shipping/{order}/status"),
                        &token,
                        json!({"status": "delivered"}),
                    )
                    .await?;
                    // Back to the shop, off the clock.
                    while let Some(next) = step_towards(pos, SHOP, SPEED_MPS * 3.0) {
                        pos = next;
                    }
                    last_online = None;
                }
                _ => {}
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Drives from `from` to `to`, one position report per tick; where it ended.
async fn drive(
    c: &Client,
    token: &str,
    order: &str,
    from: (f64, f64),
    to: (f64, f64),
) -> anyhow::Result<(f64, f64)> {
    let mut pos = from;
    while let Some(next) = step_towards(pos, to, SPEED_MPS * TICK.as_secs_f64()) {
        pos = next;
        c.post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(token),
            json!({"lat": pos.0, "lng": pos.1, "speed": SPEED_MPS, "ts": now_ms()}),
        )
        .await?;
        tokio::time::sleep(TICK).await;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driving_goes_along_the_streets_and_arrives() {
        let (from, to) = ((21.0, 105.0), (21.001, 104.999));
        let mut pos = from;
        let mut steps = 0;
        while let Some(next) = step_towards(pos, to, 12.0) {
            // One axis at a time, never more than a step.
            assert!(next.0 == pos.0 || next.1 == pos.1);
            assert!(
                ((next.0 - pos.0).abs() + (next.1 - pos.1).abs()) * METRES_PER_DEG <= 12.0 + 1e-6
            );
            pos = next;
            steps += 1;
            assert!(steps < 100);
        }
        assert_eq!(pos, to);
        assert!(steps >= 18, "111 m + 111 m at 12 m a step: {steps}");
    }
}

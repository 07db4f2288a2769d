//! Inventory over real HTTP: every movement kind with the levels it left,
//! refusals that change nothing, low-stock alerts once per crossing (live
//! over a real WebSocket), a shop's inventory and its CSV.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::commerce::{add, checkout, customer, fast};
use crate::helpers::*;

async fn inventory(app: &TestApp, m: &Session, product: &str) -> Value {
    let (status, inv) = app
        .get(
            &format!("/api/v1/products/{product}/inventory?limit=100"),
            Some(&m.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    inv
}

async fn adjust(app: &TestApp, m: &Session, product: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/products/{product}/inventory/adjustments"),
        Some(&m.access),
        body,
    )
    .await
}

fn levels(v: &Value) -> (u64, u64, u64) {
    (
        v["on_hand"].as_u64().unwrap(),
        v["reserved"].as_u64().unwrap(),
        v["available"].as_u64().unwrap(),
    )
}

/// A cash order of `qty` of `product` by a new customer: (customer, order).
async fn order_of(app: &TestApp, product: &str, qty: u32) -> (Session, String) {
    let (c, address) = customer(app).await;
    add(app, &c, product, qty).await;
    let (status, placed) = checkout(app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    (c, placed["orders"][0]["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_movement_kind_is_recorded_with_the_levels_it_left() {
    let app = spawn_app_with(fast).await;
    let (m, _, product) = shop_with_product(&app, 10_000, 10).await;
    let p = product.as_str();
    let (status, after) = adjust(
        &app,
        &m,
        p,
        json!({"kind": "received", "quantity": 5, "reason": "PO-17"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{after}");
    assert_eq!(levels(&after), (15, 0, 15));
    let (_, after) = adjust(
        &app,
        &m,
        p,
        json!({"quantity": -2, "reason": "water damage"}),
    )
    .await;
    assert_eq!(levels(&after), (13, 0, 13));
    // Orders: one held then cancelled, one delivered, then returned.
    let (_, cancelled) = order_of(&app, p, 3).await;
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{cancelled}/cancel"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (c, sold) = order_of(&app, p, 2).await;
    crate::reviews::deliver(&app, &m, &sold).await;
    // Delivery consumes the hold once the order's follow-up ran.
    let deadline = Instant::now() + Duration::from_secs(10);
    while levels(&inventory(&app, &m, p).await) != (11, 0, 11) {
        assert!(
            Instant::now() < deadline,
            "{}",
            inventory(&app, &m, p).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A return may not be put back before the goods came back.
    let (status, body) = adjust(
        &app,
        &m,
        p,
        json!({"kind": "returned", "quantity": 1, "order_id": sold}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .post(
            &format!("/api/v1/orders/{sold}/return"),
            Some(&c.access),
            json!({"reason": "wrong colour"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{sold}/return/receive"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // More than the order had, refused; then one of the two is sellable.
    let (status, _) = adjust(
        &app,
        &m,
        p,
        json!({"kind": "returned", "quantity": 3, "order_id": sold}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, after) = adjust(
        &app,
        &m,
        p,
        json!({"kind": "returned", "quantity": 1, "order_id": sold, "reason": "one scratched"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{after}");
    assert_eq!(levels(&after), (12, 0, 12));
    let (status, body) = adjust(
        &app,
        &m,
        p,
        json!({"kind": "returned", "quantity": 1, "order_id": sold}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "already_returned");
    // Setting the stock through the product is a correction too.
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{p}"),
            Some(&m.access),
            json!({"stock": 20}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let inv = inventory(&app, &m, p).await;
    assert_eq!(levels(&inv), (20, 0, 20));
    let moves: Vec<Value> = inv["movements"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .cloned()
        .collect();
    let kinds: Vec<(&str, i64)> = moves
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["quantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("received", 5),
            ("adjusted", -2),
            ("reserved", 3),
            ("released", 3),
            ("reserved", 2),
            ("sold", 2),
            ("returned", 1),
            ("adjusted", 8),
        ]
    );
    // Each with its order, reason, author and time, numbered in order, and
    // the levels it left (on hand = available + reserved every time).
    assert_eq!(moves[0]["reason"], "PO-17");
    assert_eq!(moves[2]["order_id"], cancelled.as_str());
    assert_eq!(moves[6]["order_id"], sold.as_str());
    assert_eq!(moves[6]["by"], m.id.as_str());
    assert_eq!(moves[7]["reason"], "available set to 20");
    let seen: Vec<(u64, u64, u64)> = moves.iter().map(|m| levels(&m["levels"])).collect();
    assert_eq!(
        seen,
        vec![
            (15, 0, 15),
            (13, 0, 13),
            (13, 3, 10),
            (13, 0, 13),
            (13, 2, 11),
            (11, 0, 11),
            (12, 0, 12),
            (20, 0, 20),
        ]
    );
    for (i, m) in moves.iter().enumerate() {
        assert_eq!(m["seq"], i as u64 + 1);
        assert!(m["at"].is_string());
    }
    // Paged, newest first.
    let (_, page) = app
        .get(
            &format!("/api/v1/products/{p}/inventory?limit=3"),
            Some(&m.access),
        )
        .await;
    assert_eq!(page["movements"].as_array().unwrap().len(), 3);
    assert_eq!(page["movements"][0]["seq"], 8);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get(
            &format!("/api/v1/products/{p}/inventory?limit=3&cursor={cursor}"),
            Some(&m.access),
        )
        .await;
    assert_eq!(next["movements"][0]["seq"], 5);
}

#[tokio::test]
async fn refused_adjustments_change_nothing() {
    let app = spawn_app_with(fast).await;
    let (m, _, product) = shop_with_product(&app, 10_000, 5).await;
    let p = product.as_str();
    order_of(&app, p, 4).await;
    let before = inventory(&app, &m, p).await;
    assert_eq!(levels(&before), (5, 4, 1));
    let other = app.user("merchant").await;
    let (_, unrelated) = {
        let (om, _, op) = shop_with_product(&app, 10_000, 5).await;
        let _ = om;
        order_of(&app, &op, 1).await
    };
    for (who, body, status, code) in [
        (
            &m,
            json!({"quantity": -2, "reason": "count"}),
            StatusCode::CONFLICT,
            "below_reserved",
        ),
        (
            &m,
            json!({"quantity": 0, "reason": "count"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &m,
            json!({"quantity": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &m,
            json!({"kind": "received", "quantity": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &m,
            json!({"kind": "returned", "quantity": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &m,
            json!({"kind": "returned", "quantity": 1, "order_id": unrelated}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &m,
            json!({"kind": "stolen", "quantity": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &m,
            json!({"quantity": 1, "reason": "x", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &m,
            json!({"quantity": 2_000_000_000i64, "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &other,
            json!({"quantity": 1, "reason": "x"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let (got, body) = adjust(&app, who, p, body).await;
        assert_eq!((got, error_code(&body)), (status, code), "{body}");
    }
    assert_eq!(inventory(&app, &m, p).await, before, "nothing changed");
    let (status, _) = app
        .get(
            &format!("/api/v1/products/{p}/inventory"),
            Some(&other.access),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = adjust(
        &app,
        &m,
        &uuid::Uuid::new_v4().to_string(),
        json!({"quantity": 1, "reason": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // What is not reserved may go.
    let (status, after) = adjust(&app, &m, p, json!({"quantity": -1, "reason": "count"})).await;
    assert_eq!(status, StatusCode::CREATED, "{after}");
    assert_eq!(levels(&after), (4, 4, 0));
}

/// The merchant's `low_stock` notifications heard live within `within`.
async fn alerts_heard(ws: &mut crate::ws::Ws, within: Duration) -> Vec<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut heard = Vec::new();
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let frame: Value = serde_json::from_str(t.as_str()).unwrap();
                if frame["data"]["notification"]["kind"] == "low_stock" {
                    heard.push(frame["data"]["notification"].clone());
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) | Err(_) => break,
        }
    }
    heard
}

/// The shop's low-stock list: product ids.
async fn low_list(app: &TestApp, m: &Session, shop: &str) -> Vec<String> {
    let (status, page) = app
        .get(
            &format!("/api/v1/shops/{shop}/products/low-stock"),
            Some(&m.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_low_stock_crossing_is_alerted_once_live_and_listed_until_restocked() {
    let app = spawn_app_with(fast).await;
    let (m, shop, product) = shop_with_product(&app, 10_000, 10).await;
    let p = product.as_str();
    let (status, body) = app
        .put(
            &format!("/api/v1/products/{p}"),
            Some(&m.access),
            json!({"low_stock_threshold": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["low_stock_threshold"], 3);
    let mut ws = crate::hardening::watching_own_topic(&app, &m).await;
    assert!(low_list(&app, &m, &shop).await.is_empty());
    // Down to 4: not low yet. An order holding 1 crosses (available 3).
    adjust(&app, &m, p, json!({"quantity": -6, "reason": "count"})).await;
    assert!(alerts_heard(&mut ws, Duration::from_millis(1500))
        .await
        .is_empty());
    order_of(&app, p, 1).await;
    let heard = alerts_heard(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(
        heard[0]["body"].as_str().unwrap().contains("down to 3"),
        "{heard:?}"
    );
    assert_eq!(low_list(&app, &m, &shop).await, vec![product.clone()]);
    // Lower still: the same crossing, no second alert.
    adjust(&app, &m, p, json!({"quantity": -2, "reason": "count"})).await;
    assert!(alerts_heard(&mut ws, Duration::from_millis(1500))
        .await
        .is_empty());
    // Restocked above: off the list; crossing again alerts again.
    adjust(&app, &m, p, json!({"kind": "received", "quantity": 10})).await;
    assert!(low_list(&app, &m, &shop).await.is_empty());
    adjust(&app, &m, p, json!({"quantity": -9, "reason": "count"})).await;
    let heard = alerts_heard(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(low_list(&app, &m, &shop).await, vec![product.clone()]);
    // Exactly two in the merchant's notifications.
    let (_, notes) = app.get("/api/v1/notifications", Some(&m.access)).await;
    let lows = notes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "low_stock")
        .count();
    assert_eq!(lows, 2, "{notes}");
    // Removing the threshold clears the list.
    app.put(
        &format!("/api/v1/products/{p}"),
        Some(&m.access),
        json!({"low_stock_threshold": null}),
    )
    .await;
    assert!(low_list(&app, &m, &shop).await.is_empty());
}

#[tokio::test]
async fn a_shops_inventory_lists_and_exports_its_products_only() {
    let app = spawn_app_with(fast).await;
    let (m, shop, mat) = shop_with_product(&app, 10_000, 10).await;
    let (status, block) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            {
                let mut b = product_body("=Block", "yoga", 500);
                b["low_stock_threshold"] = json!(20);
                b
            },
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{block}");
    let block = block["id"].as_str().unwrap().to_owned();
    shop_with_product(&app, 10_000, 10).await; // another shop's
    order_of(&app, &mat, 2).await;
    let items = app
        .all_pages(
            &format!("/api/v1/shops/{shop}/inventory?limit=1"),
            Some(&m.access),
            5,
        )
        .await;
    let mut got: Vec<(String, (u64, u64, u64), bool)> = items
        .iter()
        .map(|i| {
            (
                i["product_id"].as_str().unwrap().to_owned(),
                levels(i),
                i["low"].as_bool().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (mat.clone(), (10, 2, 8), false),
        (block.clone(), (10, 0, 10), true),
    ];
    want.sort();
    assert_eq!(got, want);
    let resp = app
        .client
        .get(format!("{}/api/v1/shops/{shop}/inventory/export", app.base))
        .bearer_auth(&m.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-export-truncated"], "false");
    let text = resp.text().await.unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let block_row = rows.iter().find(|r| &r[0] == block.as_str()).unwrap();
    assert_eq!(&block_row[1], "'=Block");
    assert_eq!(
        (&block_row[3], &block_row[5], &block_row[6], &block_row[7]),
        ("10", "10", "20", "true")
    );
    let c = app.user("customer").await;
    let (status, _) = app
        .get(&format!("/api/v1/shops/{shop}/inventory"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

//! A hot product's stock split over buckets (`stock_buckets`): checkouts
//! racing for it never oversell, cancelled units sell again, and the
//! merchant's stock changes hold for the whole product.

use crate::commerce::{add, checkout, customer, fast, stock};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

/// `n` customers, each with one unit of `product` in their cart, check out
/// at once: the ids of the orders placed. Every other answer is 409
/// `out_of_stock`.
async fn race(app: &TestApp, product: &str, n: usize) -> Vec<(Session, String)> {
    let mut customers = Vec::new();
    for _ in 0..n {
        let (c, address) = customer(app).await;
        customers.push((c, address));
    }
    let mut ready = Vec::new();
    for (c, address) in customers {
        let (status, body) = app
            .post(
                "/api/v1/cart/items",
                Some(&c.access),
                json!({"product_id": product, "quantity": 1}),
            )
            .await;
        match status {
            StatusCode::OK => ready.push((c, address)),
            // The public stock already says none are left.
            StatusCode::CONFLICT => assert_eq!(error_code(&body), "out_of_stock", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    let results =
        futures::future::join_all(ready.iter().map(|(c, a)| checkout(app, c, a, "cod", None)))
            .await;
    let mut won = Vec::new();
    for ((c, _), (status, body)) in ready.into_iter().zip(results) {
        match status {
            StatusCode::CREATED => {
                won.push((c, body["orders"][0]["id"].as_str().unwrap().to_owned()))
            }
            StatusCode::CONFLICT => assert_eq!(error_code(&body), "out_of_stock", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    won
}

#[tokio::test]
async fn a_split_product_never_oversells_and_freed_or_restocked_units_sell_again() {
    let app = spawn_app_with(fast).await;
    let (m, shop_id, _) = shop_with_product(&app, 10_000, 1).await;
    let mut body = product_body("Kettlebell 16 kg", "gym", 20_000);
    body["stock"] = json!(40);
    body["stock_buckets"] = json!(4);
    let (status, p) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&m.access),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["stock_buckets"], 4);
    let product = p["id"].as_str().unwrap().to_owned();

    // 60 race for 40.
    let won = race(&app, &product, 60).await;
    assert_eq!(won.len(), 40, "every unit sold, none twice");
    assert_eq!(stock(&app, &product).await, 0);

    // Five cancel: their units are on sale again, and sell exactly once.
    for (c, id) in &won[..5] {
        let (status, body) = app
            .put(
                &format!("/api/v1/orders/{id}/cancel"),
                Some(&c.access),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stock(&app, &product).await < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancelled units came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stock(&app, &product).await, 5);
    let again = race(&app, &product, 12).await;
    assert_eq!(again.len(), 5);
    assert_eq!(stock(&app, &product).await, 0);

    // The merchant restocks: the new figure is what is available, all of it.
    let (status, body) = app
        .put(
            &format!("/api/v1/products/{product}"),
            Some(&m.access),
            json!({"stock": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stock"], 7);
    let restocked = race(&app, &product, 12).await;
    assert_eq!(restocked.len(), 7);
    assert_eq!(stock(&app, &product).await, 0);

    // Each placed order holds its unit: 40 − 5 + 5 + 7 open orders.
    let mut open = 0;
    for (c, id) in won[5..].iter().chain(&again).chain(&restocked) {
        let (status, o) = app
            .get(&format!("/api/v1/orders/{id}"), Some(&c.access))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(o["stock"], "held", "{o}");
        open += 1;
    }
    assert_eq!(open, 47);

    // The split is fixed once a bucket was stocked; bad values are refused.
    let (status, body) = app
        .put(
            &format!("/api/v1/products/{product}"),
            Some(&m.access),
            json!({"stock_buckets": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "stock_buckets_fixed");
    for bad in [0, 65] {
        let (status, body) = app
            .put(
                &format!("/api/v1/products/{product}"),
                Some(&m.access),
                json!({"stock_buckets": bad}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&body), "validation_failed", "{body}");
    }
}

#[tokio::test]
async fn a_product_not_yet_sold_can_be_split_and_a_withdrawn_one_sells_no_more() {
    let app = spawn_app_with(fast).await;
    let (m, _, product) = shop_with_product(&app, 10_000, 30).await;
    let (status, body) = app
        .put(
            &format!("/api/v1/products/{product}"),
            Some(&m.access),
            json!({"stock_buckets": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stock_buckets"], 3);
    let won = race(&app, &product, 10).await;
    assert_eq!(won.len(), 10);
    // The buckets tell the product what they have left within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while stock(&app, &product).await != 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the public stock caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (c, address) = customer(&app).await;
    add(&app, &c, &product, 1).await;
    let (status, body) = app
        .put(
            &format!("/api/v1/products/{product}"),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "product_unavailable", "{body}");
}

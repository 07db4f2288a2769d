//! The commerce flow through HTTP: cart, coupons, checkout, payment by
//! signed webhook, the order lifecycle, escrow, returns and refunds,
//! timers across restarts, and no overselling under concurrency.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use surge::payments::signature::stripe_sign;

use crate::helpers::*;

pub(crate) const SANDBOX_SECRET: &str = "sandbox-test-secret";

pub(crate) fn fast(s: &mut surge::config::Settings) {
    s.sandbox_webhook_secret = Some(SANDBOX_SECRET.into());
    s.timer_interval_ms = 50;
}

/// A customer with a default address about 2 km from the test shop.
pub(crate) async fn customer(app: &TestApp) -> (Session, String) {
    let c = app.user("customer").await;
    let (status, a) = app
        .post("/api/v1/users/addresses", Some(&c.access), json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": 21.045, "lng": 105.85}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    (c, a["id"].as_str().unwrap().to_owned())
}

pub(crate) async fn add(app: &TestApp, c: &Session, product: &str, qty: u32) -> Value {
    let (status, cart) = app
        .post(
            "/api/v1/cart/items",
            Some(&c.access),
            json!({"product_id": product, "quantity": qty}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    cart
}

pub(crate) async fn checkout(
    app: &TestApp,
    c: &Session,
    address: &str,
    method: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&c.access)
        .json(&json!({"address_id": address, "payment_method": method}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// A shop with one product, a customer who bought `qty` of it with
/// `method`: (merchant, customer, product id, the placed order).
async fn bought(
    app: &TestApp,
    price: u64,
    stock: u64,
    qty: u32,
    method: &str,
) -> (Session, Session, String, Value) {
    let (m, _, product) = shop_with_product(app, price, stock).await;
    let (c, address) = customer(app).await;
    add(app, &c, &product, qty).await;
    let (status, placed) = checkout(app, &c, &address, method, None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    (m, c, product, placed["orders"][0].clone())
}

pub(crate) async fn order(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, o) = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    o
}

pub(crate) async fn wait_for(
    app: &TestApp,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let o = order(app, token, id).await;
        if done(&o) {
            return o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited too long for {what}: {o}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn stock(app: &TestApp, product: &str) -> u64 {
    app.get(&format!("/api/v1/products/{product}"), None)
        .await
        .1["stock"]
        .as_u64()
        .unwrap()
}

pub(crate) fn signed_webhook(
    app: &TestApp,
    body: &Value,
    t: i64,
    secret: &str,
) -> reqwest::RequestBuilder {
    let raw = body.to_string();
    app.client
        .post(format!("{}/api/v1/payments/sandbox/webhook", app.base))
        .header("content-type", "application/json")
        .header(
            "surge-signature",
            stripe_sign(secret.as_bytes(), t, raw.as_bytes()),
        )
        .body(raw)
}

fn paid_event(event_id: &str, reference: &str, amount: u64) -> Value {
    json!({"id": event_id, "type": "payment.succeeded", "created": 0, "data": {"reference": reference, "amount": amount, "currency": "VND"}})
}

async fn step(app: &TestApp, token: &str, id: &str, status: &str) -> (StatusCode, Value) {
    app.put(
        &format!("/api/v1/shipping/{id}/status"),
        Some(token),
        json!({"status": status}),
    )
    .await
}

#[tokio::test]
async fn the_happy_path_from_cart_to_escrow_release() {
    the_happy_path_from_cart_to_escrow_release_on(
        spawn_app_with(|s| {
            fast(s);
            s.return_window_secs = 1;
            s.tax_rate_bps = 1_000;
        })
        .await,
    )
    .await;
}

/// The body of `the_happy_path_from_cart_to_escrow_release`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn the_happy_path_from_cart_to_escrow_release_on(app: TestApp) {
    let (m, shop_id, mat) = shop_with_product(&app, 200_000, 5).await;
    let (status, coupon) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/coupons"),
            Some(&m.access),
            json!({"code": "yoga10", "kind": "percentage", "value": 10, "global_limit": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");
    let (c, address) = customer(&app).await;

    add(&app, &c, &mat, 1).await;
    let cart = add(&app, &c, &mat, 1).await;
    assert_eq!(
        cart["items"][0]["quantity"], 2,
        "adding again adds to the quantity"
    );
    let (status, cart) = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c.access),
            json!({"code": "YOGA10"}),
        )
        .await;
    assert_eq!(
        (status, cart["coupon"].as_str()),
        (StatusCode::OK, Some("YOGA10"))
    );
    let (_, quote) = app
        .get("/api/v1/cart/calculate-total", Some(&c.access))
        .await;
    // 2 × 200,000 = 400,000; 10 % off = 40,000; ~1.7 km, 1.6 kg → 15,000 + 10,000;
    // 10 % tax on 360,000 = 36,000.
    assert_eq!(
        quote["totals"],
        json!({"subtotal": 400_000, "discount": 40_000, "platform_discount": 0, "shipping_fee": 25_000, "shipping_discount": 0, "tax": 36_000, "total": 421_000})
    );

    let (status, placed) = checkout(&app, &c, &address, "sandbox", Some("checkout-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let o = &placed["orders"][0];
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (o["status"].as_str(), o["totals"]["total"].as_u64()),
        (Some("pending_payment"), Some(421_000))
    );
    assert_eq!(stock(&app, &mat).await, 3, "stock is held at checkout");
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert!(
        cart["items"].as_array().unwrap().is_empty(),
        "the cart was emptied"
    );
    // A retry with the same key answers the same order and holds nothing more.
    let (status, again) = checkout(&app, &c, &address, "sandbox", Some("checkout-1")).await;
    assert_eq!(
        (status, again["orders"][0]["id"].as_str()),
        (StatusCode::CREATED, Some(id.as_str()))
    );
    assert_eq!(stock(&app, &mat).await, 3);

    // Pay on the sandbox gateway's hosted page; it sends the signed webhook.
    let url = o["payment"]["checkout_url"].as_str().unwrap().to_owned();
    let page = app.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("421000"));
    let paid: Value = app
        .client
        .post(format!("{url}/pay"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["webhook_status"], 200);
    let o = order(&app, &c.access, &id).await;
    assert_eq!(
        (
            o["status"].as_str(),
            o["payment"]["status"].as_str(),
            o["escrow"].as_str()
        ),
        (Some("paid"), Some("paid"), Some("held"))
    );

    let (status, o) = app
        .put(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, o["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
    for s in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
        let (status, o) = step(&app, &m.access, &id, s).await;
        assert_eq!(
            (status, o["status"].as_str()),
            (StatusCode::OK, Some(s)),
            "{o}"
        );
    }
    let o = wait_for(&app, &c.access, &id, "escrow release", |o| {
        o["escrow"] == "released"
    })
    .await;
    assert_eq!(o["stock"], "consumed");
    assert_eq!(stock(&app, &mat).await, 3, "sold stock does not come back");
    let (_, timeline) = app
        .get(&format!("/api/v1/orders/{id}/timeline"), Some(&c.access))
        .await;
    let events: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "placed",
            "payment_received",
            "paid",
            "confirmed",
            "ready_for_pickup",
            "picked_up",
            "delivering",
            "delivered",
            "escrow_released"
        ]
    );
    assert!(timeline
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["at"].is_string() && e["by"].is_string()));
    let (_, coupon) = app.get("/api/v1/coupons/YOGA10", None).await;
    assert_eq!(coupon["used"], 1);
    let (status, revenue) = app
        .get(
            &format!("/api/v1/shops/{shop_id}/analytics/revenue"),
            Some(&m.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            revenue[0]["orders"].as_u64(),
            revenue[0]["revenue"].as_u64()
        ),
        (Some(1), Some(421_000))
    );
    let (_, mine) = app.get("/api/v1/orders", Some(&c.access)).await;
    assert_eq!(mine["items"][0]["id"].as_str(), Some(id.as_str()));
    let (_, shop_orders) = app
        .get(&format!("/api/v1/shops/{shop_id}/orders"), Some(&m.access))
        .await;
    assert_eq!(shop_orders["items"][0]["id"].as_str(), Some(id.as_str()));
    let (status, _) = app
        .get(&format!("/api/v1/shops/{shop_id}/orders"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unpaid_order_times_out_and_gives_stock_and_coupon_back() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.payment_timeout_secs = 1;
    })
    .await;
    let (m, shop_id, mat) = shop_with_product(&app, 100_000, 3).await;
    app.post(
        &format!("/api/v1/shops/{shop_id}/coupons"),
        Some(&m.access),
        json!({"code": "ONCE", "kind": "fixed", "value": 5000, "global_limit": 1}),
    )
    .await;
    let (c, address) = customer(&app).await;
    add(&app, &c, &mat, 2).await;
    app.post(
        "/api/v1/cart/apply-coupon",
        Some(&c.access),
        json!({"code": "ONCE"}),
    )
    .await;
    let (status, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let id = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stock(&app, &mat).await, 1);
    assert_eq!(app.get("/api/v1/coupons/ONCE", None).await.1["used"], 1);

    let o = wait_for(&app, &c.access, &id, "payment timeout", |o| {
        o["status"] == "cancelled" && o["stock"] == "released"
    })
    .await;
    assert_eq!(o["payment"]["status"], "voided");
    assert_eq!(
        o["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "cancelled")
            .unwrap()["reason"],
        "payment timeout"
    );
    assert_eq!(stock(&app, &mat).await, 3, "held stock came back");
    assert_eq!(
        app.get("/api/v1/coupons/ONCE", None).await.1["used"],
        0,
        "the coupon use came back"
    );
}

#[tokio::test]
async fn forged_stale_replayed_and_mismatched_webhooks() {
    let app = spawn_app_with(fast).await;
    let (_, c, _, placed) = bought(&app, 50_000, 10, 1, "sandbox").await;
    let id = placed["id"].as_str().unwrap().to_owned();
    // Webhooks name the provider's reference (the checkout's payment).
    let reference = placed["payment"]["reference"].as_str().unwrap().to_owned();
    let total = placed["totals"]["total"].as_u64().unwrap();
    let now = chrono::Utc::now().timestamp();

    let forged = signed_webhook(
        &app,
        &paid_event("evt_1", &reference, total),
        now,
        "not-the-secret",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let stale = signed_webhook(
        &app,
        &paid_event("evt_1", &reference, total),
        now - 1000,
        SANDBOX_SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let unsigned = app
        .client
        .post(format!("{}/api/v1/payments/sandbox/webhook", app.base))
        .body(paid_event("evt_1", &reference, total).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let mismatch = signed_webhook(
        &app,
        &paid_event("evt_2", &reference, total - 1),
        now,
        SANDBOX_SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(mismatch.status(), StatusCode::CONFLICT);
    assert_eq!(
        error_code(&mismatch.json().await.unwrap()),
        "amount_mismatch"
    );
    assert_eq!(
        order(&app, &c.access, &id).await["status"],
        "pending_payment",
        "nothing took effect"
    );

    let good = signed_webhook(
        &app,
        &paid_event("evt_3", &reference, total),
        now,
        SANDBOX_SECRET,
    );
    let replay = good.try_clone().unwrap();
    let first: Value = good.send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (first["status"].as_str(), first["order_status"].as_str()),
        (Some("processed"), Some("paid"))
    );
    let second = replay.send().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.json::<Value>().await.unwrap()["status"], "duplicate");
    let o = order(&app, &c.access, &id).await;
    let payments = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "payment_received")
        .count();
    assert_eq!(payments, 1, "a replayed webhook has exactly one effect");
    let (status, _) = app
        .post("/api/v1/payments/nope/webhook", None, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_return_is_refunded_through_the_provider() {
    let app = spawn_app_with(fast).await;
    let (m, c, _, placed) = bought(&app, 80_000, 4, 1, "sandbox").await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let url = placed["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.client.post(format!("{url}/pay")).send().await.unwrap();
    app.put(
        &format!("/api/v1/orders/{id}/confirm"),
        Some(&m.access),
        json!({}),
    )
    .await;
    for s in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
        assert_eq!(step(&app, &m.access, &id, s).await.0, StatusCode::OK);
    }
    let (status, o) = app
        .post(
            &format!("/api/v1/orders/{id}/return"),
            Some(&c.access),
            json!({"reason": "too small"}),
        )
        .await;
    assert_eq!(
        (status, o["status"].as_str()),
        (StatusCode::OK, Some("return_requested"))
    );
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{id}/return/receive"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the merchant receives returns"
    );
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{id}/return/receive"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let o = wait_for(&app, &c.access, &id, "refund", |o| {
        o["status"] == "refunded"
    })
    .await;
    assert_eq!(
        (o["payment"]["status"].as_str(), o["escrow"].as_str()),
        (Some("refunded"), Some("refunded"))
    );
    assert!(o["payment"]["refund_reference"].as_str().is_some());
    let page = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Refunded"),
        "the gateway's side records the refund: {page}"
    );
}

#[tokio::test]
async fn illegal_transitions_get_409_with_the_current_state() {
    let app = spawn_app_with(fast).await;
    let (m, c, mat, placed) = bought(&app, 10_000, 10, 1, "sandbox").await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let address = app.get("/api/v1/users/addresses", Some(&c.access)).await.1[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "illegal_transition")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pending_payment"),
        "{body}"
    );
    // Confirming is a merchant's operation: a customer is refused by role
    // first (403); for the merchant, the unpaid order's state refuses it
    // (wrong parties are covered in src/domain/order.rs).
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = step(&app, &m.access, &id, "delivered").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .post(
            &format!("/api/v1/orders/{id}/return"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Strangers cannot see or touch it.
    let stranger = app.user("customer").await;
    assert_eq!(
        app.get(&format!("/api/v1/orders/{id}"), Some(&stranger.access))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.put(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&stranger.access),
            json!({})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Cancel works once (without a body), then it is illegal.
    let resp = app
        .client
        .put(format!("{}/api/v1/orders/{id}/cancel", app.base))
        .bearer_auth(&c.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cancelled"));
    assert_eq!(stock(&app, &mat).await, 10, "the cancel released the stock");
    // Bad input to checkout changes nothing.
    add(&app, &c, &mat, 1).await;
    let (status, body) = checkout(&app, &c, &address, "bitcoin", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (status, _) = checkout(&app, &c, "no-such-address", "cod", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stock(&app, &mat).await, 10);
    let (status, body) = app
        .post(
            "/api/v1/cart/items",
            Some(&c.access),
            json!({"product_id": mat, "quantity": 11}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "out_of_stock")
    );
}

#[tokio::test]
async fn the_lifecycle_and_its_timers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |s: &mut surge::config::Settings| {
        fast(s);
        s.payment_timeout_secs = 2;
    };
    let app = spawn_app_in(dir, settings).await;
    let (m, _, mat) = shop_with_product(&app, 10_000, 10).await;
    let (c, address) = customer(&app).await;
    add(&app, &c, &mat, 2).await;
    let (_, unpaid) = checkout(&app, &c, &address, "sandbox", None).await;
    let unpaid = unpaid["orders"][0]["id"].as_str().unwrap().to_owned();
    add(&app, &c, &mat, 1).await;
    let (_, cod) = checkout(&app, &c, &address, "cod", None).await;
    let cod = cod["orders"][0]["id"].as_str().unwrap().to_owned();
    let (_, mine) = app.get("/api/v1/orders", Some(&c.access)).await;
    let ids: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [cod.as_str(), unpaid.as_str()], "newest first");
    app.put(
        &format!("/api/v1/orders/{cod}/confirm"),
        Some(&m.access),
        json!({}),
    )
    .await;
    assert_eq!(stock(&app, &mat).await, 7);
    add(&app, &c, &mat, 1).await;
    app.post("/api/v1/cart/save", Some(&c.access), json!({}))
        .await;

    let dir = app.stop().await;
    let app = spawn_app_in(dir, settings).await;
    // The cart and its saved copy survived.
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(cart["items"][0]["quantity"], 1);
    assert_eq!(
        app.get("/api/v1/cart/saved", Some(&c.access))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The unpaid order's timer was persisted: it still times out.
    wait_for(&app, &c.access, &unpaid, "timeout after restart", |o| {
        o["status"] == "cancelled" && o["stock"] == "released"
    })
    .await;
    assert_eq!(stock(&app, &mat).await, 9);
    // The cash-on-delivery order carries on where it was.
    for s in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
        assert_eq!(step(&app, &m.access, &cod, s).await.0, StatusCode::OK);
    }
    let o = order(&app, &c.access, &cod).await;
    assert_eq!(
        (o["payment"]["status"].as_str(), o["escrow"].as_str()),
        (Some("collected"), Some("none"))
    );
}

#[tokio::test]
async fn no_overselling_and_no_coupon_overuse_under_concurrency() {
    no_overselling_and_no_coupon_overuse_under_concurrency_on(spawn_app_with(fast).await).await;
}

/// The body of `no_overselling_and_no_coupon_overuse_under_concurrency`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn no_overselling_and_no_coupon_overuse_under_concurrency_on(app: TestApp) {
    let (m, shop_id, last_ten) = shop_with_product(&app, 10_000, 10).await;
    let mut big = product_body("Block", "yoga", 5_000);
    big["stock"] = json!(1_000);
    let (_, block) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&m.access),
            big,
        )
        .await;
    let block = block["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/shops/{shop_id}/coupons"),
        Some(&m.access),
        json!({"code": "FIRST5", "kind": "fixed", "value": 1000, "global_limit": 5}),
    )
    .await;

    let mut customers = Vec::new();
    for _ in 0..100 {
        customers.push(customer(&app).await);
    }
    for (c, _) in &customers {
        add(&app, c, &last_ten, 1).await;
    }
    let run = |customers: &[(Session, String)]| {
        customers
            .iter()
            .map(|(c, address)| {
                let (client, base, token, address) = (
                    app.client.clone(),
                    app.base.clone(),
                    c.access.clone(),
                    address.clone(),
                );
                tokio::spawn(async move {
                    let resp = client
                        .post(format!("{base}/api/v1/orders"))
                        .bearer_auth(token)
                        .json(&json!({"address_id": address, "payment_method": "cod"}))
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status();
                    (status, resp.json::<Value>().await.unwrap())
                })
            })
            .collect::<Vec<_>>()
    };
    let mut created = 0;
    for t in run(&customers) {
        match t.await.unwrap() {
            (StatusCode::CREATED, _) => created += 1,
            (StatusCode::CONFLICT, body) => assert_eq!(error_code(&body), "out_of_stock"),
            (other, body) => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 10, "exactly the ten units were sold");
    assert_eq!(stock(&app, &last_ten).await, 0);

    // Fifty carts with the coupon: exactly five redemptions.
    let fifty = &customers[..50];
    for (c, _) in fifty {
        app.delete("/api/v1/cart/clear", Some(&c.access)).await;
        add(&app, c, &block, 1).await;
        let (status, body) = app
            .post(
                "/api/v1/cart/apply-coupon",
                Some(&c.access),
                json!({"code": "FIRST5"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut with_coupon = 0;
    for t in run(fifty) {
        match t.await.unwrap() {
            (StatusCode::CREATED, _) => with_coupon += 1,
            (StatusCode::CONFLICT, body) => assert_eq!(error_code(&body), "coupon_exhausted"),
            (other, body) => panic!("{other}: {body}"),
        }
    }
    assert_eq!(with_coupon, 5);
    assert_eq!(app.get("/api/v1/coupons/FIRST5", None).await.1["used"], 5);
    // The 45 failed checkouts gave their held blocks back (durably, promptly).
    let started = Instant::now();
    while stock(&app, &block).await != 995 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "held stock of failed checkouts was not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_lost_webhook_is_recovered_by_asking_the_provider_at_the_deadline() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.payment_timeout_secs = 1;
    })
    .await;
    let (_, c, mat, placed) = bought(&app, 30_000, 5, 1, "sandbox").await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let url = placed["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let paid: Value = app
        .client
        .post(format!("{url}/pay?webhook=skip"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["webhook_status"], Value::Null);
    assert_eq!(
        order(&app, &c.access, &id).await["status"],
        "pending_payment",
        "no webhook arrived"
    );
    let o = wait_for(&app, &c.access, &id, "status query at the deadline", |o| {
        o["status"] != "pending_payment"
    })
    .await;
    assert_eq!(
        (o["status"].as_str(), o["payment"]["status"].as_str()),
        (Some("paid"), Some("paid")),
        "paid, not cancelled"
    );
    assert_eq!(stock(&app, &mat).await, 4);
}

#[tokio::test]
async fn multi_shop_checkout_saved_carts_quotes_and_payment_views() {
    let app = spawn_app_with(fast).await;
    let (_, shop_a, mat) = shop_with_product(&app, 10_000, 5).await;
    let (_, shop_b, ball) = shop_with_product(&app, 20_000, 5).await;
    let (c, address) = customer(&app).await;

    add(&app, &c, &mat, 1).await;
    let (status, saved) = app
        .post("/api/v1/cart/save", Some(&c.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.delete("/api/v1/cart/clear", Some(&c.access)).await;
    let (_, list) = app.get("/api/v1/cart/saved", Some(&c.access)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, cart) = app
        .post(
            &format!("/api/v1/cart/restore/{}", saved["id"].as_str().unwrap()),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, cart["items"][0]["product_id"].as_str()),
        (StatusCode::OK, Some(mat.as_str()))
    );
    let (status, cart) = app
        .put(
            &format!("/api/v1/cart/items/{mat}"),
            Some(&c.access),
            json!({"quantity": 3}),
        )
        .await;
    assert_eq!(
        (status, cart["items"][0]["quantity"].as_u64()),
        (StatusCode::OK, Some(3))
    );
    add(&app, &c, &ball, 2).await;

    let (status, q) = app
        .post(
            "/api/v1/shipping/calculate",
            Some(&c.access),
            json!({"shop_id": shop_a, "to": {"lat": 21.045, "lng": 105.85}, "weight_grams": 2400}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["fee"], 25_000);
    let (status, by_address) = app
        .post(
            "/api/v1/shipping/calculate",
            Some(&c.access),
            json!({"shop_id": shop_a, "address_id": address, "weight_grams": 2400}),
        )
        .await;
    assert_eq!(
        (status, &by_address),
        (StatusCode::OK, &q),
        "one of your addresses quotes the same as its point"
    );
    // Without `to` or `address_id`, the default address; `to` wins over
    // `address_id`; someone else's address is unknown.
    for (body, want) in [
        (
            json!({"shop_id": shop_a, "weight_grams": 1}),
            StatusCode::OK,
        ),
        (
            json!({"shop_id": shop_a, "to": {"lat": 21.0, "lng": 105.8}, "address_id": address, "weight_grams": 1}),
            StatusCode::OK,
        ),
        (
            json!({"shop_id": shop_a, "address_id": "not-mine", "weight_grams": 1}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"shop_id": shop_a, "to": {"lat": 91.0, "lng": 105.8}, "weight_grams": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, resp) = app
            .post("/api/v1/shipping/calculate", Some(&c.access), body.clone())
            .await;
        assert_eq!(status, want, "{body}: {resp}");
    }
    assert!(
        (q["distance_km"].as_f64().unwrap() - 1.67).abs() < 0.05,
        "{q}"
    );
    let (status, body) = app
        .post(
            "/api/v1/shipping/calculate",
            Some(&c.access),
            json!({"shop_id": shop_a, "to": {"lat": 10.8, "lng": 106.6}, "weight_grams": 1}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "out_of_delivery_area")
    );

    let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let orders = placed["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "one order per shop");
    let mut shops: Vec<&str> = orders
        .iter()
        .map(|o| o["shop_id"].as_str().unwrap())
        .collect();
    shops.sort();
    let mut want = vec![shop_a.as_str(), shop_b.as_str()];
    want.sort();
    assert_eq!(shops, want);
    assert!(orders
        .iter()
        .all(|o| o["payment"]["status"] == "due_on_delivery" && o["payment_deadline"].is_null()));

    let id = orders[0]["id"].as_str().unwrap();
    let (status, payment) = app
        .get(&format!("/api/v1/payments/{id}"), Some(&c.access))
        .await;
    assert_eq!(
        (status, payment["provider"].as_str()),
        (StatusCode::OK, Some("cod"))
    );
    let (_, history) = app.get("/api/v1/payments/history", Some(&c.access)).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 2);
    let (_, page) = app.get("/api/v1/orders?limit=1", Some(&c.access)).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, page2) = app
        .get(
            &format!("/api/v1/orders?limit=1&cursor={cursor}"),
            Some(&c.access),
        )
        .await;
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);
}

#[tokio::test]
async fn returns_close_with_the_window() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.return_window_secs = 1;
    })
    .await;
    let (m, c, _, placed) = bought(&app, 10_000, 5, 1, "cod").await;
    let id = placed["id"].as_str().unwrap().to_owned();
    app.put(
        &format!("/api/v1/orders/{id}/confirm"),
        Some(&m.access),
        json!({}),
    )
    .await;
    for s in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
        assert_eq!(step(&app, &m.access, &id, s).await.0, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/orders/{id}/return"),
            Some(&c.access),
            json!({"reason": "late"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "return_window_closed")
    );
}

#[tokio::test]
async fn a_payment_after_the_order_was_cancelled_is_refunded_not_kept() {
    let app = spawn_app_with(fast).await;
    let (_, c, mat, placed) = bought(&app, 40_000, 5, 1, "sandbox").await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let url = placed["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    // The customer cancels, with the payment page still open in another tab.
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for(&app, &c.access, &id, "the release", |o| {
        o["status"] == "cancelled" && o["stock"] == "released"
    })
    .await;
    // And pays there anyway: the money goes back, the order stays cancelled.
    let paid: Value = app
        .client
        .post(format!("{url}/pay"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["webhook_status"], 200);
    let o = wait_for(&app, &c.access, &id, "refund of the late payment", |o| {
        o["payment"]["status"] == "refunded"
    })
    .await;
    assert_eq!(
        (o["status"].as_str(), o["escrow"].as_str()),
        (Some("cancelled"), Some("refunded"))
    );
    assert_eq!(
        stock(&app, &mat).await,
        5,
        "the cancelled order holds no stock"
    );
}

#[tokio::test]
async fn a_browser_paying_on_the_sandbox_page_goes_back_to_its_checkout() {
    let app = spawn_app_with(fast).await;
    let (_, c, _, o) = bought(&app, 30_000, 5, 1, "sandbox").await;
    let id = o["id"].as_str().unwrap();
    let url = o["payment"]["checkout_url"].as_str().unwrap();
    let browser = crate::helpers::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser
        .post(format!("{url}/pay"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The storefront's page of the checkout (which opens its one order).
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!(
            "/#/checkouts/{}",
            o["payment"]["session"]["id"].as_str().unwrap()
        )
    );
    let o = wait_for(&app, &c.access, id, "payment", |o| o["status"] == "paid").await;
    assert_eq!(o["payment"]["status"], "paid");
}

/// One cart is in one currency: adding a product in another is refused and
/// changes nothing; a product that moves to another currency after it was
/// added leaves the cart viewable and fixable (the line shown unavailable,
/// outside the totals), and only its checkout is refused.
#[tokio::test]
async fn a_cart_stays_in_one_currency_and_viewable_when_a_product_changes_currency() {
    let app = spawn_app_with(fast).await;
    let (m, shop, mat) = shop_with_product(&app, 100_000, 10).await;
    let product = |name: &str, currency: &str| {
        let mut body = product_body(name, "yoga", 50_000);
        body["currency"] = json!(currency);
        body
    };
    let create = |body: Value| {
        let (app, m, shop) = (&app, &m, &shop);
        async move {
            let (status, p) = app
                .post(
                    &format!("/api/v1/shops/{shop}/products"),
                    Some(&m.access),
                    body,
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{p}");
            p["id"].as_str().unwrap().to_owned()
        }
    };
    let strap = create(product("Strap", "USD")).await;
    let block = create(product("Block", "VND")).await;
    let (c, address) = customer(&app).await;
    add(&app, &c, &mat, 1).await;

    let (status, body) = app
        .post(
            "/api/v1/cart/items",
            Some(&c.access),
            json!({"product_id": strap, "quantity": 1}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "mixed_currency")
    );
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(
        cart["items"].as_array().unwrap().len(),
        1,
        "nothing added: {cart}"
    );

    // The block is added in VND, then its merchant prices it in USD.
    add(&app, &c, &block, 1).await;
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{block}"),
            Some(&m.access),
            json!({"currency": "USD"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    let line = |cart: &Value, id: &str| {
        cart["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["product_id"] == id)
            .cloned()
    };
    assert_eq!(line(&cart, &block).unwrap()["available"], false);
    assert_eq!(line(&cart, &mat).unwrap()["available"], true);
    assert_eq!(cart["currency"], "VND");
    assert_eq!(
        cart["totals"]["subtotal"], 100_000,
        "only the VND line: {cart}"
    );
    let (status, body) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "mixed_currency")
    );

    let (status, cart) = app
        .delete(&format!("/api/v1/cart/items/{block}"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert!(line(&cart, &block).is_none());
    let (status, order) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
}

#[tokio::test]
async fn a_coupon_is_listed_edited_paused_resumed_reported_and_deleted_by_its_merchant_only() {
    a_coupon_is_listed_edited_paused_resumed_reported_and_deleted_by_its_merchant_only_on(
        spawn_app_with(fast).await,
    )
    .await;
}

/// A coupon's life as its merchant runs it: listed by status, edited
/// within the rules (never below the uses made), paused (a cart holding
/// it shows why and leaves it out; checkout refuses and changes nothing),
/// resumed, reported on, deleted (gone; the order that used it keeps its
/// discount; the code can start afresh). Nobody else may touch it.
pub(crate) async fn a_coupon_is_listed_edited_paused_resumed_reported_and_deleted_by_its_merchant_only_on(
    app: TestApp,
) {
    let (m, shop_id, mat) = shop_with_product(&app, 100_000, 10).await;
    let list = format!("/api/v1/shops/{shop_id}/coupons");
    let codes = |page: &Value| -> Vec<(String, String)> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let code = c["code"].as_str().unwrap().to_owned();
                (code, c["status"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    for (code, limit) in [("SAVE10", json!(2)), ("LATER", Value::Null)] {
        let (status, c) = app
            .post(
                &list,
                Some(&m.access),
                json!({"code": code, "kind": "percentage", "value": 10, "global_limit": limit}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        assert_eq!(c["status"], "active");
    }
    let (status, page) = app.get(&list, Some(&m.access)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        codes(&page),
        [
            ("LATER".into(), "active".into()),
            ("SAVE10".into(), "active".into())
        ]
    );

    // Nobody else lists, edits, pauses, deletes or reads the usage.
    let other = app.user("merchant").await;
    let (c1, home1) = customer(&app).await;
    for token in [&other.access, &c1.access] {
        assert_eq!(app.get(&list, Some(token)).await.0, StatusCode::FORBIDDEN);
        let (status, _) = app
            .request(
                Method::PATCH,
                "/api/v1/coupons/SAVE10",
                Some(token),
                Some(json!({"value": 50})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for path in ["pause", "resume"] {
            let (status, _) = app
                .post(
                    &format!("/api/v1/coupons/SAVE10/{path}"),
                    Some(token),
                    json!({}),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }
        let usage = app.get("/api/v1/coupons/SAVE10/usage", Some(token)).await;
        assert_eq!(usage.0, StatusCode::FORBIDDEN);
        let deleted = app.delete("/api/v1/coupons/SAVE10", Some(token)).await;
        assert_eq!(deleted.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get("/api/v1/coupons/SAVE10", None).await.1["value"], 10);

    // Two customers use it.
    let (c2, home2) = customer(&app).await;
    let mut orders = Vec::new();
    for (c, home) in [(&c1, &home1), (&c2, &home2)] {
        add(&app, c, &mat, 1).await;
        let applied = app
            .post(
                "/api/v1/cart/apply-coupon",
                Some(&c.access),
                json!({"code": "save10"}),
            )
            .await;
        assert_eq!(applied.0, StatusCode::OK, "{}", applied.1);
        let (status, placed) = checkout(&app, c, home, "cod", None).await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        assert_eq!(placed["orders"][0]["totals"]["discount"], 10_000);
        orders.push((c, placed["orders"][0]["id"].as_str().unwrap().to_owned()));
    }
    let (status, usage) = app
        .get("/api/v1/coupons/SAVE10/usage", Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(
        (
            &usage["used"],
            &usage["remaining"],
            &usage["customers"],
            &usage["discount_total"]
        ),
        (&json!(2), &json!(0), &json!(2), &json!(20_000))
    );
    assert_eq!(usage["days"][0]["uses"], 2);
    let (_, page) = app
        .get(&format!("{list}?status=exhausted"), Some(&m.access))
        .await;
    assert_eq!(codes(&page), [("SAVE10".into(), "exhausted".into())]);

    // Edits: never below the uses made, nothing else changes on a refusal;
    // the code and the kind are fixed.
    let patch = |body: Value| {
        let app = &app;
        let token = m.access.clone();
        async move {
            app.request(
                Method::PATCH,
                "/api/v1/coupons/SAVE10",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let (status, refused) = patch(json!({"global_limit": 1, "value": 50})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "coupon_below_uses");
    let now = app.get("/api/v1/coupons/SAVE10", None).await.1;
    assert_eq!(
        (&now["global_limit"], &now["value"]),
        (&json!(2), &json!(10))
    );
    for bad in [
        json!({"kind": "fixed"}),
        json!({"code": "OTHER"}),
        json!({"value": 101}),
    ] {
        let (status, body) = patch(bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, edited) = patch(json!({"global_limit": 3, "value": 20})).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        (&edited["global_limit"], &edited["value"]),
        (&json!(3), &json!(20))
    );
    assert_eq!(edited["status"], "active");
    let (_, unlimited) = patch(json!({"global_limit": null})).await;
    assert_eq!(unlimited["global_limit"], Value::Null);

    // Paused: a cart that holds it shows why and leaves it out; checking
    // out with it is refused and holds nothing; a new cart cannot apply it.
    let (c3, home3) = customer(&app).await;
    add(&app, &c3, &mat, 1).await;
    let applied = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c3.access),
            json!({"code": "SAVE10"}),
        )
        .await;
    assert_eq!(applied.1["totals"]["discount"], 20_000);
    let (status, paused) = app
        .post("/api/v1/coupons/SAVE10/pause", Some(&m.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["status"], "paused");
    let (status, cart) = app.get("/api/v1/cart", Some(&c3.access)).await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(cart["coupon_problem"]["code"], "coupon_paused");
    assert_eq!(cart["totals"]["discount"], 0);
    let stock_before = stock(&app, &mat).await;
    let (status, refused) = checkout(&app, &c3, &home3, "cod", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "coupon_paused");
    assert_eq!(
        stock(&app, &mat).await,
        stock_before,
        "the refusal held nothing"
    );
    assert_eq!(app.get("/api/v1/coupons/SAVE10", None).await.1["used"], 2);
    let (c4, _) = customer(&app).await;
    add(&app, &c4, &mat, 1).await;
    let (status, body) = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c4.access),
            json!({"code": "SAVE10"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("coupon_paused"))
    );
    let (_, page) = app
        .get(&format!("{list}?status=paused"), Some(&m.access))
        .await;
    assert_eq!(codes(&page), [("SAVE10".into(), "paused".into())]);
    let (_, page) = app
        .get(&format!("{list}?status=active"), Some(&m.access))
        .await;
    assert_eq!(codes(&page), [("LATER".into(), "active".into())]);

    // Resumed: the same checkout goes through.
    let (status, resumed) = app
        .post("/api/v1/coupons/SAVE10/resume", Some(&m.access), json!({}))
        .await;
    assert_eq!(
        (status, &resumed["status"]),
        (StatusCode::OK, &json!("active"))
    );
    let (status, placed) = checkout(&app, &c3, &home3, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["orders"][0]["totals"]["discount"], 20_000);
    let usage = app
        .get("/api/v1/coupons/SAVE10/usage", Some(&m.access))
        .await
        .1;
    assert_eq!(
        (&usage["used"], &usage["discount_total"]),
        (&json!(3), &json!(40_000))
    );

    // Deleted: gone for everyone; the orders keep their discount; the
    // code can be created again and starts afresh.
    let (status, _) = app.delete("/api/v1/coupons/SAVE10", Some(&m.access)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/coupons/SAVE10", None).await.0,
        StatusCode::NOT_FOUND
    );
    let usage = app
        .get("/api/v1/coupons/SAVE10/usage", Some(&m.access))
        .await;
    assert_eq!(usage.0, StatusCode::NOT_FOUND);
    let (_, page) = app.get(&list, Some(&m.access)).await;
    assert_eq!(codes(&page), [("LATER".into(), "active".into())]);
    let (status, body) = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c4.access),
            json!({"code": "SAVE10"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (c, id) = &orders[0];
    let (_, o) = app
        .get(&format!("/api/v1/orders/{id}"), Some(&c.access))
        .await;
    assert_eq!(o["totals"]["discount"], 10_000);
    let (status, again) = app
        .post(
            &list,
            Some(&m.access),
            json!({"code": "SAVE10", "kind": "fixed", "value": 5_000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        (&again["used"], &again["kind"]),
        (&json!(0), &json!("fixed"))
    );
}

/// A merchant's sale price: charged only while its window runs (before it
/// starts and from its end the list price), shown beside the list price on
/// cart and order lines, always below the price (a refusal changes
/// nothing), ended with `null`.
#[tokio::test]
async fn a_sale_price_is_charged_inside_its_window_and_shown_beside_the_list_price() {
    let app = spawn_app_with(fast).await;
    let (m, _, mat) = shop_with_product(&app, 100_000, 10).await;
    let (c, home) = customer(&app).await;
    add(&app, &c, &mat, 2).await;
    let path = format!("/api/v1/products/{mat}");
    let hour = chrono::Duration::hours(1);
    let now = chrono::Utc::now();
    let set = |sale: Value| {
        let (app, token, path) = (&app, m.access.clone(), path.clone());
        async move {
            app.request(
                Method::PUT,
                &path,
                Some(&token),
                Some(json!({"sale": sale})),
            )
            .await
        }
    };
    let line = |cart: &Value| {
        (
            cart["items"][0]["unit_price"].clone(),
            cart["items"][0]["list_price"].clone(),
        )
    };
    for (what, sale, charged) in [
        (
            "not started",
            json!({"price": 60_000, "starts_at": now + hour, "ends_at": null}),
            100_000,
        ),
        (
            "ended",
            json!({"price": 60_000, "starts_at": null, "ends_at": now - hour}),
            100_000,
        ),
        (
            "running",
            json!({"price": 60_000, "starts_at": now - hour, "ends_at": now + hour}),
            60_000,
        ),
    ] {
        let (status, p) = set(sale).await;
        assert_eq!(status, StatusCode::OK, "{what}: {p}");
        assert_eq!(p["sale"]["price"], 60_000);
        let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
        let list = if charged == 100_000 {
            Value::Null
        } else {
            json!(100_000)
        };
        assert_eq!(line(&cart), (json!(charged), list), "{what}: {cart}");
        assert_eq!(cart["totals"]["subtotal"], 2 * charged, "{what}");
    }

    // Always below the price; a refused change changes nothing.
    for bad in [
        json!({"sale": {"price": 100_000, "starts_at": null, "ends_at": null}}),
        json!({"sale": {"price": 0, "starts_at": null, "ends_at": null}}),
        json!({"sale": {"price": 10, "starts_at": now + hour, "ends_at": now}}),
        json!({"price": 50_000}),
    ] {
        let (status, body) = app
            .request(Method::PUT, &path, Some(&m.access), Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (_, p) = app.get(&path, None).await;
    assert_eq!(
        (&p["price"], &p["sale"]["price"]),
        (&json!(100_000), &json!(60_000))
    );

    // The order charges the sale price and keeps the list price beside it.
    let (status, placed) = checkout(&app, &c, &home, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let o = &placed["orders"][0];
    assert_eq!(
        (&o["lines"][0]["unit_price"], &o["lines"][0]["list_price"]),
        (&json!(60_000), &json!(100_000))
    );
    assert_eq!(o["totals"]["subtotal"], 120_000);

    // Ended by its merchant.
    let (status, p) = set(Value::Null).await;
    assert_eq!((status, &p["sale"]), (StatusCode::OK, &Value::Null));
    add(&app, &c, &mat, 1).await;
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(line(&cart), (json!(100_000), Value::Null));
}

/// "Buy again" puts an order's lines back in its customer's cart at
/// today's prices, each at least at the quantity ordered (so a second time
/// changes nothing), leaves out what cannot be bought now with why, and
/// is the customer's alone.
#[tokio::test]
async fn buy_again_refills_the_cart_at_todays_prices_and_says_what_it_left_out() {
    let app = spawn_app_with(fast).await;
    let (m, shop_id, mat) = shop_with_product(&app, 100_000, 10).await;
    let mut body = product_body("Yoga strap", "yoga", 50_000);
    body["stock"] = json!(5);
    let (_, strap) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&m.access),
            body,
        )
        .await;
    let strap = strap["id"].as_str().unwrap().to_owned();
    let (c, home) = customer(&app).await;
    add(&app, &c, &mat, 2).await;
    add(&app, &c, &strap, 1).await;
    let (status, placed) = checkout(&app, &c, &home, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let id = placed["orders"][0]["id"].as_str().unwrap().to_owned();

    // Since: the mat costs less, the strap is no longer sold, and the
    // customer already holds three mats.
    for (product, change) in [
        (&mat, json!({"price": 90_000})),
        (&strap, json!({"active": false})),
    ] {
        let (status, p) = app
            .put(
                &format!("/api/v1/products/{product}"),
                Some(&m.access),
                change,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
    }
    add(&app, &c, &mat, 3).await;

    let path = format!("/api/v1/orders/{id}/buy-again");
    let (status, first) = app.post(&path, Some(&c.access), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["added"], json!([{"product_id": mat, "quantity": 3}]));
    assert_eq!(first["skipped"][0]["product_id"], json!(strap));
    assert_eq!(first["skipped"][0]["code"], "product_unavailable");
    let items = &first["cart"]["items"];
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(
        (&items[0]["quantity"], &items[0]["unit_price"]),
        (&json!(3), &json!(90_000))
    );
    let (_, second) = app.post(&path, Some(&c.access), json!({})).await;
    assert_eq!(
        second["cart"], first["cart"],
        "a second time changes nothing"
    );

    // With an emptied cart the ordered quantity comes back.
    let (status, _) = app.delete("/api/v1/cart/clear", Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = app.post(&path, Some(&c.access), json!({})).await;
    assert_eq!(again["cart"]["items"][0]["quantity"], 2);

    // The customer's alone: the shop's merchant may not, a stranger does
    // not see the order.
    let (status, _) = app.post(&path, Some(&m.access), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (stranger, _) = customer(&app).await;
    let (status, _) = app.post(&path, Some(&stranger.access), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, cart) = app.get("/api/v1/cart", Some(&m.access)).await;
    assert_eq!(cart["items"], json!([]));
}

/// Order history narrows by status (returns and refunds are statuses) and
/// by creation time, newest first, page by page; a bad range is 422.
#[tokio::test]
async fn order_history_filters_by_status_and_time() {
    let app = spawn_app_with(fast).await;
    let (m, _, mat) = shop_with_product(&app, 10_000, 20).await;
    let (c, home) = customer(&app).await;
    let mut orders = Vec::new();
    for _ in 0..4 {
        add(&app, &c, &mat, 1).await;
        let (status, placed) = checkout(&app, &c, &home, "cod", None).await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        let o = placed["orders"][0].clone();
        orders.push((
            o["id"].as_str().unwrap().to_owned(),
            o["created_at"].as_str().unwrap().to_owned(),
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The merchant cancels the oldest and the third.
    for k in [0, 2] {
        let (status, body) = app
            .put(
                &format!("/api/v1/orders/{}/cancel", orders[k].0),
                Some(&m.access),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |k: usize| orders[k].0.clone();
    let (_, all) = app.get("/api/v1/orders", Some(&c.access)).await;
    assert_eq!(ids(&all), [id(3), id(2), id(1), id(0)]);
    let (_, cancelled) = app
        .get("/api/v1/orders?status=cancelled", Some(&c.access))
        .await;
    assert_eq!(ids(&cancelled), [id(2), id(0)]);
    // Page by page, one at a time, the cursor goes on until null.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..4 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orders?status=cancelled&limit=1&cursor={c}"),
            None => "/api/v1/orders?status=cancelled&limit=1".into(),
        };
        let (status, page) = app.get(&path, Some(&c.access)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, [id(2), id(0)]);
    assert!(cursor.is_none(), "the last page says so");
    // [from, to): from the second's creation, before the fourth's.
    let enc = |t: &str| t.replace('+', "%2B").replace(':', "%3A");
    let path = format!(
        "/api/v1/orders?from={}&to={}",
        enc(&orders[1].1),
        enc(&orders[3].1)
    );
    let (status, range) = app.get(&path, Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK, "{range}");
    assert_eq!(ids(&range), [id(2), id(1)]);
    let path = format!(
        "/api/v1/orders?from={}&to={}&status=cancelled",
        enc(&orders[1].1),
        enc(&orders[3].1)
    );
    assert_eq!(ids(&app.get(&path, Some(&c.access)).await.1), [id(2)]);
    let backwards = format!(
        "/api/v1/orders?from={}&to={}",
        enc(&orders[3].1),
        enc(&orders[1].1)
    );
    assert_eq!(
        app.get(&backwards, Some(&c.access)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/api/v1/orders?status=lost", Some(&c.access))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

/// #37: the cart shows shipping per shop before checkout, quoted to the
/// owner's default address; a shop beyond its delivery area is quoted
/// without shipping and says why (`out_of_delivery_area`, what checking out
/// there answers) instead of the whole cart answering 409.
#[tokio::test]
async fn the_cart_quotes_shipping_per_shop_to_the_default_address() {
    let app = spawn_app_with(fast).await;
    let (_, _, near) = shop_with_product(&app, 100_000, 10).await;
    // A second shop in Ho Chi Minh City, about 1,100 km from Hanoi.
    let m = app.user("merchant").await;
    let (_, far_shop) = app
        .post(
            "/api/v1/shops",
            Some(&m.access),
            json!({"name": "Saigon Shop", "location": {"lat": 10.78, "lng": 106.7}, "address": "1 Le Loi"}),
        )
        .await;
    let far_shop = far_shop["id"].as_str().unwrap().to_owned();
    let (status, far) = app
        .post(
            &format!("/api/v1/shops/{far_shop}/products"),
            Some(&m.access),
            product_body("Ao dai", "fashion", 50_000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let far = far["id"].as_str().unwrap().to_owned();

    // Without an address nothing is quoted for shipping.
    let c = app.user("customer").await;
    let cart = add(&app, &c, &near, 1).await;
    assert_eq!(cart["address_id"], Value::Null);
    assert_eq!(cart["totals"]["shipping_fee"], 0, "{cart}");
    // With a default address every cart answer quotes it.
    let (status, home) = app
        .post("/api/v1/users/addresses", Some(&c.access), json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": 21.045, "lng": 105.85}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(cart["address_id"], home["id"]);
    let shipping = cart["shops"][0]["totals"]["shipping_fee"].as_u64().unwrap();
    assert!(shipping > 0, "{cart}");
    assert_eq!(cart["shops"][0]["shipping_problem"], Value::Null);
    // Exactly what the explicit total and the checkout charge.
    let (_, total) = app
        .get("/api/v1/cart/calculate-total", Some(&c.access))
        .await;
    assert_eq!(total["totals"], cart["totals"]);

    // A shop beyond the area: its line is quoted without shipping, with
    // the reason, and the near shop's quote is unchanged.
    let cart = add(&app, &c, &far, 1).await;
    let shops = cart["shops"].as_array().unwrap();
    let quote = |id: &str| shops.iter().find(|s| s["shop_id"] == id).unwrap().clone();
    let far_quote = quote(&far_shop);
    assert_eq!(
        far_quote["shipping_problem"]["code"], "out_of_delivery_area",
        "{cart}"
    );
    assert_eq!(far_quote["totals"]["shipping_fee"], 0);
    assert!(far_quote["distance_km"].as_f64().unwrap() > 1_000.0);
    assert_eq!(cart["totals"]["shipping_fee"].as_u64(), Some(shipping));
    // The explicit total and the checkout refuse it, as before.
    let (status, body) = app
        .get("/api/v1/cart/calculate-total", Some(&c.access))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "out_of_delivery_area")
    );
    let (status, body) = checkout(&app, &c, home["id"].as_str().unwrap(), "cod", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "out_of_delivery_area")
    );
    // Removing it leaves a cart that checks out at the quoted total.
    let (status, cart) = app
        .delete(&format!("/api/v1/cart/items/{far}"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    let (status, placed) = checkout(&app, &c, home["id"].as_str().unwrap(), "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["orders"][0]["totals"], cart["totals"], "{placed}");
}

/// The one pricing function's breakdown: a shop's coupon is shared among
/// its lines in proportion to what each costs, the tax likewise, and the
/// cart and the order show the same lines adding up to the totals.
#[tokio::test]
async fn a_coupon_and_the_tax_are_shared_among_lines_and_the_order_keeps_each_lines_price() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.tax_rate_bps = 1_000;
    })
    .await;
    let (m, shop, mat) = shop_with_product(&app, 300_000, 5).await;
    let mut body = product_body("Yoga Strap", "yoga", 100_000);
    body["stock"] = json!(5);
    let (status, strap) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{strap}");
    let strap = strap["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/shops/{shop}/coupons"),
            Some(&m.access),
            json!({"code": "FORTY", "kind": "fixed", "value": 40_000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (c, address) = customer(&app).await;
    add(&app, &c, &mat, 1).await;
    add(&app, &c, &strap, 1).await;
    let (status, cart) = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c.access),
            json!({"code": "FORTY"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    let by_product = |lines: &Value| -> Vec<(String, u64, u64, u64)> {
        let mut v: Vec<_> = lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let n = |k: &str| l[k].as_u64().unwrap();
                (
                    l["product_id"].as_str().unwrap().to_owned(),
                    n("discount"),
                    n("tax"),
                    n("total"),
                )
            })
            .collect();
        v.sort_by_key(|l| std::cmp::Reverse(l.1));
        v
    };
    // 300,000 and 100,000: the 40,000 off is 30,000 and 10,000; 10 % tax
    // on what is left, 27,000 and 9,000.
    let want = vec![
        (mat.clone(), 30_000, 27_000, 297_000),
        (strap.clone(), 10_000, 9_000, 99_000),
    ];
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(by_product(&cart["shops"][0]["lines"]), want, "{cart}");
    let totals = &cart["shops"][0]["totals"];
    assert_eq!(
        (totals["discount"].as_u64(), totals["tax"].as_u64()),
        (Some(40_000), Some(36_000))
    );
    let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let o = &placed["orders"][0];
    assert_eq!(by_product(&o["line_prices"]), want, "{o}");
    let lines_total: u64 = want.iter().map(|l| l.3).sum();
    assert_eq!(
        o["totals"]["total"].as_u64(),
        Some(lines_total + o["totals"]["shipping_fee"].as_u64().unwrap())
    );
}

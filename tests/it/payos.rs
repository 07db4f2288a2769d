//! The PayOS provider against a local stand-in for PayOS's API, which
//! checks Surge's credentials and request signatures the way PayOS does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use surge::payments::signature::payos_sign;

use crate::helpers::*;

const CHECKSUM: &str = "payos-checksum-key";

#[derive(Default)]
struct Fake {
    /// orderCode → (amount, status)
    links: HashMap<i64, (u64, &'static str)>,
    bad_requests: usize,
    /// Payment-link requests received (valid ones).
    creates: usize,
    /// The request (by `creates` count, from 0) answered 503 instead.
    fail_at: Option<usize>,
}

type Shared = Arc<Mutex<Fake>>;

fn signed(data: Value) -> Json<Value> {
    let map = data.as_object().unwrap().clone();
    Json(
        json!({"code": "00", "desc": "success", "data": data, "signature": payos_sign(CHECKSUM.as_bytes(), &map)}),
    )
}

async fn create(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut signed_fields = Map::new();
    for k in [
        "amount",
        "cancelUrl",
        "description",
        "orderCode",
        "returnUrl",
    ] {
        signed_fields.insert(k.into(), body[k].clone());
    }
    let credentials_ok =
        headers["x-client-id"] == "client-1" && headers["x-api-key"] == "api-key-1";
    let signature_ok = body["signature"].as_str()
        == Some(payos_sign(CHECKSUM.as_bytes(), &signed_fields).as_str());
    if !credentials_ok || !signature_ok {
        fake.lock().unwrap().bad_requests += 1;
        return Json(
            json!({"code": "20", "desc": "invalid signature or credentials", "data": null}),
        )
        .into_response();
    }
    {
        let mut f = fake.lock().unwrap();
        let n = f.creates;
        f.creates += 1;
        if f.fail_at == Some(n) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let code = body["orderCode"].as_i64().unwrap();
    let amount = body["amount"].as_u64().unwrap();
    fake.lock().unwrap().links.insert(code, (amount, "PENDING"));
    signed(
        json!({"orderCode": code, "amount": amount, "status": "PENDING", "paymentLinkId": format!("plink{code}"),
                  "checkoutUrl": format!("https://pay.payos.vn/web/plink{code}")}),
    )
    .into_response()
}

async fn status(State(fake): State<Shared>, Path(code): Path<i64>) -> Json<Value> {
    let (amount, status) = fake.lock().unwrap().links[&code];
    let paid = if status == "PAID" { amount } else { 0 };
    signed(json!({"orderCode": code, "amount": amount, "amountPaid": paid, "status": status}))
}

/// PayOS closes a pending link; a paid one it refuses to.
async fn cancel(State(fake): State<Shared>, Path(code): Path<i64>) -> Json<Value> {
    let mut f = fake.lock().unwrap();
    let link = f.links.get_mut(&code).unwrap();
    match link.1 {
        "PENDING" | "CANCELLED" => {
            link.1 = "CANCELLED";
            let amount = link.0;
            drop(f);
            signed(json!({"orderCode": code, "amount": amount, "status": "CANCELLED"}))
        }
        _ => Json(json!({"code": "101", "desc": "the payment link is paid", "data": null})),
    }
}

async fn fake_payos() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/v2/payment-requests", post(create))
        .route("/v2/payment-requests/{code}", get(status))
        .route("/v2/payment-requests/{code}/cancel", post(cancel))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

/// PayOS as the only provider, at the fake's `url`.
fn on_payos(s: &mut surge::config::Settings, url: &str) {
    s.payos_client_id = Some("client-1".into());
    s.payos_api_key = Some("api-key-1".into());
    s.payos_checksum_key = Some(CHECKSUM.into());
    s.payos_base_url = url.to_owned();
    s.payment_providers = vec!["payos".into()];
}

fn webhook(code: i64, amount: u64, tx: &str, key: &str) -> Value {
    let data = json!({"orderCode": code, "amount": amount, "description": "SURGE", "accountNumber": "123", "reference": tx,
                      "transactionDateTime": "2026-11-21 12:00:00", "currency": "VND", "paymentLinkId": format!("plink{code}"),
                      "code": "00", "desc": "success", "counterAccountBankId": null});
    let sig = payos_sign(key.as_bytes(), data.as_object().unwrap());
    json!({"code": "00", "desc": "success", "success": true, "data": data, "signature": sig})
}

async fn wait_status(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, o) = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        if o["status"] == want {
            return o;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "order never became {want}: {o}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn payos_links_webhooks_status_queries_and_manual_refunds() {
    let (payos_url, fake) = fake_payos().await;
    let app = spawn_app_with(|s| {
        on_payos(s, &payos_url);
        s.payment_timeout_secs = 1;
        s.timer_interval_ms = 50;
    })
    .await;
    let m = app.user("merchant").await;
    let (_, shop) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    let (_, product) = app
        .post(
            &format!("/api/v1/shops/{}/products", shop["id"].as_str().unwrap()),
            Some(&m.access),
            product_body("Mat", "yoga", 99_000),
        )
        .await;
    let product = product["id"].as_str().unwrap().to_owned();
    let c = app.user("customer").await;
    let (_, address) = app
        .post(
            "/api/v1/users/addresses",
            Some(&c.access),
            json!({"label": "home", "line1": "1", "city": "Hanoi", "lat": 21.04, "lng": 105.85}),
        )
        .await;
    let address = address["id"].as_str().unwrap().to_owned();
    let buy = || async {
        app.post(
            "/api/v1/cart/items",
            Some(&c.access),
            json!({"product_id": product, "quantity": 1}),
        )
        .await;
        let (status, placed) = app
            .post(
                "/api/v1/orders",
                Some(&c.access),
                json!({"address_id": address, "payment_method": "payos"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        placed["orders"][0].clone()
    };

    // 1. A payment link is opened at PayOS with a valid signature.
    let first = buy().await;
    let id = first["id"].as_str().unwrap().to_owned();
    let code: i64 = first["payment"]["reference"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let total = first["totals"]["total"].as_u64().unwrap();
    assert_eq!(
        first["payment"]["checkout_url"],
        format!("https://pay.payos.vn/web/plink{code}")
    );
    assert_eq!(fake.lock().unwrap().links[&code], (total, "PENDING"));
    assert_eq!(fake.lock().unwrap().bad_requests, 0);

    // 2. Webhooks: forged → 401; genuine → paid; replay → duplicate;
    //    a correctly signed event about an unknown payment (PayOS's test
    //    event) → 200 ignored.
    let post = |body: Value| {
        app.client
            .post(format!("{}/api/v1/payments/payos/webhook", app.base))
            .json(&body)
            .send()
    };
    assert_eq!(
        post(webhook(code, total, "TX1", "wrong-key"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let ok: Value = post(webhook(code, total, "TX1", CHECKSUM))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ok["status"].as_str(), ok["order_status"].as_str()),
        (Some("processed"), Some("paid"))
    );
    let again: Value = post(webhook(code, total, "TX1", CHECKSUM))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "duplicate");
    let test_event: Value = post(webhook(123, 2000, "TEST", CHECKSUM))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test_event["status"], "ignored");

    // 3. Cancelled after paying: PayOS has no refund API, so the refund is
    //    marked due for the merchant instead of pretending.
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&c.access),
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    loop {
        let (_, o) = app
            .get(&format!("/api/v1/orders/{id}"), Some(&c.access))
            .await;
        if o["payment"]["status"] == "refund_due" {
            assert_eq!(o["stock"], "released");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 4. Paid at PayOS but the webhook never came: at the deadline Surge
    //    asks PayOS and marks the order paid.
    let second = buy().await;
    let code2: i64 = second["payment"]["reference"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    fake.lock().unwrap().links.get_mut(&code2).unwrap().1 = "PAID";
    wait_status(&app, &c.access, second["id"].as_str().unwrap(), "paid").await;

    // 5. Never paid: cancelled at the deadline, its link closed at PayOS.
    let third = buy().await;
    wait_status(&app, &c.access, third["id"].as_str().unwrap(), "cancelled").await;
    let code3: i64 = third["payment"]["reference"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(fake.lock().unwrap().links[&code3].1, "CANCELLED");

    // Only the configured providers exist: no sandbox (its pay page would
    // let anyone mark an order paid) and no cash on delivery here.
    app.post(
        "/api/v1/cart/items",
        Some(&c.access),
        json!({"product_id": product, "quantity": 1}),
    )
    .await;
    for method in ["sandbox", "cod"] {
        let (status, body) = app
            .post(
                "/api/v1/orders",
                Some(&c.access),
                json!({"address_id": address, "payment_method": method}),
            )
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{method}"
        );
    }
    let pay = app
        .client
        .post(format!(
            "{}/payments/sandbox/{id}/00000000000000000000000000000000/pay",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.client
            .get(format!(
                "{}/payments/sandbox/{id}/00000000000000000000000000000000",
                app.base
            ))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// A checkout of two shops' goods whose payment link cannot be opened
/// (PayOS answering 503) ends with an unknown outcome and places nothing.
/// The retry under the same key resumes that checkout with the orders it
/// planned: the customer has exactly the two orders the retry answers,
/// paid by one link, not a cancelled one beside two new ones.
#[tokio::test]
async fn a_checkout_retried_after_a_provider_outage_resumes_its_orders() {
    let (payos_url, fake) = fake_payos().await;
    let app = spawn_app_with(|s| on_payos(s, &payos_url)).await;
    let (_, _, mat) = shop_with_product(&app, 99_000, 5).await;
    let (_, _, block) = shop_with_product(&app, 49_000, 5).await;
    let (c, address) = crate::commerce::customer(&app).await;
    for product in [&mat, &block] {
        crate::commerce::add(&app, &c, product, 1).await;
    }
    fake.lock().unwrap().fail_at = Some(0);
    let body = json!({"address_id": address, "payment_method": "payos"});
    let (status, failed) =
        crate::hardening::post_keyed(&app, &c.access, "/api/v1/orders", "co-1", body.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    let (_, mine) = app.get("/api/v1/orders", Some(&c.access)).await;
    assert_eq!(
        mine["items"],
        json!([]),
        "nothing placed without a payment link"
    );
    let (status, placed) =
        crate::hardening::post_keyed(&app, &c.access, "/api/v1/orders", "co-1", body).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let mut answered: Vec<&str> = placed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    answered.sort();
    let (_, mine) = app.get("/api/v1/orders", Some(&c.access)).await;
    let mut listed: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, answered, "the customer's orders are the retry's");
    assert_eq!(listed.len(), 2);
    let url = &placed["payment"]["checkout_url"];
    assert!(mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "pending_payment" && o["payment"]["checkout_url"] == *url));
    assert_eq!(
        fake.lock().unwrap().creates,
        2,
        "the link refused, then one for both orders"
    );
}

//! Returns over HTTP: a part of one line's quantity with a reason and
//! photos, refunded its share only (the gateway refunds that much); bad
//! asks change nothing; the merchant refuses with a reason, the customer
//! cannot ask again, and the shop is paid at the window's end.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::checkout_payment::refunded_at_gateway;
use crate::commerce::{add, checkout, customer, fast, order, wait_for};
use crate::helpers::*;

/// A shop with a 100,000 mat (5 in stock) and a 30,000 strap; a customer
/// who bought 3 mats and a strap online, paid and delivered: (merchant,
/// customer, mat, order, the payment page).
async fn delivered(app: &TestApp) -> (Session, Session, String, Value, String) {
    let (m, shop, mat) = shop_with_product(app, 100_000, 5).await;
    let (status, strap) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body("Strap", "yoga", 30_000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{strap}");
    let (c, address) = customer(app).await;
    add(app, &c, &mat, 3).await;
    add(app, &c, strap["id"].as_str().unwrap(), 1).await;
    let (status, placed) = checkout(app, &c, &address, "sandbox", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let o = placed["orders"][0].clone();
    let id = o["id"].as_str().unwrap().to_owned();
    let url = o["payment"]["checkout_url"].as_str().unwrap().to_owned();
    app.client.post(format!("{url}/pay")).send().await.unwrap();
    wait_for(app, &c.access, &id, "payment", |o| o["status"] == "paid").await;
    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for s in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
        let (status, body) = app
            .put(
                &format!("/api/v1/shipping/{id}/status"),
                Some(&m.access),
                json!({"status": s}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let o = order(app, &c.access, &id).await;
    (m, c, mat, o, url)
}

async fn ask(app: &TestApp, c: &Session, id: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/orders/{id}/return"),
        Some(&c.access),
        body,
    )
    .await
}

#[tokio::test]
async fn a_partial_return_of_one_lines_quantity_refunds_that_share_only() {
    let app = spawn_app_with(fast).await;
    let (m, c, mat, o, url) = delivered(&app).await;
    let id = o["id"].as_str().unwrap().to_owned();
    // A photo of the goods through the media pipeline: the order's parties
    // see it, nobody else.
    let (status, with_photo) = crate::media::upload(
        &app,
        &c.access,
        &format!("/api/v1/orders/{id}/return/photos"),
        &crate::media::jpeg(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{with_photo}");
    let photo = with_photo["return_photos"][0].as_str().unwrap().to_owned();
    let (status, _) = crate::media::upload(
        &app,
        &m.access,
        &format!("/api/v1/orders/{id}/return/photos"),
        &crate::media::jpeg(64, 48),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the customer adds photos"
    );
    for (who, seen) in [
        (Some(&m.access), true),
        (Some(&c.access), true),
        (None, false),
    ] {
        let r = app
            .client
            .get(format!("{}{photo}", app.base))
            .bearer_auth(who.map(String::as_str).unwrap_or(""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().is_success(), seen, "{photo}: {}", r.status());
    }
    let stranger = app.user("customer").await;
    let r = app
        .client
        .get(format!("{}{photo}", app.base))
        .bearer_auth(&stranger.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Asks that cannot be: each refused, the order as it was.
    let strap = o["lines"][1]["product_id"].as_str().unwrap().to_owned();
    for (body, status) in [
        (
            json!({"lines": [{"product_id": mat, "quantity": 4}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"lines": [{"product_id": mat, "quantity": 0}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"lines": [{"product_id": "nope", "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"lines": []}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"lines": [{"product_id": mat, "quantity": 1}, {"product_id": mat, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"reason": "x".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"photos": [photo]}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (got, body) = ask(&app, &c, &id, body).await;
        assert_eq!(got, status, "{body}");
        let now = order(&app, &c.access, &id).await;
        assert_eq!(
            (now["status"].as_str(), &now["return_request"]),
            (Some("delivered"), &Value::Null)
        );
    }
    let (status, _) = ask(&app, &m, &id, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the merchant does not ask");

    // One mat of three: its share of the mats' line, not the strap, not
    // shipping.
    let (status, asked) = ask(
        &app,
        &c,
        &id,
        json!({"lines": [{"product_id": mat, "quantity": 1}], "reason": "one arrived torn"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    let r = &asked["return_request"];
    let mats = o["line_prices"][0]["total"].as_u64().unwrap();
    assert_eq!(r["amount"].as_u64().unwrap(), mats / 3);
    assert_eq!(r["whole"], false);
    assert_eq!(r["photos"], json!([photo]));
    assert_eq!(r["reason"], "one arrived torn");
    assert_eq!(asked["status"], "return_requested");
    // No more photos once asked.
    let (status, _) = crate::media::upload(
        &app,
        &c.access,
        &format!("/api/v1/orders/{id}/return/photos"),
        &crate::media::jpeg(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let _ = strap;

    // Received: that much is refunded at the gateway; the rest is the shop's.
    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{id}/return/receive"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = wait_for(&app, &c.access, &id, "the refund", |o| {
        o["status"] == "refunded"
    })
    .await;
    assert_eq!(done["refunded"].as_u64().unwrap(), mats / 3);
    assert_eq!(done["escrow"], "released", "the rest is the shop's");
    assert_eq!(refunded_at_gateway(&app, &url).await, mats / 3);
}

#[tokio::test]
async fn a_refused_return_says_why_cannot_be_asked_again_and_the_shop_is_paid() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.return_window_secs = 3;
    })
    .await;
    let (m, c, _, o, _) = delivered(&app).await;
    let id = o["id"].as_str().unwrap().to_owned();
    let (status, asked) = ask(&app, &c, &id, json!({"reason": "changed my mind"})).await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["return_request"]["whole"], true);
    assert_eq!(asked["return_request"]["amount"], o["totals"]["total"]);
    let refuse = |token: String, body: Value| {
        let (app, id) = (&app, &id);
        async move {
            app.put(
                &format!("/api/v1/orders/{id}/return/refuse"),
                Some(&token),
                body,
            )
            .await
        }
    };
    let (status, _) = refuse(c.access.clone(), json!({"reason": "no"})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the customer does not decide"
    );
    let (status, body) = refuse(m.access.clone(), json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a refusal says why: {body}"
    );
    assert_eq!(
        order(&app, &c.access, &id).await["status"],
        "return_requested"
    );
    let (status, refused) = refuse(m.access.clone(), json!({"reason": "used, not as sold"})).await;
    assert_eq!(status, StatusCode::OK, "{refused}");
    assert_eq!(refused["status"], "delivered");
    assert_eq!(refused["return_request"]["refused"], "used, not as sold");
    let last = refused["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["event"].as_str(), last["reason"].as_str()),
        (Some("return_refused"), Some("used, not as sold"))
    );
    let (status, body) = ask(&app, &c, &id, json!({})).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "return_already_requested")
    );
    // The customer is told why; the shop is paid at the window's end.
    let (_, notes) = app.get("/api/v1/notifications", Some(&c.access)).await;
    assert!(
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "return_refused"),
        "{notes}"
    );
    let paid = wait_for(&app, &c.access, &id, "the payout", |o| {
        o["escrow"] == "released"
    })
    .await;
    assert_eq!(paid["payment"]["status"], "paid", "nothing refunded");
}

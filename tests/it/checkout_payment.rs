//! One payment per checkout: a checkout over several shops is paid once
//! (one link, one provider payment of the total), split into each order's
//! escrow, refunded order by order; a declined or abandoned payment is paid
//! again from a fresh link until the deadline, after which nothing can be
//! paid and everything held goes back.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::commerce::{add, checkout, customer, order, stock, wait_for};
use crate::helpers::*;

/// Two shops, one product each (100,000 and 50,000, 5 in stock), in one
/// customer's cart: (customer, address, [(merchant, product)]).
async fn two_shop_cart(app: &TestApp) -> (Session, String, Vec<(Session, String)>) {
    let (c, address) = customer(app).await;
    let mut shops = Vec::new();
    for price in [100_000, 50_000] {
        let (m, _, product) = shop_with_product(app, price, 5).await;
        add(app, &c, &product, 1).await;
        shops.push((m, product));
    }
    (c, address, shops)
}

/// Posts to a sandbox payment page's `action` (`pay` or `fail`): the
/// status and the answer.
async fn settle(app: &TestApp, url: &str, action: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .post(format!("{url}/{action}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

/// What the sandbox gateway says it refunded of the payment at `url`.
pub(crate) async fn refunded_at_gateway(app: &TestApp, url: &str) -> u64 {
    let page = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, rest) = page
        .split_once("id=refunded>")
        .expect("the page names the refunded amount");
    rest.split('<').next().unwrap().parse().unwrap()
}

async fn pay_again(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/checkouts/{id}/pay"),
        Some(token),
        json!({}),
    )
    .await
}

fn ids(placed: &Value) -> Vec<String> {
    placed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_two_shop_checkout_is_paid_once_split_into_two_escrows_and_refunded_by_order() {
    a_two_shop_checkout_is_paid_once_split_into_two_escrows_and_refunded_by_order_on(
        spawn_app_with(crate::commerce::fast).await,
    )
    .await;
}

/// Also run on PostgreSQL and ScyllaDB (`payment_flows`).
pub(crate) async fn a_two_shop_checkout_is_paid_once_split_into_two_escrows_and_refunded_by_order_on(
    app: TestApp,
) {
    let (c, address, shops) = two_shop_cart(&app).await;
    let (status, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let orders = placed["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2, "one order per shop");
    let payment = &placed["payment"];
    let id = payment["id"].as_str().unwrap().to_owned();
    let url = payment["checkout_url"].as_str().unwrap().to_owned();
    let totals: Vec<u64> = orders
        .iter()
        .map(|o| o["totals"]["total"].as_u64().unwrap())
        .collect();
    assert_eq!(
        payment["amount"].as_u64(),
        Some(totals.iter().sum()),
        "{payment}"
    );
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["attempt"], 0);
    let mut listed: Vec<String> = serde_json::from_value(payment["orders"].clone()).unwrap();
    let mut placed_ids = ids(&placed);
    listed.sort();
    placed_ids.sort();
    assert_eq!(listed, placed_ids);
    for (o, total) in orders.iter().zip(&totals) {
        assert_eq!(
            o["payment"]["checkout_url"],
            url.as_str(),
            "one link for every order"
        );
        assert_eq!(
            o["payment"]["amount"].as_u64(),
            Some(*total),
            "each order's share is its total"
        );
        assert_eq!(o["payment"]["session"]["id"], id.as_str());
        assert_eq!(o["payment"]["session"]["total"], payment["amount"]);
    }
    // The checkout is its customer's: anyone else is told it does not exist.
    let (status, seen) = app
        .get(&format!("/api/v1/checkouts/{id}"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["checkout_url"], url.as_str());
    for other in [&shops[0].0, &app.user("customer").await] {
        let path = format!("/api/v1/checkouts/{id}");
        assert_eq!(
            app.get(&path, Some(&other.access)).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            pay_again(&app, &other.access, &id).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        app.get("/api/v1/checkouts/pay_nothing", Some(&c.access))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Paid once, at the one link: both orders are paid, each holding its
    // own share in escrow.
    let (status, paid) = settle(&app, &url, "pay").await;
    assert_eq!(
        (status, &paid["webhook_status"]),
        (StatusCode::OK, &json!(200)),
        "{paid}"
    );
    for (oid, total) in ids(&placed).iter().zip(&totals) {
        let o = wait_for(&app, &c.access, oid, "paid", |o| {
            o["status"] != "pending_payment"
        })
        .await;
        assert_eq!(
            (
                o["status"].as_str(),
                o["escrow"].as_str(),
                o["payment"]["status"].as_str()
            ),
            (Some("paid"), Some("held"), Some("paid")),
            "{o}"
        );
        assert_eq!(o["payment"]["amount"].as_u64(), Some(*total));
    }
    assert_eq!(
        pay_again(&app, &c.access, &id).await.1["error"]["code"],
        "already_paid"
    );

    // The first order is cancelled: only its share goes back, at the
    // gateway too; the other order stays paid.
    let first = ids(&placed)[0].clone();
    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{first}/cancel"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let o = wait_for(&app, &c.access, &first, "the refund", |o| {
        o["payment"]["status"] == "refunded"
    })
    .await;
    assert_eq!(o["escrow"], "refunded");
    assert_eq!(refunded_at_gateway(&app, &url).await, totals[0]);
    let second = order(&app, &c.access, &ids(&placed)[1]).await;
    assert_eq!(
        (second["status"].as_str(), second["escrow"].as_str()),
        (Some("paid"), Some("held")),
        "{second}"
    );
    assert_eq!(
        stock(&app, &shops[0].1).await,
        5,
        "the cancelled order's stock went back"
    );
    assert_eq!(
        stock(&app, &shops[1].1).await,
        4,
        "the paid order's stays held"
    );
}

#[tokio::test]
async fn a_declined_or_abandoned_payment_is_paid_again_from_a_fresh_link() {
    a_declined_or_abandoned_payment_is_paid_again_from_a_fresh_link_on(
        spawn_app_with(crate::commerce::fast).await,
    )
    .await;
}

/// Also run on PostgreSQL and ScyllaDB (`payment_flows`).
pub(crate) async fn a_declined_or_abandoned_payment_is_paid_again_from_a_fresh_link_on(
    app: TestApp,
) {
    let (c, address, _) = two_shop_cart(&app).await;
    let (status, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let id = placed["payment"]["id"].as_str().unwrap().to_owned();
    let first_url = placed["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let orders = ids(&placed);

    // Abandoned: the page was closed. A new link replaces it, and the old
    // one no longer takes a payment.
    let (status, again) = pay_again(&app, &c.access, &id).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["attempt"].as_u64(), again["status"].as_str()),
        (Some(1), Some("pending"))
    );
    let second_url = again["checkout_url"].as_str().unwrap().to_owned();
    assert_ne!(second_url, first_url);
    assert_eq!(
        again["amount"], placed["payment"]["amount"],
        "the same total"
    );
    let (status, refused) = settle(&app, &first_url, "pay").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the replaced link cannot be paid: {refused}"
    );
    for oid in &orders {
        let o = order(&app, &c.access, oid).await;
        assert_eq!(o["payment"]["checkout_url"], second_url.as_str());
        assert_eq!(o["status"], "pending_payment");
    }

    // Declined: the orders wait, their payment says so, and it can be paid again.
    let (status, declined) = settle(&app, &second_url, "fail").await;
    assert_eq!(
        (status, &declined["webhook_status"]),
        (StatusCode::OK, &json!(200)),
        "{declined}"
    );
    for oid in &orders {
        let o = order(&app, &c.access, oid).await;
        assert_eq!(
            (o["status"].as_str(), o["payment"]["status"].as_str()),
            (Some("pending_payment"), Some("declined")),
            "{o}"
        );
    }
    assert_eq!(
        app.get(&format!("/api/v1/checkouts/{id}"), Some(&c.access))
            .await
            .1["status"],
        "declined"
    );
    let (status, third) = pay_again(&app, &c.access, &id).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(
        (third["attempt"].as_u64(), third["status"].as_str()),
        (Some(2), Some("pending"))
    );
    assert_eq!(third["attempts_left"], 7);
    let url = third["checkout_url"].as_str().unwrap();
    let (status, paid) = settle(&app, url, "pay").await;
    assert_eq!(
        (status, &paid["webhook_status"]),
        (StatusCode::OK, &json!(200)),
        "{paid}"
    );
    for oid in &orders {
        let o = wait_for(&app, &c.access, oid, "paid", |o| {
            o["status"] != "pending_payment"
        })
        .await;
        assert_eq!(
            (o["status"].as_str(), o["escrow"].as_str()),
            (Some("paid"), Some("held")),
            "{o}"
        );
    }
    let (status, body) = pay_again(&app, &c.access, &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_paid"))
    );
}

#[tokio::test]
async fn a_checkout_past_its_deadline_cannot_be_paid_and_gives_back_what_it_held() {
    let app = spawn_app_with(|s| {
        crate::commerce::fast(s);
        s.payment_timeout_secs = 1;
    })
    .await;
    let (c, address, shops) = two_shop_cart(&app).await;
    let (m, _) = &shops[0];
    let shop = app
        .get(&format!("/api/v1/products/{}", shops[0].1), None)
        .await
        .1["shop_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, coupon) = app
        .post(
            &format!("/api/v1/shops/{shop}/coupons"),
            Some(&m.access),
            json!({"code": "ONCEONLY", "kind": "fixed", "value": 10_000, "global_limit": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");
    let (status, cart) = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c.access),
            json!({"code": "ONCEONLY"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    let (status, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let id = placed["payment"]["id"].as_str().unwrap().to_owned();
    let url = placed["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get("/api/v1/coupons/ONCEONLY", None).await.1["used"], 1);
    for (_, product) in &shops {
        assert_eq!(
            stock(&app, product).await,
            4,
            "held while the checkout is open"
        );
    }
    for oid in ids(&placed) {
        let o = wait_for(&app, &c.access, &oid, "the deadline", |o| {
            o["status"] == "cancelled" && o["stock"] == "released"
        })
        .await;
        assert_eq!(o["payment"]["status"], "voided", "{o}");
    }
    let (status, body) = pay_again(&app, &c.access, &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("checkout_expired")),
        "{body}"
    );
    let (status, _) = settle(&app, &url, "pay").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the link closed at the deadline"
    );
    for (_, product) in &shops {
        assert_eq!(stock(&app, product).await, 5, "the stock went back");
    }
    assert_eq!(
        app.get("/api/v1/coupons/ONCEONLY", None).await.1["used"],
        0,
        "the coupon use went back"
    );
    assert_eq!(
        app.get(&format!("/api/v1/checkouts/{id}"), Some(&c.access))
            .await
            .1["status"],
        "voided"
    );
}

#[tokio::test]
async fn a_webhook_for_another_amount_than_the_checkouts_total_changes_no_order() {
    let app = spawn_app_with(crate::commerce::fast).await;
    let (c, address, _) = two_shop_cart(&app).await;
    let (_, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    let payment = &placed["payment"];
    let reference = placed["orders"][0]["payment"]["reference"]
        .as_str()
        .unwrap();
    // One order's total is not the checkout's: nothing is paid.
    let share = placed["orders"][0]["totals"]["total"].as_u64().unwrap();
    assert_ne!(payment["amount"].as_u64(), Some(share));
    let body = json!({"id": "evt_part", "type": "payment.succeeded", "created": 0,
        "data": {"reference": reference, "amount": share, "currency": "VND"}});
    let now = chrono::Utc::now().timestamp();
    let r = crate::commerce::signed_webhook(&app, &body, now, crate::commerce::SANDBOX_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    for oid in ids(&placed) {
        let o = order(&app, &c.access, &oid).await;
        assert_eq!(
            (o["status"].as_str(), o["payment"]["status"].as_str()),
            (Some("pending_payment"), Some("pending"))
        );
    }
    let body = json!({"id": "evt_all", "type": "payment.succeeded", "created": 0,
        "data": {"reference": reference, "amount": payment["amount"], "currency": "VND"}});
    let r = crate::commerce::signed_webhook(&app, &body, now, crate::commerce::SANDBOX_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(
        outcome["order_ids"].as_array().map(Vec::len),
        Some(2),
        "{outcome}"
    );
    for oid in ids(&placed) {
        assert_eq!(order(&app, &c.access, &oid).await["status"], "paid");
    }
}

#[tokio::test]
async fn cancelling_one_order_of_an_unpaid_checkout_stops_paying_it_again_and_a_payment_anyway_refunds_that_share(
) {
    let app = spawn_app_with(crate::commerce::fast).await;
    let (c, address, _) = two_shop_cart(&app).await;
    let (_, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    let id = placed["payment"]["id"].as_str().unwrap().to_owned();
    let url = placed["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let orders = ids(&placed);
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{}/cancel", orders[0]),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = pay_again(&app, &c.access, &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("checkout_cancelled")),
        "{body}"
    );
    // Paid anyway at the open link: the other order is paid, the cancelled
    // one's share goes back.
    let (status, paid) = settle(&app, &url, "pay").await;
    assert_eq!(
        (status, &paid["webhook_status"]),
        (StatusCode::OK, &json!(200)),
        "{paid}"
    );
    let o = wait_for(&app, &c.access, &orders[0], "the refund", |o| {
        o["payment"]["status"] == "refunded"
    })
    .await;
    assert_eq!(o["status"], "cancelled");
    let share = o["payment"]["amount"].as_u64().unwrap();
    assert_eq!(refunded_at_gateway(&app, &url).await, share);
    assert_eq!(order(&app, &c.access, &orders[1]).await["status"], "paid");
}

#[tokio::test]
async fn a_checkout_is_paid_again_at_most_ten_links_in_all() {
    let app = spawn_app_with(crate::commerce::fast).await;
    let (c, address, _) = two_shop_cart(&app).await;
    let (_, placed) = checkout(&app, &c, &address, "sandbox", None).await;
    let id = placed["payment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(placed["payment"]["attempts_left"], 9);
    for attempt in 1..=9u64 {
        let (status, again) = pay_again(&app, &c.access, &id).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["attempt"].as_u64(), Some(attempt));
        assert_eq!(again["attempts_left"].as_u64(), Some(9 - attempt));
    }
    let (status, body) = pay_again(&app, &c.access, &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_attempts")),
        "{body}"
    );
    // The last link still pays the checkout.
    let (_, current) = app
        .get(&format!("/api/v1/checkouts/{id}"), Some(&c.access))
        .await;
    let (status, _) = settle(&app, current["checkout_url"].as_str().unwrap(), "pay").await;
    assert_eq!(status, StatusCode::OK);
    for oid in ids(&placed) {
        wait_for(&app, &c.access, &oid, "paid", |o| o["status"] == "paid").await;
    }
}

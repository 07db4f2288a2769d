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

/// `POST path` with `token` and `body` against a server at `base`.
async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    try_post(client, base, path, token, body)
        .await
        .expect("the server answers")
}

/// The JSON answer to `GET url` with `token`.
async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    r.json().await.unwrap()
}

/// `post`, or `None` when the server is gone (killed mid-request).
async fn try_post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> Option<(StatusCode, serde_json::Value)> {
    let r = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = r.status();
    Some((status, r.json().await.unwrap_or_default()))
}

#[tokio::test]
async fn a_sigkill_during_a_rush_on_a_split_product_loses_no_order_and_oversells_nothing() {
    use crate::lifecycle::{free_port, serve_child, wait_healthy};
    let client = crate::helpers::client_builder()
        .pool_max_idle_per_host(1000)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spawn = |port: u16| {
        serve_child(
            dir.path(),
            port,
            &[
                ("SURGE_LOG", "error"),
                ("SURGE_HASH_MEMORY_KIB", "8"),
                ("SURGE_HASH_ITERATIONS", "1"),
            ],
        )
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(port);
    wait_healthy(&client, &base).await;
    let merchant = crate::burst::users(&client, &base, 1, "merchant")
        .await
        .remove(0);
    let (status, shop) = post(&client, &base, "/api/v1/shops", &merchant, shop_body()).await;
    assert_eq!(status, StatusCode::CREATED, "{shop}");
    let mut body = product_body("Kettlebell 16 kg", "gym", 20_000);
    body["stock"] = json!(50);
    body["stock_buckets"] = json!(4);
    let path = format!("/api/v1/shops/{}/products", shop["id"].as_str().unwrap());
    let (status, p) = post(&client, &base, &path, &merchant, body).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let product = p["id"].as_str().unwrap().to_owned();
    let mut ready = Vec::new();
    for token in crate::burst::users(&client, &base, 120, "customer").await {
        let address = json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": 21.045, "lng": 105.85});
        let (status, a) = post(&client, &base, "/api/v1/users/addresses", &token, address).await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        let item = json!({"product_id": product, "quantity": 1});
        let (status, cart) = post(&client, &base, "/api/v1/cart/items", &token, item).await;
        assert_eq!(status, StatusCode::OK, "{cart}");
        ready.push((token, a["id"].as_str().unwrap().to_owned()));
    }
    // Kill after 20 acknowledged orders, inside the rush.
    let mut pending: futures::stream::FuturesUnordered<_> = ready
        .iter()
        .map(|(token, address)| {
            let body = json!({"address_id": address, "payment_method": "cod"});
            let (client, base) = (&client, &base);
            async move {
                (
                    token,
                    try_post(client, base, "/api/v1/orders", token, body).await,
                )
            }
        })
        .collect();
    let mut acknowledged = Vec::new();
    let mut killed = false;
    while let Some((token, answer)) = futures::StreamExt::next(&mut pending).await {
        let Some((status, body)) = answer else {
            assert!(killed, "no answer before the kill");
            continue;
        };
        if status == StatusCode::CREATED {
            acknowledged.push((
                token.clone(),
                body["orders"][0]["id"].as_str().unwrap().to_owned(),
            ));
        }
        if !killed && acknowledged.len() >= 20 {
            std::process::Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status()
                .unwrap();
            killed = true;
        }
    }
    assert!(killed, "the rush ended before the kill point");
    child.wait().unwrap();

    // Restart on the same data: every acknowledged order holds its unit.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(port);
    wait_healthy(&client, &base).await;
    for (token, id) in &acknowledged {
        let o = get_json(&client, &format!("{base}/api/v1/orders/{id}"), token).await;
        assert_eq!(
            o["stock"], "held",
            "acknowledged order {id} lost its unit: {o}"
        );
    }
    // Everyone tries again: never more orders holding units than the stock.
    let retries = futures::future::join_all(ready.iter().map(|(token, address)| {
        let body = json!({"address_id": address, "payment_method": "cod"});
        post(&client, &base, "/api/v1/orders", token, body)
    }))
    .await;
    let mut codes = std::collections::BTreeMap::new();
    for (status, body) in &retries {
        assert!(
            [StatusCode::CREATED, StatusCode::CONFLICT].contains(status),
            "{status}: {body}"
        );
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or("created")
            .to_owned();
        *codes.entry(code).or_insert(0) += 1;
    }
    // Checkouts cut off by the kill stay open until their deadline (60 s),
    // when the scheduler gives their holds back.
    for code in codes.keys() {
        assert!(
            [
                "created",
                "cart_empty",
                "checkout_in_progress",
                "out_of_stock"
            ]
            .contains(&code.as_str()),
            "{codes:?}"
        );
    }
    println!("after the restart: {codes:?}");
    let mut held = 0;
    for (token, _) in &ready {
        let mine = get_json(&client, &format!("{base}/api/v1/orders?limit=100"), token).await;
        held += mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["stock"] == "held")
            .count();
    }
    println!(
        "{} acknowledged before the kill, {held} orders hold a unit after",
        acknowledged.len()
    );
    assert!(held <= 50, "oversold: {held} orders hold one of 50 units");
    assert!(held >= acknowledged.len());
    child.kill().unwrap();
    child.wait().unwrap();
}

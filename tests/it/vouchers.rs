//! Vouchers over HTTP: collected into a wallet before use, one shop
//! discount per shop, one platform voucher per checkout on what the shops'
//! discounts left (or on the shipping fees, capped), the best combination
//! suggested, a platform voucher's use given back only when its whole
//! checkout is cancelled, and a race of shoppers for few units and fewer
//! voucher uses.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::commerce::{add, checkout, customer, fast, wait_for};
use crate::helpers::*;

const ADMIN: &str = "root@example.com";

pub(crate) fn with_admin(s: &mut surge::config::Settings) {
    fast(s);
    s.admin_email = Some(ADMIN.into());
    s.admin_password = Some(PASSWORD.into());
}

/// Creates a coupon or voucher of `shop_id` (`voucher` true: collected
/// before use).
async fn shop_code(app: &TestApp, m: &Session, shop_id: &str, body: Value) {
    let (status, c) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/coupons"),
            Some(&m.access),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
}

async fn platform_voucher(app: &TestApp, admin: &Session, body: Value) {
    let (status, v) = app
        .post("/api/v1/admin/vouchers", Some(&admin.access), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["scope"], "platform");
    assert_eq!(v["voucher"], true);
}

async fn collect(app: &TestApp, c: &Session, code: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/vouchers/{code}/collect"),
        Some(&c.access),
        json!({}),
    )
    .await
}

async fn apply(app: &TestApp, c: &Session, code: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/cart/vouchers",
        Some(&c.access),
        json!({"code": code}),
    )
    .await
}

/// The applied codes of a cart: (coupon, vouchers).
fn codes(cart: &Value) -> (Value, Vec<String>) {
    let vouchers = cart["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_owned())
        .collect();
    (cart["coupon"].clone(), vouchers)
}

/// The cart's quote of shop `shop_id`.
fn shop_of<'a>(cart: &'a Value, shop_id: &str) -> &'a Value {
    cart["shops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shop_id"] == shop_id)
        .unwrap_or_else(|| panic!("no quote of {shop_id}: {cart}"))
}

/// Two shops (100,000 and 50,000 per unit, 5 in stock), one unit of each
/// in a new customer's cart: (customer, address, [(merchant, shop, product)]).
async fn two_shops(app: &TestApp) -> (Session, String, Vec<(Session, String, String)>) {
    let (c, address) = customer(app).await;
    let mut shops = Vec::new();
    for price in [100_000, 50_000] {
        let (m, shop, product) = shop_with_product(app, price, 5).await;
        add(app, &c, &product, 1).await;
        shops.push((m, shop, product));
    }
    (c, address, shops)
}

/// How often `code` was used (by orders not cancelled).
async fn used(app: &TestApp, code: &str) -> u64 {
    let (_, v) = app.get(&format!("/api/v1/coupons/{code}"), None).await;
    v["used"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

async fn cancel(app: &TestApp, c: &Session, id: &str) {
    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_voucher_is_collected_into_the_wallet_before_it_is_used() {
    let app = spawn_app_with(fast).await;
    let (m, shop, product) = shop_with_product(&app, 100_000, 5).await;
    shop_code(
        &app,
        &m,
        &shop,
        json!({"code": "SHOP10", "kind": "percentage", "value": 10, "voucher": true}),
    )
    .await;
    shop_code(
        &app,
        &m,
        &shop,
        json!({"code": "PLAIN", "kind": "fixed", "value": 1000}),
    )
    .await;
    // The shop's collectible vouchers: the voucher, not the plain code.
    let (status, listed) = app
        .get(&format!("/api/v1/vouchers?shop_id={shop}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["SHOP10"]);

    let (c, _) = customer(&app).await;
    let before = add(&app, &c, &product, 1).await;
    // Not collected: refused, and the cart is as it was.
    let (status, body) = apply(&app, &c, "SHOP10").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "voucher_not_collected");
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(cart["totals"], before["totals"]);
    assert_eq!(codes(&cart).1, Vec::<String>::new());
    // A plain coupon is entered, not collected.
    let (status, body) = collect(&app, &c, "PLAIN").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "not_a_voucher")
    );
    // Collected (twice: the same), in the wallet, then applied.
    for _ in 0..2 {
        let (status, v) = collect(&app, &c, "shop10").await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (_, wallet) = app.get("/api/v1/me/vouchers", Some(&c.access)).await;
    assert_eq!(wallet["items"].as_array().unwrap().len(), 1, "{wallet}");
    assert_eq!(wallet["items"][0]["code"], "SHOP10");
    let (status, cart) = apply(&app, &c, "SHOP10").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(cart["totals"]["discount"], 10_000);
    assert_eq!(shop_of(&cart, &shop)["code"], "SHOP10");
    // Another customer's wallet is their own.
    let (other, _) = customer(&app).await;
    let (_, wallet) = app.get("/api/v1/me/vouchers", Some(&other.access)).await;
    assert_eq!(wallet["items"], json!([]));
    // A paused voucher is no longer listed, nor collected.
    app.post("/api/v1/coupons/SHOP10/pause", Some(&m.access), json!({}))
        .await;
    let (_, listed) = app
        .get(&format!("/api/v1/vouchers?shop_id={shop}"), None)
        .await;
    assert_eq!(listed["items"], json!([]));
    let (status, body) = collect(&app, &other, "SHOP10").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "coupon_paused")
    );
    // The cart that holds it shows why it gives nothing now.
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    assert_eq!(cart["totals"]["discount"], 0);
    assert_eq!(cart["voucher_problems"][0]["code"], "SHOP10");
    assert_eq!(
        cart["voucher_problems"][0]["problem"]["code"],
        "coupon_paused"
    );
}

#[tokio::test]
async fn one_shop_discount_per_shop_the_newest_replacing_the_one_before() {
    let app = spawn_app_with(fast).await;
    let (c, _, shops) = two_shops(&app).await;
    let (ma, a, _) = &shops[0];
    let (mb, b, _) = &shops[1];
    for (code, value, voucher) in [
        ("ACODE", 1_000, false),
        ("AV1", 2_000, true),
        ("AV2", 3_000, true),
    ] {
        shop_code(
            &app,
            ma,
            a,
            json!({"code": code, "kind": "fixed", "value": value, "voucher": voucher}),
        )
        .await;
    }
    shop_code(
        &app,
        mb,
        b,
        json!({"code": "BVX", "kind": "fixed", "value": 4_000, "voucher": true}),
    )
    .await;
    for code in ["AV1", "AV2", "BVX"] {
        assert_eq!(collect(&app, &c, code).await.0, StatusCode::OK);
    }
    let (status, cart) = apply(&app, &c, "ACODE").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(codes(&cart), (json!("ACODE"), vec![]));
    // A's voucher takes the place of A's coupon; B's sits beside it.
    let (_, cart) = apply(&app, &c, "AV1").await;
    assert_eq!(codes(&cart), (Value::Null, vec!["AV1".to_owned()]));
    let (_, cart) = apply(&app, &c, "BVX").await;
    assert_eq!(
        codes(&cart),
        (Value::Null, vec!["AV1".to_owned(), "BVX".to_owned()])
    );
    // A's other voucher replaces A's first.
    let (_, cart) = apply(&app, &c, "AV2").await;
    assert_eq!(
        codes(&cart),
        (Value::Null, vec!["BVX".to_owned(), "AV2".to_owned()])
    );
    assert_eq!(shop_of(&cart, a)["totals"]["discount"], 3_000);
    assert_eq!(shop_of(&cart, b)["totals"]["discount"], 4_000);
    // A's coupon, entered again, replaces A's voucher (the old endpoint too).
    let (status, cart) = app
        .post(
            "/api/v1/cart/apply-coupon",
            Some(&c.access),
            json!({"code": "ACODE"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(codes(&cart), (json!("ACODE"), vec!["BVX".to_owned()]));
    assert_eq!(cart["totals"]["discount"], 5_000);
    // Taken off; taking it off again is 404.
    let (status, cart) = app
        .delete("/api/v1/cart/vouchers/BVX", Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(codes(&cart), (json!("ACODE"), vec![]));
    let (status, _) = app
        .delete("/api/v1/cart/vouchers/BVX", Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn one_platform_voucher_per_checkout_on_what_the_shops_left_shared_among_its_orders() {
    let app = spawn_app_with(with_admin).await;
    let admin = app.login(ADMIN).await;
    let (c, address, shops) = two_shops(&app).await;
    let (ma, a, _) = &shops[0];
    let b = &shops[1].1;
    shop_code(
        &app,
        ma,
        a,
        json!({"code": "A10", "kind": "percentage", "value": 10, "voucher": true}),
    )
    .await;
    // 30,000 off from 140,000 after the shops' discounts.
    platform_voucher(
        &app,
        &admin,
        json!({"code": "MEGA30", "kind": "fixed", "value": 30_000, "min_spend": 140_000}),
    )
    .await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "MEGA5", "kind": "fixed", "value": 5_000}),
    )
    .await;
    // Only an admin issues them.
    let (status, _) = app
        .post(
            "/api/v1/admin/vouchers",
            Some(&ma.access),
            json!({"code": "MINE", "kind": "fixed", "value": 5_000}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, listed) = app.get("/api/v1/vouchers", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    for code in ["A10", "MEGA30", "MEGA5"] {
        assert_eq!(collect(&app, &c, code).await.0, StatusCode::OK);
    }
    apply(&app, &c, "A10").await;
    let (_, cart) = apply(&app, &c, "MEGA5").await;
    assert_eq!(codes(&cart).1, ["A10", "MEGA5"]);
    // The platform's second replaces its first.
    let (status, cart) = apply(&app, &c, "MEGA30").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    assert_eq!(codes(&cart).1, ["A10", "MEGA30"]);
    // A: 100,000 − 10,000 = 90,000 and B: 50,000 share 30,000 as 90:50.
    let (qa, qb) = (shop_of(&cart, a), shop_of(&cart, b));
    assert_eq!(qa["totals"]["discount"], 10_000);
    assert_eq!(qa["totals"]["platform_discount"], 19_286);
    assert_eq!(qb["totals"]["discount"], 0);
    assert_eq!(qb["totals"]["platform_discount"], 10_714);
    assert_eq!(cart["totals"]["platform_discount"], 30_000);
    assert_eq!(qa["lines"][0]["platform_discount"], 19_286);
    let fees = cart["totals"]["shipping_fee"].as_u64().unwrap();
    assert_eq!(cart["totals"]["total"], 150_000 - 10_000 - 30_000 + fees);

    // Checked out: each order keeps its part and names the voucher.
    let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let orders = placed["orders"].as_array().unwrap();
    let platform: u64 = orders
        .iter()
        .map(|o| o["totals"]["platform_discount"].as_u64().unwrap())
        .sum();
    assert_eq!(platform, 30_000);
    for o in orders {
        assert_eq!(o["platform_voucher"]["code"], "MEGA30");
        assert_eq!(o["platform_voucher"]["orders"].as_array().unwrap().len(), 2);
    }
    let (_, v) = app.get("/api/v1/coupons/MEGA30", None).await;
    assert_eq!(v["used"], 1, "one use for the checkout, not one per order");
    let (_, v) = app.get("/api/v1/coupons/A10", None).await;
    assert_eq!(v["used"], 1);
}

#[tokio::test]
async fn a_platform_voucher_below_its_minimum_after_the_shops_discounts_is_left_out_and_refused_at_checkout(
) {
    let app = spawn_app_with(with_admin).await;
    let admin = app.login(ADMIN).await;
    let (c, address, shops) = two_shops(&app).await;
    let (ma, a, product) = &shops[0];
    shop_code(
        &app,
        ma,
        a,
        json!({"code": "A10", "kind": "percentage", "value": 10, "voucher": true}),
    )
    .await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "MEGA", "kind": "fixed", "value": 30_000, "min_spend": 145_000}),
    )
    .await;
    collect(&app, &c, "A10").await;
    collect(&app, &c, "MEGA").await;
    let (_, cart) = apply(&app, &c, "MEGA").await;
    assert_eq!(
        cart["totals"]["platform_discount"], 30_000,
        "150,000 ≥ 145,000"
    );
    // With A's 10,000 off, 140,000 is below the platform's minimum.
    let (_, cart) = apply(&app, &c, "A10").await;
    assert_eq!(cart["totals"]["discount"], 10_000);
    assert_eq!(cart["totals"]["platform_discount"], 0);
    assert_eq!(cart["voucher_problems"][0]["code"], "MEGA");
    assert_eq!(
        cart["voucher_problems"][0]["problem"]["code"],
        "coupon_min_spend"
    );
    let stock_before = app
        .get(&format!("/api/v1/products/{product}"), None)
        .await
        .1["stock"]
        .clone();
    let (status, body) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "coupon_min_spend")
    );
    // Nothing was kept: no order, the stock and both uses as they were.
    let (_, page) = app.get("/api/v1/orders", Some(&c.access)).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(
        app.get(&format!("/api/v1/products/{product}"), None)
            .await
            .1["stock"],
        stock_before
    );
    for code in ["A10", "MEGA"] {
        assert_eq!(
            app.get(&format!("/api/v1/coupons/{code}"), None).await.1["used"],
            0
        );
    }
}

#[tokio::test]
async fn free_shipping_takes_off_the_fees_up_to_its_cap_shared_by_each_shops_fee() {
    let app = spawn_app_with(with_admin).await;
    let admin = app.login(ADMIN).await;
    let (c, address, shops) = two_shops(&app).await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "FREESHIP", "kind": "free_shipping", "value": 20_000}),
    )
    .await;
    // A shop cannot give free shipping.
    let (status, body) = app
        .post(
            &format!("/api/v1/shops/{}/coupons", shops[0].1),
            Some(&shops[0].0.access),
            json!({"code": "SHIPA", "kind": "free_shipping", "value": 20_000}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    collect(&app, &c, "FREESHIP").await;
    let (status, cart) = apply(&app, &c, "FREESHIP").await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    // Two fees of 15,000: 20,000 off, 10,000 each.
    for (_, shop, _) in &shops {
        let q = shop_of(&cart, shop);
        assert_eq!(q["totals"]["shipping_fee"], 15_000, "{q}");
        assert_eq!(q["totals"]["shipping_discount"], 10_000);
        assert_eq!(q["totals"]["platform_discount"], 0);
    }
    assert_eq!(cart["totals"]["total"], 150_000 + 30_000 - 20_000);
    let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let total: u64 = placed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["totals"]["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 160_000);
}

#[tokio::test]
async fn the_best_combination_of_the_wallet_is_suggested() {
    let app = spawn_app_with(with_admin).await;
    let admin = app.login(ADMIN).await;
    let (c, _, shops) = two_shops(&app).await;
    let (ma, a, _) = &shops[0];
    // A third shop with nothing in the cart.
    let (mc, other, _) = shop_with_product(&app, 10_000, 5).await;
    for (code, kind, value) in [("A5PCT", "percentage", 5), ("A8K", "fixed", 8_000)] {
        shop_code(
            &app,
            ma,
            a,
            json!({"code": code, "kind": kind, "value": value, "voucher": true}),
        )
        .await;
    }
    shop_code(
        &app,
        &mc,
        &other,
        json!({"code": "ELSEWHERE", "kind": "fixed", "value": 50_000, "voucher": true}),
    )
    .await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "P10K", "kind": "fixed", "value": 10_000}),
    )
    .await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "P15", "kind": "percentage", "value": 15}),
    )
    .await;
    for code in ["A5PCT", "A8K", "ELSEWHERE", "P10K", "P15"] {
        assert_eq!(collect(&app, &c, code).await.0, StatusCode::OK);
    }
    let (status, choice) = app.get("/api/v1/cart/vouchers", Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK, "{choice}");
    // A: 8,000 beats 5,000; then 15% of (92,000 + 50,000) = 21,300 beats 10,000.
    assert_eq!(choice["best"], json!(["A8K", "P15"]));
    assert_eq!(choice["best_saving"], 8_000 + 21_300);
    let saving = |code: &str| {
        choice["wallet"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["code"] == code)
            .unwrap_or_else(|| panic!("{code} not in {choice}"))
            .clone()
    };
    assert_eq!(saving("A5PCT")["saving"], 5_000);
    assert_eq!(saving("P10K")["saving"], 10_000);
    assert_eq!(
        saving("ELSEWHERE")["problem"]["code"],
        "coupon_not_applicable"
    );
    // Applying the suggestion gives what it said.
    for code in ["A8K", "P15"] {
        apply(&app, &c, code).await;
    }
    let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
    let t = &cart["totals"];
    assert_eq!(
        t["discount"].as_u64().unwrap() + t["platform_discount"].as_u64().unwrap(),
        29_300
    );
}

#[tokio::test]
async fn a_platform_vouchers_use_comes_back_only_when_every_order_of_its_checkout_is_cancelled() {
    a_platform_vouchers_use_comes_back_only_when_every_order_of_its_checkout_is_cancelled_on(
        spawn_app_with(with_admin).await,
    )
    .await;
}

/// The body of the test above, on any app (`flows_on!` runs it on
/// PostgreSQL and ScyllaDB).
pub(crate) async fn a_platform_vouchers_use_comes_back_only_when_every_order_of_its_checkout_is_cancelled_on(
    app: TestApp,
) {
    let admin = app.login(ADMIN).await;
    let (c, address, _) = two_shops(&app).await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "ONCE", "kind": "fixed", "value": 20_000, "global_limit": 1}),
    )
    .await;
    collect(&app, &c, "ONCE").await;
    apply(&app, &c, "ONCE").await;
    let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let ids: Vec<String> = placed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        placed["orders"][0]["platform_voucher"]["redemption"],
        ids[0]
    );
    assert_eq!(used(&app, "ONCE").await, 1);
    // The second order is cancelled first: the first still uses it.
    cancel(&app, &c, &ids[1]).await;
    wait_for(&app, &c.access, &ids[1], "its release", |o| {
        o["coupon_released"] == true
    })
    .await;
    assert_eq!(
        used(&app, "ONCE").await,
        1,
        "one order of the checkout still stands"
    );
    cancel(&app, &c, &ids[0]).await;
    let started = std::time::Instant::now();
    while used(&app, "ONCE").await != 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the use did not come back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_hundred_shoppers_race_for_fifty_units_and_a_twenty_use_voucher() {
    two_hundred_shoppers_race_for_fifty_units_and_a_twenty_use_voucher_on(
        spawn_app_with(with_admin).await,
    )
    .await;
}

/// The body of the test above, on any app (`flows_on!` runs it on
/// PostgreSQL and ScyllaDB). Forty shoppers hold the voucher in their
/// cart and check out all at once: exactly twenty get it, the others are
/// refused `coupon_exhausted` (a refusal for the stock is not possible:
/// there is a unit for each). Then the other hundred and sixty race for
/// the thirty units left: exactly thirty are sold, the rest refused
/// `out_of_stock`. (All at once, a shopper may find the last units held
/// by one the voucher will refuse a moment later: holds come before the
/// voucher's use, and either refusal would then be right.) A refused
/// shopper keeps nothing: no order, no unit, no use.
pub(crate) async fn two_hundred_shoppers_race_for_fifty_units_and_a_twenty_use_voucher_on(
    app: TestApp,
) {
    let admin = app.login(ADMIN).await;
    let (_, _, product) = shop_with_product(&app, 10_000, 50).await;
    platform_voucher(
        &app,
        &admin,
        json!({"code": "RACE20", "kind": "fixed", "value": 1_000, "global_limit": 20}),
    )
    .await;
    let shoppers = futures::future::join_all((0..200).map(|i| {
        let (app, product) = (&app, &product);
        async move {
            let (c, address) = customer(app).await;
            add(app, &c, product, 1).await;
            if i < 40 {
                assert_eq!(collect(app, &c, "RACE20").await.0, StatusCode::OK);
                let (status, cart) = apply(app, &c, "RACE20").await;
                assert_eq!(status, StatusCode::OK, "{cart}");
            }
            (c, address)
        }
    }))
    .await;
    let (holders, others) = shoppers.split_at(40);
    assert_eq!(race(&app, holders, true).await, 20);
    assert_eq!(used(&app, "RACE20").await, 20);
    in_stock(&app, &product, 30).await;
    assert_eq!(race(&app, others, false).await, 30);
    in_stock(&app, &product, 0).await;
    assert_eq!(used(&app, "RACE20").await, 20);
}

/// `shoppers` check out at once: how many orders were placed. Each
/// refusal is the voucher used up (`voucher`) or the stock, and leaves no
/// order and the cart as it was.
async fn race(app: &TestApp, shoppers: &[(Session, String)], voucher: bool) -> usize {
    let outcomes = futures::future::join_all(
        shoppers
            .iter()
            .map(|(c, address)| checkout(app, c, address, "cod", None)),
    )
    .await;
    let refusal = if voucher {
        "coupon_exhausted"
    } else {
        "out_of_stock"
    };
    let mut sold = 0;
    for ((c, _), (status, body)) in shoppers.iter().zip(&outcomes) {
        match *status {
            StatusCode::CREATED => {
                sold += 1;
                let o = &body["orders"][0];
                assert_eq!(o["platform_voucher"].is_object(), voucher, "{o}");
                let off = if voucher { 1_000 } else { 0 };
                assert_eq!(o["totals"]["platform_discount"], off);
            }
            StatusCode::CONFLICT => {
                assert_eq!(error_code(body), refusal, "{body}");
                let (_, page) = app.get("/api/v1/orders", Some(&c.access)).await;
                assert_eq!(page["items"], json!([]), "a refused checkout left an order");
                let (_, cart) = app.get("/api/v1/cart", Some(&c.access)).await;
                assert_eq!(cart["items"].as_array().unwrap().len(), 1);
            }
            other => panic!("{other}: {body}"),
        }
    }
    sold
}

/// Waits until `product` has `units` in stock (refused checkouts let go
/// of what they held).
async fn in_stock(app: &TestApp, product: &str, units: u64) {
    let started = std::time::Instant::now();
    loop {
        let (_, p) = app.get(&format!("/api/v1/products/{product}"), None).await;
        if p["stock"] == units {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{} in stock, not {units}",
            p["stock"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

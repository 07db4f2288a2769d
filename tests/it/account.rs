//! Account self-service over real HTTP: the export of everything Surge
//! holds about a user.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn ids(items: &Value) -> Vec<String> {
    let mut v: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_export_holds_what_surge_keeps_about_the_user_and_nobody_elses() {
    let app = spawn_app_with(|s| {
        crate::commerce::fast(s);
        // Recently viewed shows indexed products.
        s.search_refresh_ms = 50;
    })
    .await;
    let (m, _, product) = shop_with_product(&app, 40_000, 20).await;
    // The user: an order delivered and reviewed, one cancelled, a view, a
    // cart line, a flash-sale claim.
    let (c, delivered) = crate::reviews::ordered(&app, &product).await;
    crate::reviews::deliver(&app, &m, &delivered).await;
    let (status, review) = app
        .post(
            &format!("/api/v1/products/{product}/reviews"),
            Some(&c.access),
            json!({"order_id": delivered, "stars": 4, "text": "Good grip"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    crate::commerce::add(&app, &c, &product, 1).await;
    let (_, addresses) = app.get("/api/v1/users/addresses", Some(&c.access)).await;
    let address = addresses[0]["id"].as_str().unwrap().to_owned();
    let (status, placed) = crate::commerce::checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED);
    let cancelled = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    app.put(
        &format!("/api/v1/orders/{cancelled}/cancel"),
        Some(&c.access),
        json!({}),
    )
    .await;
    crate::commerce::add(&app, &c, &product, 2).await;
    let (status, _) = app
        .post(
            "/api/v1/behavior/view",
            Some(&c.access),
            json!({"product_id": product}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, sale) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m.access),
            json!({"product_id": product, "stock": 3, "per_user_limit": 1, "price": 20_000}),
        )
        .await;
    let (status, claim) = app
        .post(
            &format!(
                "/api/v1/flash-sales/{}/claims",
                sale["id"].as_str().unwrap()
            ),
            Some(&c.access),
            json!({"payment_method": "cod"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{claim}");
    // Someone else's order.
    let (_, theirs) = crate::reviews::ordered(&app, &product).await;

    let (status, export) = app.get("/api/v1/users/me/export", Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["account"]["email"], c.email.as_str());
    assert_eq!(export["addresses"].as_array().unwrap().len(), 1);
    assert!(!export["notifications"].as_array().unwrap().is_empty());
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1);
    // Its orders (the claim's order may follow later), and only its own.
    let orders = ids(&export["orders"]);
    assert!(
        orders.contains(&delivered) && orders.contains(&cancelled),
        "{orders:?}"
    );
    assert!(!orders.contains(&theirs));
    assert_eq!(export["orders_truncated"], false);
    assert_eq!(
        ids(&export["reviews"]),
        vec![review["id"].as_str().unwrap().to_owned()]
    );
    assert_eq!(export["claims"][0]["id"], claim["id"]);
    assert_eq!(export["recently_viewed"][0]["id"], product.as_str());
    assert_eq!(export["cart"]["items"][0]["quantity"], 2);
    assert_eq!(export["shops"], json!([]));
    // Secrets are never in it.
    let text = export.to_string();
    for secret in ["password_hash", "refresh_jti", "code_hash", "$argon2"] {
        assert!(!text.contains(secret), "{secret} in the export");
    }
    // A merchant's export holds their shop.
    let (_, mine) = app.get("/api/v1/users/me/export", Some(&m.access)).await;
    assert_eq!(mine["shops"].as_array().unwrap().len(), 1);
    let (status, _) = app.get("/api/v1/users/me/export", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_erased_account_leaves_no_personal_data_behind_and_orders_still_add_up() {
    let tweak = |s: &mut surge::config::Settings| {
        crate::commerce::fast(s);
        s.search_refresh_ms = 50;
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(PASSWORD.into());
    };
    let app = spawn_app_with(tweak).await;
    let admin = app.login("root@example.com").await;
    let (m, shop, product) = shop_with_product(&app, 40_000, 20).await;
    let (c, delivered) = crate::reviews::ordered(&app, &product).await;
    crate::reviews::deliver(&app, &m, &delivered).await;
    // A review with a photo of the customer's own.
    let (status, review) = app
        .post(
            &format!("/api/v1/products/{product}/reviews"),
            Some(&c.access),
            json!({"order_id": delivered, "stars": 4, "text": "fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    let photos = format!("/api/v1/reviews/{}/photos", review["id"].as_str().unwrap());
    let (status, with_photo) =
        crate::media::upload(&app, &c.access, &photos, &crate::media::jpeg(64, 48)).await;
    assert_eq!(status, StatusCode::CREATED, "{with_photo}");
    let photo = format!("{}{}", app.base, with_photo["images"][0].as_str().unwrap());
    assert_eq!(
        app.client.get(&photo).send().await.unwrap().status(),
        StatusCode::OK
    );
    app.post(
        "/api/v1/behavior/view",
        Some(&c.access),
        json!({"product_id": product}),
    )
    .await;
    let (_, sale) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m.access),
            json!({"product_id": product, "stock": 3, "per_user_limit": 1, "price": 20_000}),
        )
        .await;
    let sale = sale["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &format!("/api/v1/flash-sales/{sale}/claims"),
            Some(&c.access),
            json!({"payment_method": "cod"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The claim's order comes from the queue worker.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let before = loop {
        let orders = shop_orders(&app, &m, &shop).await;
        if orders.len() == 2 {
            break orders;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(Value::Array(before.clone()).to_string().contains(STREET));
    let erase = |token: &str, password: &str| {
        let (app, token, password) = (&app, token.to_owned(), password.to_owned());
        async move {
            app.request(
                reqwest::Method::DELETE,
                "/api/v1/users/me",
                Some(&token),
                Some(json!({"password": password})),
            )
            .await
        }
    };
    // Refusals leave everything as it was.
    let (status, body) = erase(&c.access, "not my password at all").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = erase(&c.access, PASSWORD).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "orders_in_progress"),
        "the claim's order is under way"
    );
    let (status, body) = erase(&m.access, PASSWORD).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "owns_shops")
    );
    let (status, body) = erase(&admin.access, PASSWORD).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "admin_account")
    );
    let (status, _) = app.get("/api/v1/users/profile", Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK);
    let claim_order = before
        .iter()
        .find(|o| o["id"] != delivered.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::reviews::deliver(&app, &m, &claim_order).await;
    let totals: Vec<Value> = before.iter().map(|o| o["totals"].clone()).collect();

    let mut ws = crate::hardening::watching_own_topic(&app, &c).await;
    let (status, body) = erase(&c.access, PASSWORD).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        crate::hardening::closed_within(&mut ws, std::time::Duration::from_secs(1))
            .await
            .0,
        4001
    );
    let erased = Erased {
        m: &m,
        c: &c,
        admin: &admin,
        shop: &shop,
        sale: &sale,
        totals: &totals,
    };
    erased.check(&app).await;
    for size in ["", "?size=thumbnail"] {
        let status = app
            .client
            .get(format!("{photo}{size}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND, "the review's photo is gone");
    }
    // After a restart (state rebuilt from snapshots and the journal) too.
    let dir = app.stop().await;
    let app = spawn_app_in(dir, tweak).await;
    erased.check(&app).await;
    // The email is free again: a new account, with nothing of the old one.
    app.register(&c.email, "customer").await;
    let again = app.login(&c.email).await;
    assert_ne!(again.id, c.id);
    let (_, viewed) = app
        .get("/api/v1/users/me/recently-viewed", Some(&again.access))
        .await;
    assert_eq!(viewed["items"], json!([]));
}

const STREET: &str = "5 Hang Gai";

async fn shop_orders(app: &TestApp, m: &Session, shop: &str) -> Vec<Value> {
    app.all_pages(
        &format!("/api/v1/shops/{shop}/orders?limit=100"),
        Some(&m.access),
        10,
    )
    .await
}

/// What must hold of an erased customer `c`, whoever reads.
struct Erased<'a> {
    m: &'a Session,
    c: &'a Session,
    admin: &'a Session,
    shop: &'a str,
    sale: &'a str,
    totals: &'a [Value],
}

impl Erased<'_> {
    async fn check(&self, app: &TestApp) {
        let Erased {
            m,
            c,
            admin,
            shop,
            sale,
            totals,
        } = self;
        let (status, _) = app.get("/api/v1/users/profile", Some(&c.access)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": c.email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // The orders add up as before, without the street or position.
        let after = shop_orders(app, m, shop).await;
        let text = Value::Array(after.clone()).to_string();
        assert!(!text.contains(STREET), "{text}");
        let now: Vec<Value> = after.iter().map(|o| o["totals"].clone()).collect();
        assert_eq!(&now[..], *totals);
        for o in &after {
            assert_eq!(o["address"]["line1"], "(erased)");
            assert_eq!(o["address"]["lat"], 0.0);
            assert_eq!(o["address"]["city"], "Hanoi");
        }
        let (_, claims) = app
            .get(
                &format!("/api/v1/flash-sales/{sale}/claims"),
                Some(&m.access),
            )
            .await;
        assert!(!claims.to_string().contains(STREET), "{claims}");
        // Gone from the admin's listings and reads.
        let (_, found) = app
            .get(
                &format!("/api/v1/admin/users?email={}", c.email),
                Some(&admin.access),
            )
            .await;
        assert_eq!(found["items"], json!([]));
        let customers = app
            .all_pages("/api/v1/admin/users?role=customer", Some(&admin.access), 20)
            .await;
        assert!(customers.iter().all(|u| u["id"] != c.id.as_str()));
        let (status, _) = app
            .get(
                &format!("/api/v1/admin/users/{}", c.id),
                Some(&admin.access),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_shipper_cannot_erase_their_account_mid_delivery() {
    let app = spawn_app_with(crate::commerce::fast).await;
    let (shipper, _, c, order) = crate::shipping::delivering(&app).await;
    let erase = || {
        app.request(
            reqwest::Method::DELETE,
            "/api/v1/users/me",
            Some(&shipper.access),
            Some(json!({"password": PASSWORD})),
        )
    };
    let (status, body) = erase().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "deliveries_in_progress");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&order),
        "{body}"
    );
    // Nothing changed: the shipper still signs in and still carries it.
    app.login(&shipper.email).await;
    let (_, o) = app
        .get(&format!("/api/v1/orders/{order}"), Some(&c.access))
        .await;
    assert_eq!(o["delivery"]["shipper_id"], shipper.id, "{o}");
    // Delivered, the account may go.
    crate::shipping::delivered_at_the_door(&app, &shipper, &order).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = erase().await;
        if status == StatusCode::NO_CONTENT {
            break;
        }
        // The shipper is released right after the delivery closes.
        assert_eq!(error_code(&body), "deliveries_in_progress", "{body}");
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

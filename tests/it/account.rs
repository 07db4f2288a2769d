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

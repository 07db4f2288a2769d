//! Accounts: register/login/profile, refresh rotation, logout, JWT
//! negative cases, concurrent registration, validation, roles, addresses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use surge::auth::{JwtKeys, TokenType};
use surge::domain::Role;

use crate::helpers::*;

#[tokio::test]
async fn register_login_profile() {
    let app = spawn_app().await;
    let user = app.register("Alice@Example.com", "customer").await;
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "customer");
    assert_eq!(user["name"], "Test User");
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()));

    let (status, tokens) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);

    let (status, profile) = app
        .get("/api/v1/users/profile", tokens["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["id"], user["id"]);

    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "wrong password!!"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn profile_update_is_validated_and_kept() {
    let app = spawn_app().await;
    let s = app.user("customer").await;
    let (status, body) = app
        .put(
            "/api/v1/users/profile",
            Some(&s.access),
            json!({"name": "New Name", "phone": "+84 912 345 678"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["phone"].as_str()),
        (Some("New Name"), Some("+84 912 345 678"))
    );
    let (status, body) = app
        .put(
            "/api/v1/users/profile",
            Some(&s.access),
            json!({"phone": "abc"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (_, profile) = app.get("/api/v1/users/profile", Some(&s.access)).await;
    assert_eq!(
        profile["phone"], "+84 912 345 678",
        "a rejected update changes nothing"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_ends_the_session() {
    refresh_rotates_and_reuse_ends_the_session_on(spawn_app().await).await;
}

/// The body of `refresh_rotates_and_reuse_ends_the_session`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn refresh_rotates_and_reuse_ends_the_session_on(app: TestApp) {
    let s = app.user("customer").await;

    let (status, second) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": s.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r2, s.refresh);
    let (status, _) = app
        .get("/api/v1/users/profile", second["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);

    // The old refresh token no longer works…
    let (status, body) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": s.refresh}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // …and replaying it ended the whole session (stolen-token defence).
    let (status, _) = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": r2}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get("/api/v1/users/profile", second["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_revokes_access_and_refresh() {
    let app = spawn_app().await;
    let s = app.user("customer").await;
    let other = app.login(&s.email).await;
    let (status, _) = app
        .post("/api/v1/auth/logout", Some(&s.access), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/users/profile", Some(&s.access)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": s.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another device's session is untouched.
    let (status, _) = app.get("/api/v1/users/profile", Some(&other.access)).await;
    assert_eq!(status, StatusCode::OK);
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn forged_and_misused_tokens_are_rejected() {
    let app = spawn_app().await;
    let s = app.user("customer").await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(s.access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let sid = claims["sid"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now();
    let keys =
        |secret: &str, iss: &str, aud: &str| JwtKeys::new(secret.as_bytes(), iss, aud, 900, 3600);
    let good = keys(TEST_SECRET, "surge", "surge-api");

    // Control: a token we sign correctly for the live session is accepted,
    // so each rejection below is caused by the one thing changed.
    let (control, _) = good.issue(TokenType::Access, &s.id, Role::Customer, &sid, "j", now);
    assert_eq!(
        app.get("/api/v1/users/profile", Some(&control)).await.0,
        StatusCode::OK
    );

    let mut cases: Vec<(&str, String)> = vec![
        (
            "wrong key",
            keys("another-secret-0123456789-abcdefghij", "surge", "surge-api")
                .issue(TokenType::Access, &s.id, Role::Customer, &sid, "j", now)
                .0,
        ),
        (
            "wrong aud",
            keys(TEST_SECRET, "surge", "other-api")
                .issue(TokenType::Access, &s.id, Role::Customer, &sid, "j", now)
                .0,
        ),
        (
            "wrong iss",
            keys(TEST_SECRET, "evil", "surge-api")
                .issue(TokenType::Access, &s.id, Role::Customer, &sid, "j", now)
                .0,
        ),
        (
            "expired",
            good.issue(
                TokenType::Access,
                &s.id,
                Role::Customer,
                &sid,
                "j",
                now - chrono::Duration::hours(2),
            )
            .0,
        ),
        (
            "future nbf",
            good.issue(
                TokenType::Access,
                &s.id,
                Role::Customer,
                &sid,
                "j",
                now + chrono::Duration::minutes(10),
            )
            .0,
        ),
        ("refresh as access", s.refresh.clone()),
        (
            "unknown session",
            good.issue(
                TokenType::Access,
                &s.id,
                Role::Customer,
                "no-such-session",
                "j",
                now,
            )
            .0,
        ),
        ("garbage", "not.a.jwt".into()),
    ];
    // alg: none, unsigned.
    let mut none_claims = claims.clone();
    none_claims["role"] = json!("admin");
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&none_claims)
        ),
    ));
    // Payload tampered (role raised), original signature kept.
    let parts: Vec<&str> = s.access.split('.').collect();
    cases.push((
        "tampered payload",
        format!("{}.{}.{}", parts[0], b64(&none_claims), parts[2]),
    ));

    for (name, token) in cases {
        let (status, body) = app.get("/api/v1/users/profile", Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(error_code(&body), "unauthorized", "{name}");
    }
    // An access token is not a refresh token either.
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": s.access}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No token, or a malformed header.
    assert_eq!(
        app.get("/api/v1/users/profile", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let resp = app
        .client
        .get(format!("{}/api/v1/users/profile", app.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_email_create_one_account() {
    fifty_concurrent_registrations_of_one_email_create_one_account_on(spawn_app().await).await;
}

/// The body of `fifty_concurrent_registrations_of_one_email_create_one_account`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn fifty_concurrent_registrations_of_one_email_create_one_account_on(
    app: TestApp,
) {
    let appends_before = app.metric("surge_journal_appends_total").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (client, base) = (app.client.clone(), app.base.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&json!({"email": "race@example.com", "password": PASSWORD, "name": format!("Racer {i}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, conflicts), (1, 49));
    // The winner can log in.
    app.login("race@example.com").await;
    assert!(app.metric("surge_journal_appends_total").await > appends_before);
}

#[tokio::test]
async fn bad_registrations_get_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let before = app.metric("surge_journal_appends_total").await;
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"email": "bad", "password": PASSWORD, "name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "a@example.com", "password": "short", "name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "X", "role": "admin"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "X", "role": "king"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"email": 42, "password": PASSWORD, "name": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "X", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!([1, 2]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (got, resp) = app.post("/api/v1/auth/register", None, body.clone()).await;
        assert_eq!((got, error_code(&resp)), (status, code), "{body}");
    }
    let resp = app
        .client
        .post(format!("{}/api/v1/auth/register", app.base))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&resp.json().await.unwrap()), "invalid_json");
    assert_eq!(
        app.metric("surge_journal_appends_total").await,
        before,
        "nothing was written"
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_and_ownership_are_enforced() {
    let app = spawn_app_with(|s| {
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let customer = app.user("customer").await;
    let owner = app.user("merchant").await;
    let rival = app.user("merchant").await;
    let admin = app.login("root@example.com").await;
    let (_, admin_profile) = app.get("/api/v1/users/profile", Some(&admin.access)).await;
    assert_eq!(admin_profile["role"], "admin");

    let (status, body) = app
        .post("/api/v1/shops", Some(&customer.access), shop_body())
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, body) = app
        .post(
            "/api/v1/courses",
            Some(&customer.access),
            json!({"title": "T", "kind": "gym", "capacity": 5, "price": 0, "currency": "USD"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app.post("/api/v1/shops", None, shop_body()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, shop) = app
        .post("/api/v1/shops", Some(&owner.access), shop_body())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let shop_id = shop["id"].as_str().unwrap();
    let (status, product) = app
        .post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&owner.access),
            product_body("Mat", "yoga", 100),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let product_id = product["id"].as_str().unwrap();
    let (status, course) = app
        .post(
            "/api/v1/courses",
            Some(&owner.access),
            json!({"title": "T", "kind": "gym", "capacity": 5, "price": 0, "currency": "USD"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let course_id = course["id"].as_str().unwrap();

    let forbidden = [
        app.post(
            &format!("/api/v1/shops/{shop_id}/products"),
            Some(&rival.access),
            product_body("X", "yoga", 1),
        )
        .await,
        app.put(
            &format!("/api/v1/shops/{shop_id}"),
            Some(&rival.access),
            json!({"name": "Mine now"}),
        )
        .await,
        app.put(
            &format!("/api/v1/products/{product_id}"),
            Some(&rival.access),
            json!({"price": 1}),
        )
        .await,
        app.put(
            &format!("/api/v1/courses/{course_id}"),
            Some(&rival.access),
            json!({"capacity": 1}),
        )
        .await,
        app.put(
            &format!("/api/v1/products/{product_id}"),
            Some(&customer.access),
            json!({"price": 1}),
        )
        .await,
    ];
    for (status, body) in forbidden {
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::FORBIDDEN, "forbidden")
        );
    }
    let (_, p) = app
        .get(&format!("/api/v1/products/{product_id}"), None)
        .await;
    assert_eq!(p["price"], 100, "forbidden writes changed nothing");
    let (_, sh) = app.get(&format!("/api/v1/shops/{shop_id}"), None).await;
    assert_eq!(sh["name"], "Hanoi Yoga Shop");

    // The owner and an admin may.
    let (status, p) = app
        .put(
            &format!("/api/v1/products/{product_id}"),
            Some(&owner.access),
            json!({"price": 150}),
        )
        .await;
    assert_eq!((status, p["price"].as_u64()), (StatusCode::OK, Some(150)));
    let (status, sh) = app
        .put(
            &format!("/api/v1/shops/{shop_id}"),
            Some(&admin.access),
            json!({"name": "Renamed by admin"}),
        )
        .await;
    assert_eq!(
        (status, sh["name"].as_str()),
        (StatusCode::OK, Some("Renamed by admin"))
    );
}

#[tokio::test]
async fn bootstrap_admin_is_promoted_from_configuration_only() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir, |_| {}).await;
    app.register("boss@example.com", "merchant").await;
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |s| {
        s.admin_email = Some("boss@example.com".into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let boss = app.login("boss@example.com").await;
    let (_, profile) = app.get("/api/v1/users/profile", Some(&boss.access)).await;
    assert_eq!(profile["role"], "admin");
}

#[tokio::test]
async fn addresses_keep_exactly_one_default() {
    let app = spawn_app().await;
    let s = app.user("customer").await;
    let t = Some(s.access.as_str());
    let addr = |label: &str, is_default: bool| json!({"label": label, "line1": "12 Hang Bac", "city": "Hanoi", "lat": 21.03, "lng": 105.85, "is_default": is_default});
    let defaults = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["is_default"] == true)
            .map(|a| a["label"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, home) = app
        .post("/api/v1/users/addresses", t, addr("home", false))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(home["is_default"], true, "the first address is the default");
    let (_, work) = app
        .post("/api/v1/users/addresses", t, addr("work", false))
        .await;
    assert_eq!(work["is_default"], false);
    let (_, gym) = app
        .post("/api/v1/users/addresses", t, addr("gym", true))
        .await;
    assert_eq!(gym["is_default"], true);
    let (_, list) = app.get("/api/v1/users/addresses", t).await;
    assert_eq!(defaults(&list), vec!["gym"]);

    let work_id = work["id"].as_str().unwrap();
    let (status, _) = app
        .put(
            &format!("/api/v1/users/addresses/{work_id}"),
            t,
            addr("work2", true),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get("/api/v1/users/addresses", t).await;
    assert_eq!(defaults(&list), vec!["work2"]);

    let (status, body) = app
        .put(
            &format!("/api/v1/users/addresses/{work_id}"),
            t,
            addr("work2", false),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "default_address_required")
    );

    let (status, _) = app
        .delete(&format!("/api/v1/users/addresses/{work_id}"), t)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/api/v1/users/addresses", t).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        defaults(&list),
        vec!["home"],
        "the oldest remaining address became the default"
    );

    let (status, body) = app
        .post(
            "/api/v1/users/addresses",
            t,
            json!({"label": "x", "line1": "y", "city": "z", "lat": 91.0, "lng": 0.0}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (status, _) = app.delete("/api/v1/users/addresses/nope", t).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

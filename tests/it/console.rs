//! The merchant's and the admin's consoles: the admin's user listing,
//! suspension and role changes; a merchant's own lists.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::hardening::{closed_within, watching_own_topic};
use crate::helpers::*;

const ADMIN: &str = "root@example.com";

async fn app_with_admin() -> (TestApp, Session) {
    let app = spawn_app_with(|s| {
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let admin = app.login(ADMIN).await;
    (app, admin)
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

#[tokio::test]
async fn admins_list_and_search_users_by_email_role_and_suspension() {
    let (app, admin) = app_with_admin().await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for (name, role) in [
        ("ann", "customer"),
        ("bob", "merchant"),
        ("cat", "customer"),
        ("dan", "shipper"),
    ] {
        app.register(&format!("{name}-{tag}@example.com"), role)
            .await;
    }
    // By email prefix, in email order, any case.
    let (status, page) = app
        .get("/api/v1/admin/users?email=Bob-", Some(&admin.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(emails(&page), vec![format!("bob-{tag}@example.com")]);
    // Everyone, paged: every account once, in email order.
    let all: Vec<String> = app
        .all_pages("/api/v1/admin/users?limit=2", Some(&admin.access), 10)
        .await
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = ["ann", "bob", "cat", "dan"]
        .iter()
        .map(|n| format!("{n}-{tag}@example.com"))
        .chain([ADMIN.to_owned()])
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    // By role.
    let customers: Vec<String> = app
        .all_pages(
            "/api/v1/admin/users?role=customer&limit=1",
            Some(&admin.access),
            10,
        )
        .await
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect();
    let mut want = vec![
        format!("ann-{tag}@example.com"),
        format!("cat-{tag}@example.com"),
    ];
    want.sort();
    let mut got = customers.clone();
    got.sort();
    assert_eq!(got, want);
    // A role and an email prefix together.
    let (_, page) = app
        .get(
            "/api/v1/admin/users?email=c&role=customer",
            Some(&admin.access),
        )
        .await;
    assert_eq!(emails(&page), vec![format!("cat-{tag}@example.com")]);
    let (_, page) = app
        .get(
            "/api/v1/admin/users?email=c&role=merchant",
            Some(&admin.access),
        )
        .await;
    assert_eq!(emails(&page), Vec::<String>::new());

    // Nobody else may list; bad filters are refused.
    let customer = app.login(&format!("ann-{tag}@example.com")).await;
    let (status, body) = app.get("/api/v1/admin/users", Some(&customer.access)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = app.get("/api/v1/admin/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for bad in ["role=king", "limit=0", "suspended=maybe", "colour=red"] {
        let (status, body) = app
            .get(&format!("/api/v1/admin/users?{bad}"), Some(&admin.access))
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
    }

    // The suspended filter follows a suspension.
    let dan = format!("dan-{tag}@example.com");
    let (_, page) = app
        .get(
            &format!("/api/v1/admin/users?email={dan}"),
            Some(&admin.access),
        )
        .await;
    let dan_id = page["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(page["items"][0]["suspension"].is_null());
    let (status, _) = app
        .post(
            &format!("/api/v1/admin/users/{dan_id}/suspend"),
            Some(&admin.access),
            json!({"reason": "fake deliveries"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app
        .get("/api/v1/admin/users?suspended=true", Some(&admin.access))
        .await;
    assert_eq!(emails(&page), vec![dan.clone()]);
    assert_eq!(page["items"][0]["suspension"]["reason"], "fake deliveries");
    let (_, page) = app
        .get(
            "/api/v1/admin/users?suspended=false&email=d",
            Some(&admin.access),
        )
        .await;
    assert_eq!(emails(&page), Vec::<String>::new());
    let (status, one) = app
        .get(
            &format!("/api/v1/admin/users/{dan_id}"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["email"], dan.as_str());
}

#[tokio::test]
async fn a_suspension_ends_sessions_and_sockets_at_once_and_refuses_logins_until_lifted() {
    let (app, admin) = app_with_admin().await;
    let user = app.user("customer").await;
    let phone = app.login(&user.email).await;
    let mut ws = watching_own_topic(&app, &phone).await;
    let mut ws2 = watching_own_topic(&app, &user).await;
    let suspend = |id: &str| format!("/api/v1/admin/users/{id}/suspend");

    // Refusals change nothing: the user's sessions still work.
    let admin_id = admin.id.clone();
    for (path, token, body, status) in [
        (
            suspend(&user.id),
            &user.access,
            json!({"reason": "x"}),
            StatusCode::FORBIDDEN,
        ),
        (
            suspend(&user.id),
            &admin.access,
            json!({"reason": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            suspend(&user.id),
            &admin.access,
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            suspend(&admin_id),
            &admin.access,
            json!({"reason": "oops"}),
            StatusCode::CONFLICT,
        ),
        (
            suspend(&uuid::Uuid::new_v4().to_string()),
            &admin.access,
            json!({"reason": "who"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, body) = app.post(&path, Some(token), body).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    let (status, _) = app.get("/api/v1/users/profile", Some(&phone.access)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get("/api/v1/users/profile", Some(&admin.access)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, view) = app
        .post(
            &suspend(&user.id),
            Some(&admin.access),
            json!({"reason": "chargeback fraud"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["suspension"]["reason"], "chargeback fraud");
    // Every socket closes within a second; every token stops working.
    assert_eq!(closed_within(&mut ws, Duration::from_secs(1)).await.0, 4001);
    assert_eq!(
        closed_within(&mut ws2, Duration::from_secs(1)).await.0,
        4001
    );
    for token in [&phone.access, &user.access] {
        let (status, _) = app.get("/api/v1/users/profile", Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": phone.refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The right password is refused with a clear code; a wrong one stays
    // the plain 401 (the suspension is not told to someone guessing).
    let (status, body) = login_status(&app, &user.email, PASSWORD).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "account_suspended");
    let (status, _) = login_status(&app, &user.email, "not the password at all").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Suspending again changes nothing (the first reason stays).
    let (status, again) = app
        .post(
            &suspend(&user.id),
            Some(&admin.access),
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["suspension"], view["suspension"]);

    // Reactivated: logins work again.
    let (status, view) = app
        .post(
            &format!("/api/v1/admin/users/{}/reactivate", user.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(view["suspension"].is_null());
    app.login(&user.email).await;
}

#[tokio::test]
async fn a_role_change_ends_the_sessions_and_the_next_login_carries_the_new_role() {
    let (app, admin) = app_with_admin().await;
    let user = app.user("customer").await;
    let mut ws = watching_own_topic(&app, &user).await;
    let role = format!("/api/v1/admin/users/{}/role", user.id);
    for (token, body, status) in [
        (
            &user.access,
            json!({"role": "admin"}),
            StatusCode::FORBIDDEN,
        ),
        (
            &admin.access,
            json!({"role": "king"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, body) = app.put(&role, Some(token), body).await;
        assert_eq!(got, status, "{body}");
    }
    let (status, _) = app
        .put(
            &format!("/api/v1/admin/users/{}/role", admin.id),
            Some(&admin.access),
            json!({"role": "customer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, me) = app.get("/api/v1/users/profile", Some(&user.access)).await;
    assert_eq!(me["role"], "customer");

    let (status, view) = app
        .put(&role, Some(&admin.access), json!({"role": "merchant"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["role"], "merchant");
    assert_eq!(closed_within(&mut ws, Duration::from_secs(1)).await.0, 4001);
    let (status, _) = app.get("/api/v1/users/profile", Some(&user.access)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = app.login(&user.email).await;
    let (_, me) = app.get("/api/v1/users/profile", Some(&again.access)).await;
    assert_eq!(me["role"], "merchant");
    // The listings follow: the user is a merchant now, not a customer.
    let (_, page) = app
        .get(
            &format!("/api/v1/admin/users?email={}&role=merchant", user.email),
            Some(&admin.access),
        )
        .await;
    assert_eq!(emails(&page), vec![user.email.clone()]);
    let customers = app
        .all_pages("/api/v1/admin/users?role=customer", Some(&admin.access), 10)
        .await;
    assert!(customers.iter().all(|u| u["id"] != user.id.as_str()));
}

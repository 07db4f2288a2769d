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

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn merchants_list_only_their_own_shops_courses_and_flash_sales() {
    let app = spawn_app().await;
    let mut mine = Vec::new();
    for _ in 0..2 {
        let (m, shop, product) = shop_with_product(&app, 100_000, 10).await;
        let mut courses = Vec::new();
        for title in ["Yoga at dawn", "Pilates core", "Gym basics"] {
            let (status, c) = app
                .post(
                    "/api/v1/courses",
                    Some(&m.access),
                    json!({"title": title, "kind": "yoga", "capacity": 5, "price": 0, "currency": "VND"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{c}");
            courses.push(c["id"].as_str().unwrap().to_owned());
        }
        let (status, sale) = app
            .post(
                "/api/v1/flash-sales",
                Some(&m.access),
                json!({"product_id": product, "stock": 2, "per_user_limit": 1, "price": 50_000}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sale}");
        mine.push((m, shop, courses, sale["id"].as_str().unwrap().to_owned()));
    }
    for (m, shop, courses, sale) in &mine {
        let shops = app
            .all_pages("/api/v1/users/me/shops", Some(&m.access), 5)
            .await;
        assert_eq!(ids(&shops), vec![shop.clone()]);
        // Paged, every course once, oldest first.
        let got = app
            .all_pages("/api/v1/users/me/courses?limit=2", Some(&m.access), 5)
            .await;
        assert_eq!(&ids(&got), courses);
        let (status, sales) = app
            .get("/api/v1/users/me/flash-sales", Some(&m.access))
            .await;
        assert_eq!(status, StatusCode::OK, "{sales}");
        let sales = sales["items"].as_array().unwrap();
        assert_eq!(ids(sales), vec![sale.clone()]);
        assert_eq!(sales[0]["capacity"], 2);
        assert_eq!(sales[0]["remaining"], 2);
        assert_eq!(sales[0]["state"], "open");
    }
    // A merchant with none gets empty lists; the lists are merchants'.
    let (c, other) = (app.user("customer").await, app.user("merchant").await);
    for path in ["/api/v1/users/me/courses", "/api/v1/users/me/flash-sales"] {
        let (status, page) = app.get(path, Some(&other.access)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"], json!([]));
        let (status, _) = app.get(path, Some(&c.access)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

async fn shop_orders(app: &TestApp, m: &Session, shop: &str, status: &str) -> Vec<String> {
    let (code, page) = app
        .get(
            &format!("/api/v1/shops/{shop}/orders?status={status}"),
            Some(&m.access),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{page}");
    ids(page["items"].as_array().unwrap())
}

#[tokio::test]
async fn the_pending_queue_follows_each_order_and_a_bulk_confirm_confirms_each_on_its_own() {
    let app = spawn_app_with(crate::commerce::fast).await;
    let (m, shop, product) = shop_with_product(&app, 100_000, 10).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(crate::reviews::ordered(&app, &product).await.1);
    }
    let (other, other_shop, other_product) = shop_with_product(&app, 100_000, 10).await;
    let (_, foreign) = crate::reviews::ordered(&app, &other_product).await;
    // Cash orders wait for the merchant as `pending_payment`, newest first.
    let newest_first: Vec<String> = orders.iter().rev().cloned().collect();
    assert_eq!(
        shop_orders(&app, &m, &shop, "pending_payment").await,
        newest_first
    );
    assert!(shop_orders(&app, &m, &shop, "confirmed").await.is_empty());

    let confirm = format!("/api/v1/shops/{shop}/orders/confirm");
    // Refusals of the whole request change nothing.
    let too_many: Vec<String> = (0..101).map(|_| orders[0].clone()).collect();
    for (token, body, status) in [
        (
            &m.access,
            json!({"order_ids": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &m.access,
            json!({"order_ids": too_many}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &m.access,
            json!({"ids": [orders[0]]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // An empty id names no order: a mistake in the request (the
        // contract check once followed such an id, echoed back, to
        // `PUT /orders//confirm`).
        (
            &m.access,
            json!({"order_ids": [orders[0], ""]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &other.access,
            json!({"order_ids": [orders[0]]}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (got, body) = app.post(&confirm, Some(token), body).await;
        assert_eq!(got, status, "{body}");
    }
    assert_eq!(
        shop_orders(&app, &m, &shop, "pending_payment").await,
        newest_first
    );

    let asked = json!({"order_ids": [orders[0], orders[1], orders[0], foreign, "nonsense"]});
    let (status, out) = app.post(&confirm, Some(&m.access), asked).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let results = out["results"].as_array().unwrap();
    let summary: Vec<(String, u64)> = results
        .iter()
        .map(|r| {
            (
                r["order_id"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (orders[0].clone(), 200),
            (orders[1].clone(), 200),
            (orders[0].clone(), 422),
            (foreign.clone(), 404),
            ("nonsense".to_owned(), 404),
        ]
    );
    assert_eq!(results[0]["order"]["status"], "confirmed");
    assert_eq!(results[3]["error"]["code"], "not_found");
    // The queue moved: one left waiting, two confirmed (newest first); the
    // other shop's order was not touched.
    assert_eq!(
        shop_orders(&app, &m, &shop, "pending_payment").await,
        vec![orders[2].clone()]
    );
    assert_eq!(
        shop_orders(&app, &m, &shop, "confirmed").await,
        vec![orders[1].clone(), orders[0].clone()]
    );
    assert_eq!(
        shop_orders(&app, &other, &other_shop, "pending_payment").await,
        vec![foreign.clone()]
    );
    // Confirming again is refused per order, as one request would be.
    let (_, out) = app
        .post(&confirm, Some(&m.access), json!({"order_ids": [orders[0]]}))
        .await;
    assert_eq!(out["results"][0]["status"], 409);
    // Cancelled orders leave the queue too.
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{}/cancel", orders[2]),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(shop_orders(&app, &m, &shop, "pending_payment")
        .await
        .is_empty());
    assert_eq!(
        shop_orders(&app, &m, &shop, "cancelled").await,
        vec![orders[2].clone()]
    );
    // Only the shop's merchant (or an admin) reads its queue; a bad status
    // is refused.
    let c = app.user("customer").await;
    let (status, _) = app
        .get(
            &format!("/api/v1/shops/{shop}/orders?status=paid"),
            Some(&c.access),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get(
            &format!("/api/v1/shops/{shop}/orders?status=lost"),
            Some(&m.access),
        )
        .await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn sales_by_product_and_the_csv_export_add_up_to_the_orders() {
    let app = spawn_app_with(crate::commerce::fast).await;
    let (m, shop, mat) = shop_with_product(&app, 1_000, 50).await;
    let (status, block) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body("Yoga Block", "yoga", 500),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let block = block["id"].as_str().unwrap().to_owned();
    let started = chrono::Utc::now();
    // c1: 2 mats and a block, delivered (cash collected); c2: one block,
    // from an address whose city would be a spreadsheet formula; c3: one
    // mat, cancelled.
    let (c1, a1) = crate::commerce::customer(&app).await;
    crate::commerce::add(&app, &c1, &mat, 2).await;
    crate::commerce::add(&app, &c1, &block, 1).await;
    let (_, placed) = crate::commerce::checkout(&app, &c1, &a1, "cod", None).await;
    let o1 = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    crate::reviews::deliver(&app, &m, &o1).await;
    let (c2, _) = crate::commerce::customer(&app).await;
    let (status, a2) = app
        .post(
            "/api/v1/users/addresses",
            Some(&c2.access),
            json!({"label": "work", "line1": "1 Ly Thai To", "city": "=1+1", "lat": 21.03, "lng": 105.85, "is_default": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a2}");
    crate::commerce::add(&app, &c2, &block, 1).await;
    let (_, placed) =
        crate::commerce::checkout(&app, &c2, a2["id"].as_str().unwrap(), "cod", None).await;
    let o2 = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    let (_, o3) = crate::reviews::ordered(&app, &mat).await;
    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{o3}/cancel"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, sales) = app
        .get(
            &format!("/api/v1/shops/{shop}/analytics/products"),
            Some(&m.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sales}");
    assert_eq!(
        sales,
        json!([
            {"product_id": mat, "name": "Yoga Mat", "orders": 1, "units": 2, "units_paid": 2, "revenue": 2_000},
            {"product_id": block, "name": "Yoga Block", "orders": 2, "units": 2, "units_paid": 1, "revenue": 500},
        ])
    );
    let (_, top) = app
        .get(
            &format!("/api/v1/shops/{shop}/analytics/products?limit=1"),
            Some(&m.access),
        )
        .await;
    assert_eq!(top.as_array().unwrap().len(), 1);
    assert_eq!(top[0]["product_id"], mat.as_str());

    // The export: one row per order, newest first, totals as the API has
    // them, free text kept as text.
    let export = |query: String, token: String| {
        let (app, shop) = (&app, &shop);
        async move {
            app.client
                .get(format!(
                    "{}/api/v1/shops/{shop}/orders/export{query}",
                    app.base
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = export(String::new(), m.access.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(resp.headers()["x-export-truncated"], "false");
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let order_ids: Vec<&str> = rows.iter().map(|r| &r[col("order_id")]).collect();
    assert_eq!(order_ids, vec![o3.as_str(), o2.as_str(), o1.as_str()]);
    for (row, id) in rows.iter().zip([&o3, &o2, &o1]) {
        let (_, o) = app
            .get(&format!("/api/v1/orders/{id}"), Some(&m.access))
            .await;
        assert_eq!(row[col("total")], o["totals"]["total"].to_string());
        assert_eq!(row[col("status")], o["status"].as_str().unwrap().to_owned());
        assert_eq!(
            row[col("payment_status")],
            o["payment"]["status"].as_str().unwrap().to_owned()
        );
    }
    assert_eq!(&rows[1][col("city")], "'=1+1");
    assert_eq!(&rows[0][col("units")], "1");
    assert_eq!(&rows[2][col("units")], "3");
    // A range: nothing after now; everything since the start.
    let later = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let text = export(format!("?from={later}"), m.access.clone())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 1, "only the header: {text}");
    let since = started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let text = export(format!("?from={since}&to={later}"), m.access.clone())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    let resp = export(format!("?from={later}&to={since}"), m.access.clone()).await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let c = app.user("customer").await;
    let resp = export(String::new(), c.access.clone()).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// Orders of every shop, as their merchants list them.
async fn all_orders(app: &TestApp, shops: &[(&Session, &String)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (m, shop) in shops {
        out.extend(
            app.all_pages(
                &format!("/api/v1/shops/{shop}/orders?limit=100"),
                Some(&m.access),
                20,
            )
            .await,
        );
    }
    out
}

#[tokio::test]
async fn platform_statistics_equal_a_recount_of_what_happened_and_move_live() {
    let app = spawn_app_with(|s| {
        crate::commerce::fast(s);
        s.stats_interval_ms = 50;
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let admin = app.login(ADMIN).await;
    let mut live = crate::ws::connect_path(&app, "/api/v1/ws", &admin.access).await;
    crate::ws::send(
        &mut live,
        json!({"type": "subscribe", "topic": "admin:stats"}),
    )
    .await;
    let subscribed = crate::ws::recv(&mut live).await;
    assert!(
        matches!(
            subscribed,
            surge::http::ws::protocol::ServerMsg::Subscribed { .. }
        ),
        "{subscribed:?}"
    );
    // Nobody else may watch it.
    let nosy = app.user("customer").await;
    let mut other = crate::ws::connect_path(&app, "/api/v1/ws", &nosy.access).await;
    crate::ws::send(
        &mut other,
        json!({"type": "subscribe", "topic": "admin:stats"}),
    )
    .await;
    assert!(matches!(
        crate::ws::recv(&mut other).await,
        surge::http::ws::protocol::ServerMsg::Error { .. }
    ));

    // A generated history: two shops, cash orders delivered, cancelled or
    // left; one online order paid, delivered, returned and refunded; a
    // flash sale and a free course taken.
    let (m1, shop1, p1) = shop_with_product(&app, 30_000, 100).await;
    let (m2, shop2, p2) = shop_with_product(&app, 55_000, 100).await;
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..8 {
        let (m, product) = if i % 3 == 0 { (&m2, &p2) } else { (&m1, &p1) };
        let (c, address) = crate::commerce::customer(&app).await;
        crate::commerce::add(&app, &c, product, 1 + next(3) as u32).await;
        let (status, placed) = crate::commerce::checkout(&app, &c, &address, "cod", None).await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        let order = placed["orders"][0]["id"].as_str().unwrap().to_owned();
        match next(3) {
            0 => crate::reviews::deliver(&app, m, &order).await,
            1 => {
                let (status, _) = app
                    .put(
                        &format!("/api/v1/orders/{order}/cancel"),
                        Some(&c.access),
                        json!({}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK);
            }
            _ => {}
        }
    }
    let (c, address) = crate::commerce::customer(&app).await;
    crate::commerce::add(&app, &c, &p1, 2).await;
    let (_, placed) = crate::commerce::checkout(&app, &c, &address, "sandbox", None).await;
    let online = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    let url = placed["orders"][0]["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    app.client.post(format!("{url}/pay")).send().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, o) = app
            .get(&format!("/api/v1/orders/{online}"), Some(&c.access))
            .await;
        if o["status"] == "paid" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::reviews::deliver(&app, &m1, &online).await;
    app.post(
        &format!("/api/v1/orders/{online}/return"),
        Some(&c.access),
        json!({"reason": "broken"}),
    )
    .await;
    app.put(
        &format!("/api/v1/orders/{online}/return/receive"),
        Some(&m1.access),
        json!({}),
    )
    .await;
    let (status, sale) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m2.access),
            json!({"product_id": p2, "stock": 5, "per_user_limit": 1, "price": 10_000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    let sale = sale["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (c, _) = crate::commerce::customer(&app).await;
        let (status, body) = app
            .post(
                &format!("/api/v1/flash-sales/{sale}/claims"),
                Some(&c.access),
                json!({"payment_method": "cod"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, course) = app
        .post(
            "/api/v1/courses",
            Some(&m1.access),
            json!({"title": "Free yoga", "kind": "yoga", "capacity": 3, "price": 0, "currency": "VND"}),
        )
        .await;
    let (status, _) = app
        .post(
            &format!(
                "/api/v1/courses/{}/enrollments",
                course["id"].as_str().unwrap()
            ),
            Some(&nosy.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // The recount, from what the API says happened.
    let shops = vec![(&m1, &shop1), (&m2, &shop2)];
    let settle = std::time::Instant::now() + Duration::from_secs(20);
    let orders = loop {
        let orders = all_orders(&app, &shops).await;
        // Claims' orders are placed by the queue worker.
        let refunded = orders
            .iter()
            .any(|o| o["id"] == online.as_str() && o["status"] == "refunded");
        if orders.len() == 11 && refunded {
            break orders;
        }
        assert!(
            std::time::Instant::now() < settle,
            "{} orders",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let was_paid = |o: &&Value| {
        ["paid", "collected", "refunded"].contains(&o["payment"]["status"].as_str().unwrap())
    };
    let paid: Vec<&Value> = orders.iter().filter(was_paid).collect();
    let gmv: u64 = paid
        .iter()
        .map(|o| o["totals"]["total"].as_u64().unwrap())
        .sum();
    let refunded: Vec<&Value> = orders
        .iter()
        .filter(|o| o["payment"]["status"] == "refunded")
        .collect();
    let users = app
        .all_pages("/api/v1/admin/users?limit=100", Some(&admin.access), 10)
        .await;
    let mut product_gmv: std::collections::BTreeMap<String, u64> = Default::default();
    for o in &paid {
        for l in o["lines"].as_array().unwrap() {
            *product_gmv
                .entry(l["product_id"].as_str().unwrap().to_owned())
                .or_default() +=
                l["unit_price"].as_u64().unwrap() * l["quantity"].as_u64().unwrap();
        }
    }
    let want = json!({
        "orders": orders.len(),
        "paid_orders": paid.len(),
        "gmv": {"VND": gmv},
        "refunds": refunded.len(),
        "refunded": if refunded.is_empty() { json!({}) } else { json!({"VND": refunded.iter().map(|o| o["payment"]["amount"].as_u64().unwrap()).sum::<u64>()}) },
        "deliveries": 0,
        "active_shippers": 0,
        "new_users": users.len(),
        "course_signups": 1,
        "flash_sale_signups": 2,
    });
    assert_eq!(refunded.len(), 1);
    let today = chrono::Utc::now().date_naive();
    let from = format!("{today}T00:00:00Z");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let report = loop {
        let (status, report) = app
            .get(
                &format!("/api/v1/admin/stats?from={from}&granularity=hour"),
                Some(&admin.access),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        if report["totals"] == want {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} vs {want}",
            report["totals"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The hours add up to the totals; the top products by GMV are the
    // recount's.
    let hour_orders: u64 = report["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["orders"].as_u64().unwrap())
        .sum();
    assert_eq!(hour_orders, orders.len() as u64);
    for t in report["top_products"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        assert_eq!(
            t["gmv"].as_u64().unwrap(),
            product_gmv.get(id).copied().unwrap_or(0),
            "{t}"
        );
    }
    // By day: today's bucket holds it all.
    let (_, by_day) = app.get("/api/v1/admin/stats", Some(&admin.access)).await;
    assert_eq!(by_day["buckets"].as_array().unwrap().len(), 8);
    assert_eq!(by_day["totals"], want);
    // The live topic carried today's counters as they moved.
    let mut last = Value::Null;
    while let Ok(msg) =
        tokio::time::timeout(Duration::from_millis(500), crate::ws::recv(&mut live)).await
    {
        if let surge::http::ws::protocol::ServerMsg::Event { data, .. } = msg {
            last = serde_json::to_value(data).unwrap();
        }
    }
    assert_eq!(last["kind"], "today");
    assert_eq!(last["orders"], orders.len());
    // Refusals.
    for (token, query, status) in [
        (&nosy.access, "", StatusCode::FORBIDDEN),
        (
            &admin.access,
            "?granularity=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin.access,
            "?from=2026-03-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (&admin.access, "?top=0", StatusCode::UNPROCESSABLE_ENTITY),
        (&admin.access, "?granularity=week", StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = app
            .get(&format!("/api/v1/admin/stats{query}"), Some(token))
            .await;
        assert_eq!(got, status, "{query}: {body}");
    }
}

/// Today's totals once they equal `done` (the worker counts within its
/// interval).
async fn stats_until(app: &TestApp, admin: &Session, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, report) = app.get("/api/v1/admin/stats", Some(&admin.access)).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        if done(&report["totals"]) {
            return report["totals"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{}", report["totals"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn statistics_count_each_fact_once_across_a_restart() {
    let tweak = |s: &mut surge::config::Settings| {
        crate::commerce::fast(s);
        s.stats_interval_ms = 50;
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    };
    let app = spawn_app_with(tweak).await;
    let admin = app.login(ADMIN).await;
    let (_, _, product) = shop_with_product(&app, 10_000, 50).await;
    for _ in 0..3 {
        crate::reviews::ordered(&app, &product).await;
    }
    let before = stats_until(&app, &admin, |t| t["orders"] == 3).await;
    let dir = app.stop().await;
    let app = spawn_app_in(dir, tweak).await;
    let admin = app.login(ADMIN).await;
    // Nothing counted twice after the restart; what comes next counts once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, report) = app.get("/api/v1/admin/stats", Some(&admin.access)).await;
    assert_eq!(report["totals"], before);
    crate::reviews::ordered(&app, &product).await;
    let after = stats_until(&app, &admin, |t| t["orders"] == 4).await;
    assert_eq!(
        after["new_users"],
        before["new_users"].as_u64().unwrap() + 1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, report) = app.get("/api/v1/admin/stats", Some(&admin.access)).await;
    assert_eq!(report["totals"], after);
}

#[tokio::test]
async fn hidden_products_and_shops_leave_listings_search_and_sale_until_lifted() {
    let app = spawn_app_with(|s| {
        crate::commerce::fast(s);
        s.search_refresh_ms = 50;
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let admin = app.login(ADMIN).await;
    let (m, shop, mat) = shop_with_product(&app, 10_000, 10).await;
    let (_, block) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body("Cork Block", "yoga", 5_000),
        )
        .await;
    let block = block["id"].as_str().unwrap().to_owned();
    let listed = |app: &TestApp| {
        let (app, shop) = (app.behind(app.base.clone()), shop.clone());
        async move {
            let (_, page) = app
                .get(&format!("/api/v1/products?shop_id={shop}"), None)
                .await;
            let mut v: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect();
            v.sort();
            v
        }
    };
    let searched = |app: &TestApp, query: &'static str| {
        let app = app.behind(app.base.clone());
        async move {
            let (_, page) = app.get(&format!("/api/v1/search?{query}"), None).await;
            page["total"].as_u64().unwrap()
        }
    };
    let until = |what: &'static str, query: &'static str, want: u64| {
        let app = app.behind(app.base.clone());
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while searched(&app, query).await != want {
                if std::time::Instant::now() >= deadline {
                    let (_, page) = app.get(&format!("/api/v1/search?{query}"), None).await;
                    panic!("{what}: {page}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    until("both indexed", "q=cork&type=product", 1).await;
    until("the mat indexed", "q=yoga+mat&type=product", 1).await;
    let hide = |kind: &str, id: &str| format!("/api/v1/admin/{kind}/{id}/hide");
    // Only admins, with a reason.
    let (status, _) = app
        .put(
            &hide("products", &mat),
            Some(&m.access),
            json!({"reason": "counterfeit"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .put(
            &hide("products", &mat),
            Some(&admin.access),
            json!({"reason": " "}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, p) = app
        .put(
            &hide("products", &mat),
            Some(&admin.access),
            json!({"reason": "counterfeit"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["hidden"]["reason"], "counterfeit");
    assert_eq!(listed(&app).await, vec![block.clone()]);
    until("the mat leaves search", "q=yoga+mat&type=product", 0).await;
    let (c, _) = crate::commerce::customer(&app).await;
    let (status, body) = app
        .post(
            "/api/v1/cart/items",
            Some(&c.access),
            json!({"product_id": mat, "quantity": 1}),
        )
        .await;
    // Not there for a shopper: 404, not "no longer sold" with its name.
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Its merchant cannot lift it.
    let (_, p) = app
        .put(
            &format!("/api/v1/products/{mat}"),
            Some(&m.access),
            json!({"active": true}),
        )
        .await;
    assert!(p["hidden"].is_object());
    // The shop hidden: out of the shop listing and search, its products too.
    let (status, s) = app
        .put(
            &hide("shops", &shop),
            Some(&admin.access),
            json!({"reason": "fraud"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert!(listed(&app).await.is_empty());
    let shops = app.all_pages("/api/v1/shops?limit=100", None, 5).await;
    assert!(shops.iter().all(|s| s["id"] != shop.as_str()));
    until("the shop leaves search", "q=hanoi+yoga&type=shop", 0).await;
    until("the block leaves search", "q=cork&type=product", 0).await;
    // The shop lifted: its products come back, but not one hidden on its own.
    let (status, _) = app.delete(&hide("shops", &shop), Some(&admin.access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed(&app).await, vec![block.clone()]);
    until("the block is back", "q=cork&type=product", 1).await;
    let (status, _) = app
        .delete(&hide("products", &mat), Some(&admin.access))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut both = vec![mat.clone(), block.clone()];
    both.sort();
    assert_eq!(listed(&app).await, both);
    until("the mat is back", "q=yoga+mat&type=product", 1).await;
}

/// The operations the OpenAPI document reserves for merchants (the roles
/// of their `bearer` requirement include `merchant`, not `customer`).
fn merchant_operations(doc: &Value) -> Vec<(reqwest::Method, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["bearer"].as_array())
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if roles.contains(&"merchant") && !roles.contains(&"customer") {
                out.push((method.to_uppercase().parse().unwrap(), path.clone()));
            }
        }
    }
    out
}

async fn storefront_shops(app: &TestApp) -> Vec<String> {
    ids(&app.all_pages("/api/v1/shops", None, 20).await)
}

#[tokio::test]
async fn seller_rights_follow_the_role_on_every_merchant_operation() {
    let app = spawn_app_with(crate::reviews::with_admin).await;
    let admin = app.login(ADMIN).await;
    let (m, shop, product) = shop_with_product(&app, 10_000, 10).await;
    let (status, course) = app
        .post(
            "/api/v1/courses",
            Some(&m.access),
            json!({"title": "Yoga 4 weeks", "kind": "yoga", "capacity": 5, "price": 0, "currency": "VND", "sessions": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let (status, sale) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m.access),
            json!({"product_id": product, "stock": 2, "per_user_limit": 1, "price": 5_000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    let (_, order) = crate::reviews::ordered(&app, &product).await;
    assert!(storefront_shops(&app).await.contains(&shop));
    let (status, coupon) = app
        .post(
            &format!("/api/v1/shops/{shop}/coupons"),
            Some(&m.access),
            json!({"code": "OWNED", "kind": "fixed", "value": 1_000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");

    // Made a customer: every merchant operation of the document refuses
    // them, on their own shop, product, course, sale and order.
    let role = format!("/api/v1/admin/users/{}/role", m.id);
    let (status, view) = app
        .put(&role, Some(&admin.access), json!({"role": "customer"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let former = app.login(&m.email).await;
    let (_, doc) = app.get("/openapi.json", None).await;
    let operations = merchant_operations(&doc);
    assert!(operations.len() >= 30, "{operations:?}");
    let own = [
        ("shops", shop.as_str()),
        ("products", product.as_str()),
        ("courses", course["id"].as_str().unwrap()),
        ("flash-sales", sale["id"].as_str().unwrap()),
        ("orders", order.as_str()),
        ("reviews", "no-such-review"),
    ];
    for (method, template) in &operations {
        let mut path = template
            .replace("{media_id}", "no-such-media")
            .replace("{order_id}", &order)
            .replace("{code}", "OWNED");
        if let Some((_, id)) = own
            .iter()
            .find(|(kind, _)| path.starts_with(&format!("/api/v1/{kind}/{{id}}")))
        {
            path = path.replace("{id}", id);
        }
        assert!(
            !path.contains('{'),
            "{template}: a parameter the test does not fill"
        );
        let body =
            matches!(*method, reqwest::Method::POST | reqwest::Method::PUT).then(|| json!({}));
        let (status, answer) = app
            .request(method.clone(), &path, Some(&former.access), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(error_code(&answer), "forbidden");
    }
    // Nothing changed, and the shop left the storefront (its products with
    // it) while its open order waits for an admin, who may finish it.
    let (_, p) = app
        .get(&format!("/api/v1/products/{product}"), Some(&admin.access))
        .await;
    assert_eq!(p["price"], 10_000);
    let (_, coupon) = app.get("/api/v1/coupons/OWNED", None).await;
    assert_eq!(
        (&coupon["status"], &coupon["value"]),
        (&json!("active"), &json!(1_000))
    );
    assert!(!storefront_shops(&app).await.contains(&shop));
    let (_, listed) = app
        .get(&format!("/api/v1/products?shop_id={shop}"), None)
        .await;
    assert_eq!(listed["items"], json!([]), "{listed}");
    let (status, confirmed) = app
        .put(
            &format!("/api/v1/orders/{order}/confirm"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");

    // A merchant again: the shop is back and theirs to change.
    let (status, _) = app
        .put(&role, Some(&admin.access), json!({"role": "merchant"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(storefront_shops(&app).await.contains(&shop));
    let again = app.login(&m.email).await;
    let (status, body) = app
        .put(
            &format!("/api/v1/shops/{shop}"),
            Some(&again.access),
            json!({"name": "Hanoi Yoga House"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Suspension hides the shops too; an admin's own hiding outlives the
    // seller's return.
    let (status, _) = app
        .post(
            &format!("/api/v1/admin/users/{}/suspend", m.id),
            Some(&admin.access),
            json!({"reason": "chargebacks"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!storefront_shops(&app).await.contains(&shop));
    let (status, hidden) = app
        .put(
            &format!("/api/v1/admin/shops/{shop}/hide"),
            Some(&admin.access),
            json!({"reason": "fraud investigation"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hidden}");
    let (status, _) = app
        .post(
            &format!("/api/v1/admin/users/{}/reactivate", m.id),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!storefront_shops(&app).await.contains(&shop));
    let (_, s) = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&admin.access))
        .await;
    assert_eq!(s["hidden"]["reason"], "fraud investigation", "{s}");
}

#[tokio::test]
async fn hidden_means_not_found_on_every_storefront_read_path() {
    let app = spawn_app_with(|s| {
        crate::reviews::with_admin(s);
        s.search_refresh_ms = 50;
    })
    .await;
    let admin = app.login(ADMIN).await;
    let (m, shop, mat) = shop_with_product(&app, 10_000, 10).await;
    let (_, block) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body("Cork Block", "yoga", 5_000),
        )
        .await;
    let block = block["id"].as_str().unwrap().to_owned();
    let (status, image) = crate::media::upload(
        &app,
        &m.access,
        &format!("/api/v1/products/{mat}/media"),
        &crate::media::jpeg(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    let image = image["id"].as_str().unwrap().to_owned();
    // A delivered order's reviews of the mat and of the shop.
    let (c, order) = crate::reviews::ordered(&app, &mat).await;
    crate::reviews::deliver(&app, &m, &order).await;
    let mut reviews = Vec::new();
    for path in [
        format!("/api/v1/products/{mat}/reviews"),
        format!("/api/v1/shops/{shop}/reviews"),
    ] {
        let (status, r) = app
            .post(
                &path,
                Some(&c.access),
                json!({"order_id": order, "stars": 4}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        reviews.push(r["id"].as_str().unwrap().to_owned());
    }
    let stranger = app.user("customer").await;
    let product_paths = |p: &str| {
        vec![
            format!("/api/v1/products/{p}"),
            format!("/api/v1/products/{p}/reviews"),
            format!("/api/v1/products/{p}/rating-summary"),
            format!("/api/v1/products/{p}/also-bought"),
            format!("/api/v1/products/{p}/similar"),
        ]
    };
    let mut paths = product_paths(&mat);
    paths.push(format!("/api/v1/reviews/{}", reviews[0]));
    paths.push(format!("/api/v1/media/{image}"));
    // Every read path answers 404 to a stranger, signed in or not, and 200
    // to the merchant and an admin.
    let check = |paths: Vec<String>, hidden: bool| {
        let app = app.behind(app.base.clone());
        let tokens = [
            (None, hidden),
            (Some(stranger.access.clone()), hidden),
            (Some(m.access.clone()), false),
            (Some(admin.access.clone()), false),
        ];
        async move {
            for path in &paths {
                for (token, hidden) in &tokens {
                    let (status, body) = app.get(path, token.as_deref()).await;
                    let want = match hidden {
                        true => StatusCode::NOT_FOUND,
                        false => StatusCode::OK,
                    };
                    let who = if token.is_some() {
                        "signed in"
                    } else {
                        "anonymous"
                    };
                    assert_eq!(status, want, "{path} ({who}): {body}");
                }
            }
        }
    };
    check(paths.clone(), false).await;
    let add_to_cart = || {
        let body = json!({"product_id": mat, "quantity": 1});
        app.post("/api/v1/cart/items", Some(&stranger.access), body)
    };
    assert_eq!(add_to_cart().await.0, StatusCode::OK);

    // The product hidden.
    let (status, _) = app
        .put(
            &format!("/api/v1/admin/products/{mat}/hide"),
            Some(&admin.access),
            json!({"reason": "counterfeit, case #123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    check(paths.clone(), true).await;
    let (_, p) = app
        .get(&format!("/api/v1/products/{mat}"), Some(&m.access))
        .await;
    assert_eq!(p["hidden"]["reason"], "counterfeit, case #123");
    // A cart that held it shows it unavailable; it is not added again.
    let (_, cart) = app.get("/api/v1/cart", Some(&stranger.access)).await;
    assert_eq!(cart["items"][0]["available"], false, "{cart}");
    assert_eq!(add_to_cart().await.0, StatusCode::NOT_FOUND);

    // The shop hidden: its own paths, and its other product's, too.
    let (status, _) = app
        .put(
            &format!("/api/v1/admin/shops/{shop}/hide"),
            Some(&admin.access),
            json!({"reason": "fraud investigation #123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut shop_paths = vec![
        format!("/api/v1/shops/{shop}"),
        format!("/api/v1/shops/{shop}/reviews"),
        format!("/api/v1/shops/{shop}/rating-summary"),
        format!("/api/v1/reviews/{}", reviews[1]),
    ];
    shop_paths.extend(product_paths(&block));
    check(shop_paths, true).await;
    let (_, s) = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&admin.access))
        .await;
    assert_eq!(s["hidden"]["reason"], "fraud investigation #123");
    // Lists leave them out: shops, a shop's products, search, suggestions.
    assert!(!ids(&app.all_pages("/api/v1/shops", None, 20).await).contains(&shop));
    let (_, listed) = app
        .get(&format!("/api/v1/products?shop_id={shop}"), None)
        .await;
    assert_eq!(listed["items"], json!([]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, found) = app.get("/api/v1/search?q=cork&type=product", None).await;
        let (_, suggested) = app
            .get("/api/v1/search/suggest?type=product&q=cor", None)
            .await;
        if found["total"] == 0 && suggested["suggestions"] == json!([]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{found} {suggested}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A shop's revenue by day and the platform's day buckets count days in
/// `report_time_zone`: an order placed now falls on the zone's date, not
/// UTC's. The zone is one whose date differs from UTC's at this hour
/// (+14 from 10:00 UTC on, −11 before 11:00; neither changes its clocks).
#[tokio::test]
async fn reports_count_days_in_the_report_time_zone() {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let (zone, hours) = if now.hour() >= 10 {
        ("Pacific/Kiritimati", 14)
    } else {
        ("Pacific/Pago_Pago", -11)
    };
    let local =
        |t: chrono::DateTime<chrono::Utc>| (t + chrono::Duration::hours(hours)).date_naive();
    let app = spawn_app_with(|s| {
        crate::commerce::fast(s);
        s.stats_interval_ms = 50;
        s.report_time_zone = zone.into();
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let admin = app.login(ADMIN).await;
    let (m, shop, product) = shop_with_product(&app, 30_000, 10).await;
    let (c, address) = crate::commerce::customer(&app).await;
    crate::commerce::add(&app, &c, &product, 1).await;
    let (status, placed) = crate::commerce::checkout(&app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let placed_at = chrono::Utc::now();
    let day = local(placed_at);
    assert_ne!(day, placed_at.date_naive(), "the zone's date is not UTC's");

    let (status, revenue) = app
        .get(
            &format!("/api/v1/shops/{shop}/analytics/revenue"),
            Some(&m.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revenue}");
    assert_eq!(revenue[0]["day"], day.to_string(), "{revenue}");

    stats_until(&app, &admin, |t| t["orders"] == 1).await;
    let from =
        (placed_at - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to =
        (placed_at + chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, report) = app
        .get(
            &format!("/api/v1/admin/stats?granularity=day&from={from}&to={to}"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let buckets = report["buckets"].as_array().unwrap();
    let starts: Vec<chrono::DateTime<chrono::Utc>> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap().parse().unwrap())
        .collect();
    // Each bucket starts at the zone's midnight, a day after the last.
    for (i, start) in starts.iter().enumerate() {
        assert_eq!(
            (*start + chrono::Duration::hours(hours)).time(),
            chrono::NaiveTime::MIN,
            "{start} is the zone's midnight"
        );
        if i > 0 {
            assert_eq!(*start - starts[i - 1], chrono::Duration::days(1));
        }
    }
    let holding = starts
        .iter()
        .rposition(|s| *s <= placed_at)
        .expect("a bucket holds the order");
    assert_eq!(local(starts[holding]), day);
    assert_eq!(buckets[holding]["orders"], 1, "{report}");
    let others: u64 = buckets.iter().map(|b| b["orders"].as_u64().unwrap()).sum();
    assert_eq!(others, 1, "counted once, in its local day: {report}");
}

#[test]
fn an_unknown_report_time_zone_is_refused_at_start() {
    let err = surge::config::Settings::from_toml("report_time_zone = \"Asia/Saigon-ish\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("report_time_zone"), "{err}");
}

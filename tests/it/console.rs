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
    // Someone with none gets empty lists.
    let c = app.user("customer").await;
    for path in ["/api/v1/users/me/courses", "/api/v1/users/me/flash-sales"] {
        let (status, page) = app.get(path, Some(&c.access)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["items"], json!([]));
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

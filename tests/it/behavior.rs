//! Behaviour signals over HTTP: recently viewed (bounded, newest first,
//! each product once, kept over a restart), trending from views and
//! checkouts (per category, rebuilt from the activity feed after a
//! restart), bought together from checkouts, and similar products from
//! the index.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::commerce::{add, checkout, customer};
use crate::helpers::*;

fn fast(s: &mut surge::config::Settings) {
    crate::commerce::fast(s);
    s.search_refresh_ms = 50;
    s.behavior_flush_ms = 50;
}

async fn product(app: &TestApp, m: &Session, shop: &str, name: &str, category: &str) -> String {
    let (status, p) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body(name, category, 100_000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

async fn view(app: &TestApp, who: &Session, product: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/behavior/view",
        Some(&who.access),
        json!({"product_id": product}),
    )
    .await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET path` once `done` holds of its answer (signals are written every
/// flush and the index follows the catalog within its refresh).
async fn until(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path}: still {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn recently_viewed_is_bounded_newest_first_and_kept_over_a_restart() {
    let app = spawn_app_with(fast).await;
    let (m, shop, first) = shop_with_product(&app, 100_000, 10).await;
    let mut products = vec![first];
    for i in 1..52 {
        products.push(product(&app, &m, &shop, &format!("Band {i}"), "gym").await);
    }
    let c = app.user("customer").await;
    let path = "/api/v1/users/me/recently-viewed?limit=100";
    // Every product listed in the index before it is viewed.
    until(&app, "/api/v1/search?q=band&limit=100", None, |p| {
        p["total"].as_u64() == Some(51)
    })
    .await;
    for p in &products {
        let (status, body) = view(&app, &c, p).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    // Seen at once on this node, flushed or not: the last 50, newest first.
    let (status, list) = app.get(path, Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let expected: Vec<String> = products.iter().rev().take(50).cloned().collect();
    assert_eq!(ids(&list), expected);
    assert!(list["items"][0]["viewed_at"].is_string(), "{list}");

    // Viewed again: to the front, once.
    let (status, _) = view(&app, &c, &products[10]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let list = until(&app, path, Some(&c.access), |l| {
        ids(l).first() == Some(&products[10])
    })
    .await;
    assert_eq!(ids(&list).len(), 50);
    assert_eq!(ids(&list).iter().filter(|p| **p == products[10]).count(), 1);

    // Refused views record nothing.
    let before = ids(&list);
    let (status, body) = view(&app, &c, "no-such-product").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "validation_failed");
    let (status, _) = view(&app, &c, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{}", products[0]),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = view(&app, &c, &products[0]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "inactive");
    let (status, _) = app
        .post(
            "/api/v1/behavior/view",
            None,
            json!({"product_id": products[1]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/v1/behavior/view",
            Some(&c.access),
            json!({"product_id": products[1], "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = app.get(path, Some(&c.access)).await;
    assert_eq!(ids(&list), before);
    // A row another node wrote that this one cannot read (another
    // version) is left out, not an error.
    let services = &app.state.as_ref().unwrap().services;
    services
        .store
        .write_rows(vec![surge::store::IndexOp::Put {
            table: surge::store::tables::RECENTLY_VIEWED,
            key: format!("{}|node-from-the-future", c.id),
            value: b"not a list".to_vec(),
        }])
        .await
        .unwrap();
    let (status, list) = app.get(path, Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), before);
    assert_eq!(
        view(&app, &c, &products[11]).await.0,
        StatusCode::NO_CONTENT
    );
    let list = until(&app, path, Some(&c.access), |l| {
        ids(l).first() == Some(&products[11])
    })
    .await;
    let before: Vec<String> = ids(&list);
    // Somebody else's list is their own.
    let other = app.user("customer").await;
    let (_, theirs) = app.get(path, Some(&other.access)).await;
    assert_eq!(ids(&theirs), Vec::<String>::new());
    let (status, _) = app.get(path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get("/api/v1/users/me/recently-viewed?limit=0", Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A graceful stop flushes; the list is read back from the store.
    let dir = app.stop().await;
    let app = spawn_app_in(dir, fast).await;
    let list = until(&app, path, Some(&c.access), |l| ids(l) == before).await;
    assert_eq!(ids(&list).len(), 50);
    let (_, five) = app
        .get("/api/v1/users/me/recently-viewed?limit=5", Some(&c.access))
        .await;
    assert_eq!(ids(&five), before[..5].to_vec());
}

#[tokio::test]
async fn trending_follows_views_and_checkouts_per_category_and_survives_a_restart() {
    let app = spawn_app_with(fast).await;
    let (m, shop, mat) = shop_with_product(&app, 100_000, 50).await;
    let block = product(&app, &m, &shop, "Cork Block", "yoga").await;
    let bar = product(&app, &m, &shop, "Barbell", "gym").await;
    let quiet = product(&app, &m, &shop, "Quiet Strap", "yoga").await;
    until(&app, "/api/v1/search?type=product&limit=10", None, |p| {
        p["total"].as_u64() == Some(4)
    })
    .await;

    // Three people look at the barbell (one of them twice: counted once),
    // one at the mat; two buy the block (a checkout outweighs views).
    for _ in 0..3 {
        let v = app.user("customer").await;
        assert_eq!(view(&app, &v, &bar).await.0, StatusCode::NO_CONTENT);
        assert_eq!(view(&app, &v, &bar).await.0, StatusCode::NO_CONTENT);
    }
    let v = app.user("customer").await;
    assert_eq!(view(&app, &v, &mat).await.0, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        let (c, address) = customer(&app).await;
        add(&app, &c, &block, 1).await;
        let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
    }

    let expect_all = vec![block.clone(), bar.clone(), mat.clone()];
    // Both checkouts folded in.
    let all = until(&app, "/api/v1/trending", None, |t| {
        ids(t) == expect_all && t["items"][0]["score"].as_f64() > Some(19.9)
    })
    .await;
    let scores: Vec<f64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    // Two checkouts (10 each) above three viewers above one; nothing is
    // old enough here to have decayed measurably.
    assert!((scores[0] - 20.0).abs() < 0.1, "{all}");
    assert!((scores[1] - 3.0).abs() < 0.1, "{all}");
    assert!((scores[2] - 1.0).abs() < 0.1, "{all}");
    assert!(!ids(&all).contains(&quiet), "no activity, not trending");

    let (status, yoga) = app.get("/api/v1/trending?category=YOGA", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&yoga), vec![block.clone(), mat.clone()]);
    let (_, cats) = app.get("/api/v1/trending/categories", None).await;
    let names: Vec<&str> = cats["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["yoga", "gym"], "{cats}");
    let (_, one) = app.get("/api/v1/trending?limit=1", None).await;
    assert_eq!(ids(&one), vec![block.clone()]);
    let (status, _) = app.get("/api/v1/trending?limit=101", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A product taken off sale leaves trending (it is no longer listed).
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{bar}"),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    until(&app, "/api/v1/trending", None, |t| {
        ids(t) == vec![block.clone(), mat.clone()]
    })
    .await;

    // A restarted node counts again from the activity feed.
    let dir = app.stop().await;
    let app = spawn_app_in(dir, fast).await;
    let again = until(&app, "/api/v1/trending", None, |t| {
        ids(t) == vec![block.clone(), mat.clone()]
    })
    .await;
    assert!((again["items"][0]["score"].as_f64().unwrap() - 20.0).abs() < 0.1);
}

#[tokio::test]
async fn bought_together_comes_from_checkouts_and_similar_from_the_index() {
    bought_together_comes_from_checkouts_and_similar_from_the_index_on(spawn_app_with(fast).await)
        .await;
}

/// Also run on PostgreSQL and ScyllaDB (`behavior_flows`): every table of
/// the signals is written and read back.
pub(crate) async fn bought_together_comes_from_checkouts_and_similar_from_the_index_on(
    app: TestApp,
) {
    let (m, shop, mat) = shop_with_product(&app, 100_000, 50).await;
    let strap = product(&app, &m, &shop, "Yoga Strap", "yoga").await;
    let bottle = product(&app, &m, &shop, "Water Bottle", "gym").await;
    let mat_lite = product(&app, &m, &shop, "Yoga Mat Lite", "yoga").await;
    let towel = product(&app, &m, &shop, "Gym Towel", "gym").await;
    until(&app, "/api/v1/search?type=product", None, |p| {
        p["total"].as_u64() == Some(5)
    })
    .await;

    // Mat + strap twice, mat + bottle once, the towel alone.
    for basket in [
        vec![&mat, &strap],
        vec![&mat, &strap, &mat_lite],
        vec![&mat, &bottle],
        vec![&towel],
    ] {
        let (c, address) = customer(&app).await;
        for p in basket {
            add(&app, &c, p, 1).await;
        }
        let (status, placed) = checkout(&app, &c, &address, "cod", None).await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
    }
    let path = format!("/api/v1/products/{mat}/also-bought");
    let with_mat = until(&app, &path, None, |p| ids(p).len() == 3).await;
    assert_eq!(ids(&with_mat)[0], strap, "{with_mat}");
    assert_eq!(with_mat["items"][0]["score"].as_f64(), Some(2.0));
    let rest: Vec<String> = ids(&with_mat)[1..].to_vec();
    assert!(
        rest.contains(&bottle) && rest.contains(&mat_lite),
        "{with_mat}"
    );
    let (_, with_strap) = app
        .get(&format!("/api/v1/products/{strap}/also-bought"), None)
        .await;
    assert_eq!(ids(&with_strap)[0], mat);
    let (_, alone) = app
        .get(&format!("/api/v1/products/{towel}/also-bought"), None)
        .await;
    assert_eq!(ids(&alone), Vec::<String>::new());
    let (status, body) = app
        .get(
            &format!("/api/v1/products/{}/also-bought", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Similar: the other yoga mat first (name and category), then the
    // other yoga product; never itself.
    let (status, like) = app
        .get(&format!("/api/v1/products/{mat}/similar"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{like}");
    let like = ids(&like);
    assert_eq!(like[0], mat_lite, "{like:?}");
    assert_eq!(like[1], strap, "{like:?}");
    assert!(!like.contains(&mat));
    let (status, _) = app.get("/api/v1/products/nope/similar", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The checkouts made the mat trending (three of them), then the
    // strap (two); a view is recently viewed.
    until(&app, "/api/v1/trending?category=yoga", None, |t| {
        ids(t).first() == Some(&mat) && t["items"][0]["score"].as_f64() > Some(29.9)
    })
    .await;
    let c = app.user("customer").await;
    assert_eq!(view(&app, &c, &towel).await.0, StatusCode::NO_CONTENT);
    let (_, seen) = app
        .get("/api/v1/users/me/recently-viewed", Some(&c.access))
        .await;
    assert_eq!(ids(&seen), vec![towel.clone()]);
}

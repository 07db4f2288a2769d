//! Search over HTTP: words with typos, prefixes and Vietnamese without
//! tones; filters, facets, sorts and paging; nearby by distance;
//! suggestions as you type; freshness after changes; and the index built
//! again from the catalog after it was deleted.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

pub(crate) fn fast(s: &mut surge::config::Settings) {
    crate::commerce::fast(s);
    s.search_refresh_ms = 50;
}

/// A shop at `(lat, lng)` of a new merchant: (merchant, shop id).
async fn shop_at(app: &TestApp, name: &str, lat: f64, lng: f64) -> (Session, String) {
    let m = app.user("merchant").await;
    let (status, shop) = app
        .post(
            "/api/v1/shops",
            Some(&m.access),
            json!({"name": name, "location": {"lat": lat, "lng": lng}, "address": "1 Pho Hue"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shop}");
    (m, shop["id"].as_str().unwrap().to_owned())
}

async fn product(
    app: &TestApp,
    m: &Session,
    shop: &str,
    name: &str,
    category: &str,
    price: u64,
) -> String {
    let (status, p) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body(name, category, price),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

async fn search(app: &TestApp, query: &str) -> Value {
    let (status, page) = app.get(&format!("/api/v1/search?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

/// The search once `done` holds of its answer (the index follows the
/// catalog within its refresh interval).
async fn search_until(app: &TestApp, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = search(app, query).await;
        if done(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{query}: still {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_owned())
        .collect()
}

fn sum(buckets: &Value) -> u64 {
    buckets
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum()
}

/// A catalog of one shop: two shirts, a jacket, two yoga things, an
/// inactive shirt, and a yoga course. Returns (merchant, shop, product ids).
async fn catalog(app: &TestApp) -> (Session, String, Vec<String>) {
    let (m, shop) = shop_at(app, "Hanoi Threads", 21.03, 105.85).await;
    let mut ids = Vec::new();
    for (name, category, price) in [
        ("Áo thun cotton", "fashion", 150_000),
        ("Áo khoác gió", "fashion", 350_000),
        ("Yoga Mat Pro", "yoga", 500_000),
        ("Yoga Block", "yoga", 90_000),
        ("Áo thun cũ", "fashion", 20_000),
    ] {
        ids.push(product(app, &m, &shop, name, category, price).await);
    }
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{}", ids[4]),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, c) = app
        .post(
            "/api/v1/courses",
            Some(&m.access),
            json!({"title": "Morning Yoga Flow", "kind": "yoga", "capacity": 10, "price": 0, "currency": "VND"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    // Four active products, the shop and the course (and not the shirt
    // taken off sale, which may be counted until its change is applied).
    search_until(app, "limit=100", |p| {
        let n = names(p);
        n.len() == 6
            && n.iter().any(|n| n == "Morning Yoga Flow")
            && !n.iter().any(|n| n == "Áo thun cũ")
    })
    .await;
    (m, shop, ids)
}

#[tokio::test]
async fn words_typos_prefixes_and_toneless_vietnamese_find_with_filters_facets_and_pages() {
    let app = spawn_app_with(fast).await;
    let (_, shop, ids) = catalog(&app).await;

    // Without tones, with them, and the inactive shirt never.
    for q in ["ao%20thun", "%C3%A1o%20thun", "AO%20THUN%20COTTON"] {
        let page = search(&app, &format!("q={q}")).await;
        assert_eq!(names(&page), ["Áo thun cotton"], "{q}");
    }
    // A typo, a prefix being typed, a word of the shop's name.
    assert_eq!(names(&search(&app, "q=yoag%20mat").await), ["Yoga Mat Pro"]);
    assert_eq!(names(&search(&app, "q=cottno").await), ["Áo thun cotton"]);
    let typed = names(&search(&app, "q=yog&sort=price").await);
    assert_eq!(typed, ["Morning Yoga Flow", "Yoga Block", "Yoga Mat Pro"]);
    assert_eq!(search(&app, "q=threads&type=product").await["total"], 4);
    assert_eq!(search(&app, "q=zzzzqqq").await["total"], 0);

    // Filters.
    let yoga = search(&app, "type=product&category=yoga").await;
    assert_eq!(yoga["total"], 2);
    let mid = search(&app, "min_price=100000&max_price=400000&sort=price").await;
    assert_eq!(names(&mid), ["Áo thun cotton", "Áo khoác gió"]);
    let shops = search(&app, "type=shop").await;
    assert_eq!(
        (shops["total"].as_u64(), shops["items"][0]["id"].as_str()),
        (Some(1), Some(shop.as_str()))
    );

    // Facets count every match, not the page.
    let all = search(&app, "limit=1").await;
    assert_eq!(all["total"], 6);
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let f = &all["facets"];
    assert_eq!(sum(&f["categories"]), 6, "{f}");
    assert_eq!(sum(&f["rating"]), 6, "{f}");
    assert_eq!(
        sum(&f["price"]),
        5,
        "everything but the shop has a price: {f}"
    );
    let yoga_bucket = f["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["value"] == "yoga")
        .unwrap();
    assert_eq!(yoga_bucket["count"], 3);

    // Pages: every hit once, in order.
    let mut seen = Vec::new();
    let mut query = "sort=newest&limit=2".to_owned();
    for _ in 0..5 {
        let page = search(&app, &query).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("sort=newest&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    assert!(!seen.contains(&ids[4]), "the inactive product");

    // Bad input: 422, and distance needs a place.
    for bad in [
        "sort=distance",
        "near=91,0",
        "near=10,10&radius_km=0",
        "radius_km=0",
        "max_price=1000000000001",
        "min_rating=6",
        "q=".to_owned().as_str(),
    ] {
        let (status, body) = app.get(&format!("/api/v1/search?{bad}"), None).await;
        if bad == "q=" {
            assert_eq!(status, StatusCode::OK, "{body}");
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        }
    }
}

#[tokio::test]
async fn changes_reach_the_index_within_seconds_and_ratings_filter() {
    let app = spawn_app_with(fast).await;
    let (m, _, ids) = catalog(&app).await;
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{}", ids[0]),
            Some(&m.access),
            json!({"name": "Áo polo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    search_until(&app, "q=polo", |p| p["total"] == 1).await;
    assert_eq!(search(&app, "q=cotton").await["total"], 0);
    app.put(
        &format!("/api/v1/products/{}", ids[1]),
        Some(&m.access),
        json!({"active": false}),
    )
    .await;
    search_until(&app, "q=khoac", |p| p["total"] == 0).await;

    // A review's rating reaches the index.
    let (c, order) = crate::reviews::ordered(&app, &ids[2]).await;
    crate::reviews::deliver(&app, &m, &order).await;
    assert_eq!(search(&app, "min_rating=4").await["total"], 0);
    let (status, r) = app
        .post(
            &format!("/api/v1/products/{}/reviews", ids[2]),
            Some(&c.access),
            json!({"order_id": order, "stars": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let rated = search_until(&app, "min_rating=4", |p| p["total"] == 1).await;
    assert_eq!(
        (
            rated["items"][0]["name"].as_str(),
            rated["items"][0]["rating"].as_f64()
        ),
        (Some("Yoga Mat Pro"), Some(5.0))
    );
    assert_eq!(rated["facets"]["rating"][0]["count"], 1);
}

#[tokio::test]
async fn nearby_shops_come_nearest_first_within_the_radius() {
    let app = spawn_app_with(fast).await;
    let here = (21.03, 105.85);
    let (_, near) = shop_at(&app, "Near", 21.035, 105.85).await;
    let (_, mid) = shop_at(&app, "Mid", 21.09, 105.85).await;
    let (_, _far) = shop_at(&app, "Far", 21.5, 105.85).await;
    search_until(&app, "type=shop", |p| p["total"] == 3).await;
    let page = search(
        &app,
        &format!(
            "type=shop&near={},{}&radius_km=10&sort=distance",
            here.0, here.1
        ),
    )
    .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [near.as_str(), mid.as_str()], "{page}");
    let d0 = page["items"][0]["distance_km"].as_f64().unwrap();
    let d1 = page["items"][1]["distance_km"].as_f64().unwrap();
    assert!(
        (0.5..0.6).contains(&d0) && (6.6..6.8).contains(&d1),
        "{d0} {d1}"
    );
    assert_eq!(
        search(
            &app,
            &format!("type=shop&near={},{}&radius_km=100", here.0, here.1)
        )
        .await["total"],
        3
    );

    // The nearby endpoint, and what a shop sells: only a shop with a yoga
    // product is found for that category.
    let (status, page) = app
        .get(
            &format!("/api/v1/shops/nearby?lat={}&lng={}", here.0, here.1),
            None,
        )
        .await;
    assert_eq!(
        (status, &page["total"]),
        (StatusCode::OK, &json!(2)),
        "{page}"
    );
    let nearby_yoga = format!(
        "/api/v1/shops/nearby?lat={}&lng={}&radius_km=50&category=yoga",
        here.0, here.1
    );
    assert_eq!(app.get(&nearby_yoga, None).await.1["total"], 0);
    let (m, shop) = shop_at(&app, "Mid Yoga", 21.1, 105.85).await;
    let (status, mine) = app.get("/api/v1/users/me/shops", Some(&m.access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        mine["items"][0]["id"].as_str(),
        Some(shop.as_str()),
        "{mine}"
    );
    let cork = product(&app, &m, &shop, "Cork Block", "yoga", 120_000).await;
    let nearby_count = |want: u64| {
        let (app, url) = (&app, nearby_yoga.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (_, page) = app.get(&url, None).await;
                if page["total"] == want {
                    return page;
                }
                assert!(Instant::now() < deadline, "{page}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let page = nearby_count(1).await;
    assert_eq!(page["items"][0]["id"].as_str(), Some(shop.as_str()));
    // Renamed, the shop's products are found by its new name.
    let (status, _) = app
        .put(
            &format!("/api/v1/shops/{shop}"),
            Some(&m.access),
            json!({"name": "Zen Corner"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    search_until(&app, "q=zen&type=product", |p| p["total"] == 1).await;
    // Its only yoga product taken off sale: it no longer sells yoga.
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{cork}"),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    nearby_count(0).await;
    // The plain listing, paged, and its name filter.
    assert_eq!(
        app.all_pages("/api/v1/shops?limit=2", None, 10).await.len(),
        4
    );
    let (_, named) = app.get("/api/v1/shops?q=zen", None).await;
    assert_eq!(named["items"].as_array().unwrap().len(), 1, "{named}");
    let (status, _) = app.get("/api/v1/shops/nearby?lat=91&lng=0", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn suggestions_follow_what_is_typed() {
    let app = spawn_app_with(fast).await;
    catalog(&app).await;
    let suggest = |q: &'static str| {
        let app = &app;
        async move {
            let (status, s) = app
                .get(&format!("/api/v1/search/suggest?q={q}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{s}");
            let mut n: Vec<String> = s["suggestions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["name"].as_str().unwrap().to_owned())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(
        suggest("yo").await,
        ["Morning Yoga Flow", "Yoga Block", "Yoga Mat Pro"]
    );
    assert_eq!(suggest("yoga%20b").await, ["Yoga Block"]);
    assert_eq!(suggest("ao%20kh").await, ["Áo khoác gió"]);
    assert!(suggest("").await.is_empty());
    let (_, s) = app
        .get("/api/v1/search/suggest?q=yo&type=course", None)
        .await;
    assert_eq!(s["suggestions"].as_array().unwrap().len(), 1);

    // A short prefix's answer is kept only until the index changes: a
    // new product and a product taken off sale show at its next commit.
    assert_eq!(
        suggest("yo").await,
        ["Morning Yoga Flow", "Yoga Block", "Yoga Mat Pro"]
    );
    let (m, shop) = shop_at(&app, "Nook Studio", 21.0, 105.8).await;
    let wheel = product(&app, &m, &shop, "Yoga Wheel", "yoga", 300_000).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while suggest("yo").await.len() != 4 {
        assert!(Instant::now() < deadline, "{:?}", suggest("yo").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{wheel}"),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    while suggest("yo").await.len() != 3 {
        assert!(Instant::now() < deadline, "{:?}", suggest("yo").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_index_is_built_again_from_the_catalog_after_it_was_deleted() {
    let app = spawn_app_with(fast).await;
    catalog(&app).await;
    let dir = app.stop().await;
    let index = dir.path().join("search");
    assert!(index.exists());
    std::fs::remove_dir_all(&index).unwrap();
    let app = spawn_app_in(dir, fast).await;
    let page = search_until(&app, "q=ao%20thun", |p| p["total"] == 1).await;
    assert_eq!(names(&page), ["Áo thun cotton"]);
    assert_eq!(search(&app, "limit=100").await["total"], 6);
}

#[tokio::test]
async fn the_catalog_feed_keeps_a_day() {
    use surge::store::IndexOp;
    let app = spawn_app_with(fast).await;
    let services = app.state.as_ref().expect("in process").services.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let day = surge::service::products::search::FEED_RETENTION_MS;
    let row = |ms: i64, id: &str| IndexOp::Put {
        table: surge::store::tables::CATALOG_FEED,
        key: format!("{ms:020}|product:{id}"),
        value: vec![],
    };
    services
        .store
        .write_rows(vec![
            row(now - day - 60_000, "a"),
            row(now - day - 1_000, "b"),
            row(now - 1_000, "c"),
        ])
        .await
        .unwrap();
    assert_eq!(services.search.prune_feed().await.unwrap(), 2);
    let left = services
        .store
        .scan(surge::store::tables::CATALOG_FEED, "", None, 10)
        .await
        .unwrap();
    let keys: Vec<&str> = left.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, [format!("{:020}|product:c", now - 1_000)]);
}

#[tokio::test]
async fn a_burst_of_catalog_changes_larger_than_a_round_is_worked_through() {
    use surge::store::IndexOp;
    // The indexer's own rounds are an hour apart: this test runs them.
    let app = spawn_app_with(|s| {
        fast(s);
        s.search_refresh_ms = 3_600_000;
    })
    .await;
    let services = app.state.as_ref().expect("in process").services.clone();
    let indexer = services.search.clone();
    indexer.catch_up().await.unwrap();
    // 12,000 changes dated within one second (of things that do not exist:
    // each is re-read and found gone): more than a round applies, and all
    // inside the window each round reads again.
    let now = chrono::Utc::now().timestamp_millis();
    let rows: Vec<IndexOp> = (0..12_000)
        .map(|i| IndexOp::Put {
            table: surge::store::tables::CATALOG_FEED,
            key: format!("{:020}|product:{:08}", now + i % 1000, i),
            value: vec![],
        })
        .collect();
    services.store.write_rows(rows).await.unwrap();
    let (m, shop) = shop_at(&app, "After The Burst", 21.03, 105.85).await;
    product(&app, &m, &shop, "Latecomer Mat", "yoga", 10_000).await;
    let mut rounds = 0;
    while indexer.catch_up().await.unwrap() > 0 {
        rounds += 1;
        assert!(rounds <= 10, "the rounds never end");
    }
    assert!(rounds >= 3, "12,000 changes in {rounds} rounds");
    assert_eq!(search(&app, "q=latecomer").await["total"], 1);
}

/// The ids of a product listing's items, sorted.
fn sorted_ids(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_category_finds_its_subtree_in_listings_and_search_and_follows_moves() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let admin = app.login("root@example.com").await;
    let add = |slug: &'static str, parent: Option<String>| {
        let (app, token) = (&app, admin.access.clone());
        async move {
            let (status, c) = app
                .post(
                    "/api/v1/categories",
                    Some(&token),
                    json!({"slug": slug, "name": slug.to_uppercase(), "parent_id": parent}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{c}");
            c["id"].as_str().unwrap().to_owned()
        }
    };
    let sport = add("sport", None).await;
    let yoga = add("yoga", Some(sport.clone())).await;
    let mats = add("yoga-mats", Some(yoga.clone())).await;
    let home = add("home", None).await;
    // Refusals: not an admin, a taken or malformed slug, an unknown parent,
    // a cycle, deleting a parent.
    let (m, shop) = shop_at(&app, "Yoga House", 21.03, 105.85).await;
    let (status, _) = app
        .post(
            "/api/v1/categories",
            Some(&m.access),
            json!({"slug": "x", "name": "X"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, status) in [
        (
            json!({"slug": "yoga", "name": "Again"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"slug": "Yoga Mats", "name": "Bad"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"slug": "x", "name": "X", "parent_id": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, b) = app
            .post("/api/v1/categories", Some(&admin.access), body)
            .await;
        assert_eq!(got, status, "{b}");
    }
    let (status, _) = app
        .put(
            &format!("/api/v1/categories/{sport}"),
            Some(&admin.access),
            json!({"parent_id": mats}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a cycle");
    let (status, _) = app
        .delete(&format!("/api/v1/categories/{sport}"), Some(&admin.access))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, all) = app.get("/api/v1/categories", None).await;
    let slugs: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["home", "sport", "yoga", "yoga-mats"],
        "reading order"
    );

    // Products name a category by id (their category text is its slug).
    let in_category = |name: &'static str, category: String| {
        let (app, token, shop) = (&app, m.access.clone(), shop.clone());
        async move {
            let mut body = product_body(name, "", 100_000);
            body["category_id"] = json!(category);
            let (status, p) = app
                .post(
                    &format!("/api/v1/shops/{shop}/products"),
                    Some(&token),
                    body,
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{p}");
            p
        }
    };
    let p_mat = in_category("Cork mat", mats.clone()).await;
    assert_eq!(p_mat["category"], "yoga-mats");
    assert_eq!(p_mat["category_id"], mats.as_str());
    let p_strap = in_category("Cotton strap", yoga.clone()).await;
    let p_lamp = in_category("Reading lamp", home.clone()).await;
    let p_ball = product(&app, &m, &shop, "Football", "football", 50_000).await;
    let mut bad = product_body("Ghost", "", 1);
    bad["category_id"] = json!("nope");
    let (status, _) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            bad,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let id = |p: &Value| p["id"].as_str().unwrap().to_owned();
    let listed = |category: String| {
        let app = &app;
        async move {
            let (status, page) = app
                .get(
                    &format!("/api/v1/products?category_id={category}&limit=100"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            sorted_ids(page["items"].as_array().unwrap())
        }
    };
    let mut want = vec![id(&p_mat), id(&p_strap)];
    want.sort();
    assert_eq!(listed(sport.clone()).await, want);
    assert_eq!(listed(mats.clone()).await, vec![id(&p_mat)]);
    let found = search_until(&app, &format!("category_id={sport}&type=product"), |p| {
        p["total"] == 2
    })
    .await;
    assert_eq!(sorted_ids(found["items"].as_array().unwrap()), want);
    // Yoga moves under home: its products follow at once.
    let (status, moved) = app
        .put(
            &format!("/api/v1/categories/{yoga}"),
            Some(&admin.access),
            json!({"parent_id": home}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert!(listed(sport.clone()).await.is_empty());
    let mut want = vec![id(&p_mat), id(&p_strap), id(&p_lamp)];
    want.sort();
    assert_eq!(listed(home.clone()).await, want);
    // (The lamp may reach the index only now.)
    let found = search_until(&app, &format!("category_id={home}&type=product"), |p| {
        p["total"] == 3
    })
    .await;
    assert_eq!(sorted_ids(found["items"].as_array().unwrap()), want);
    // A product moved to free text leaves the tree.
    let (status, p) = app
        .put(
            &format!("/api/v1/products/{}", id(&p_strap)),
            Some(&m.access),
            json!({"category": "straps"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(p["category_id"].is_null());
    assert!(!listed(home.clone()).await.contains(&id(&p_strap)));
    let _ = p_ball;
    // An unknown category is a clear 422; a leaf may be deleted.
    let (status, _) = app.get("/api/v1/products?category_id=nope", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get("/api/v1/search?category_id=nope", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .delete(&format!("/api/v1/categories/{mats}"), Some(&admin.access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/categories/{mats}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// #37: a product's description (Markdown, rendered to sanitized HTML,
/// its source kept), brand and attributes; search finds their words and
/// answers facets by brand and by attribute value, and filters by them.
#[tokio::test]
async fn descriptions_brands_and_attributes_are_shown_searched_and_faceted() {
    let app = spawn_app_with(fast).await;
    let (m, shop) = shop_at(&app, "Threads", 21.03, 105.85).await;
    let make =
        |name: &'static str, brand: &'static str, attrs: Value, description: &'static str| {
            let mut body = product_body(name, "fashion", 150_000);
            body["brand"] = json!(brand);
            body["attributes"] = attrs;
            body["description"] = json!(description);
            body
        };
    let (status, tee) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            make(
                "Everyday tee",
                "Saigon Loom",
                json!({"Material": ["cotton"], "fit": ["regular", "slim"]}),
                "# Breathes\n\nWoven from **organic** fibre. <script>alert(1)</script> [care](javascript:alert(1))",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tee}");
    assert_eq!(tee["brand"], "Saigon Loom");
    assert_eq!(
        tee["attributes"],
        json!({"material": ["cotton"], "fit": ["regular", "slim"]})
    );
    let html = tee["description"]["html"].as_str().unwrap();
    assert!(
        html.starts_with("<h2>Breathes</h2>\n<p>Woven from <strong>organic</strong> fibre."),
        "{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("javascript:"),
        "{html}"
    );
    assert!(tee["description"]["markdown"]
        .as_str()
        .unwrap()
        .starts_with("# Breathes"));
    let (status, _) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            make(
                "Linen shirt",
                "Saigon Loom",
                json!({"material": ["linen"], "fit": ["regular"]}),
                "",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, polo) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            make(
                "Polo",
                "Hanoi Knit",
                json!({"material": ["cotton"]}),
                "Pique knit.",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let polo = polo["id"].as_str().unwrap().to_owned();

    // A word only in a description finds its product.
    let page = search_until(&app, "q=organic", |p| p["total"] == 1).await;
    assert_eq!(names(&page), ["Everyday tee"]);
    // Facets over every match.
    let page = search_until(&app, "type=product&category=fashion", |p| p["total"] == 3).await;
    assert_eq!(
        page["facets"]["brands"],
        json!([{"value": "Saigon Loom", "count": 2}, {"value": "Hanoi Knit", "count": 1}])
    );
    assert_eq!(
        page["facets"]["attributes"],
        json!([
            {"name": "fit", "values": [{"value": "regular", "count": 2}, {"value": "slim", "count": 1}]},
            {"name": "material", "values": [{"value": "cotton", "count": 2}, {"value": "linen", "count": 1}]}
        ])
    );
    // Filters: by brand, by one attribute value, by two (all must hold).
    let page = search(&app, "brand=Saigon%20Loom").await;
    let mut got = names(&page);
    got.sort();
    assert_eq!(got, ["Everyday tee", "Linen shirt"]);
    let page = search(&app, "attribute=Material:cotton").await;
    let mut got = names(&page);
    got.sort();
    assert_eq!(got, ["Everyday tee", "Polo"]);
    let page = search(&app, "attribute=material:cotton,fit:regular").await;
    assert_eq!(names(&page), ["Everyday tee"]);
    assert_eq!(
        page["facets"]["brands"],
        json!([{"value": "Saigon Loom", "count": 1}])
    );
    for bad in [
        "attribute=material",
        "attribute=:x",
        "attribute=a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9,j:10,k:11",
    ] {
        let (status, body) = app.get(&format!("/api/v1/search?{bad}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }

    // Editing: a new brand and attributes replace the old; `null` and
    // `""` remove; what changes reaches the index.
    let (status, p) = app
        .put(
            &format!("/api/v1/products/{polo}"),
            Some(&m.access),
            json!({"brand": null, "attributes": {"material": ["wool"]}, "description": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(
        (&p["brand"], &p["description"]),
        (&Value::Null, &Value::Null)
    );
    search_until(&app, "attribute=material:wool", |p| p["total"] == 1).await;
    let page = search(&app, "q=pique").await;
    assert_eq!(page["total"], 0, "{page}");
    // A refused edit changes nothing.
    let (status, body) = app
        .put(
            &format!("/api/v1/products/{polo}"),
            Some(&m.access),
            json!({"attributes": {"size:eu": ["40"]}, "name": "Renamed"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, p) = app.get(&format!("/api/v1/products/{polo}"), None).await;
    assert_eq!(
        (&p["name"], &p["attributes"]),
        (&json!("Polo"), &json!({"material": ["wool"]}))
    );
}

//! Catalog: shops, products with filters and cursor pagination, courses.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

async fn all_pages(app: &TestApp, query: &str) -> Vec<Value> {
    app.all_pages(&format!("/api/v1/products?{query}"), None, 50)
        .await
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|p| p["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn products_filter_and_paginate() {
    let app = spawn_app().await;
    let m = app.user("merchant").await;
    let (_, shop_a) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    let (_, shop_b) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    let (a, b) = (
        shop_a["id"].as_str().unwrap(),
        shop_b["id"].as_str().unwrap(),
    );
    for (shop, name, cat, price) in [
        (a, "Yoga Mat", "yoga", 300),
        (a, "Yoga Block", "yoga", 120),
        (a, "Dumbbell 5kg", "gym", 500),
        (b, "Kettlebell", "gym", 900),
        (b, "Pilates Ring", "pilates", 250),
        (b, "Travel Yoga Mat", "yoga", 450),
    ] {
        let (status, body) = app
            .post(
                &format!("/api/v1/shops/{shop}/products"),
                Some(&m.access),
                product_body(name, cat, price),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let all = all_pages(&app, "limit=2").await;
    assert_eq!(
        names(&all),
        [
            "Yoga Mat",
            "Yoga Block",
            "Dumbbell 5kg",
            "Kettlebell",
            "Pilates Ring",
            "Travel Yoga Mat"
        ],
        "creation order, no gap or duplicate across pages"
    );
    assert_eq!(
        names(&all_pages(&app, "category=yoga&limit=1").await),
        ["Yoga Mat", "Yoga Block", "Travel Yoga Mat"]
    );
    assert_eq!(
        names(&all_pages(&app, &format!("shop_id={b}")).await),
        ["Kettlebell", "Pilates Ring", "Travel Yoga Mat"]
    );
    assert_eq!(
        names(&all_pages(&app, "min_price=250&max_price=450").await),
        ["Yoga Mat", "Pilates Ring", "Travel Yoga Mat"]
    );
    assert_eq!(
        names(&all_pages(&app, "q=MAT").await),
        ["Yoga Mat", "Travel Yoga Mat"]
    );
    assert_eq!(
        names(&all_pages(&app, "q=mat&category=yoga&max_price=400").await),
        ["Yoga Mat"]
    );

    // Deactivated products leave search but stay readable by id.
    let hidden = all[0]["id"].as_str().unwrap();
    let (status, _) = app
        .put(
            &format!("/api/v1/products/{hidden}"),
            Some(&m.access),
            json!({"active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        names(&all_pages(&app, "category=yoga").await),
        ["Yoga Block", "Travel Yoga Mat"]
    );
    assert_eq!(
        app.get(&format!("/api/v1/products/{hidden}"), None).await.0,
        StatusCode::OK
    );

    for (query, status, code) in [
        (
            "limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "min_price=1000000000001",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "cursor=%25%25%25",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        ("min_price=-1", StatusCode::BAD_REQUEST, "invalid_query"),
        ("limit=abc", StatusCode::BAD_REQUEST, "invalid_query"),
        ("colour=red", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let (got, body) = app.get(&format!("/api/v1/products?{query}"), None).await;
        assert_eq!((got, error_code(&body)), (status, code), "{query}");
    }
    // A price range that cannot match answers an empty page, not an error.
    let (got, body) = app
        .get("/api/v1/products?min_price=10&max_price=5", None)
        .await;
    assert_eq!(
        (got, body["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
}

#[tokio::test]
async fn product_input_is_validated_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let m = app.user("merchant").await;
    let (_, shop) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    let shop_id = shop["id"].as_str().unwrap();
    let path = format!("/api/v1/shops/{shop_id}/products");
    for (body, status) in [
        (
            json!({"name": "X", "category": "gym", "price": 1, "currency": "ZZZ", "stock": 1, "weight_grams": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "X", "category": "gym", "price": -1, "currency": "VND", "stock": 1, "weight_grams": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "", "category": "gym", "price": 1, "currency": "VND", "stock": 1, "weight_grams": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "X", "category": "gym", "price": "1", "currency": "VND", "stock": 1, "weight_grams": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, resp) = app.post(&path, Some(&m.access), body.clone()).await;
        assert_eq!(got, status, "{body} -> {resp}");
        error_code(&resp);
    }
    let (_, page) = app.get("/api/v1/products", None).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        0,
        "rejected products were not created"
    );

    for path in [
        "/api/v1/products/00000000-0000-7000-8000-000000000000".to_owned(),
        "/api/v1/products/not-an-id".to_owned(),
        "/api/v1/shops/00000000-0000-7000-8000-000000000000".to_owned(),
        "/api/v1/courses/00000000-0000-7000-8000-000000000000".to_owned(),
    ] {
        let (status, body) = app.get(&path, None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (status, _) = app
        .post(
            "/api/v1/shops/00000000-0000-7000-8000-000000000000/products",
            Some(&m.access),
            product_body("X", "gym", 1),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn courses_are_created_listed_and_updated_by_their_trainer() {
    let app = spawn_app().await;
    let trainer = app.user("merchant").await;
    let course = |title: &str, kind: &str, price: u64| {
        json!({"title": title, "kind": kind, "capacity": 30, "price": price, "currency": "USD",
               "sessions": [{"starts_at": "2030-03-02T07:00:00Z", "duration_min": 60}, {"starts_at": "2030-03-01T07:00:00Z", "duration_min": 45}]})
    };
    let (status, free) = app
        .post(
            "/api/v1/courses",
            Some(&trainer.access),
            course("Sunrise Yoga", "yoga", 0),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{free}");
    assert_eq!(free["is_free"], true);
    assert_eq!(free["trainer_id"].as_str(), Some(trainer.id.as_str()));
    assert_eq!(
        free["sessions"][0]["starts_at"], "2030-03-01T07:00:00Z",
        "sessions sorted by start"
    );
    let (_, paid) = app
        .post(
            "/api/v1/courses",
            Some(&trainer.access),
            course("Strength", "gym", 150_000),
        )
        .await;
    assert_eq!(paid["is_free"], false);

    let (_, yoga) = app.get("/api/v1/courses?kind=yoga", None).await;
    let titles: Vec<&str> = yoga["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Sunrise Yoga"]);
    let (_, all) = app.get("/api/v1/courses", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (status, _) = app.get("/api/v1/courses?kind=boxing", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let id = free["id"].as_str().unwrap();
    let (status, updated) = app
        .put(
            &format!("/api/v1/courses/{id}"),
            Some(&trainer.access),
            json!({"capacity": 50, "price": 1000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (updated["capacity"].as_u64(), updated["is_free"].as_bool()),
        (Some(50), Some(false))
    );
    let (status, body) = app
        .put(
            &format!("/api/v1/courses/{id}"),
            Some(&trainer.access),
            json!({"capacity": 0}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (_, got) = app.get(&format!("/api/v1/courses/{id}"), None).await;
    assert_eq!(got["capacity"], 50);
}

/// #37: a course has a description (rendered and sanitized like a
/// product's) and a syllabus; both are replaced by an edit, refused input
/// changes nothing, and search finds a course by its syllabus' words.
#[tokio::test]
async fn a_course_has_a_description_and_a_syllabus_its_trainer_edits() {
    let app = spawn_app_with(crate::search::fast).await;
    let trainer = app.user("merchant").await;
    let (status, course) = app
        .post(
            "/api/v1/courses",
            Some(&trainer.access),
            json!({"title": "Reformer basics", "kind": "pilates", "capacity": 12, "price": 0, "currency": "VND",
                   "description": "For **beginners**.<iframe src=\"https://x.example\"></iframe>",
                   "syllabus": [{"title": "Footwork", "minutes": 15}, {"title": "Hundred breathing"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let html = course["description"]["html"].as_str().unwrap();
    assert!(
        html.starts_with("<p>For <strong>beginners</strong>."),
        "{html}"
    );
    assert!(!html.contains("<iframe"), "{html}");
    assert_eq!(
        course["syllabus"],
        json!([{"title": "Footwork", "minutes": 15}, {"title": "Hundred breathing", "minutes": null}])
    );
    let id = course["id"].as_str().unwrap();
    // Found by a word of its syllabus.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, page) = app.get("/api/v1/search?q=footwork&type=course", None).await;
        if page["total"] == 1 {
            assert_eq!(page["items"][0]["id"], id);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for bad in [
        json!({"syllabus": [{"title": "x", "minutes": 0}]}),
        json!({"syllabus": [{"title": "  "}]}),
        json!({"description": "x".repeat(10_001)}),
    ] {
        let (status, body) = app
            .put(
                &format!("/api/v1/courses/{id}"),
                Some(&trainer.access),
                bad.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (_, same) = app.get(&format!("/api/v1/courses/{id}"), None).await;
    assert_eq!(
        (&same["syllabus"], &same["description"]),
        (&course["syllabus"], &course["description"])
    );
    // Someone else's edit is refused.
    let other = app.user("merchant").await;
    let (status, _) = app
        .put(
            &format!("/api/v1/courses/{id}"),
            Some(&other.access),
            json!({"syllabus": []}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, edited) = app
        .put(
            &format!("/api/v1/courses/{id}"),
            Some(&trainer.access),
            json!({"description": "", "syllabus": [{"title": "Spine stretch", "minutes": 20}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["description"], Value::Null);
    assert_eq!(
        edited["syllabus"],
        json!([{"title": "Spine stretch", "minutes": 20}])
    );
    assert_eq!(edited["title"], "Reformer basics");
}

//! Reviews and ratings over HTTP and WebSockets: the verified-purchase rule,
//! one review per order line, the merchant's one reply, reports and
//! moderation, the rating summary (live on `product:{id}`), the shipper's
//! review, and a summary settled by the scheduler when its update was cut.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::commerce::{add, checkout, customer, fast};
use crate::helpers::*;
use crate::ws::{connect_path, recv, send};

type ServerMsg = surge::http::ws::protocol::ServerMsg<Value>;

const ADMIN: &str = "root@example.com";

pub(crate) fn with_admin(s: &mut surge::config::Settings) {
    fast(s);
    s.admin_email = Some(ADMIN.into());
    s.admin_password = Some(PASSWORD.into());
}

/// A customer's cash order of one unit of `product`: (customer, order id).
pub(crate) async fn ordered(app: &TestApp, product: &str) -> (Session, String) {
    let (c, address) = customer(app).await;
    add(app, &c, product, 1).await;
    let (status, placed) = checkout(app, &c, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    (c, placed["orders"][0]["id"].as_str().unwrap().to_owned())
}

/// The merchant confirms and delivers `order` themselves (no shipper).
pub(crate) async fn deliver(app: &TestApp, m: &Session, order: &str) {
    crate::shipping::confirm(app, m, order).await;
    for s in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
        let (status, body) = app
            .put(
                &format!("/api/v1/shipping/{order}/status"),
                Some(&m.access),
                json!({"status": s}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{s}: {body}");
    }
}

async fn summary(app: &TestApp, path: &str) -> Value {
    let (status, s) = app.get(path, None).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    s
}

/// The summary at `path` once it has `count` reviews (settlement follows
/// the review's answer at once; the scheduler retries what failed).
async fn summary_with(app: &TestApp, path: &str, count: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = summary(app, path).await;
        if s["count"] == count {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "summary stuck at {s}, want {count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn review(app: &TestApp, who: &Session, path: &str, body: Value) -> (StatusCode, Value) {
    app.post(path, Some(&who.access), body).await
}

#[tokio::test]
async fn only_a_delivered_orders_customer_reviews_once_per_line_and_the_merchant_replies_once() {
    only_a_delivered_orders_customer_reviews_once_per_line_and_the_merchant_replies_once_on(
        spawn_app_with(with_admin).await,
    )
    .await;
}

/// The body of the test above, on any app (`postgres.rs` and `scylla.rs`
/// run it on their stores); the app has `ADMIN` as its admin.
pub(crate) async fn only_a_delivered_orders_customer_reviews_once_per_line_and_the_merchant_replies_once_on(
    app: TestApp,
) {
    let (m, shop, mat) = shop_with_product(&app, 50_000, 10).await;
    let (_, other) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body("Block", "yoga", 9_000),
        )
        .await;
    let other = other["id"].as_str().unwrap().to_owned();
    let (c, order) = ordered(&app, &mat).await;
    let stranger = app.user("customer").await;
    let product_path = format!("/api/v1/products/{mat}/reviews");
    let five = json!({"order_id": order, "stars": 5, "text": "Grippy.\nWorth it."});

    // Before delivery, a stranger, the merchant: refused, nothing written.
    let (status, body) = review(&app, &c, &product_path, five.clone()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "not_delivered")
    );
    // Someone else's order, or none: a bad `order_id`, whatever the reason.
    let (status, body) = review(&app, &stranger, &product_path, five.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = review(
        &app,
        &c,
        &product_path,
        json!({"order_id": uuid::Uuid::now_v7().to_string(), "stars": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = review(&app, &m, &product_path, five.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .get(&format!("/api/v1/orders/{order}/reviews"), Some(&c.access))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));

    deliver(&app, &m, &order).await;
    let (status, bad) = review(
        &app,
        &c,
        &product_path,
        json!({"order_id": order, "stars": 6}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, bad) = review(
        &app,
        &c,
        &product_path,
        json!({"order_id": order, "stars": 5, "images": ["https://elsewhere.example/x.jpg"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, r) = review(&app, &c, &product_path, five.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (
            r["status"].as_str(),
            r["verified_purchase"].as_bool(),
            r["text"].as_str()
        ),
        // The merchant delivered it themselves: not a verified purchase.
        (Some("approved"), Some(false), Some("Grippy.\nWorth it."))
    );
    let id = r["id"].as_str().unwrap().to_owned();
    let (status, body) = review(&app, &c, &product_path, five.clone()).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "already_reviewed")
    );
    // A product of the shop that is not in the order.
    let (status, body) = review(
        &app,
        &c,
        &format!("/api/v1/products/{other}/reviews"),
        five.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let rating_path = format!("/api/v1/products/{mat}/rating-summary");
    let s = summary_with(&app, &rating_path, 1).await;
    assert_eq!(
        (s["average"].as_f64(), &s["distribution"]),
        (Some(5.0), &json!([0, 0, 0, 0, 1]))
    );
    let listed = app.all_pages(&product_path, None, 5).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    // The shop, once; another merchant's shop is not this order's.
    let (status, r) = review(
        &app,
        &c,
        &format!("/api/v1/shops/{shop}/reviews"),
        json!({"order_id": order, "stars": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let (_, rival_shop, _) = shop_with_product(&app, 1_000, 1).await;
    let (status, _) = review(
        &app,
        &c,
        &format!("/api/v1/shops/{rival_shop}/reviews"),
        json!({"order_id": order, "stars": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    summary_with(&app, &format!("/api/v1/shops/{shop}/rating-summary"), 1).await;
    // The merchant carried it: there is no shipper to review.
    let (status, body) = review(
        &app,
        &c,
        &format!("/api/v1/deliveries/{order}/review"),
        json!({"stars": 5}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "no_shipper")
    );
    let (status, mine) = app
        .get(&format!("/api/v1/orders/{order}/reviews"), Some(&c.access))
        .await;
    assert_eq!(
        (status, mine.as_array().map(Vec::len)),
        (StatusCode::OK, Some(2)),
        "{mine}"
    );

    // The shop's merchant replies, once; nobody else may.
    let reply_path = format!("/api/v1/reviews/{id}/reply");
    let (status, _) = app
        .post(&reply_path, Some(&stranger.access), json!({"text": "x"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = app
        .post(&reply_path, Some(&m.access), json!({"text": "Thank you!"}))
        .await;
    assert_eq!(
        (status, r["reply"]["text"].as_str()),
        (StatusCode::OK, Some("Thank you!"))
    );
    let (status, body) = app
        .post(&reply_path, Some(&m.access), json!({"text": "Again"}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "already_replied")
    );

    // The author edits; the summary follows; nobody else edits.
    let review_path = format!("/api/v1/reviews/{id}");
    let (status, _) = app
        .put(&review_path, Some(&stranger.access), json!({"stars": 1}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = app
        .put(&review_path, Some(&c.access), json!({"stars": 3}))
        .await;
    assert_eq!(
        (status, r["stars"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{r}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while summary(&app, &rating_path).await["average"] != 3.0 {
        assert!(
            Instant::now() < deadline,
            "the edit never reached the summary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Reports: not one's own; each person once; three send it back to
    // moderation (hidden, not counted).
    let report_path = format!("/api/v1/reviews/{id}/report");
    let (status, body) = app
        .post(&report_path, Some(&c.access), json!({"reason": "mine"}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "own_review")
    );
    let first = app.user("customer").await;
    for who in [&first, &first] {
        let (status, r) = app
            .post(&report_path, Some(&who.access), json!({"reason": "spam"}))
            .await;
        assert_eq!((status, r["reports"].as_u64()), (StatusCode::OK, Some(1)));
    }
    for _ in 0..2 {
        let who = app.user("customer").await;
        app.post(&report_path, Some(&who.access), json!({"reason": "spam"}))
            .await;
    }
    let (_, r) = app.get(&review_path, Some(&c.access)).await;
    assert_eq!(
        (r["status"].as_str(), r["reports"].as_u64()),
        (Some("pending"), Some(3))
    );
    let (status, _) = app.get(&review_path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a pending review is not public"
    );
    assert!(app.all_pages(&product_path, None, 5).await.is_empty());
    summary_with(&app, &rating_path, 0).await;

    // Admins moderate; nobody else.
    let admin = app.login(ADMIN).await;
    let (status, _) = app
        .get("/api/v1/reviews/moderation/pending", Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let pending = app
        .all_pages("/api/v1/reviews/moderation/pending", Some(&admin.access), 5)
        .await;
    assert_eq!(pending.iter().filter(|r| r["id"] == id.as_str()).count(), 1);
    let (status, _) = app
        .put(
            &format!("{review_path}/approve"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = app
        .put(
            &format!("{review_path}/approve"),
            Some(&admin.access),
            json!({"note": "fine"}),
        )
        .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    summary_with(&app, &rating_path, 1).await;
    assert!(app
        .all_pages("/api/v1/reviews/moderation/pending", Some(&admin.access), 5)
        .await
        .is_empty());
    let (status, r) = app
        .put(
            &format!("{review_path}/reject"),
            Some(&admin.access),
            json!({"note": "off-topic"}),
        )
        .await;
    assert_eq!(
        (status, r["moderation_note"].as_str()),
        (StatusCode::OK, Some("off-topic"))
    );
    summary_with(&app, &rating_path, 0).await;
    let (status, body) = app
        .put(
            &format!("{review_path}/reject"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "already_rejected")
    );
    // The author still sees their rejected review; the public does not.
    let (status, _) = app.get(&review_path, Some(&c.access)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get(&review_path, Some(&stranger.access)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn under_manual_moderation_a_review_counts_only_once_approved_and_again_after_an_edit() {
    let app = spawn_app_with(|s| {
        with_admin(s);
        s.review_moderation = surge::config::ReviewModeration::Manual;
    })
    .await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 10).await;
    let (c, order) = ordered(&app, &mat).await;
    deliver(&app, &m, &order).await;
    let (status, r) = review(
        &app,
        &c,
        &format!("/api/v1/products/{mat}/reviews"),
        json!({"order_id": order, "stars": 2}),
    )
    .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::CREATED, Some("pending")),
        "{r}"
    );
    let id = r["id"].as_str().unwrap();
    let rating_path = format!("/api/v1/products/{mat}/rating-summary");
    assert_eq!(summary(&app, &rating_path).await["count"], 0);
    assert_eq!(
        app.get(&format!("/api/v1/reviews/{id}"), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/v1/reviews/{id}"), Some(&m.access))
            .await
            .0,
        StatusCode::OK
    );
    let admin = app.login(ADMIN).await;
    let (status, _) = app
        .put(
            &format!("/api/v1/reviews/{id}/approve"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    summary_with(&app, &rating_path, 1).await;
    assert_eq!(
        app.get(&format!("/api/v1/reviews/{id}"), None).await.0,
        StatusCode::OK
    );
    // An edit waits for moderation again; an edit that changes nothing does not.
    let (_, r) = app
        .put(
            &format!("/api/v1/reviews/{id}"),
            Some(&c.access),
            json!({"stars": 2, "text": null}),
        )
        .await;
    assert_eq!(r["status"], "approved", "{r}");
    let (_, r) = app
        .put(
            &format!("/api/v1/reviews/{id}"),
            Some(&c.access),
            json!({"text": "changed my mind"}),
        )
        .await;
    assert_eq!(r["status"], "pending", "{r}");
    summary_with(&app, &rating_path, 0).await;
}

#[tokio::test]
async fn a_products_rating_is_pushed_live_on_its_topic() {
    let app = spawn_app_with(fast).await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 10).await;
    let (c, order) = ordered(&app, &mat).await;
    deliver(&app, &m, &order).await;
    let watcher = app.user("customer").await;
    let mut ws = connect_path(&app, "/api/v1/ws", &watcher.access).await;
    let topic = format!("product:{mat}");
    send(&mut ws, json!({"type": "subscribe", "topic": topic})).await;
    assert!(matches!(recv(&mut ws).await, ServerMsg::Subscribed { .. }));
    let (status, _) = review(
        &app,
        &c,
        &format!("/api/v1/products/{mat}/reviews"),
        json!({"order_id": order, "stars": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let ServerMsg::Event {
        topic: t,
        seq,
        data,
    } = recv(&mut ws).await
    else {
        panic!("expected the rating event")
    };
    assert_eq!(t, topic);
    assert_eq!(data["kind"], "rating");
    assert_eq!(
        (
            data["summary"]["count"].as_u64(),
            data["summary"]["average"].as_f64()
        ),
        (Some(1), Some(4.0))
    );
    // A late subscriber resuming from before it is sent the current summary.
    let mut late = connect_path(&app, "/api/v1/ws", &watcher.access).await;
    send(
        &mut late,
        json!({"type": "subscribe", "topic": topic, "since": 0}),
    )
    .await;
    let mut got = None;
    for _ in 0..3 {
        if let ServerMsg::Event { seq: s, data, .. } = recv(&mut late).await {
            got = Some((s, data));
            break;
        }
    }
    let (s, data) = got.expect("the current summary");
    assert_eq!((s, data["summary"]["count"].as_u64()), (seq, Some(1)));
    // An unknown product is not a topic.
    send(
        &mut ws,
        json!({"type": "subscribe", "topic": format!("product:{}", uuid::Uuid::new_v4())}),
    )
    .await;
    assert!(matches!(recv(&mut ws).await, ServerMsg::Error { code, .. } if code == "not_found"));
}

#[tokio::test]
async fn the_shipper_of_a_delivery_is_reviewed_once_and_only_merchants_admins_and_the_shipper_see_it(
) {
    let app = spawn_app_with(fast).await;
    let (shipper, m, c, order) = crate::shipping::delivering(&app).await;
    crate::shipping::delivered_at_the_door(&app, &shipper, &order).await;
    let path = format!("/api/v1/deliveries/{order}/review");
    assert_eq!(
        app.get(&path, Some(&c.access)).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, r) = review(
        &app,
        &c,
        &path,
        json!({"stars": 5, "text": "Fast and careful"}),
    )
    .await;
    assert_eq!(
        (status, r["kind"].as_str(), r["subject_id"].as_str()),
        (
            StatusCode::CREATED,
            Some("shipper"),
            Some(shipper.id.as_str())
        ),
        "{r}"
    );
    let (status, again) = review(&app, &c, &path, json!({"stars": 1})).await;
    assert_eq!(
        (status, error_code(&again)),
        (StatusCode::CONFLICT, "already_reviewed")
    );
    let (status, got) = app.get(&path, Some(&shipper.access)).await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &r["id"]));
    // By id, a shipper's review is for merchants, admins and the shipper
    // (and its author), not for anyone holding the id.
    let by_id = format!("/api/v1/reviews/{}", r["id"].as_str().unwrap());
    let (other, merchant) = (app.user("customer").await, app.user("merchant").await);
    for (who, token, want) in [
        ("anonymous", None, StatusCode::NOT_FOUND),
        (
            "another customer",
            Some(&other.access),
            StatusCode::NOT_FOUND,
        ),
        ("a merchant", Some(&merchant.access), StatusCode::OK),
        ("the shipper", Some(&shipper.access), StatusCode::OK),
        ("the author", Some(&c.access), StatusCode::OK),
    ] {
        assert_eq!(
            app.get(&by_id, token.map(String::as_str)).await.0,
            want,
            "{who}"
        );
    }
    let rating = format!("/api/v1/shippers/{}/rating-summary", shipper.id);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, s) = app.get(&rating, Some(&m.access)).await;
        assert_eq!(status, StatusCode::OK, "{s}");
        if s["count"] == 1 {
            assert_eq!(s["average"], 5.0);
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.get(&rating, Some(&shipper.access)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&rating, Some(&c.access)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_review_whose_rating_update_was_cut_short_is_counted_by_the_scheduler() {
    use surge::actors::review::ReviewCommand;
    use surge::domain::review::{
        check_draft, DeliveryReviewInput, ReviewKind, ReviewPolicy, Subject,
    };
    use surge::domain::{Caller, Role};
    let app = spawn_app_with(fast).await;
    let (m, shop, mat) = shop_with_product(&app, 50_000, 10).await;
    let services = app.state.as_ref().expect("in process").services.clone();
    // The review is written, and the process "stops" before the summary is
    // told: the review actor is called directly, as the service would, but
    // without the settlement that follows.
    let order = uuid::Uuid::now_v7().to_string();
    let author = Caller {
        user_id: "someone".into(),
        role: Role::Customer,
    };
    let subject = Subject {
        kind: ReviewKind::Product,
        subject_id: mat.clone(),
        order_id: order.clone().into(),
        shop_id: shop.into(),
        merchant_id: m.id.clone().into(),
        verified: true,
    };
    let draft = check_draft(&DeliveryReviewInput {
        stars: 2,
        text: String::new(),
        images: vec![],
    })
    .unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let create = ReviewCommand::Create {
        caller: author,
        author_name: "Someone S.".into(),
        subject,
        draft,
        policy: ReviewPolicy::default(),
    };
    let rec = services.entities.reviews.call(&id, create).await.unwrap();
    assert!(rec.unsettled());
    let s = summary_with(&app, &format!("/api/v1/products/{mat}/rating-summary"), 1).await;
    assert_eq!(s["average"], 2.0);
    let rec = services
        .entities
        .reviews
        .call(&id, ReviewCommand::Get)
        .await
        .unwrap();
    assert!(!rec.unsettled(), "the scheduler marked it counted");
}

/// A delivered order of `product` reviewed by its customer with `stars`
/// under auto moderation: (customer, review id).
async fn reviewed(app: &TestApp, m: &Session, product: &str, stars: u8) -> (Session, String) {
    let (c, order) = ordered(app, product).await;
    deliver(app, m, &order).await;
    let (status, r) = review(
        app,
        &c,
        &format!("/api/v1/products/{product}/reviews"),
        json!({"order_id": order, "stars": stars}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    (c, r["id"].as_str().unwrap().to_owned())
}

async fn set_status(app: &TestApp, admin: &Session, id: &str, to: &str) {
    let (status, body) = app
        .put(
            &format!("/api/v1/reviews/{id}/{to}"),
            Some(&admin.access),
            json!({"note": "checked by the team"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{to}: {body}");
}

#[tokio::test]
async fn an_edit_never_lifts_moderation() {
    let app = spawn_app_with(with_admin).await;
    let admin = app.login(ADMIN).await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 10).await;
    let (c, id) = reviewed(&app, &m, &mat, 1).await;
    let path = format!("/api/v1/reviews/{id}");
    set_status(&app, &admin, &id, "reject").await;
    // The author's edit within the window: still rejected, still hidden.
    let (status, r) = app
        .put(
            &path,
            Some(&c.access),
            json!({"stars": 5, "text": "wonderful"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "rejected", "{r}");
    assert_eq!(r["moderation_note"], "checked by the team");
    assert_eq!(app.get(&path, None).await.0, StatusCode::NOT_FOUND);
    let rating = format!("/api/v1/products/{mat}/rating-summary");
    assert_eq!(summary(&app, &rating).await["count"], 0);

    // Held by reports: an edit keeps it held.
    let (author, held) = reviewed(&app, &m, &mat, 2).await;
    for _ in 0..3 {
        let reporter = app.user("customer").await;
        let (status, body) = app
            .post(
                &format!("/api/v1/reviews/{held}/report"),
                Some(&reporter.access),
                json!({"reason": "spam"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let held_path = format!("/api/v1/reviews/{held}");
    let (status, r) = app
        .put(
            &held_path,
            Some(&author.access),
            json!({"text": "now with words"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "pending", "{r}");
    assert_eq!(app.get(&held_path, None).await.0, StatusCode::NOT_FOUND);
    summary_with(&app, &rating, 0).await;
    // An admin's approval lifts it; then an edit under auto moderation is
    // public at once, as before.
    set_status(&app, &admin, &held, "approve").await;
    let (_, r) = app
        .put(&held_path, Some(&author.access), json!({"stars": 3}))
        .await;
    assert_eq!(r["status"], "approved", "{r}");
    summary_with(&app, &rating, 1).await;
}

#[tokio::test]
async fn a_reapproval_resets_the_reports_and_the_shop_cannot_report() {
    let app = spawn_app_with(|s| {
        with_admin(s);
        s.review_reports_per_account_per_hour = 11;
    })
    .await;
    let admin = app.login(ADMIN).await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 30).await;
    let (_, id) = reviewed(&app, &m, &mat, 1).await;
    let report = |who: Session| {
        let app = &app;
        let id = id.clone();
        async move {
            app.post(
                &format!("/api/v1/reviews/{id}/report"),
                Some(&who.access),
                json!({"reason": "unfair"}),
            )
            .await
        }
    };
    // The reviewed shop's merchant may not report it.
    let (status, body) = report(app.login(&m.email).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let path = format!("/api/v1/reviews/{id}");
    assert_eq!(app.get(&path, None).await.1["reports"], 0);

    let mut reporters = Vec::new();
    for _ in 0..3 {
        let r = app.user("customer").await;
        reporters.push(r.email.clone());
        let (status, body) = report(r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(app.get(&path, None).await.0, StatusCode::NOT_FOUND, "held");
    set_status(&app, &admin, &id, "approve").await;
    let (status, r) = app.get(&path, None).await;
    assert_eq!(
        (status, r["reports"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{r}"
    );
    // One new report (and the old reporters again) does not hide it.
    let (status, r) = report(app.user("customer").await).await;
    assert_eq!(
        (status, r["reports"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{r}"
    );
    for email in &reporters {
        report(app.login(email).await).await;
    }
    let (status, r) = app.get(&path, None).await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{r}"
    );

    // Reports are throttled per account: 10 at once.
    let busy = app.user("customer").await;
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        let (_, other) = reviewed(&app, &m, &mat, 4).await;
        let (status, body) = app
            .post(
                &format!("/api/v1/reviews/{other}/report"),
                Some(&busy.access),
                json!({"reason": "unfair"}),
            )
            .await;
        last = status;
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn verified_means_a_real_purchase_and_nobody_reviews_their_own_shop() {
    let app = spawn_app_with(with_admin).await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 10).await;
    // The merchant buys their own product with cash and delivers it.
    let home = json!({"label": "home", "line1": "1 Trang Tien", "city": "Hanoi", "lat": 21.03, "lng": 105.85});
    let (status, a) = app
        .post("/api/v1/users/addresses", Some(&m.access), home)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    crate::commerce::add(&app, &m, &mat, 1).await;
    let (status, placed) =
        crate::commerce::checkout(&app, &m, a["id"].as_str().unwrap(), "cod", None).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let own = placed["orders"][0]["id"].as_str().unwrap().to_owned();
    deliver(&app, &m, &own).await;
    let path = format!("/api/v1/products/{mat}/reviews");
    let (status, body) = review(&app, &m, &path, json!({"order_id": own, "stars": 5})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A throwaway customer, cash, the merchant delivering: shown, but not
    // a verified purchase.
    let (c, order) = ordered(&app, &mat).await;
    deliver(&app, &m, &order).await;
    let (status, r) = review(&app, &c, &path, json!({"order_id": order, "stars": 5})).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["verified_purchase"], false, "{r}");

    // Carried by a shipper: verified.
    let (shipper, _, c, order) = crate::shipping::delivering(&app).await;
    crate::shipping::delivered_at_the_door(&app, &shipper, &order).await;
    let (status, r) = review(
        &app,
        &c,
        &format!("/api/v1/deliveries/{order}/review"),
        json!({"stars": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["verified_purchase"], true, "{r}");
}

/// Review ids are random (not computable from the order's and subject's
/// ids); the order records each subject's review, so a second review of a
/// line is still refused, and a review written when ids were derived keeps
/// its id and its place.
#[tokio::test]
async fn review_ids_are_random_and_the_order_still_takes_one_review_per_line() {
    use surge::domain::review::{legacy_review_id, ReviewKind};
    let app = spawn_app_with(fast).await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 10).await;
    let (c, order) = ordered(&app, &mat).await;
    deliver(&app, &m, &order).await;
    let path = format!("/api/v1/products/{mat}/reviews");
    let (status, r) = review(&app, &c, &path, json!({"order_id": order, "stars": 4})).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_ne!(id, legacy_review_id(&order, ReviewKind::Product, &mat));
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    let (status, again) = review(&app, &c, &path, json!({"order_id": order, "stars": 1})).await;
    assert_eq!(
        (status, error_code(&again)),
        (StatusCode::CONFLICT, "already_reviewed")
    );
    let (status, of_order) = app
        .get(&format!("/api/v1/orders/{order}/reviews"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{of_order}");
    let ids: Vec<&str> = of_order
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    // A review written before ids were random, at its derived id.
    use surge::actors::review::ReviewCommand;
    use surge::domain::review::{check_draft, DeliveryReviewInput, ReviewPolicy, Subject};
    let (c2, order2) = ordered(&app, &mat).await;
    deliver(&app, &m, &order2).await;
    let legacy = legacy_review_id(&order2, ReviewKind::Product, &mat);
    let services = app.state.as_ref().expect("in process").services.clone();
    let (_, shop) = app.get(&format!("/api/v1/products/{mat}"), None).await;
    let create = ReviewCommand::Create {
        caller: surge::domain::Caller {
            user_id: c2.id.clone().into(),
            role: surge::domain::Role::Customer,
        },
        author_name: String::new(),
        subject: Subject {
            kind: ReviewKind::Product,
            subject_id: mat.clone(),
            order_id: order2.clone().into(),
            shop_id: shop["shop_id"].as_str().unwrap().into(),
            merchant_id: m.id.clone().into(),
            verified: false,
        },
        draft: check_draft(&DeliveryReviewInput {
            stars: 3,
            text: String::new(),
            images: vec![],
        })
        .unwrap(),
        policy: ReviewPolicy::default(),
    };
    services
        .entities
        .reviews
        .call(&legacy, create)
        .await
        .unwrap();
    let (status, again) = review(&app, &c2, &path, json!({"order_id": order2, "stars": 5})).await;
    assert_eq!(
        (status, error_code(&again)),
        (StatusCode::CONFLICT, "already_reviewed"),
        "the older review is the order's"
    );
    let (_, of_order) = app
        .get(
            &format!("/api/v1/orders/{order2}/reviews"),
            Some(&c2.access),
        )
        .await;
    assert_eq!(of_order[0]["id"], legacy.as_str(), "{of_order}");
}

/// Public listings show the author's display name as of writing, never
/// who wrote it (`author_id`) or from which order (`order_id`); one review
/// by id shows those to its author, the shop's merchant and admins only;
/// an erased author's reviews show "Deleted user".
#[tokio::test]
async fn public_reviews_name_their_author_and_hide_who_and_which_order() {
    let app = spawn_app_with(with_admin).await;
    let admin = app.login(ADMIN).await;
    let (m, _, mat) = shop_with_product(&app, 50_000, 10).await;
    let (c, id) = reviewed(&app, &m, &mat, 4).await;
    let stranger = app.user("customer").await;
    let list = format!("/api/v1/products/{mat}/reviews");
    for (who, token) in [
        ("anonymous", None),
        ("a stranger", Some(&stranger.access)),
        ("the merchant", Some(&m.access)),
        ("the author", Some(&c.access)),
    ] {
        let (status, page) = app.get(&list, token.map(String::as_str)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {page}");
        let r = &page["items"][0];
        assert_eq!(r["id"], id.as_str(), "{who}: {page}");
        assert_eq!(r["author_name"], "Test U.", "{who}: {r}");
        assert!(r.get("author_id").is_none(), "{who}: {r}");
        assert!(r.get("order_id").is_none(), "{who}: {r}");
    }
    let by_id = format!("/api/v1/reviews/{id}");
    for (who, token, parties) in [
        ("anonymous", None, false),
        ("a stranger", Some(&stranger.access), false),
        ("the author", Some(&c.access), true),
        ("the merchant", Some(&m.access), true),
        ("an admin", Some(&admin.access), true),
    ] {
        let (status, r) = app.get(&by_id, token.map(String::as_str)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {r}");
        assert_eq!(r["author_name"], "Test U.", "{who}: {r}");
        assert_eq!(r["author_id"].is_string(), parties, "{who}: {r}");
        assert_eq!(r["order_id"].is_string(), parties, "{who}: {r}");
    }
    let (status, body) = app
        .request(
            reqwest::Method::DELETE,
            "/api/v1/users/me",
            Some(&c.access),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let (_, page) = app.get(&list, None).await;
    assert_eq!(page["items"][0]["author_name"], "Deleted user", "{page}");
}

//! Shippers over real HTTP and WebSockets: dispatch to the nearest, offers
//! that are declined or lapse, positions streamed to the customer, the
//! arrival geofence, the track, and who may watch what.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::ws::{an_order, connect_path, recv, send, Ws};

/// Server frames as a client reads them: event data as plain JSON.
type ServerMsg = surge::http::ws::protocol::ServerMsg<serde_json::Value>;

/// The test shop's location (see `shop_body`).
const SHOP: (f64, f64) = (21.03, 105.85);
/// The customer's address in `an_order`.
const HOME: (f64, f64) = (21.04, 105.85);
/// Degrees of latitude per metre.
const DEG_PER_M: f64 = 1.0 / 111_195.0;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn fix(lat: f64, lng: f64, ts: i64) -> Value {
    json!({"lat": lat, "lng": lng, "ts": ts})
}

/// A shipper, online at `metres` north of the shop.
pub(crate) async fn shipper_at(app: &TestApp, metres: f64) -> Session {
    let s = app.user("shipper").await;
    let (status, body) = app
        .put(
            "/api/v1/shipping/shippers/me/status",
            Some(&s.access),
            // Device time a while ago, so tests can stream later points.
            json!({"status": "online", "location": fix(SHOP.0 + metres * DEG_PER_M, SHOP.1, now_ms() - 100_000)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["online"], true);
    s
}

async fn me(app: &TestApp, s: &Session) -> Value {
    let (status, body) = app
        .get("/api/v1/shipping/shippers/me", Some(&s.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until `s` holds an offer (of `order`), or fails.
pub(crate) async fn wait_for_offer(app: &TestApp, s: &Session, order: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let body = me(app, s).await;
        if body["offer"]["order_id"] == order {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no offer for {}: {body}",
            s.email
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `shipper` reports a fix at `order`'s address (`HOME`), now.
pub(crate) async fn at_the_door(app: &TestApp, shipper: &Session, order: &str) {
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(&shipper.access),
            fix(HOME.0, HOME.1, now_ms()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], true, "{body}");
}

/// `shipper` reaches `order`'s door and marks it delivered; the order.
pub(crate) async fn delivered_at_the_door(app: &TestApp, shipper: &Session, order: &str) -> Value {
    at_the_door(app, shipper, order).await;
    let (status, body) = app
        .put(
            &format!("/api/v1/shipping/{order}/status"),
            Some(&shipper.access),
            json!({"status": "delivered"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub(crate) async fn confirm(app: &TestApp, m: &Session, order: &str) {
    let (status, body) = app
        .put(
            &format!("/api/v1/orders/{order}/confirm"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_nearest_shipper_gets_the_offer_and_declines_or_lapses_pass_it_on() {
    let app = spawn_app_with(|s| s.dispatch_offer_secs = 1).await;
    let near = shipper_at(&app, 500.0).await;
    let middle = shipper_at(&app, 1_500.0).await;
    let far = shipper_at(&app, 3_000.0).await;
    let out_of_range = shipper_at(&app, 50_000.0).await;
    let (m, c, order) = an_order(&app).await;

    // Not confirmed yet: nobody is offered anything.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(me(&app, &near).await["offer"].is_null());

    confirm(&app, &m, &order).await;
    wait_for_offer(&app, &near, &order, Duration::from_secs(3)).await;
    for other in [&middle, &far, &out_of_range] {
        assert!(
            me(&app, other).await["offer"].is_null(),
            "one offer at a time"
        );
    }
    // The offered shipper may look at the order; the others may not.
    let (status, _) = app
        .get(&format!("/api/v1/orders/{order}"), Some(&near.access))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .get(&format!("/api/v1/orders/{order}"), Some(&far.access))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor may anyone else answer the offer.
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/accept"),
            Some(&far.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/accept"),
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The offer reached the shipper's inbox.
    let (_, inbox) = app.get("/api/v1/notifications", Some(&near.access)).await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "delivery_offer" && n["order_id"] == order),
        "{inbox}"
    );

    // Declined: the next nearest gets it at once.
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/decline"),
            Some(&near.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    wait_for_offer(&app, &middle, &order, Duration::from_secs(2)).await;
    assert!(me(&app, &near).await["offer"].is_null());

    // Unanswered: after the 1 s timeout it goes to the next one.
    let offered_at = Instant::now();
    wait_for_offer(&app, &far, &order, Duration::from_secs(4)).await;
    assert!(offered_at.elapsed() >= Duration::from_millis(500));
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/accept"),
            Some(&middle.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "offer_expired");

    let (status, accepted) = app
        .post(
            &format!("/api/v1/shipping/{order}/accept"),
            Some(&far.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["delivery"]["shipper_id"], far.id);
    let far_me = me(&app, &far).await;
    assert_eq!(far_me["active_order"], order, "{far_me}");
    // Busy shippers cannot go offline mid-delivery.
    let (status, body) = app
        .put(
            "/api/v1/shipping/shippers/me/status",
            Some(&far.access),
            json!({"status": "offline"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "delivery_in_progress");
    // The one out of range never heard of it.
    assert!(me(&app, &out_of_range).await["offer"].is_null());
    // Customers are not shippers.
    let (status, _) = app
        .get("/api/v1/shipping/shippers/me", Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A confirmed order with `shipper` (the only one online) delivering it,
/// picked up and on its way.
pub(crate) async fn delivering(app: &TestApp) -> (Session, Session, Session, String) {
    let shipper = shipper_at(app, 100.0).await;
    let (m, c, order) = an_order(app).await;
    confirm(app, &m, &order).await;
    wait_for_offer(app, &shipper, &order, Duration::from_secs(3)).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/accept"),
            Some(&shipper.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .put(
            &format!("/api/v1/shipping/{order}/status"),
            Some(&m.access),
            json!({"status": "ready_for_pickup"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for step in ["picked_up", "delivering"] {
        let (status, body) = app
            .put(
                &format!("/api/v1/shipping/{order}/status"),
                Some(&shipper.access),
                json!({"status": step}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    (shipper, m, c, order)
}

/// Reads frames until `pred` matches one, within `within`.
async fn until(
    ws: &mut Ws,
    within: Duration,
    mut pred: impl FnMut(&ServerMsg) -> bool,
) -> ServerMsg {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "the expected frame did not come");
        let msg = recv(ws).await;
        if pred(&msg) {
            return msg;
        }
    }
}

#[tokio::test]
async fn positions_stream_to_the_customer_and_arrival_is_announced_once() {
    let app = spawn_app_with(|s| {
        s.arrival_dwell_secs = 3;
        s.geofence_radius_m = 50.0;
        s.track_sample_secs = 0;
        s.track_retention_secs = 1;
    })
    .await;
    let (shipper, m, c, order) = delivering(&app).await;
    let topic = format!("order:{order}");

    // The customer watches the live-tracking path; a stranger is refused.
    let mut customer = connect_path(
        &app,
        &format!("/api/v1/shipping/{order}/live-tracking"),
        &c.access,
    )
    .await;
    until(&mut customer, Duration::from_secs(5), |m| {
        matches!(m, ServerMsg::Subscribed { .. })
    })
    .await;
    let stranger = app.user("customer").await;
    let mut nosy = connect_path(&app, "/api/v1/ws", &stranger.access).await;
    send(&mut nosy, json!({"type": "subscribe", "topic": topic})).await;
    assert!(matches!(recv(&mut nosy).await, ServerMsg::Error { code, .. } if code == "forbidden"));
    send(
        &mut nosy,
        json!({"type": "subscribe", "topic": format!("shipper:{}", shipper.id)}),
    )
    .await;
    assert!(matches!(recv(&mut nosy).await, ServerMsg::Error { code, .. } if code == "forbidden"));
    // The customer may also watch the shipper itself, scoped to this order.
    let mut follower = connect_path(&app, "/api/v1/ws", &c.access).await;
    send(
        &mut follower,
        json!({"type": "subscribe", "topic": format!("shipper:{}", shipper.id)}),
    )
    .await;
    until(&mut follower, Duration::from_secs(5), |m| {
        matches!(m, ServerMsg::Subscribed { .. })
    })
    .await;
    // Customers cannot send positions.
    send(
        &mut follower,
        json!({"type": "location", "lat": 1.0, "lng": 1.0, "ts": now_ms()}),
    )
    .await;
    assert!(
        matches!(recv(&mut follower).await, ServerMsg::Error { code, .. } if code == "forbidden")
    );

    // The shipper drives from the shop to the customer: 50 positions over
    // the WebSocket, one second apart in device time.
    let mut device = connect_path(&app, "/api/v1/ws", &shipper.access).await;
    let start = now_ms() - 70_000;
    let mut last_ts = 0;
    for i in 0..50 {
        let f = i as f64 / 49.0;
        last_ts = start + i * 1000;
        let lat = SHOP.0 + (HOME.0 - 60.0 * DEG_PER_M - SHOP.0) * f;
        send(
            &mut device,
            json!({"type": "location", "lat": lat, "lng": SHOP.1, "speed": 8.0, "ts": last_ts}),
        )
        .await;
    }
    let mut seen = 0;
    let newest = until(&mut customer, Duration::from_secs(5), |m| {
        if let ServerMsg::Location { data, .. } = m {
            seen += 1;
            data.ts == last_ts
        } else {
            false
        }
    })
    .await;
    let ServerMsg::Location { topic: t, data } = newest else {
        unreachable!()
    };
    assert_eq!(t, topic);
    assert!(seen >= 1);
    assert_eq!(data.shipper_id, shipper.id);
    assert_eq!(data.order_id.as_deref(), Some(order.as_str()));
    let distance = data.distance_m.unwrap();
    assert!((distance - 60.0).abs() < 5.0, "{distance}");
    assert_eq!(data.eta_s, Some((distance / 8.0).ceil() as u64));
    assert!(!data.arriving);
    until(
        &mut follower,
        Duration::from_secs(5),
        |m| matches!(m, ServerMsg::Location { data, .. } if data.ts == last_ts),
    )
    .await;

    // The stranger received nothing after its refusals.
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(
        Duration::from_millis(200),
        futures::StreamExt::next(&mut nosy),
    )
    .await
    {
        assert!(
            !matches!(frame, Message::Text(_) | Message::Binary(_)),
            "a refused watcher got {frame:?}"
        );
    }

    // An out-of-order point is ignored.
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(&shipper.access),
            fix(HOME.0, HOME.1, last_ts - 5_000),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], false);
    assert_eq!(body["ignored"], "out_of_order");
    assert_eq!(body["position"]["ts"], last_ts);
    // Bad input is a 4xx and changes nothing.
    let (status, _) = app
        .post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(&shipper.access),
            json!({"lat": 95.0, "lng": 1.0, "ts": last_ts + 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Only the delivering shipper reports positions for the order.
    let other = shipper_at(&app, 10.0).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(&other.access),
            fix(HOME.0, HOME.1, now_ms()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Jitter across the 50 m boundary (40 m / 70 m) for 6 s of device time:
    // inside after the 3 s dwell, announced exactly once, never flapping.
    let mut ts = last_ts;
    for i in 0..12 {
        ts += 500;
        let metres = if i % 2 == 0 { 40.0 } else { 70.0 };
        let (status, body) = app
            .post(
                &format!("/api/v1/shipping/{order}/location"),
                Some(&shipper.access),
                fix(HOME.0 - metres * DEG_PER_M, HOME.1, ts),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], true);
        // 40 m first seen at ts0; the dwell ends 3 s later.
        let inside_for = ts - (last_ts + 500);
        assert_eq!(
            body["position"]["arriving"],
            inside_for >= 3_000,
            "at {inside_for} ms: {body}"
        );
    }
    let arriving = until(
        &mut customer,
        Duration::from_secs(5),
        |m| matches!(m, ServerMsg::Event { data, .. } if data["kind"] == "arriving"),
    )
    .await;
    let ServerMsg::Event {
        seq: arriving_seq, ..
    } = arriving
    else {
        unreachable!()
    };
    let (_, o) = app
        .get(&format!("/api/v1/orders/{order}"), Some(&c.access))
        .await;
    let arrivals = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "arriving")
        .count();
    assert_eq!(arrivals, 1, "{o}");

    // The track: every sampled point, oldest first, and where the shipper is.
    let (status, track) = app
        .get(
            &format!("/api/v1/shipping/{order}/tracking"),
            Some(&c.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{track}");
    let path = track["path"].as_array().unwrap();
    assert_eq!(
        path.len(),
        50 + 12,
        "50 streamed and 12 jitter points, all sampled"
    );
    assert!(path
        .windows(2)
        .all(|w| w[0]["ts"].as_i64() < w[1]["ts"].as_i64()));
    assert_eq!(track["current"]["ts"], ts);
    assert_eq!(track["arriving"], true);
    assert_eq!(track["shipper_id"], shipper.id);
    for who in [&m, &shipper] {
        let (status, _) = app
            .get(
                &format!("/api/v1/shipping/{order}/tracking"),
                Some(&who.access),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .get(
            &format!("/api/v1/shipping/{order}/tracking"),
            Some(&stranger.access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Delivered from the door: the shipper is free again and the
    // customer's view of the shipper ends.
    let (status, body) = app
        .post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(&shipper.access),
            fix(HOME.0 - 10.0 * DEG_PER_M, HOME.1, ts + 500),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .put(
            &format!("/api/v1/shipping/{order}/status"),
            Some(&shipper.access),
            json!({"status": "delivered"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    until(
        &mut follower,
        Duration::from_secs(5),
        |m| matches!(m, ServerMsg::Error { code, .. } if code == "access_ended"),
    )
    .await;
    let free = me(&app, &shipper).await;
    assert!(free["active_order"].is_null(), "{free}");
    assert_eq!(free["deliveries"], 1);
    // The track is deleted once its retention (1 s here) is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, track) = app
            .get(
                &format!("/api/v1/shipping/{order}/tracking"),
                Some(&c.access),
            )
            .await;
        if track["path"].as_array().unwrap().is_empty() {
            assert!(track["current"].is_null(), "{track}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the track outlived its retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A later position no longer reaches the customer's order topic.
    send(
        &mut device,
        json!({"type": "location", "lat": HOME.0, "lng": HOME.1, "ts": now_ms()}),
    )
    .await;
    let status_event = until(
        &mut customer,
        Duration::from_secs(5),
        |m| matches!(m, ServerMsg::Event { data, .. } if data["status"] == "delivered"),
    )
    .await;
    let ServerMsg::Event { seq, .. } = status_event else {
        unreachable!()
    };
    assert!(seq > arriving_seq);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nothing but order events (no more positions) are pending.
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(
        Duration::from_millis(200),
        futures::StreamExt::next(&mut customer),
    )
    .await
    {
        if let Message::Text(t) = frame {
            let msg: ServerMsg = serde_json::from_str(t.as_str()).unwrap();
            assert!(!matches!(msg, ServerMsg::Location { .. }), "{msg:?}");
        }
    }
}

#[tokio::test]
async fn a_delivery_closes_by_its_shipper_at_the_address_or_with_a_recorded_reason() {
    let app = spawn_app_with(|s| s.geofence_radius_m = 50.0).await;
    let (shipper, m, c, order) = delivering(&app).await;
    let status_path = format!("/api/v1/shipping/{order}/status");
    // The shipper was last seen near the shop, about 1.1 km from the
    // address.
    let (status, body) = app
        .put(
            &status_path,
            Some(&shipper.access),
            json!({"status": "delivered"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "not_at_address");
    // The shop's merchant cannot close an order a shipper carries.
    let (status, body) = app
        .put(
            &status_path,
            Some(&m.access),
            json!({"status": "delivered"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // An override is the shipper's, only for `delivered`.
    let (status, body) = app
        .put(
            &status_path,
            Some(&m.access),
            json!({"status": "delivered", "override_reason": "trust me"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, o) = app
        .get(&format!("/api/v1/orders/{order}"), Some(&c.access))
        .await;
    assert_eq!(o["status"], "delivering", "nothing changed: {o}");
    // With a reason, away from the door: delivered, and the timeline says
    // where and why, for the customer and the admin to see.
    let (status, o) = app
        .put(
            &status_path,
            Some(&shipper.access),
            json!({"status": "delivered", "override_reason": "customer met me at the shop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{o}");
    let entry = o["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "delivered")
        .cloned()
        .unwrap();
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("delivered away from the address")
            && reason.contains("met me at the shop"),
        "{entry}"
    );
    assert_eq!(entry["actor_id"], shipper.id);

    // At the door, no reason is needed (a new shipper and order: the
    // first shipper goes off duty so the offer is the new one's).
    let (status, body) = app
        .put(
            "/api/v1/shipping/shippers/me/status",
            Some(&shipper.access),
            json!({"status": "offline"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (shipper, _, _, order) = delivering(&app).await;
    let o = delivered_at_the_door(&app, &shipper, &order).await;
    assert_eq!(o["status"], "delivered", "{o}");
}

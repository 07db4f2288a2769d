//! The WebSocket gateway over a real socket: authentication, topic
//! authorization, live events, exact resume with `since`, MessagePack.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use crate::helpers::*;

/// Server frames as a client reads them: event data as plain JSON.
type ServerMsg = surge::http::ws::protocol::ServerMsg<serde_json::Value>;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(app: &TestApp, query: &str) -> String {
    format!("{}/api/v1/ws{query}", app.base.replace("http://", "ws://"))
}

async fn connect(app: &TestApp, token: &str) -> Ws {
    let mut req = ws_url(app, "").into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    connect_async(req).await.expect("websocket handshake").0
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

pub(crate) async fn recv(ws: &mut Ws) -> ServerMsg {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .unwrap();
        match frame {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Binary(b) => return rmp_serde::from_slice(&b).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn address(label: &str) -> Value {
    json!({"label": label, "line1": "3 Le Loi", "city": "Da Nang", "lat": 16.06, "lng": 108.2})
}

#[tokio::test]
async fn the_gateway_requires_a_valid_token() {
    let app = spawn_app().await;
    for req in [ws_url(&app, ""), ws_url(&app, "?token=not-a-jwt")] {
        match connect_async(req.into_client_request().unwrap()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401)
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    // A valid token on a plain GET (no upgrade) is a clear 400.
    let s = app.user("customer").await;
    let (status, body) = app.get("/api/v1/ws", Some(&s.access)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "websocket_upgrade_required")
    );
    // The query-string token works.
    let (mut ws, _) = connect_async(ws_url(&app, &format!("?token={}", s.access)))
        .await
        .unwrap();
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await, ServerMsg::Pong);
}

#[tokio::test]
async fn a_user_watches_their_own_topic_and_nobody_elses() {
    let app = spawn_app().await;
    let alice = app.user("customer").await;
    let bob = app.user("customer").await;
    let mut ws = connect(&app, &alice.access).await;

    send(
        &mut ws,
        json!({"type": "subscribe", "topic": format!("user:{}", alice.id)}),
    )
    .await;
    let head = match recv(&mut ws).await {
        ServerMsg::Subscribed { seq, .. } => seq,
        other => panic!("{other:?}"),
    };
    let (status, _) = app
        .put(
            "/api/v1/users/profile",
            Some(&alice.access),
            json!({"name": "Alice Live"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    match recv(&mut ws).await {
        ServerMsg::Event { topic, seq, data } => {
            assert_eq!(topic, format!("user:{}", alice.id));
            assert_eq!(seq, head + 1);
            assert_eq!(
                (data["kind"].as_str(), data["name"].as_str()),
                (Some("profile_updated"), Some("Alice Live"))
            );
        }
        other => panic!("{other:?}"),
    }

    for (topic, code) in [
        (format!("user:{}", bob.id), "forbidden"),
        ("user:not-an-id".to_owned(), "forbidden"),
        ("order:42".to_owned(), "forbidden"),
        (
            "order:00000000-0000-7000-8000-000000000000".to_owned(),
            "forbidden",
        ),
        ("shipper:1".to_owned(), "forbidden"),
        (
            "shipper:00000000-0000-7000-8000-000000000000".to_owned(),
            "forbidden",
        ),
        ("queue:1".to_owned(), "unknown_topic"),
        ("nonsense".to_owned(), "unknown_topic"),
    ] {
        send(&mut ws, json!({"type": "subscribe", "topic": topic})).await;
        assert!(
            matches!(recv(&mut ws).await, ServerMsg::Error { code: c, .. } if c == code),
            "{topic}"
        );
    }
    // Bob's changes never reach Alice.
    app.put(
        "/api/v1/users/profile",
        Some(&bob.access),
        json!({"name": "Bob"}),
    )
    .await;
    send(&mut ws, json!({"type": "bogus"})).await;
    assert!(
        matches!(recv(&mut ws).await, ServerMsg::Error { code, .. } if code == "invalid_message")
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(
        recv(&mut ws).await,
        ServerMsg::Pong,
        "nothing of Bob's arrived in between"
    );
}

#[tokio::test]
async fn resume_with_since_replays_exactly_what_was_missed() {
    let app = spawn_app().await;
    let a = app.user("customer").await;
    let topic = format!("user:{}", a.id);
    let t = Some(a.access.as_str());

    let mut ws = connect(&app, &a.access).await;
    send(&mut ws, json!({"type": "subscribe", "topic": topic})).await;
    let start = match recv(&mut ws).await {
        ServerMsg::Subscribed { seq, .. } => seq,
        other => panic!("{other:?}"),
    };
    drop(ws); // the client goes away…

    // …while things happen.
    app.post("/api/v1/users/addresses", t, address("home"))
        .await; // added + default set
    app.post("/api/v1/users/addresses", t, address("work"))
        .await;
    app.put("/api/v1/users/profile", t, json!({"name": "Back Again"}))
        .await;

    let mut ws = connect(&app, &a.access).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "topic": topic, "since": start}),
    )
    .await;
    let mut replayed = Vec::new();
    let head = loop {
        match recv(&mut ws).await {
            ServerMsg::Event { seq, data, .. } => {
                replayed.push((seq, data["kind"].as_str().unwrap().to_owned()))
            }
            ServerMsg::Subscribed { seq, .. } => break seq,
            other => panic!("{other:?}"),
        }
    };
    let kinds: Vec<&str> = replayed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "address_added",
            "default_address_set",
            "address_added",
            "profile_updated"
        ]
    );
    let seqs: Vec<u64> = replayed.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (start + 1..=head).collect::<Vec<_>>(),
        "every missed event, once, in journal order"
    );

    // Live continues right after the replay, with the next sequence number.
    app.put("/api/v1/users/profile", t, json!({"name": "Live"}))
        .await;
    assert!(matches!(recv(&mut ws).await, ServerMsg::Event { seq, .. } if seq == head + 1));

    // A subscription without `since` replays nothing.
    let mut fresh = connect(&app, &a.access).await;
    send(&mut fresh, json!({"type": "subscribe", "topic": topic})).await;
    assert!(matches!(recv(&mut fresh).await, ServerMsg::Subscribed { seq, .. } if seq == head + 1));
}

#[tokio::test]
async fn msgpack_subprotocol_and_token_in_subprotocol() {
    let app = spawn_app().await;
    let a = app.user("customer").await;
    let mut req = ws_url(&app, "").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("surge.msgpack, bearer.{}", a.access)).unwrap(),
    );
    let (mut ws, resp) = connect_async(req).await.expect("handshake");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "surge.msgpack"
    );
    let sub = rmp_serde::to_vec_named(
        &json!({"type": "subscribe", "topic": format!("user:{}", a.id), "since": 0}),
    )
    .unwrap();
    ws.send(Message::Binary(sub.into())).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        frame.is_binary(),
        "msgpack sessions answer in binary frames"
    );
    let msg: ServerMsg = rmp_serde::from_slice(&frame.into_data()).unwrap();
    assert!(matches!(msg, ServerMsg::Subscribed { .. }), "{msg:?}");
}

#[tokio::test]
async fn sessions_are_closed_with_going_away_on_shutdown() {
    let app = spawn_app().await;
    let a = app.user("customer").await;
    let mut ws = connect(&app, &a.access).await;
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await, ServerMsg::Pong);
    let stopping = tokio::spawn(app.stop());
    let frame = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(u16::from(frame.expect("a close frame").code), 1001);
    stopping.await.unwrap();
}

/// A merchant, a customer and the customer's cash-on-delivery order.
pub(crate) async fn an_order(app: &TestApp) -> (Session, Session, String) {
    let m = app.user("merchant").await;
    let (_, shop) = app
        .post("/api/v1/shops", Some(&m.access), shop_body())
        .await;
    let (_, p) = app
        .post(
            &format!("/api/v1/shops/{}/products", shop["id"].as_str().unwrap()),
            Some(&m.access),
            product_body("Mat", "yoga", 1000),
        )
        .await;
    let c = app.user("customer").await;
    let near_the_shop = json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": 21.04, "lng": 105.85});
    let (_, a) = app
        .post("/api/v1/users/addresses", Some(&c.access), near_the_shop)
        .await;
    app.post(
        "/api/v1/cart/items",
        Some(&c.access),
        json!({"product_id": p["id"], "quantity": 1}),
    )
    .await;
    let (status, placed) = app
        .post(
            "/api/v1/orders",
            Some(&c.access),
            json!({"address_id": a["id"], "payment_method": "cod"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    (m, c, placed["orders"][0]["id"].as_str().unwrap().to_owned())
}

pub(crate) async fn connect_path(app: &TestApp, path: &str, token: &str) -> Ws {
    connect_at(&app.base, path, token).await
}

/// A WebSocket to `path` of the server at `base` (`http://host:port`).
pub(crate) async fn connect_at(base: &str, path: &str, token: &str) -> Ws {
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    connect_async(req).await.expect("handshake").0
}

#[tokio::test]
async fn order_status_streams_live_to_the_orders_parties_only() {
    let app = spawn_app().await;
    let (m, c, id) = an_order(&app).await;
    let topic = format!("order:{id}");

    // The customer watches through the single-topic path.
    let mut customer = connect_path(
        &app,
        &format!("/api/v1/orders/{id}/live-updates"),
        &c.access,
    )
    .await;
    let head = match recv(&mut customer).await {
        ServerMsg::Subscribed { topic: t, seq } if t == topic => seq,
        other => panic!("{other:?}"),
    };
    // The merchant watches through the multiplexed session.
    let mut merchant = connect(&app, &m.access).await;
    send(&mut merchant, json!({"type": "subscribe", "topic": topic})).await;
    assert!(matches!(
        recv(&mut merchant).await,
        ServerMsg::Subscribed { .. }
    ));
    // A stranger may not.
    let stranger = app.user("customer").await;
    let mut other = connect(&app, &stranger.access).await;
    send(&mut other, json!({"type": "subscribe", "topic": topic})).await;
    assert!(matches!(recv(&mut other).await, ServerMsg::Error { code, .. } if code == "forbidden"));

    let (status, _) = app
        .put(
            &format!("/api/v1/orders/{id}/confirm"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut confirmed_seq = 0;
    for ws in [&mut customer, &mut merchant] {
        match recv(ws).await {
            ServerMsg::Event { seq, data, .. } => {
                // Journal positions: increasing, with gaps for unpublished bookkeeping.
                assert!(seq > head, "{seq} after {head}");
                confirmed_seq = seq;
                assert_eq!(
                    (
                        data["kind"].as_str(),
                        data["status"].as_str(),
                        data["by"].as_str()
                    ),
                    (Some("status"), Some("confirmed"), Some("merchant"))
                );
            }
            other => panic!("{other:?}"),
        }
    }
    send(&mut other, json!({"type": "ping"})).await;
    assert_eq!(
        recv(&mut other).await,
        ServerMsg::Pong,
        "the stranger got nothing in between"
    );

    // Resume from the start: the whole story, in order, then live.
    let mut late = connect_path(
        &app,
        &format!("/api/v1/orders/{id}/live-updates?since=0"),
        &c.access,
    )
    .await;
    let mut kinds = Vec::new();
    loop {
        match recv(&mut late).await {
            ServerMsg::Event { data, .. } => kinds.push(format!(
                "{}:{}",
                data["kind"].as_str().unwrap(),
                data["status"].as_str().unwrap_or("")
            )),
            ServerMsg::Subscribed { seq, .. } => {
                assert!(
                    seq >= confirmed_seq,
                    "subscribed at the head, after everything replayed"
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kinds, ["placed:pending_payment", "status:confirmed"]);
}

#[tokio::test]
async fn notifications_path_subscribes_to_the_callers_own_topic() {
    let app = spawn_app().await;
    let a = app.user("customer").await;
    let mut ws = connect_path(&app, "/api/v1/notifications/live", &a.access).await;
    assert!(
        matches!(recv(&mut ws).await, ServerMsg::Subscribed { topic, .. } if topic == format!("user:{}", a.id))
    );
    app.put(
        "/api/v1/users/profile",
        Some(&a.access),
        json!({"name": "Pinged"}),
    )
    .await;
    assert!(
        matches!(recv(&mut ws).await, ServerMsg::Event { data, .. } if data["kind"] == "profile_updated")
    );
}

#[tokio::test]
async fn origins_are_checked_and_connections_per_user_capped() {
    let app = spawn_app_with(|s| {
        s.ws_allowed_origins = vec!["https://shop.example".into()];
        s.ws_max_connections_per_user = 2;
    })
    .await;
    let a = app.user("customer").await;
    let with_origin = |origin: &str| {
        let mut req = ws_url(&app, "").into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", a.access)).unwrap(),
        );
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
        req
    };
    match connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let first = connect_async(with_origin("https://shop.example"))
        .await
        .expect("an allowed origin")
        .0;
    let second = connect_async(with_origin(&app.base))
        .await
        .expect("the server's own origin")
        .0;
    match connect_async(with_origin(&app.base)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429, "a third session is over the cap")
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    drop(first);
    drop(second);
    // Closed sessions free their places.
    let started = std::time::Instant::now();
    loop {
        match connect_async(with_origin(&app.base)).await {
            Ok(_) => break,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("places were not freed: {e}"),
        }
    }
}

#[tokio::test]
async fn order_events_become_notifications_in_app_and_live() {
    let app = spawn_app().await;
    let (m, c, id) = an_order(&app).await;
    let kinds = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let started = std::time::Instant::now();
    loop {
        let (_, mine) = app.get("/api/v1/notifications", Some(&c.access)).await;
        let (_, shop) = app.get("/api/v1/notifications", Some(&m.access)).await;
        if kinds(&mine) == ["order_placed"] && kinds(&shop) == ["new_order"] {
            assert_eq!(mine["unread"], 1);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{mine} {shop}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut live = connect_path(&app, "/api/v1/notifications/live", &c.access).await;
    assert!(matches!(
        recv(&mut live).await,
        ServerMsg::Subscribed { .. }
    ));
    app.put(
        &format!("/api/v1/orders/{id}/confirm"),
        Some(&m.access),
        json!({}),
    )
    .await;
    match recv(&mut live).await {
        ServerMsg::Event { data, .. } => {
            assert_eq!(data["kind"], "notification");
            assert_eq!(data["notification"]["kind"], "order_confirmed");
            assert_eq!(data["notification"]["order_id"].as_str(), Some(id.as_str()));
        }
        other => panic!("{other:?}"),
    }
    let (_, mine) = app.get("/api/v1/notifications", Some(&c.access)).await;
    assert_eq!(
        kinds(&mine),
        ["order_confirmed", "order_placed"],
        "newest first"
    );
    assert_eq!(mine["unread"], 2);

    let first = mine["items"][0]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, _) = app
            .put(
                &format!("/api/v1/notifications/{first}/read"),
                Some(&c.access),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "marking read is idempotent");
    }
    assert_eq!(
        app.get("/api/v1/notifications", Some(&c.access)).await.1["unread"],
        1
    );
    assert!(
        matches!(recv(&mut live).await, ServerMsg::Event { data, .. } if data["kind"] == "notification_read")
    );
    let (status, body) = app
        .put(
            "/api/v1/notifications/nope/read",
            Some(&c.access),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = app
        .put(
            &format!("/api/v1/notifications/{first}/read"),
            Some(&m.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not someone else's");
}

/// A connection whose client reads slowly: a 4 KiB receive buffer, so the
/// server's writes back up after a few frames once the test stops reading.
async fn connect_small_buffer(
    app: &TestApp,
    path: &str,
    token: &str,
) -> WebSocketStream<tokio::net::TcpStream> {
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("{}{path}", app.base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    tokio_tungstenite::client_async(req, stream)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn an_oversize_message_closes_with_1009_and_bad_json_does_not() {
    let app = spawn_app().await;
    let u = app.user("customer").await;
    let mut ws = connect(&app, &u.access).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert!(
        matches!(recv(&mut ws).await, ServerMsg::Error { code, .. } if code == "invalid_message")
    );
    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut ws).await, ServerMsg::Pong, "still usable");
    let big = format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(100 * 1024)
    );
    ws.send(Message::Text(big.into())).await.unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.expect("a close code").code), 1009);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_others_keep_receiving() {
    let app = spawn_app_with(|s| {
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(PASSWORD.into());
        s.socket_send_buffer_bytes = Some(64 * 1024);
    })
    .await;
    let admin = app.login("root@example.com").await;
    let slow_user = app.user("customer").await;
    let good_user = app.user("customer").await;
    let mut slow =
        connect_small_buffer(&app, "/api/v1/notifications/live", &slow_user.access).await;
    let mut good = connect_path(&app, "/api/v1/notifications/live", &good_user.access).await;
    assert!(matches!(
        recv(&mut good).await,
        ServerMsg::Subscribed { .. }
    ));
    assert!(matches!(
        serde_json::from_str::<ServerMsg>(slow.next().await.unwrap().unwrap().to_text().unwrap())
            .unwrap(),
        ServerMsg::Subscribed { .. }
    ));
    // Two sessions, a subscription each, nobody cut off yet.
    assert_eq!(app.metric("surge_ws_sessions ").await, 2.0);
    assert_eq!(app.metric("surge_ws_subscriptions ").await, 2.0);
    assert_eq!(
        app.metric("surge_ws_slow_consumer_closes_total ").await,
        0.0
    );
    // The slow client stops reading; the good one reads as they come.
    const N: usize = 800;
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < N {
            if let ServerMsg::Event { data, .. } = recv(&mut good).await {
                if data["kind"] == "notification" {
                    got += 1;
                }
            }
        }
        got
    });
    // 800 announcements of ~2 KiB each go to every customer (10 at a time).
    let body = "x".repeat(1900);
    let sent = futures::stream::iter(0..N)
        .map(|i| {
            let (app, admin, body) = (&app, &admin, &body);
            async move {
                let (status, _) = app
                    .post(
                        "/api/v1/notifications/broadcast",
                        Some(&admin.access),
                        json!({"title": format!("n{i}"), "body": body, "role": "customer"}),
                    )
                    .await;
                status
            }
        })
        .buffer_unordered(10)
        .collect::<Vec<_>>()
        .await;
    assert!(sent.iter().all(|s| *s == StatusCode::OK));
    assert_eq!(reader.await.unwrap(), N, "the reading client got every one");
    // The slow one was cut off: a 4008 close (or the connection dropped)
    // before all of them.
    let mut slow_got = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(20), slow.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(ServerMsg::Event { .. }) = serde_json::from_str::<ServerMsg>(t.as_str()) {
                    slow_got += 1;
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => break None,
            Err(_) => panic!("the slow client was neither cut off nor fed ({slow_got} events)"),
        }
    };
    assert!(
        slow_got < N,
        "the slow client got everything: nothing was bounded"
    );
    if let Some(code) = ended {
        assert_eq!(code, 4008);
        assert_eq!(
            app.metric("surge_ws_slow_consumer_closes_total ").await,
            1.0
        );
    }
    // Both sessions over (the reader dropped its client): neither they
    // nor their subscriptions are counted any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.metric("surge_ws_sessions ").await != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.metric("surge_ws_subscriptions ").await, 0.0);
}

#[tokio::test]
async fn a_slow_watcher_gets_the_newest_position_not_every_one() {
    let app = spawn_app_with(|s| {
        s.track_sample_secs = 3600;
        s.socket_send_buffer_bytes = Some(64 * 1024);
    })
    .await;
    let shipper = app.user("shipper").await;
    let start = chrono::Utc::now().timestamp_millis() - 60_000;
    let (status, body) = app
        .put(
            "/api/v1/shipping/shippers/me/status",
            Some(&shipper.access),
            json!({"status": "online", "location": {"lat": 21.03, "lng": 105.85, "ts": start}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let topic = format!("shipper:{}", shipper.id);
    let mut watcher = connect_small_buffer(&app, "/api/v1/ws", &shipper.access).await;
    watcher
        .send(Message::Text(
            json!({"type": "subscribe", "topic": topic})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let mut device = connect(&app, &shipper.access).await;
    // 3,000 positions while the watcher does not read.
    const N: i64 = 3000;
    for i in 1..=N {
        let lat = 21.03 + i as f64 * 1e-6;
        send(
            &mut device,
            json!({"type": "location", "lat": lat, "lng": 105.85, "ts": start + i * 10}),
        )
        .await;
    }
    send(&mut device, json!({"type": "ping"})).await;
    assert_eq!(
        recv(&mut device).await,
        ServerMsg::Pong,
        "all positions handled"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut positions, mut newest) = (0, 0);
    while newest != start + N * 10 {
        let frame = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("the newest position arrives")
            .expect("still connected")
            .unwrap();
        if let Message::Text(t) = frame {
            match serde_json::from_str::<ServerMsg>(t.as_str()).unwrap() {
                ServerMsg::Location { data, .. } => {
                    assert!(data.ts > newest, "positions only move forward");
                    newest = data.ts;
                    positions += 1;
                }
                ServerMsg::Error { code, .. } => panic!("error frame {code}"),
                _ => {}
            }
        }
    }
    assert!(
        positions < N as usize,
        "{positions} positions: older ones were replaced while the watcher was not reading"
    );
}

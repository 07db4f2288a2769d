//! Burst signups over real HTTP: thousands of concurrent claims, a user
//! racing itself, waitlist promotion, flash-sale orders, the queue topic,
//! and a server SIGKILLed in the middle of a burst.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::lifecycle::{free_port, serve_child, wait_healthy};
use crate::ws::{connect_path, recv, send};

/// Server frames as a client reads them: event data as plain JSON.
type ServerMsg = surge::http::ws::protocol::ServerMsg<serde_json::Value>;

/// Cheap password hashing: these tests register thousands of users.
pub(crate) fn fast(s: &mut surge::config::Settings) {
    s.hash_memory_kib = 8;
    s.hash_iterations = 1;
}

/// Registers and logs in `n` users of `role` against `base`, 64 at a time;
/// their access tokens.
pub(crate) async fn users(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    role: &str,
) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
            async move {
                let body = json!({"email": email, "password": PASSWORD, "name": "U", "role": role});
                let r = client
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                let r = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap();
                v["access_token"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

pub(crate) async fn course(
    client: &reqwest::Client,
    base: &str,
    trainer: &str,
    capacity: u32,
) -> String {
    let r = client
        .post(format!("{base}/api/v1/courses"))
        .bearer_auth(trainer)
        .json(&json!({"title": "Free yoga", "kind": "yoga", "capacity": capacity, "price": 0, "currency": "VND", "sessions": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn enroll(
    client: &reqwest::Client,
    base: &str,
    course: &str,
    token: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client
        .post(format!("{base}/api/v1/courses/{course}/enrollments"))
        .bearer_auth(token);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"transport": e.to_string()}),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_users_claim_a_hundred_seats() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.burst_max_waitlist = 1000;
        // 5,000 calls at once queue for the two parts: on a loaded 2-core
        // machine the last may wait past the default 5 s call timeout and
        // be answered 503. This test proves who gets a seat, not latency
        // (bench/ does), so a call may wait as long as it needs.
        s.actor_call_timeout_ms = 120_000;
        // Two parts, each deciding the claims of half the users.
        s.burst_queue_parts = 2;
    })
    .await;
    let client = crate::helpers::client_builder()
        .pool_max_idle_per_host(6000)
        .build()
        .unwrap();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 100).await;
    let tokens = users(&client, &app.base, 5000, "customer").await;
    let commits_before = app.metric("surge_journal_commits_total").await;
    let claims_before = app.metric("surge_queue_claims_total").await;

    // Open the connections first (as long-lived clients would have them),
    // so the burst measures claims, not TCP handshakes.
    futures::future::join_all(
        (0..tokens.len()).map(|_| client.get(format!("{}/healthz", app.base)).send()),
    )
    .await;
    // Everyone at once.
    let started = Instant::now();
    let results: Vec<(StatusCode, Value)> = futures::future::join_all(
        tokens
            .iter()
            .map(|t| enroll(&client, &app.base, &id, t, None)),
    )
    .await;
    let elapsed = started.elapsed();
    let count = |s: StatusCode| results.iter().filter(|(st, _)| *st == s).count();
    let (confirmed, waitlisted, conflict) = (
        count(StatusCode::CREATED),
        count(StatusCode::ACCEPTED),
        count(StatusCode::CONFLICT),
    );
    let server_errors = results.iter().filter(|(s, _)| s.is_server_error()).count();
    assert_eq!(
        server_errors,
        0,
        "no 5xx: {:?}",
        results.iter().find(|(s, _)| s.is_server_error())
    );
    assert_eq!(confirmed, 100, "exactly the capacity is confirmed");
    assert_eq!(waitlisted, 1000, "then the waitlist fills");
    assert_eq!(conflict, 3900);
    assert!(results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .all(|(_, b)| error_code(b) == "sold_out"));
    // Each part's waitlist holds positions 1..=n of its own (500 each:
    // the waitlist bound is shared out), each once.
    let mut per_part: std::collections::HashMap<u32, Vec<u64>> = Default::default();
    for (st, body) in &results {
        if *st == StatusCode::ACCEPTED {
            let user = body["user_id"].as_str().unwrap();
            per_part
                .entry(surge::actors::queue::part_of_user(user, 2))
                .or_default()
                .push(body["position"].as_u64().unwrap());
        }
    }
    for positions in per_part.values_mut() {
        positions.sort_unstable();
        assert_eq!(*positions, (1..=500).collect::<Vec<u64>>());
    }
    assert_eq!(per_part.len(), 2);

    // The queue agrees, and so does the trainer's list.
    let (_, course_claims) = app
        .get(
            &format!("/api/v1/courses/{id}/enrollments?limit=100"),
            Some(&trainer.access),
        )
        .await;
    let listed = course_claims["items"].as_array().unwrap();
    assert_eq!(listed.len(), 100);

    // Group commit: far fewer durable writes than decisions.
    let commits = app.metric("surge_journal_commits_total").await - commits_before;
    let batch_sum = app.metric("surge_journal_batch_size_sum").await;
    let batch_count = app.metric("surge_journal_batch_size_count").await;
    println!(
        "mean batch over the run: {:.2} appends per commit",
        batch_sum / batch_count
    );
    let claims = app.metric("surge_queue_claims_total").await - claims_before;
    assert_eq!(claims, 5000.0, "every decided claim is counted once");
    let per_claim = commits / claims;
    println!(
        "5000 claims in {elapsed:?}: {commits} journal commits ({per_claim:.3} per claim, {:.3} per confirmed or waitlisted claim)",
        commits / 1100.0
    );
    assert!(per_claim < 0.5, "{per_claim} commits per claim");
    assert!(app.metric("surge_journal_commits_per_claim").await > 0.0);
}

#[tokio::test]
async fn one_user_racing_twenty_claims_never_exceeds_the_limit() {
    one_user_racing_twenty_claims_never_exceeds_the_limit_on(spawn_app_with(fast).await).await;
}

/// The body of `one_user_racing_twenty_claims_never_exceeds_the_limit`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn one_user_racing_twenty_claims_never_exceeds_the_limit_on(app: TestApp) {
    let client = crate::helpers::client();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 10).await;
    let me = app.user("customer").await;
    let results = futures::future::join_all(
        (0..20).map(|_| enroll(&client, &app.base, &id, &me.access, None)),
    )
    .await;
    let ok = results.iter().filter(|(s, _)| s.is_success()).count();
    assert_eq!(ok, 1, "one place per person");
    assert!(results
        .iter()
        .filter(|(s, _)| !s.is_success())
        .all(|(s, b)| *s == StatusCode::CONFLICT && error_code(b) == "limit_reached"));

    // Retries with one Idempotency-Key answer the same decision.
    let other = app.user("customer").await;
    let results = futures::future::join_all(
        (0..20).map(|_| enroll(&client, &app.base, &id, &other.access, Some("tap-1"))),
    )
    .await;
    let ids: HashSet<&str> = results
        .iter()
        .map(|(s, b)| {
            assert_eq!(*s, StatusCode::CREATED, "{b}");
            b["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    let replays = results
        .iter()
        .filter(|(_, b)| b["replayed"] == true)
        .count();
    assert_eq!(replays, 19);
    let (_, mine) = app
        .get("/api/v1/users/me/enrollments", Some(&other.access))
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    // Bad input changes nothing.
    let (status, _) = app
        .post(
            &format!("/api/v1/courses/{}/enrollments", uuid::Uuid::now_v7()),
            Some(&me.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get(
            &format!("/api/v1/courses/{id}/enrollments"),
            Some(&me.access),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the trainer lists enrollments"
    );
}

#[tokio::test]
async fn cancelling_promotes_the_waitlist_in_order_and_notifies() {
    cancelling_promotes_the_waitlist_in_order_and_notifies_on(spawn_app_with(fast).await).await;
}

/// The body of `cancelling_promotes_the_waitlist_in_order_and_notifies`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn cancelling_promotes_the_waitlist_in_order_and_notifies_on(app: TestApp) {
    let client = crate::helpers::client();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 2).await;
    let mut people = Vec::new();
    for _ in 0..5 {
        people.push(app.user("customer").await);
    }
    // Someone watches the counters.
    let mut watcher = connect_path(&app, "/api/v1/ws", &people[4].access).await;
    send(
        &mut watcher,
        json!({"type": "subscribe", "topic": format!("queue:{id}")}),
    )
    .await;
    let mut claims = Vec::new();
    for (i, p) in people.iter().enumerate() {
        let (status, body) = enroll(&client, &app.base, &id, &p.access, None).await;
        let want = if i < 2 {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        };
        assert_eq!(status, want, "{body}");
        if i >= 2 {
            assert_eq!(body["position"], (i - 1) as u64);
        }
        claims.push(body["id"].as_str().unwrap().to_owned());
    }
    // The counters arrive (coalesced) on queue:{id}.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no capacity update");
        if let ServerMsg::Event { data, .. } = recv(&mut watcher).await {
            if data["remaining"] == 0 && data["waitlisted"] == 3 {
                break;
            }
        }
    }

    // The first two cancel: the waitlist moves up in order.
    for i in 0..2 {
        let (status, body) = app
            .delete(
                &format!("/api/v1/courses/{id}/enrollments/{}", claims[i]),
                Some(&people[i].access),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "cancelled");
    }
    let (_, list) = app
        .get(
            &format!("/api/v1/courses/{id}/enrollments"),
            Some(&trainer.access),
        )
        .await;
    let status_of = |claim: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == claim)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(&claims[2]), "confirmed");
    assert_eq!(status_of(&claims[3]), "confirmed");
    assert_eq!(status_of(&claims[4]), "waitlisted");
    // Strangers cannot cancel someone else's place.
    let (status, _) = app
        .delete(
            &format!("/api/v1/courses/{id}/enrollments/{}", claims[4]),
            Some(&people[0].access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The promoted are told.
    for p in &people[2..4] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, inbox) = app.get("/api/v1/notifications", Some(&p.access)).await;
            if inbox["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["kind"] == "enrollment_promoted")
            {
                break;
            }
            assert!(Instant::now() < deadline, "no promotion notice: {inbox}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (_, inbox) = app
        .get("/api/v1/notifications", Some(&people[4].access))
        .await;
    assert!(inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "enrollment_waitlisted"));
}

#[tokio::test]
async fn a_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist() {
    a_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist_on(
        spawn_app_with(|s| {
            fast(s);
            s.payment_timeout_secs = 1;
        })
        .await,
    )
    .await;
}

#[tokio::test]
async fn a_split_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist() {
    // The same over two parts: orders from every part, the sale's reserve
    // shared, expired units moved to whichever part has the waitlist.
    a_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist_on(
        spawn_app_with(|s| {
            fast(s);
            s.payment_timeout_secs = 1;
            s.burst_queue_parts = 2;
        })
        .await,
    )
    .await;
}

/// The body of `a_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist`, on any app (`scylla.rs` runs it on ScyllaDB).
pub(crate) async fn a_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist_on(
    app: TestApp,
) {
    let (m, _, pid) = shop_with_product(&app, 100_000, 10).await;
    let pid = pid.as_str();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(600);
    let (status, sale) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m.access),
            json!({"product_id": pid, "stock": 2, "per_user_limit": 1, "price": 50_000, "opens_at": soon}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    assert_eq!(sale["state"], "scheduled");
    let sale_id = sale["id"].as_str().unwrap();
    // The reserve left the product's stock.
    let (_, p) = app.get(&format!("/api/v1/products/{pid}"), None).await;
    assert_eq!(p["stock"], 8);
    let home = json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": 21.04, "lng": 105.85});
    let mut buyers = Vec::new();
    for _ in 0..3 {
        let b = app.user("customer").await;
        app.post("/api/v1/users/addresses", Some(&b.access), home.clone())
            .await;
        buyers.push(b);
    }
    let (status, body) = app
        .post(
            &format!("/api/v1/flash-sales/{sale_id}/claims"),
            Some(&buyers[0].access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "not_started");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // No address: refused, nothing decided.
    let homeless = app.user("customer").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/flash-sales/{sale_id}/claims"),
            Some(&homeless.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut claim_ids = Vec::new();
    for b in &buyers {
        let (status, body) = app
            .post(
                &format!("/api/v1/flash-sales/{sale_id}/claims"),
                Some(&b.access),
                json!({"quantity": 1, "payment_method": "sandbox"}),
            )
            .await;
        assert!(status.is_success(), "{body}");
        claim_ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (_, sale) = app
        .get(&format!("/api/v1/flash-sales/{sale_id}"), None)
        .await;
    assert_eq!(
        (
            sale["confirmed"].as_u64(),
            sale["remaining"].as_u64(),
            sale["waitlisted"].as_u64()
        ),
        (Some(2), Some(0), Some(1))
    );
    assert_eq!(sale["state"], "sold_out");

    // The confirmed claims became orders at the sale price.
    let first = wait_order(
        &app,
        &buyers[0].access,
        &claim_ids[0],
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(first["lines"][0]["unit_price"], 50_000);
    assert_eq!(first["status"], "pending_payment");
    // Nobody pays: after the 1 s timeout the orders are cancelled, the
    // claims expire and the waitlisted buyer is promoted and gets an order.
    let third = wait_order(
        &app,
        &buyers[2].access,
        &claim_ids[2],
        Duration::from_secs(5),
        |_| true,
    )
    .await;
    assert_eq!(third["lines"][0]["unit_price"], 50_000);
    wait_order(
        &app,
        &buyers[0].access,
        &claim_ids[0],
        Duration::from_secs(10),
        |o| o["status"] == "cancelled" && o["stock"] == "released",
    )
    .await;
    // Units went back to the sale's reserve, not to the shelf.
    let (_, p) = app.get(&format!("/api/v1/products/{pid}"), None).await;
    assert_eq!(p["stock"], 8);
}

/// Polls order `id` (as `token`) until it exists and `done` holds.
async fn wait_order(
    app: &TestApp,
    token: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, o) = app.get(&format!("/api/v1/orders/{id}"), Some(token)).await;
        if status == StatusCode::OK && done(&o) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} did not get there: {o}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tiny deterministic generator for the crash points.
fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test]
async fn a_sigkill_during_a_burst_loses_no_acknowledged_enrollment() {
    // One queue actor, then the capacity split over 2 and 4 parts.
    sigkill_during_a_burst_on(
        &[],
        &[(7, "1"), (1_234_567, "2"), (987_654_321, "4")],
        Vec::new,
    )
    .await;
}

/// `surge serve` as a process with `backend` (the store's settings; fresh
/// ones for each case from `fresh`), SIGKILLed after a seeded number of
/// acknowledged enrollments, then restarted on the same data: every
/// acknowledged claim is confirmed, every waitlisted one is still there,
/// nobody holds two places, capacity is not exceeded.
pub(crate) async fn sigkill_during_a_burst_on(
    backend: &[(&str, &str)],
    cases: &[(u64, &str)],
    fresh: impl Fn() -> Vec<(&'static str, String)>,
) {
    let client = crate::helpers::client_builder()
        .pool_max_idle_per_host(1000)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for &(seed, parts) in cases {
        let dir = tempfile::tempdir().unwrap();
        let per_case = fresh();
        let mut env: Vec<(&str, &str)> = vec![
            ("SURGE_LOG", "error"),
            ("SURGE_HASH_MEMORY_KIB", "8"),
            ("SURGE_HASH_ITERATIONS", "1"),
            ("SURGE_BURST_QUEUE_PARTS", parts),
        ];
        env.extend_from_slice(backend);
        env.extend(per_case.iter().map(|(k, v)| (*k, v.as_str())));
        let spawn = |port: u16| serve_child(dir.path(), port, &env);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn(port);
        wait_healthy(&client, &base).await;
        let trainer = users(&client, &base, 1, "merchant").await.remove(0);
        let capacity = 60;
        let id = course(&client, &base, &trainer, capacity).await;
        let tokens = users(&client, &base, 400, "customer").await;

        // Kill after a seeded number of acknowledgements, so the kill lands
        // inside the burst with decisions on both sides of it.
        let mut rng = seed;
        let kill_at = 1 + (xorshift(&mut rng) % (u64::from(capacity) - 1)) as usize;
        let mut pending: futures::stream::FuturesUnordered<_> = tokens
            .iter()
            .map(|t| enroll(&client, &base, &id, t, None))
            .collect();
        let mut acknowledged: HashSet<String> = HashSet::new();
        let mut waiting: HashSet<String> = HashSet::new();
        let mut killed = false;
        while let Some((status, body)) = pending.next().await {
            if status == StatusCode::CREATED {
                acknowledged.insert(body["id"].as_str().unwrap().to_owned());
            }
            if status == StatusCode::ACCEPTED && !killed {
                waiting.insert(body["id"].as_str().unwrap().to_owned());
            }
            if !killed && acknowledged.len() >= kill_at {
                Command::new("kill")
                    .args(["-KILL", &child.id().to_string()])
                    .status()
                    .unwrap();
                killed = true;
            }
        }
        assert!(killed, "the burst ended before the kill point");
        child.wait().unwrap();

        // Restart on the same data.
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn(port);
        wait_healthy(&client, &base).await;
        let mut confirmed = Vec::new();
        let mut waiting_after = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{base}/api/v1/courses/{id}/enrollments?limit=100&cursor={c}"),
                None => format!("{base}/api/v1/courses/{id}/enrollments?limit=100"),
            };
            let page: Value = client
                .get(url)
                .bearer_auth(&trainer)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if page["error"]["code"] == "not_found" {
                // Killed before the queue's first decision was durable.
                break;
            }
            let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
            for c in items {
                if c["status"] == "waitlisted" {
                    waiting_after.insert(c["id"].as_str().unwrap().to_owned());
                }
                if c["status"] == "confirmed" {
                    confirmed.push((
                        c["id"].as_str().unwrap().to_owned(),
                        c["user_id"].as_str().unwrap().to_owned(),
                    ));
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let confirmed_ids: HashSet<&str> = confirmed.iter().map(|(c, _)| c.as_str()).collect();
        let people: HashSet<&str> = confirmed.iter().map(|(_, u)| u.as_str()).collect();
        println!(
            "seed {seed}, {parts} part(s): killed after {kill_at} acknowledgements; {} acknowledged in all, {} confirmed after restart",
            acknowledged.len(),
            confirmed.len()
        );
        for id in &acknowledged {
            assert!(
                confirmed_ids.contains(id.as_str()),
                "acknowledged claim {id} was lost"
            );
        }
        for id in &waiting {
            assert!(
                waiting_after.contains(id) || confirmed_ids.contains(id.as_str()),
                "waitlisted claim {id} was lost"
            );
        }
        assert!(confirmed.len() <= capacity as usize, "oversold");
        assert_eq!(people.len(), confirmed.len(), "someone holds two places");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test]
async fn the_schedule_is_for_the_enrolled_and_new_sessions_are_announced() {
    let app = spawn_app_with(fast).await;
    let client = crate::helpers::client();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 1).await;
    let inside = app.user("customer").await;
    let waiting = app.user("customer").await;
    assert_eq!(
        enroll(&client, &app.base, &id, &inside.access, None)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        enroll(&client, &app.base, &id, &waiting.access, None)
            .await
            .0,
        StatusCode::ACCEPTED
    );

    let session = json!({
        "title": "Sun salutations",
        "starts_at": "2026-12-01T06:00:00Z",
        "duration_min": 45,
        "exercises": [{"name": "Downward dog", "sets": 3, "duration_sec": 60}, {"name": "Cobra", "reps": 10}]
    });
    let (status, _) = app
        .post(
            &format!("/api/v1/courses/{id}/sessions"),
            Some(&inside.access),
            session.clone(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the trainer adds sessions"
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/courses/{id}/sessions"),
            Some(&trainer.access),
            json!({"starts_at": "2026-12-01T06:00:00Z", "duration_min": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, added) = app
        .post(
            &format!("/api/v1/courses/{id}/sessions"),
            Some(&trainer.access),
            session,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert!(added["id"].is_string());

    let (status, sessions) = app
        .get(
            &format!("/api/v1/courses/{id}/sessions"),
            Some(&inside.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    assert_eq!(sessions[0]["exercises"][0]["name"], "Downward dog");
    let (status, _) = app
        .get(
            &format!("/api/v1/courses/{id}/sessions"),
            Some(&waiting.access),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the waitlisted are not enrolled"
    );
    let (_, public) = app.get(&format!("/api/v1/courses/{id}"), None).await;
    assert_eq!(public["sessions"][0]["title"], "Sun salutations");
    assert_eq!(
        public["sessions"][0]["exercises"],
        json!([]),
        "exercises are for the enrolled"
    );

    let (_, inbox) = app.get("/api/v1/notifications", Some(&inside.access)).await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "new_session"),
        "{inbox}"
    );
    let (_, inbox) = app
        .get("/api/v1/notifications", Some(&waiting.access))
        .await;
    assert!(!inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "new_session"));
}

#[tokio::test]
async fn a_paid_course_place_is_paid_online_or_passes_to_the_waitlist() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.payment_timeout_secs = 1;
    })
    .await;
    let trainer = app.user("merchant").await;
    let (status, course) = app
        .post(
            "/api/v1/courses",
            Some(&trainer.access),
            json!({"title": "Pilates 8 weeks", "kind": "pilates", "capacity": 1, "price": 400_000, "currency": "VND", "sessions": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let id = course["id"].as_str().unwrap();
    let (a, b) = (app.user("customer").await, app.user("customer").await);
    let (status, body) = app
        .post(
            &format!("/api/v1/courses/{id}/enrollments"),
            Some(&a.access),
            json!({"payment_method": "cod"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "courses are paid online: {body}"
    );
    let (status, first) = app
        .post(
            &format!("/api/v1/courses/{id}/enrollments"),
            Some(&a.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = app
        .post(
            &format!("/api/v1/courses/{id}/enrollments"),
            Some(&b.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");

    // A does not pay within 1 s: the place goes to B, who gets an order.
    let (first_id, second_id) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let a_order = wait_order(&app, &a.access, first_id, Duration::from_secs(10), |_| true).await;
    assert_eq!(
        a_order["totals"]["total"], 400_000,
        "no shipping for a course"
    );
    let b_order = wait_order(&app, &b.access, second_id, Duration::from_secs(10), |_| {
        true
    })
    .await;
    assert_eq!(b_order["status"], "pending_payment");
    let (_, mine) = app
        .get("/api/v1/users/me/enrollments", Some(&a.access))
        .await;
    assert_eq!(mine[0]["status"], "expired", "{mine}");
    // B pays on the gateway's page: the place is fulfilled at once.
    let url = b_order["payment"]["checkout_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let paid = app.client.post(format!("{url}/pay")).send().await.unwrap();
    assert!(paid.status().is_success() || paid.status().is_redirection());
    let done = wait_order(&app, &b.access, second_id, Duration::from_secs(10), |o| {
        o["status"] == "delivered"
    })
    .await;
    assert_eq!(
        done["delivery"]["shipper_id"],
        Value::Null,
        "nothing to ship"
    );
    let (status, _) = app
        .get(&format!("/api/v1/courses/{id}/sessions"), Some(&b.access))
        .await;
    assert_eq!(status, StatusCode::OK, "B is enrolled");
}

#[tokio::test]
async fn past_the_pending_bound_claims_get_429_at_once() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.burst_max_pending = 4;
    })
    .await;
    let client = crate::helpers::client_builder()
        .pool_max_idle_per_host(300)
        .build()
        .unwrap();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 50).await;
    let tokens = users(&client, &app.base, 200, "customer").await;
    futures::future::join_all((0..200).map(|_| client.get(format!("{}/healthz", app.base)).send()))
        .await;
    let results = futures::future::join_all(tokens.iter().map(|t| {
        client
            .post(format!("{}/api/v1/courses/{id}/enrollments", app.base))
            .bearer_auth(t)
            .send()
    }))
    .await;
    let mut refused = 0;
    let mut admitted = 0;
    for r in results {
        let r = r.unwrap();
        match r.status() {
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(r.headers()["retry-after"], "1");
                let body: Value = r.json().await.unwrap();
                assert_eq!(error_code(&body), "too_many_requests");
                refused += 1;
            }
            StatusCode::CREATED | StatusCode::ACCEPTED => admitted += 1,
            other => panic!("unexpected {other}"),
        }
    }
    println!("{admitted} admitted, {refused} refused with 429");
    assert!(
        refused > 0,
        "the bound of 4 pending claims was never reached"
    );
    assert!(admitted > 0);
    // Refused claims changed nothing: the queue holds exactly the admitted.
    let (_, list) = app
        .get(
            &format!("/api/v1/courses/{id}/enrollments?limit=100"),
            Some(&trainer.access),
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_capacity_update_after_a_burst_is_the_newest() {
    // Coalesced counters must end on the queue's real state even when
    // racing decisions report out of order (a stale one used to win).
    let app = spawn_app().await;
    let client = crate::helpers::client();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 200).await;
    let tokens = users(&client, &app.base, 60, "customer").await;
    let mut watcher = connect_path(&app, "/api/v1/ws", &tokens[0]).await;
    send(
        &mut watcher,
        json!({"type": "subscribe", "topic": format!("queue:{id}")}),
    )
    .await;
    assert!(matches!(
        recv(&mut watcher).await,
        ServerMsg::Subscribed { .. }
    ));
    let answers = futures::future::join_all(
        tokens
            .iter()
            .map(|t| enroll(&client, &app.base, &id, t, None)),
    )
    .await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::CREATED));
    // Read until the counters have been quiet for a second.
    let mut last = None;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_secs(1), watcher.next()).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["data"]["kind"] == "capacity" {
                last = Some(v["data"]["remaining"].clone());
            }
        }
    }
    assert_eq!(last, Some(json!(140)), "the newest counters: 200 - 60");
}

#[tokio::test]
async fn a_courses_seats_are_readable_before_and_after_enrollments() {
    let app = spawn_app().await;
    let client = crate::helpers::client();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 3).await;
    let (status, seats) = app.get(&format!("/api/v1/courses/{id}/seats"), None).await;
    assert_eq!(status, StatusCode::OK, "{seats}");
    assert_eq!(
        seats,
        json!({"capacity": 3, "confirmed": 0, "remaining": 3, "waitlisted": 0})
    );
    let c = app.user("customer").await;
    let (status, _) = enroll(&client, &app.base, &id, &c.access, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, seats) = app.get(&format!("/api/v1/courses/{id}/seats"), None).await;
    assert_eq!(
        seats,
        json!({"capacity": 3, "confirmed": 1, "remaining": 2, "waitlisted": 0})
    );
    let (status, body) = app
        .get(
            &format!("/api/v1/courses/{}/seats", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = app.get("/api/v1/courses/not-an-id/seats", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A claims listing's cursor is one the server issued (base64url, the
/// document's pattern); another string is refused, not read as a key
/// (found by schemathesis).
#[tokio::test]
async fn a_claims_listing_refuses_a_cursor_it_did_not_issue() {
    let app = spawn_app_with(fast).await;
    let client = crate::helpers::client();
    let trainer = app.user("merchant").await;
    let id = course(&client, &app.base, &trainer.access, 3).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let c = app.user("customer").await;
        let (status, body) = enroll(&client, &app.base, &id, &c.access, None).await;
        assert!(status.is_success(), "{body}");
        tokens.push(c);
    }
    let path = format!("/api/v1/courses/{id}/enrollments");
    for bad in ["%C3%92", "a", "%25%25%25"] {
        let (status, body) = app
            .get(&format!("{path}?cursor={bad}"), Some(&trainer.access))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    // The issued cursors page through every enrollment once.
    let (_, first) = app
        .get(&format!("{path}?limit=2"), Some(&trainer.access))
        .await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (status, rest) = app
        .get(
            &format!("{path}?limit=2&cursor={cursor}"),
            Some(&trainer.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let ids: std::collections::HashSet<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
}

/// The sales of the storefront's listing (`GET /flash-sales?…`), all pages:
/// id → state.
async fn listed_sales(app: &TestApp, query: &str) -> std::collections::HashMap<String, String> {
    app.all_pages(&format!("/api/v1/flash-sales?{query}limit=2"), None, 100)
        .await
        .into_iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap().to_owned();
            (id, s["state"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_flash_sale_window_refuses_before_and_after_lists_live_and_upcoming_and_announces_its_opening(
) {
    const ADMIN: &str = "root@example.com";
    let app = spawn_app_with(|s| {
        fast(s);
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let (m, shop, pid) = shop_with_product(&app, 100_000, 20).await;
    let (status, other) = app
        .post(
            &format!("/api/v1/shops/{shop}/products"),
            Some(&m.access),
            product_body("Tote", "bags", 40_000),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other = other["id"].as_str().unwrap().to_owned();
    let sale = |product: &str, window: Value| {
        let mut body =
            json!({"product_id": product, "stock": 2, "per_user_limit": 1, "price": 30_000});
        body.as_object_mut()
            .unwrap()
            .extend(window.as_object().unwrap().clone());
        let (app, m) = (&app, &m);
        async move {
            let (status, sale) = app.post("/api/v1/flash-sales", Some(&m.access), body).await;
            assert_eq!(status, StatusCode::CREATED, "{sale}");
            (sale["id"].as_str().unwrap().to_owned(), sale)
        }
    };
    let now = chrono::Utc::now();
    let opens = now + chrono::Duration::milliseconds(2_500);
    let closes = opens + chrono::Duration::milliseconds(2_500);
    let (windowed, body) = sale(&pid, json!({"opens_at": opens, "closes_at": closes})).await;
    assert_eq!(body["state"], "scheduled");
    let (always, _) = sale(&other, json!({})).await;
    let (later, _) = sale(&pid, json!({"opens_at": now + chrono::Duration::hours(1)})).await;
    // A window that ends before it starts changes nothing.
    let (status, body) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m.access),
            json!({"product_id": pid, "stock": 2, "per_user_limit": 1, "price": 30_000,
                   "opens_at": closes, "closes_at": opens}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, product) = app.get(&format!("/api/v1/products/{pid}"), None).await;
    assert_eq!(product["stock"], 16, "only the two sales' reserves left it");

    // The storefront lists what is live and what is coming, by state.
    let upcoming = listed_sales(&app, "state=upcoming&").await;
    assert_eq!(
        upcoming.get(&windowed).map(String::as_str),
        Some("scheduled")
    );
    assert_eq!(upcoming.get(&later).map(String::as_str), Some("scheduled"));
    assert!(!upcoming.contains_key(&always), "{upcoming:?}");
    let live = listed_sales(&app, "state=live&").await;
    assert_eq!(live.get(&always).map(String::as_str), Some("open"));
    assert!(!live.contains_key(&windowed) && !live.contains_key(&later));
    let (status, body) = app.get("/api/v1/flash-sales?state=gone", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Someone waits on the sale's topic: told the moment it opens (nothing
    // else happens to it meanwhile).
    let buyer = app.user("customer").await;
    let home = json!({"label": "home", "line1": "5 Hang Gai", "city": "Hanoi", "lat": 21.04, "lng": 105.85});
    app.post("/api/v1/users/addresses", Some(&buyer.access), home)
        .await;
    let mut ws = connect_path(&app, "/api/v1/ws", &buyer.access).await;
    send(
        &mut ws,
        json!({"type": "subscribe", "topic": format!("queue:{windowed}")}),
    )
    .await;
    let claim_path = format!("/api/v1/flash-sales/{windowed}/claims");
    let claim = || app.post(&claim_path, Some(&buyer.access), json!({"quantity": 1}));
    let (status, body) = claim().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "not_started");
    let mut states = Vec::new();
    let opened_at = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), recv(&mut ws))
            .await
            .expect("the opening announced");
        if let ServerMsg::Event { data, .. } = msg {
            states.push(data["state"].as_str().unwrap().to_owned());
            if data["state"] == "open" {
                break chrono::Utc::now();
            }
        }
    };
    assert!(
        states[..states.len() - 1].iter().all(|s| s == "scheduled"),
        "{states:?}"
    );
    assert!(
        opened_at >= opens,
        "announced at {opened_at}, before {opens}"
    );
    let (status, body) = claim().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let live = listed_sales(&app, "state=live&").await;
    assert!(live.contains_key(&windowed), "{live:?}");

    // A hidden product's sale leaves the listing.
    let admin = app.login(ADMIN).await;
    let (status, body) = app
        .put(
            &format!("/api/v1/admin/products/{other}/hide"),
            Some(&admin.access),
            json!({"reason": "counterfeit"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!listed_sales(&app, "").await.contains_key(&always));

    // From closes_at on: refused, and no longer listed.
    let left = (closes - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;
    // (The window is checked before the per-person limit.)
    let (status, body) = claim().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "ended");
    let (_, body) = app
        .get(&format!("/api/v1/flash-sales/{windowed}"), None)
        .await;
    assert_eq!(body["state"], "closed");
    assert_eq!(body["confirmed"], 1);
    let all = listed_sales(&app, "").await;
    assert!(!all.contains_key(&windowed), "{all:?}");
    assert!(all.contains_key(&later), "{all:?}");
}

//! Split queues (`burst_queue_parts` > 1) against a model: for random
//! sequences of claims and cancellations, over HTTP on a real server, the
//! split queue decides exactly what one queue would (confirmed while any
//! unit is unconfirmed anywhere, never oversold, no unit left unused while
//! someone waits), each part's waitlist is FIFO with the part's own
//! positions, and a unit freed where nobody waits goes to the part whose
//! waitlist head claimed first (the fairness docs/bursts.md states).

use std::collections::HashMap;

use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use crate::burst::fast;
use crate::helpers::*;
use surge::actors::queue::part_of_user;

#[derive(Debug, Clone, Copy)]
enum Op {
    Claim(usize),
    Cancel(usize),
}

fn op(users: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..users).prop_map(Op::Claim),
        2 => (0..users).prop_map(Op::Cancel),
    ]
}

/// What one queue split over `parts` must answer.
#[derive(Default)]
struct Model {
    capacity: usize,
    waitlist_per_part: usize,
    /// Confirmed claim ids.
    confirmed: Vec<String>,
    /// Per part: (claim id, claim order), head first.
    waiting: HashMap<u32, Vec<(String, usize)>>,
    /// User → their active claim and its part.
    active: HashMap<usize, (String, u32)>,
    claims_made: usize,
}

impl Model {
    fn promote_from(&mut self, part: u32) {
        let (id, _) = self.waiting.get_mut(&part).expect("waiting").remove(0);
        self.confirmed.push(id);
    }

    /// A unit was freed in `part`: its own waitlist first, else the part
    /// whose head claimed first.
    fn freed_in(&mut self, part: u32) {
        if self.waiting.get(&part).is_some_and(|w| !w.is_empty()) {
            return self.promote_from(part);
        }
        let oldest = self
            .waiting
            .iter()
            .filter_map(|(p, w)| w.first().map(|(_, order)| (*order, *p)))
            .min();
        if let Some((_, p)) = oldest {
            self.promote_from(p);
        }
    }

    fn waitlisted(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_split_queue_decides_like_one_queue_and_promotes_the_oldest_head_first(
        parts in 2u32..=4,
        capacity in 1usize..=4,
        ops in proptest::collection::vec(op(10), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let app = spawn_app_with(|s| {
                fast(s);
                s.burst_queue_parts = parts;
                s.burst_max_waitlist = 4;
            }).await;
            let trainer = app.user("merchant").await;
            let (status, course) = app.post("/api/v1/courses", Some(&trainer.access), json!({
                "title": "Pilates", "kind": "pilates", "capacity": capacity, "price": 0,
                "currency": "VND", "sessions": []
            })).await;
            prop_assert_eq!(status, StatusCode::CREATED);
            let id = course["id"].as_str().unwrap().to_owned();
            let mut people = Vec::new();
            for _ in 0..10 {
                people.push(app.user("customer").await);
            }
            // Fewer parts than units: never more parts than capacity.
            let parts = parts.min(capacity as u32);
            let mut model = Model {
                capacity,
                waitlist_per_part: 4usize.div_ceil(parts as usize),
                ..Model::default()
            };
            for op in ops {
                match op {
                    Op::Claim(u) => {
                        let who = &people[u];
                        let part = part_of_user(&who.id, parts);
                        let (status, body) = app.post(&format!("/api/v1/courses/{id}/enrollments"), Some(&who.access), json!({})).await;
                        if model.active.contains_key(&u) {
                            prop_assert_eq!(status, StatusCode::CONFLICT, "{}", body);
                            prop_assert_eq!(&body["error"]["code"], "limit_reached");
                            continue;
                        }
                        let waiting = model.waiting.entry(part).or_default();
                        if model.confirmed.len() < model.capacity {
                            prop_assert_eq!(status, StatusCode::CREATED, "{:?}: {}", op, body);
                            let claim = body["id"].as_str().unwrap().to_owned();
                            model.confirmed.push(claim.clone());
                            model.active.insert(u, (claim, part));
                        } else if waiting.len() < model.waitlist_per_part {
                            prop_assert_eq!(status, StatusCode::ACCEPTED, "{:?}: {}", op, body);
                            prop_assert_eq!(body["position"].as_u64(), Some(waiting.len() as u64 + 1), "its part's position");
                            let claim = body["id"].as_str().unwrap().to_owned();
                            waiting.push((claim.clone(), model.claims_made));
                            model.active.insert(u, (claim, part));
                        } else {
                            prop_assert_eq!(status, StatusCode::CONFLICT, "{}", body);
                            prop_assert_eq!(&body["error"]["code"], "sold_out");
                        }
                        model.claims_made += 1;
                    }
                    Op::Cancel(u) => {
                        let Some((claim, part)) = model.active.remove(&u) else { continue };
                        let (status, body) = app.delete(&format!("/api/v1/courses/{id}/enrollments/{claim}"), Some(&people[u].access)).await;
                        prop_assert_eq!(status, StatusCode::OK, "{}", body);
                        if let Some(i) = model.confirmed.iter().position(|c| *c == claim) {
                            model.confirmed.remove(i);
                            model.freed_in(part);
                        } else {
                            model.waiting.get_mut(&part).unwrap().retain(|(c, _)| *c != claim);
                        }
                    }
                }
                let (_, seats) = app.get(&format!("/api/v1/courses/{id}/seats"), None).await;
                prop_assert_eq!(seats["confirmed"].as_u64(), Some(model.confirmed.len() as u64), "after {:?}: {}", op, seats);
                prop_assert_eq!(seats["waitlisted"].as_u64(), Some(model.waitlisted() as u64), "after {:?}: {}", op, seats);
            }
            // Who holds what, claim by claim.
            let (_, list) = app.get(&format!("/api/v1/courses/{id}/enrollments?limit=100"), Some(&trainer.access)).await;
            let status_of: HashMap<String, String> = list["items"].as_array().unwrap().iter()
                .map(|c| (c["id"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
                .collect();
            for claim in &model.confirmed {
                prop_assert_eq!(status_of.get(claim).map(String::as_str), Some("confirmed"));
            }
            for (claim, _) in model.waiting.values().flatten() {
                prop_assert_eq!(status_of.get(claim).map(String::as_str), Some("waitlisted"));
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_unit_freed_where_nobody_waits_goes_to_the_oldest_waiting_claim() {
    let app = spawn_app_with(|s| {
        fast(s);
        s.burst_queue_parts = 3;
    })
    .await;
    let trainer = app.user("merchant").await;
    let (_, course) = app
        .post(
            "/api/v1/courses",
            Some(&trainer.access),
            json!({"title": "Gym", "kind": "gym", "capacity": 3, "price": 0, "currency": "VND", "sessions": []}),
        )
        .await;
    let id = course["id"].as_str().unwrap().to_owned();
    // Two customers in each of the three parts.
    let mut by_part: HashMap<u32, Vec<Session>> = HashMap::new();
    while by_part.len() < 3 || by_part.values().any(|v| v.len() < 2) {
        let s = app.user("customer").await;
        let part = part_of_user(&s.id, 3);
        let people = by_part.entry(part).or_default();
        if people.len() < 2 {
            people.push(s);
        }
    }
    let path = format!("/api/v1/courses/{id}/enrollments");
    let enroll = |who: &Session| {
        let token = who.access.clone();
        let (app, path) = (&app, &path);
        async move { app.post(path, Some(&token), json!({})).await }
    };
    // One seat confirmed in each part.
    let mut first = Vec::new();
    for p in 0..3 {
        let (status, body) = enroll(&by_part[&p][0]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        first.push(body["id"].as_str().unwrap().to_owned());
    }
    // Part 2's second customer waits first, then part 1's.
    let (status, older) = enroll(&by_part[&2][1]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{older}");
    let (status, newer) = enroll(&by_part[&1][1]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{newer}");
    // Part 0 frees its seat; nobody waits there: the older claim gets it.
    let (status, _) = app
        .delete(
            &format!("/api/v1/courses/{id}/enrollments/{}", first[0]),
            Some(&by_part[&0][0].access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app
        .get(
            &format!("/api/v1/courses/{id}/enrollments"),
            Some(&trainer.access),
        )
        .await;
    let status_of = |claim: &serde_json::Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == claim["id"])
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(&older), "confirmed");
    assert_eq!(status_of(&newer), "waitlisted");
    let (_, seats) = app.get(&format!("/api/v1/courses/{id}/seats"), None).await;
    assert_eq!(
        (seats["confirmed"].as_u64(), seats["waitlisted"].as_u64()),
        (Some(3), Some(1))
    );
}

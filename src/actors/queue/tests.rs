//! Given/when/then tests of the queue entity's decisions.

use super::*;
use crate::store::codec;

fn opened(capacity: u32, limit: u32, waitlist: u32) -> QueueState {
    let cfg = QueueConfig {
        kind: QueueKind::Course,
        owner_id: "t".into(),
        subject_id: "c".into(),
        shop_id: None,
        title: "Yoga".into(),
        capacity,
        per_user_limit: limit,
        price: 0,
        currency: "VND".into(),
        opens_at: None,
        closes_at: None,
        max_waitlist: waitlist,
        parts: 1,
        part_of: None,
    };
    QueueEntity::evolve(
        &QueueState::default(),
        &[QueueEvent::Opened { config: cfg }],
    )
}

fn claim(
    s: &QueueState,
    id: &str,
    user: &str,
    q: u32,
    key: Option<&str>,
) -> Result<(QueueState, Claim), DomainError> {
    let ctx = Ctx {
        id: "q",
        now: Utc::now(),
    };
    let cmd = QueueCommand::Claim {
        claim_id: id.into(),
        user_id: user.into(),
        quantity: q,
        idempotency_key: key.map(|k| crate::domain::IdempotencyKey {
            key: k.to_owned(),
            request: "the same request".into(),
        }),
        order: None,
        dry_first: false,
        grant: None,
    };
    let (events, reply) = QueueEntity::decide(s, cmd, &ctx)?;
    let QueueReply::Claim { claim, .. } = reply else {
        panic!("a claim reply")
    };
    Ok((QueueEntity::evolve(s, &events), claim))
}

/// The state after `user` cancels `claim_id`.
fn cancel(s: &QueueState, user: &str, claim_id: &str) -> QueueState {
    let ctx = Ctx {
        id: "q",
        now: Utc::now(),
    };
    let cmd = QueueCommand::Cancel {
        user_id: user.into(),
        claim_id: claim_id.into(),
    };
    let (events, _) = QueueEntity::decide(s, cmd, &ctx).unwrap();
    QueueEntity::evolve(s, &events)
}

#[test]
fn a_corrupt_snapshot_claiming_a_huge_collection_is_refused_not_allocated() {
    // Found by `fuzz/` (journal_codec): a waitlist claiming 3.5 billion
    // entries made imbl preallocate ~85 GB and abort the process.
    let bytes = include_bytes!("../../../fuzz/regressions/journal_codec-imbl-preallocation");
    assert!(codec::decode::<QueueState>(QueueEntity::VERSION, bytes).is_err());
    // A real state still round-trips through the std collections.
    let mut s = opened(1, 1, 5);
    for user in ["a", "b", "c"] {
        s = claim(&s, &format!("c-{user}"), user, 1, Some("k"))
            .unwrap()
            .0;
    }
    assert_eq!(s.waitlist.len(), 2);
    let bytes = codec::encode(QueueEntity::VERSION, &s).unwrap();
    assert_eq!(
        codec::decode::<QueueState>(QueueEntity::VERSION, &bytes).unwrap(),
        s
    );
}

#[test]
fn confirmed_then_waitlisted_then_sold_out() {
    let mut s = opened(2, 1, 1);
    for (i, want) in [
        ClaimStatus::Confirmed,
        ClaimStatus::Confirmed,
        ClaimStatus::Waitlisted,
    ]
    .into_iter()
    .enumerate()
    {
        let (next, c) = claim(&s, &format!("c{i}"), &format!("u{i}"), 1, None).unwrap();
        assert_eq!(c.status, want);
        s = next;
    }
    assert!(matches!(
        claim(&s, "c9", "u9", 1, None),
        Err(DomainError::Conflict {
            code: "sold_out",
            ..
        })
    ));
    assert_eq!(s.confirmed, 2);
}

#[test]
fn per_user_limit_and_idempotency() {
    let s = opened(10, 2, 10);
    let (s, first) = claim(&s, "a", "u", 2, Some("k1")).unwrap();
    let (s2, again) = claim(&s, "b", "u", 2, Some("k1")).unwrap();
    assert_eq!(again, first, "a retry answers the first decision");
    assert_eq!(s2, s);
    assert!(matches!(
        claim(&s, "c", "u", 1, Some("k2")),
        Err(DomainError::Conflict {
            code: "limit_reached",
            ..
        })
    ));
}

#[test]
fn cancelling_promotes_the_head_of_the_waitlist_in_order() {
    let mut s = opened(1, 1, 10);
    for (i, user) in ["a", "b", "c"].iter().enumerate() {
        s = claim(&s, &format!("c{i}"), user, 1, None).unwrap().0;
    }
    assert_eq!(s.claims["c2"].status, ClaimStatus::Waitlisted);
    let s = cancel(&s, "a", "c0");
    assert_eq!(s.claims["c1"].status, ClaimStatus::Confirmed, "b first");
    assert_eq!(s.claims["c2"].status, ClaimStatus::Waitlisted);
    assert_eq!(s.with_position(&s.claims["c2"]).position, Some(1));
    assert_eq!(s.confirmed, 1);
    assert_derived_fields_match_a_full_scan(&s);
    // Everyone told: nothing is due any more.
    let told: Vec<_> = s
        .claims
        .values()
        .map(|c| (c.id.clone(), c.status))
        .collect();
    let s = QueueEntity::evolve(&s, &[QueueEvent::Notified { claims: told }]);
    assert_derived_fields_match_a_full_scan(&s);
    assert!(!s.work_due());
}

/// `waitlisted_units` and `due` are kept by `apply`; they must equal
/// what scanning every claim gives.
fn assert_derived_fields_match_a_full_scan(s: &QueueState) {
    let units: u32 = s
        .waitlist
        .iter()
        .filter_map(|id| s.claims.get(id))
        .map(|c| c.quantity)
        .sum();
    assert_eq!(s.waitlisted_units, units);
    let due: imbl::OrdSet<String> = s
        .claims
        .values()
        .filter(|c| s.needs_order(c) || c.notified != Some(c.status))
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(s.due, due);
}

#[test]
fn derived_fields_follow_claims_cancellations_and_promotions() {
    let mut s = opened(2, 2, 10);
    for (i, q) in [2, 1, 2, 1].into_iter().enumerate() {
        s = claim(&s, &format!("c{i}"), &format!("u{i}"), q, None)
            .unwrap()
            .0;
        assert_derived_fields_match_a_full_scan(&s);
    }
    assert_eq!(s.waitlisted_units, 4);
    let (s2, c) = claim(&s, "c9", "u9", 1, None).unwrap();
    assert_eq!(c.position, Some(4), "a new claim is last in the waitlist");
    assert_derived_fields_match_a_full_scan(&s2);
    let s = cancel(&s, "u0", "c0");
    assert_derived_fields_match_a_full_scan(&s);
    // Strict FIFO: the head (1 unit) fits, the next (2 units) does not.
    assert_eq!(s.confirmed, 1);
    assert_eq!(s.waitlisted_units, 3);
}

#[test]
fn a_command_and_its_reply_cross_the_wire_unchanged() {
    for key in [true, false] {
        a_claim_crosses_the_wire_unchanged(key);
    }
    // A status (its configuration has no `part_of`), positionally too.
    let status = opened(1, 1, 0).status().unwrap();
    let back: QueueStatus = rmp_serde::from_slice(&rmp_serde::to_vec(&status).unwrap()).unwrap();
    assert_eq!(back, status);
}

// What cluster mode relies on: a command encoded on one node (positionally,
// as `Registry::call` forwards it) decides the same on the node that owns
// the queue, and the reply comes back; with and without an idempotency key
// (a field once skipped when empty, which shifted every field after it).
fn a_claim_crosses_the_wire_unchanged(with_key: bool) {
    let s = opened(1, 1, 0);
    let ctx = Ctx {
        id: "q",
        now: Utc::now(),
    };
    let cmd = QueueCommand::Claim {
        claim_id: "c1".into(),
        user_id: "u1".into(),
        quantity: 1,
        idempotency_key: with_key.then(|| crate::domain::IdempotencyKey {
            key: "k".into(),
            request: "r".into(),
        }),
        order: None,
        dry_first: false,
        grant: None,
    };
    let sent: QueueCommand = rmp_serde::from_slice(&rmp_serde::to_vec(&cmd).unwrap()).unwrap();
    let (events, reply) = QueueEntity::decide(&s, sent, &ctx).unwrap();
    let (direct_events, _) = QueueEntity::decide(&s, cmd, &ctx).unwrap();
    assert_eq!(events, direct_events);
    let answer: Result<QueueReply, DomainError> = Ok(reply.clone());
    let back: Result<QueueReply, DomainError> =
        rmp_serde::from_slice(&rmp_serde::to_vec(&answer).unwrap()).unwrap();
    let back = back.unwrap();
    let (
        QueueReply::Claim { claim, .. },
        QueueReply::Claim {
            claim: sent_claim, ..
        },
    ) = (back, reply)
    else {
        panic!("a claim reply")
    };
    assert_eq!(claim, sent_claim);
    assert_eq!(claim.status, ClaimStatus::Confirmed);
}

/// `cmd` decided and applied on `s`, with its reply.
fn run(
    s: &QueueState,
    id: &str,
    cmd: QueueCommand,
) -> Result<(QueueState, QueueReply), DomainError> {
    let ctx = Ctx {
        id,
        now: Utc::now(),
    };
    let (events, reply) = QueueEntity::decide(s, cmd, &ctx)?;
    Ok((QueueEntity::evolve(s, &events), reply))
}

/// Split queue `q` (capacity 10, 2 parts) and its part 0, opened.
fn split_and_part() -> (QueueState, QueueState) {
    let mut queue = opened(10, 3, 4);
    let mut cfg = queue.config.clone().unwrap();
    cfg.parts = 2;
    queue.config = Some(cfg.clone());
    let part = QueueEntity::evolve(
        &QueueState::default(),
        &[QueueEvent::Opened {
            config: cfg.part("q"),
        }],
    );
    (queue, part)
}

fn part_claim(s: &QueueState, id: &str, user: &str, dry_first: bool) -> (QueueState, QueueReply) {
    let cmd = QueueCommand::Claim {
        claim_id: id.into(),
        user_id: user.into(),
        quantity: 1,
        idempotency_key: None,
        order: None,
        dry_first,
        grant: None,
    };
    run(s, "q~0", cmd).unwrap()
}

#[test]
fn a_part_decides_only_on_the_units_granted_to_it() {
    let (queue, part) = split_and_part();
    assert_eq!(
        part.config.as_ref().unwrap().max_waitlist,
        2,
        "its share of the waitlist"
    );
    // No units yet: asked `dry_first`, it answers dry and records nothing.
    let (after, reply) = part_claim(&part, "c1", "u1", true);
    assert!(matches!(reply, QueueReply::Dry));
    assert_eq!(after, part);
    // The split queue itself decides no claim.
    let err = run(
        &queue,
        "q",
        QueueCommand::Claim {
            claim_id: "c0".into(),
            user_id: "u0".into(),
            quantity: 1,
            idempotency_key: None,
            order: None,
            dry_first: false,
            grant: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, DomainError::Conflict { code, .. } if code == "queue_split"));

    let (part, _) = run(&part, "q~0", QueueCommand::Grant { total: 1 }).unwrap();
    let (part, reply) = part_claim(&part, "c1", "u1", true);
    let QueueReply::Claim { claim, .. } = reply else {
        panic!("decided")
    };
    assert_eq!(claim.status, ClaimStatus::Confirmed);
    assert_eq!(
        claim.queue_id.as_str(),
        "q",
        "a part's claims are its queue's"
    );
    // Full again: dry first, waitlisted when told to decide.
    let (_, reply) = part_claim(&part, "c2", "u2", true);
    assert!(matches!(reply, QueueReply::Dry));
    let (part, reply) = part_claim(&part, "c2", "u2", false);
    let QueueReply::Claim { claim, .. } = reply else {
        panic!("decided")
    };
    assert_eq!(claim.status, ClaimStatus::Waitlisted);
    // A grant promotes the waitlist head; a lower total changes nothing.
    let (part, reply) = run(&part, "q~0", QueueCommand::Grant { total: 3 }).unwrap();
    let QueueReply::Part(units) = reply else {
        panic!("units")
    };
    assert_eq!(
        (
            units.received,
            units.confirmed,
            units.unused,
            units.waitlisted
        ),
        (3, 2, 1, 0)
    );
    assert_eq!(part.claims["c2"].status, ClaimStatus::Confirmed);
    let (same, _) = run(&part, "q~0", QueueCommand::Grant { total: 2 }).unwrap();
    assert_eq!(same, part);
    // Giving back returns exactly the unconfirmed unit, once.
    let (part, reply) = run(&part, "q~0", QueueCommand::GiveBack { half: false }).unwrap();
    let QueueReply::Part(units) = reply else {
        panic!("units")
    };
    assert_eq!((units.returned, units.unused), (1, 0));
    let (again, _) = run(&part, "q~0", QueueCommand::GiveBack { half: false }).unwrap();
    assert_eq!(again, part);
    assert_eq!(part.capacity(), 2);
}

#[test]
fn a_split_queue_never_allots_more_than_its_capacity() {
    let (queue, _) = split_and_part();
    let pool = |s: &QueueState, cmd| match run(s, "q", cmd) {
        Ok((next, QueueReply::Pool(p))) => (next, p),
        other => panic!("{other:?}"),
    };
    let (q, p) = pool(&queue, QueueCommand::Allot { part: 0, want: 7 });
    assert_eq!((p.allotted.clone(), p.free), (vec![7, 0], 3));
    let (q, p) = pool(&q, QueueCommand::Allot { part: 1, want: 7 });
    assert_eq!(
        (p.allotted.clone(), p.free),
        (vec![7, 3], 0),
        "only what is free"
    );
    let (q2, p) = pool(&q, QueueCommand::Allot { part: 1, want: 1 });
    assert_eq!(
        (q2, p.free),
        (q.clone(), 0),
        "nothing left: nothing recorded"
    );
    // Part 0 gave back 2: they are free again, counted once.
    let (q, p) = pool(&q, QueueCommand::Recover { part: 0, total: 2 });
    assert_eq!((p.recovered.clone(), p.free), (vec![2, 0], 2));
    let (q, p) = pool(&q, QueueCommand::Recover { part: 0, total: 1 });
    assert_eq!(p.free, 2, "an older total changes nothing");
    // Never more back than allotted, no part beyond the split.
    assert!(run(&q, "q", QueueCommand::Recover { part: 0, total: 8 }).is_err());
    assert!(run(&q, "q", QueueCommand::Allot { part: 2, want: 1 }).is_err());
}

#[test]
fn a_claim_with_a_grant_takes_the_new_units_in_the_same_step_after_older_waiters() {
    let (_, part) = split_and_part();
    let with_grant = |s: &QueueState, id: &str, user: &str, total: u32| {
        let cmd = QueueCommand::Claim {
            claim_id: id.into(),
            user_id: user.into(),
            quantity: 1,
            idempotency_key: None,
            order: None,
            dry_first: false,
            grant: Some(total),
        };
        let (next, reply) = run(s, "q~0", cmd).unwrap();
        let QueueReply::Claim { claim, status, .. } = reply else {
            panic!("decided")
        };
        (next, claim, status)
    };
    // A dry part: the grant and the claim in one decision.
    let (part, claim, status) = with_grant(&part, "c1", "u1", 1);
    assert_eq!(claim.status, ClaimStatus::Confirmed);
    assert_eq!(
        (part.received, status.confirmed, status.remaining),
        (1, 1, 0)
    );
    // Someone waits: the next unit is theirs, the new claim waits behind.
    let (part, _) = part_claim(&part, "c2", "u2", false);
    let (part, claim, status) = with_grant(&part, "c3", "u3", 2);
    assert_eq!(part.claims["c2"].status, ClaimStatus::Confirmed);
    assert_eq!(
        (claim.status, claim.position),
        (ClaimStatus::Waitlisted, Some(1))
    );
    assert_eq!((status.confirmed, status.waitlisted), (2, 1));
}

/// Every claim a queue and a part decide (confirmed, waitlisted, with
/// quantities above one, after cancellations and promotions) is answered
/// exactly as applying its event to a copy of the state and reading the
/// claim and counters back (`decide::answered`) would answer it.
#[test]
fn answers_a_new_claim_as_applying_it_would() {
    let ctx = Ctx {
        id: "q",
        now: Utc::now(),
    };
    let check = |s: &QueueState, id: &str, user: &str, q: u32| -> QueueState {
        let cmd = QueueCommand::Claim {
            claim_id: id.into(),
            user_id: user.into(),
            quantity: q,
            idempotency_key: None,
            order: None,
            dry_first: false,
            grant: None,
        };
        let Ok((events, fast)) = QueueEntity::decide(s, cmd, &ctx) else {
            return s.clone();
        };
        let (_, slow) = decide::answered(s, events.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(codec::encode(1, &fast).unwrap()).unwrap(),
            serde_json::to_value(codec::encode(1, &slow).unwrap()).unwrap(),
            "claim {id}: {fast:?} vs {slow:?}"
        );
        QueueEntity::evolve(s, &events)
    };
    let mut s = opened(5, 3, 10);
    for i in 0..12 {
        s = check(&s, &format!("c{i}"), &format!("u{}", i % 6), 1 + i % 2);
        if i == 7 {
            s = cancel(&s, "u1", "c1");
        }
    }
    assert!(s.confirmed > 0 && !s.waitlist.is_empty(), "both kinds seen");
    let (_, part) = split_and_part();
    let mut p = part;
    for i in 0..8 {
        p = check(&p, &format!("p{i}"), &format!("pu{i}"), 1);
    }
}

/// The actor applies a decision in place (`advance`): for any sequence of
/// claims, cancellations, expiries, placed orders, notifications and
/// erasures of a paid flash sale, the state and the read-table rows are
/// those of applying it to a copy (`evolve`, then `index`); and a worker's
/// bookkeeping command is answered with the counters applying it gives.
#[test]
fn applying_in_place_leaves_what_applying_to_a_copy_leaves() {
    use proptest::prelude::*;
    let mut flash = opened(3, 2, 4);
    let mut cfg = flash.config.clone().unwrap();
    cfg.kind = QueueKind::FlashSale;
    cfg.price = 100;
    flash.config = Some(cfg);
    let order = ClaimOrder {
        address: Some(crate::domain::user::Address {
            id: "a".into(),
            label: "home".into(),
            line1: "1 Le Loi".into(),
            city: "HCMC".into(),
            lat: 10.7,
            lng: 106.7,
            is_default: true,
        }),
        payment_method: crate::domain::payment::PaymentMethod::Cod,
    };
    proptest!(ProptestConfig::with_cases(256), |(ops in proptest::collection::vec((0u8..6, 0u32..12, 1u32..3), 1..40))| {
        let ctx = Ctx { id: "q", now: Utc::now() };
        let mut copied = flash.clone();
        let mut in_place = flash.clone();
        for (i, (op, n, q)) in ops.into_iter().enumerate() {
            let user: crate::domain::ids::UserId = format!("u{}", n % 5).into();
            let claim_id = format!("c{n}");
            let cmd = match op {
                0 => QueueCommand::Claim {
                    claim_id: format!("c{i}"),
                    user_id: user,
                    quantity: q,
                    idempotency_key: (n % 3 == 0).then(|| crate::domain::IdempotencyKey {
                        key: format!("k{n}"),
                        request: "r".into(),
                    }),
                    order: Some(order.clone()),
                    dry_first: false,
                    grant: None,
                },
                1 => QueueCommand::Cancel { user_id: copied.claims.get(&claim_id).map_or(user, |c| c.user_id.clone()), claim_id },
                2 => QueueCommand::Expire { claim_id },
                3 => QueueCommand::OrderPlaced { claim_id },
                4 => QueueCommand::Notified {
                    claims: copied.notifications_due().take(q as usize).map(|c| (c.id.clone(), c.status)).collect(),
                },
                _ => QueueCommand::EraseClaimant { user_id: user },
            };
            let bookkeeping = op >= 3;
            let Ok((events, reply)) = QueueEntity::decide(&copied, cmd, &ctx) else {
                continue;
            };
            let next = QueueEntity::evolve(&copied, &events);
            let rows = QueueEntity::index("q", &copied, &next, &events);
            prop_assert_eq!(QueueEntity::advance("q", &mut in_place, &events), rows);
            prop_assert_eq!(&in_place, &next);
            if bookkeeping {
                let counters = QueueReply::Status(next.status().unwrap());
                prop_assert_eq!(codec::encode(1, &reply).unwrap(), codec::encode(1, &counters).unwrap());
            }
            copied = next;
        }
    });
}

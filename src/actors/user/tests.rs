//! Given/when/then tests of the user entity's decisions.

use super::*;
use crate::domain::user::MAX_SESSIONS;
use crate::domain::Role;
use chrono::Duration;

fn registered(now: DateTime<Utc>) -> UserState {
    let ctx = Ctx { id: "u1", now };
    let cmd = UserCommand::Register {
        email: "a@example.com".into(),
        name: "A".into(),
        role: Role::Customer,
        password_hash: "h".into(),
    };
    let (events, _) = User::decide(&UserState::default(), cmd, &ctx).unwrap();
    User::evolve(&UserState::default(), &events)
}

fn run(state: &UserState, cmd: UserCommand, now: DateTime<Utc>) -> (UserState, UserReply) {
    let (events, reply) = User::decide(state, cmd, &Ctx { id: "u1", now }).unwrap();
    (User::evolve(state, &events), reply)
}

fn start(sid: &str, expires_at: DateTime<Utc>) -> UserCommand {
    UserCommand::StartSession {
        sid: sid.into(),
        refresh_jti: format!("{sid}-j"),
        expires_at,
    }
}

#[test]
fn sessions_are_bounded_and_expired_ones_pruned() {
    let now = Utc::now();
    let mut s = registered(now);
    s = run(&s, start("old", now + Duration::seconds(1)), now).0;
    for i in 0..MAX_SESSIONS + 3 {
        s = run(
            &s,
            start(&format!("s{i}"), now + Duration::days(1)),
            now + Duration::seconds(2),
        )
        .0;
    }
    assert_eq!(s.sessions.len(), MAX_SESSIONS);
    assert!(
        s.sessions.iter().all(|x| x.sid != "old"),
        "expired session pruned"
    );
    assert_eq!(
        s.sessions.last().unwrap().sid,
        format!("s{}", MAX_SESSIONS + 2)
    );
    assert_eq!(
        s.sessions.first().unwrap().sid,
        "s3",
        "the oldest live sessions were ended first"
    );
}

#[test]
fn rotation_accepts_only_the_current_refresh_token() {
    let now = Utc::now();
    let s = run(&registered(now), start("s", now + Duration::days(1)), now).0;
    let rotate = |presented: &str, new: &str| UserCommand::Rotate {
        sid: "s".into(),
        presented_jti: presented.into(),
        new_jti: new.into(),
        expires_at: now + Duration::days(2),
    };
    let (s2, reply) = run(&s, rotate("s-j", "j2"), now);
    assert!(matches!(reply, UserReply::Account(_)));
    assert_eq!(s2.sessions[0].refresh_jti, "j2");
    let (s3, reply) = run(&s2, rotate("s-j", "j3"), now);
    assert!(matches!(reply, UserReply::Refused));
    assert!(
        s3.sessions.is_empty(),
        "reuse of an old token ends the session"
    );
    let later = now + Duration::days(3);
    let (events, reply) = User::decide(
        &s2,
        rotate("j2", "j4"),
        &Ctx {
            id: "u1",
            now: later,
        },
    )
    .unwrap();
    assert!(
        events.is_empty() && matches!(reply, UserReply::Refused),
        "an expired session cannot be refreshed"
    );
    let err = User::decide(
        &s2,
        UserCommand::CheckSession { sid: "s".into() },
        &Ctx {
            id: "u1",
            now: later,
        },
    );
    assert!(matches!(err, Err(DomainError::Unauthorized(_))));
}

#[test]
fn a_password_change_applies_only_over_the_password_it_verified_and_ends_every_session() {
    let now = Utc::now();
    let s = run(&registered(now), start("s1", now + Duration::days(1)), now).0;
    let change = |verified: &str| UserCommand::ChangePassword {
        verified_hash: verified.into(),
        password_hash: "h2".into(),
    };
    // Changed meanwhile (another change won the race): refused, no event.
    let refused = User::decide(&s, change("h-old"), &Ctx { id: "u1", now });
    assert!(
        matches!(&refused, Err(DomainError::Conflict { code, .. }) if *code == "password_changed"),
        "{refused:?}"
    );
    let (events, _) = User::decide(&s, change("h"), &Ctx { id: "u1", now }).unwrap();
    assert!(matches!(
        events.as_slice(),
        [UserEvent::PasswordChanged { .. }]
    ));
    assert!(matches!(
        User::revokes(&events[0]),
        Some(crate::live::Revocation::AllSessions)
    ));
    let after = User::evolve(&s, &events);
    assert_eq!(after.account.as_ref().unwrap().password_hash, "h2");
    assert!(after.sessions.is_empty());
}

#[test]
fn a_suspension_ends_every_session_and_no_new_one_starts_until_lifted() {
    let now = Utc::now();
    let mut s = registered(now);
    for sid in ["s1", "s2"] {
        s = run(&s, start(sid, now + Duration::days(1)), now).0;
    }
    let suspend = |reason: &str| UserCommand::Suspend {
        reason: reason.into(),
        by: "admin".into(),
    };
    let ctx = Ctx { id: "u1", now };
    assert!(
        User::decide(&s, suspend("  "), &ctx).is_err(),
        "a reason is required"
    );
    let (events, _) = User::decide(&s, suspend("fraud"), &ctx).unwrap();
    let ended: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            UserEvent::SessionEnded { sid, .. } => Some(sid.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ended, ["s1", "s2"]);
    let s = User::evolve(&s, &events);
    assert!(s.sessions.is_empty());
    assert_eq!(
        s.account
            .as_ref()
            .unwrap()
            .suspension
            .as_ref()
            .unwrap()
            .reason,
        "fraud"
    );
    // No session starts; suspending again records nothing.
    let refused = User::decide(&s, start("s3", now + Duration::days(1)), &ctx);
    assert!(
        matches!(refused, Err(DomainError::Forbidden(_))),
        "{refused:?}"
    );
    let (again, _) = User::decide(&s, suspend("again"), &ctx).unwrap();
    assert!(again.is_empty());
    let s = run(&s, UserCommand::Reactivate { by: "admin".into() }, now).0;
    assert!(s.account.as_ref().unwrap().suspension.is_none());
    let s = run(&s, start("s3", now + Duration::days(1)), now).0;
    assert_eq!(s.sessions.len(), 1);
}

#[test]
fn a_role_change_ends_every_session() {
    let now = Utc::now();
    let s = run(&registered(now), start("s1", now + Duration::days(1)), now).0;
    let (s, reply) = run(&s, UserCommand::SetRole(Role::Merchant), now);
    assert!(matches!(reply, UserReply::Account(v) if v.role == Role::Merchant));
    assert!(s.sessions.is_empty());
    // The same role again changes nothing.
    let s = run(&s, start("s2", now + Duration::days(1)), now).0;
    let (events, _) = User::decide(
        &s,
        UserCommand::SetRole(Role::Merchant),
        &Ctx { id: "u1", now },
    )
    .unwrap();
    assert!(events.is_empty());
}

#[test]
fn a_session_check_answers_the_account_and_its_default_address() {
    let now = Utc::now();
    let s = run(&registered(now), start("s", now + Duration::days(1)), now).0;
    let check = || UserCommand::CheckSession { sid: "s".into() };
    match run(&s, check(), now).1 {
        UserReply::Session(view, None) => assert_eq!(view.id, "u1"),
        other => panic!("{other:?}"),
    }
    let add = |id: &str, is_default: bool| UserCommand::AddAddress {
        id: id.into(),
        input: crate::domain::user::AddressInput {
            label: id.into(),
            line1: "1 Street".into(),
            city: "Hanoi".into(),
            lat: 21.0,
            lng: 105.8,
            is_default,
        },
    };
    let s = run(&s, add("a1", false), now).0;
    let s = run(&s, add("a2", true), now).0;
    match run(&s, check(), now).1 {
        UserReply::Session(_, Some(a)) => assert_eq!(a.id, "a2", "the default one"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn notifications_stay_bounded_and_decode_from_a_plain_list() {
    let now = Utc::now();
    let mut s = registered(now);
    for i in 0..super::state::MAX_NOTIFICATIONS + 5 {
        let n = crate::domain::notification::Notification {
            id: format!("n{i}"),
            kind: "order_placed".into(),
            title: "t".into(),
            body: "b".into(),
            order_id: None,
            created_at: now,
            read: false,
        };
        s = run(&s, UserCommand::Notify(n), now).0;
    }
    assert_eq!(s.notifications.len(), super::state::MAX_NOTIFICATIONS);
    assert_eq!(s.notifications.front().unwrap().id, "n5", "the oldest go");
    // A snapshot holds the list as a plain sequence: the same bytes as a
    // `Vec`, and it decodes back to the same state.
    let bytes = crate::store::codec::encode(User::VERSION, &s).unwrap();
    let back: UserState = crate::store::codec::decode(User::VERSION, &bytes).unwrap();
    assert_eq!(back, s);
    let plain: Vec<_> = s.notifications.iter().cloned().collect();
    assert_eq!(
        rmp_serde::to_vec(&s.notifications).unwrap(),
        rmp_serde::to_vec(&plain).unwrap()
    );
}

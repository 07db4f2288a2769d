//! The session's behaviour over in-memory sinks and streams.

use super::*;
use crate::domain::user::UserView;
use crate::domain::Role;
use futures::channel::mpsc as fmpsc;

/// The one topic `OneTopic` lets anyone watch; `OTHER` nobody.
const T: &str = "queue:0192a2b3-0000-7000-8000-00000000000a";
const OTHER: &str = "queue:0192a2b3-0000-7000-8000-00000000000b";

fn topic() -> Topic {
    T.parse().unwrap()
}

/// A distinct event per sequence number.
fn counters(seq: u64) -> LiveEvent {
    LiveEvent::Queue(crate::live::QueueLive::Capacity {
        capacity: seq as u32,
        confirmed: 0,
        remaining: 0,
        waitlisted: 0,
        state: crate::domain::window::WindowState::SoldOut,
    })
}

struct OneTopic;

#[async_trait]
impl TopicSource for OneTopic {
    async fn authorize(&self, _user: &AuthUser, topic: &Topic) -> Result<Scope, ServerMsg> {
        if topic.to_string() == T {
            Ok(None)
        } else {
            Err(ServerMsg::error("forbidden", "no"))
        }
    }
    async fn head(&self, _topic: &Topic) -> Result<u64, String> {
        Ok(3)
    }
    async fn reauthenticate(&self, token: &str) -> Result<AuthUser, ServerMsg> {
        match token {
            "fresh" => Ok(user("u", "s2", 3600)),
            "stranger" => Ok(user("v", "s9", 3600)),
            _ => Err(ServerMsg::error("unauthorized", "invalid token")),
        }
    }
    async fn replay(
        &self,
        _topic: &Topic,
        after: u64,
        until: u64,
    ) -> Result<(Vec<(u64, LiveEvent)>, u64), String> {
        // One event per page, to exercise paging.
        let seq = after + 1;
        Ok((
            if seq <= until {
                vec![(seq, counters(seq))]
            } else {
                vec![]
            },
            seq.min(until),
        ))
    }
}

fn user(id: &str, sid: &str, expires_in_secs: i64) -> AuthUser {
    AuthUser {
        id: id.into(),
        role: Role::Customer,
        sid: sid.into(),
        view: UserView {
            id: id.into(),
            email: "u@example.com".into(),
            name: "U".into(),
            phone: None,
            role: Role::Customer,
            created_at: chrono::Utc::now(),
            suspension: None,
        },
        default_address: None,
        expires_at: chrono::Utc::now().timestamp() + expires_in_secs,
    }
}

fn ctx(bus: Arc<Bus>, limits: Limits) -> SessionCtx {
    let view = UserView {
        id: "u".into(),
        email: "u@example.com".into(),
        name: "U".into(),
        phone: None,
        role: Role::Customer,
        created_at: chrono::Utc::now(),
        suspension: None,
    };
    SessionCtx {
        user: AuthUser {
            id: "u".into(),
            role: Role::Customer,
            sid: "s".into(),
            view,
            default_address: None,
            expires_at: chrono::Utc::now().timestamp() + 3600,
        },
        revocations: bus.watch_revocations("u"),
        codec: Codec::Json,
        bus,
        topics: Arc::new(OneTopic),
        metrics: Arc::new(crate::metrics::Metrics::new()),
        limits,
        shutdown: tokio::sync::watch::channel(false).1,
        initial: vec![],
    }
}

fn text(v: serde_json::Value) -> Result<Message, std::convert::Infallible> {
    Ok(Message::Text(v.to_string().into()))
}

async fn next_msg(rx: &mut fmpsc::Receiver<Message>) -> ServerMsg {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .expect("a frame")
            .expect("open")
        {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn position(ts: i64) -> Arc<crate::domain::shipping::Position> {
    Arc::new(crate::domain::shipping::Position::sample(ts))
}

#[tokio::test]
async fn positions_follow_subscribed_and_stop_at_unsubscribe() {
    let bus = Arc::new(Bus::new(16));
    // Someone else watches the topic, so it has a newest position.
    let _other = bus.subscribe(&topic());
    bus.publish_position(&topic(), position(1));
    let (in_tx, in_rx) = fmpsc::unbounded();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, ctx(bus.clone(), Limits::default())));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "subscribe", "topic": T})))
        .unwrap();
    assert!(
        matches!(next_msg(&mut out_rx).await, ServerMsg::Subscribed { .. }),
        "subscribed comes first"
    );
    let ts = |m: ServerMsg| match m {
        ServerMsg::Location { data, .. } => data.ts,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ts(next_msg(&mut out_rx).await),
        1,
        "the newest on subscribing"
    );
    bus.publish_position(&topic(), position(2));
    assert_eq!(ts(next_msg(&mut out_rx).await), 2);
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "unsubscribe", "topic": T})))
        .unwrap();
    assert_eq!(
        next_msg(&mut out_rx).await,
        ServerMsg::Unsubscribed { topic: T.into() }
    );
    bus.publish_position(&topic(), position(3));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "ping"})))
        .unwrap();
    assert_eq!(
        next_msg(&mut out_rx).await,
        ServerMsg::Pong,
        "no position after unsubscribing"
    );
    drop(in_tx);
    tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .unwrap()
        .unwrap();
}

/// Events from another node name their predecessor: a subscriber that
/// did not see it gets the missing ones from the journal first, and a
/// duplicate is dropped — the client sees 4, 5, 6, 7, 8, 9 once each.
#[tokio::test]
async fn a_gap_in_relayed_events_is_filled_from_the_journal() {
    let bus = Arc::new(Bus::new(16));
    let (in_tx, in_rx) = fmpsc::unbounded();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, ctx(bus.clone(), Limits::default())));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "subscribe", "topic": T})))
        .unwrap();
    assert!(matches!(
        next_msg(&mut out_rx).await,
        ServerMsg::Subscribed { seq: 3, .. }
    ));
    let t = topic();
    bus.deliver(&t, 4, Prev::Seq(3), counters(4));
    bus.deliver(&t, 7, Prev::Seq(6), counters(7)); // 5 and 6 were lost
    bus.deliver(&t, 7, Prev::Seq(6), counters(7)); // delivered twice
    bus.deliver(&t, 8, Prev::Unknown, counters(8)); // a new owner
    bus.resync(&t); // nothing beyond the head
    bus.deliver(&t, 9, Prev::Seq(8), counters(9));
    let mut seqs = Vec::new();
    while seqs.len() < 6 {
        match next_msg(&mut out_rx).await {
            ServerMsg::Event { seq, data, .. } => {
                assert_eq!(*data, counters(seq));
                seqs.push(seq);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seqs, [4, 5, 6, 7, 8, 9]);
    drop(in_tx);
    let _ = session.await;
}

#[tokio::test]
async fn replies_replays_and_forwards_live_events_in_order() {
    let bus = Arc::new(Bus::new(16));
    let (in_tx, in_rx) = fmpsc::unbounded();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, ctx(bus.clone(), Limits::default())));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "ping"})))
        .unwrap();
    assert_eq!(next_msg(&mut out_rx).await, ServerMsg::Pong);
    in_tx
        .unbounded_send(Ok(Message::Text("{not json".into())))
        .unwrap();
    assert!(
        matches!(next_msg(&mut out_rx).await, ServerMsg::Error { code, .. } if code == "invalid_message")
    );
    in_tx
        .unbounded_send(text(
            serde_json::json!({"type": "subscribe", "topic": OTHER}),
        ))
        .unwrap();
    assert!(
        matches!(next_msg(&mut out_rx).await, ServerMsg::Error { code, .. } if code == "forbidden")
    );

    in_tx
        .unbounded_send(text(
            serde_json::json!({"type": "subscribe", "topic": T, "since": 1}),
        ))
        .unwrap();
    let seqs: Vec<u64> = [next_msg(&mut out_rx).await, next_msg(&mut out_rx).await]
        .into_iter()
        .map(|m| match m {
            ServerMsg::Event { seq, .. } => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [2, 3], "replayed after since up to the head");
    assert_eq!(
        next_msg(&mut out_rx).await,
        ServerMsg::Subscribed {
            topic: T.into(),
            seq: 3
        }
    );
    // A stale publish (≤ head) is skipped; newer ones follow in order.
    bus.publish(&topic(), 3, counters(3));
    bus.publish(&topic(), 4, counters(4));
    assert!(matches!(
        next_msg(&mut out_rx).await,
        ServerMsg::Event { seq: 4, .. }
    ));

    in_tx
        .unbounded_send(text(serde_json::json!({"type": "unsubscribe", "topic": T})))
        .unwrap();
    assert_eq!(
        next_msg(&mut out_rx).await,
        ServerMsg::Unsubscribed { topic: T.into() }
    );
    assert_eq!(bus.topic_count(), 0, "the topic is released");
    drop(in_tx);
    tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .unwrap()
        .unwrap();
}

/// The close frame's code, skipping anything sent before it.
async fn close_code(rx: &mut fmpsc::Receiver<Message>) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.next())
            .await
            .expect("a frame")
            .expect("open")
        {
            Message::Close(Some(f)) => return f.code,
            Message::Close(None) => panic!("a close without a code"),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn the_connection_of_an_ended_session_closes_with_4001_others_stay() {
    let bus = Arc::new(Bus::new(16));
    let (_in_tx, in_rx) = fmpsc::unbounded::<Result<Message, std::convert::Infallible>>();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, ctx(bus.clone(), Limits::default())));
    bus.revoke("u", crate::live::Revocation::Session("another".into()));
    bus.revoke("someone else", crate::live::Revocation::AllSessions);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !session.is_finished(),
        "other sessions' ends do not close it"
    );
    bus.revoke("u", crate::live::Revocation::Session("s".into()));
    assert_eq!(close_code(&mut out_rx).await, close::SESSION_ENDED);
    session.await.unwrap();
    assert_eq!(bus.revocation_watchers(), 0, "unregistered when closed");

    // A password reset ends every session of the user.
    let (_in_tx, in_rx) = fmpsc::unbounded::<Result<Message, std::convert::Infallible>>();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, ctx(bus.clone(), Limits::default())));
    bus.revoke("u", crate::live::Revocation::AllSessions);
    assert_eq!(close_code(&mut out_rx).await, close::SESSION_ENDED);
    session.await.unwrap();
}

#[tokio::test]
async fn the_connection_ends_at_token_expiry_unless_an_auth_frame_renews_it() {
    let bus = Arc::new(Bus::new(16));
    let mut expiring = ctx(bus.clone(), Limits::default());
    expiring.user = user("u", "s", 1);
    let (_in_tx, in_rx) = fmpsc::unbounded::<Result<Message, std::convert::Infallible>>();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, expiring));
    assert_eq!(close_code(&mut out_rx).await, close::TOKEN_EXPIRED);
    session.await.unwrap();

    let mut renewed = ctx(bus.clone(), Limits::default());
    renewed.user = user("u", "s", 1);
    let (in_tx, in_rx) = fmpsc::unbounded();
    let (out_tx, mut out_rx) = fmpsc::channel(64);
    let session = tokio::spawn(run(out_tx, in_rx, renewed));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "auth", "token": "bad"})))
        .unwrap();
    assert!(
        matches!(next_msg(&mut out_rx).await, ServerMsg::Error { code, .. } if code == "unauthorized")
    );
    in_tx
        .unbounded_send(text(
            serde_json::json!({"type": "auth", "token": "stranger"}),
        ))
        .unwrap();
    assert!(
        matches!(next_msg(&mut out_rx).await, ServerMsg::Error { code, .. } if code == "forbidden")
    );
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "auth", "token": "fresh"})))
        .unwrap();
    assert!(matches!(
        next_msg(&mut out_rx).await,
        ServerMsg::AuthOk { expires_in, .. } if expires_in > 3000
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "ping"})))
        .unwrap();
    assert_eq!(
        next_msg(&mut out_rx).await,
        ServerMsg::Pong,
        "alive past the first token's expiry"
    );
    // It now follows the new token's session.
    bus.revoke("u", crate::live::Revocation::Session("s".into()));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "ping"})))
        .unwrap();
    assert_eq!(next_msg(&mut out_rx).await, ServerMsg::Pong);
    bus.revoke("u", crate::live::Revocation::Session("s2".into()));
    assert_eq!(close_code(&mut out_rx).await, close::SESSION_ENDED);
    session.await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped() {
    let bus = Arc::new(Bus::new(1024));
    let (in_tx, in_rx) = fmpsc::unbounded();
    // A tiny sink nobody reads: the client stopped reading.
    let (out_tx, _out_rx) = fmpsc::channel(1);
    let limits = Limits {
        out_queue: 4,
        write_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let session = tokio::spawn(run(out_tx, in_rx, ctx(bus.clone(), limits)));
    in_tx
        .unbounded_send(text(serde_json::json!({"type": "subscribe", "topic": T})))
        .unwrap();
    while bus.topic_count() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for seq in 4..200 {
        bus.publish(&topic(), seq, counters(seq));
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .expect("the session ends instead of buffering without bound")
        .unwrap();
    assert_eq!(bus.topic_count(), 0);
}

//! The actor runtime: crash and restart from the journal, passivation, one
//! writer per entity, and the property that live state, full replay and
//! snapshot + tail always agree.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use surge::actors::{recover, CallError, Ctx, Entity, Registry, Runtime};
use surge::metrics::Metrics;
use surge::store::redb::{RedbOptions, RedbStore};
use surge::store::Store;

/// A small entity for exercising the runtime.
struct Counter;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CounterState {
    value: i64,
    changes: u64,
    log: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Added(i64),
    Reset,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterCmd {
    Add(i64),
    Reset,
    Get,
    /// Rejected when the value is below the bound.
    RequireAtLeast(i64),
    Panic,
    /// Holds the actor busy (to pile up its mailbox).
    Stall(u64),
}

impl Entity for Counter {
    const KIND: &'static str = "counter";
    type State = CounterState;
    type Command = CounterCmd;
    type Event = CounterEvent;
    type Reply = i64;
    type Rejection = String;

    fn decide(
        state: &CounterState,
        cmd: CounterCmd,
        _ctx: &Ctx<'_>,
    ) -> Result<(Vec<CounterEvent>, i64), String> {
        match cmd {
            CounterCmd::Add(n) => Ok((vec![CounterEvent::Added(n)], state.value + n)),
            CounterCmd::Reset => Ok((vec![CounterEvent::Reset], 0)),
            CounterCmd::Get => Ok((vec![], state.value)),
            CounterCmd::RequireAtLeast(n) if state.value < n => {
                Err(format!("{} < {n}", state.value))
            }
            CounterCmd::RequireAtLeast(_) => Ok((vec![], state.value)),
            CounterCmd::Panic => panic!("counter asked to crash"),
            CounterCmd::Stall(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                Ok((vec![], state.value))
            }
        }
    }

    fn apply(state: &mut CounterState, event: &CounterEvent) {
        state.changes += 1;
        match event {
            CounterEvent::Added(n) => {
                state.value += n;
                state.log.push(*n);
            }
            CounterEvent::Reset => {
                state.value = 0;
                state.log.clear();
            }
        }
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    counters: Registry<Counter>,
}

async fn harness(idle: Duration, snapshot_every: u64) -> Harness {
    harness_with(idle, snapshot_every, 64).await
}

async fn harness_with(idle: Duration, snapshot_every: u64, max_pending: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(dir.path(), RedbOptions::default(), metrics.clone()).unwrap());
    let rt = Runtime {
        store: store.clone(),
        metrics: metrics.clone(),
        idle_after: idle,
        call_timeout: Duration::from_secs(5),
        snapshot_every,
        max_live: 10_000,
        max_pending,
        bus: Arc::new(surge::live::Bus::new(64)),
        instance: uuid::Uuid::new_v4().simple().to_string(),
        cluster: None,
    };
    let counters = Registry::start(rt).await.unwrap();
    Harness {
        _dir: dir,
        store,
        metrics,
        counters,
    }
}

#[tokio::test]
async fn rejections_are_answers_and_change_nothing() {
    let h = harness(Duration::from_secs(60), 0).await;
    h.counters.call("c", CounterCmd::Add(2)).await.unwrap();
    match h.counters.call("c", CounterCmd::RequireAtLeast(5)).await {
        Err(CallError::Rejected(msg)) => assert_eq!(msg, "2 < 5"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let before = h.counters.live_actor("c").await.unwrap().get_id();
    assert_eq!(h.counters.call("c", CounterCmd::Get).await.unwrap(), 2);
    assert_eq!(
        h.counters.live_actor("c").await.unwrap().get_id(),
        before,
        "a rejection does not crash the actor"
    );
}

/// A decision is applied to the actor's state before the store queues it;
/// when the store refuses to queue it (its writer is gone), the caller gets
/// the storage error and nothing of the decision stays in memory: the actor
/// stops and comes back with its journal's state.
#[tokio::test]
async fn an_append_the_store_does_not_queue_leaves_no_trace() {
    let h = harness(Duration::from_secs(60), 0).await;
    h.counters.call("c", CounterCmd::Add(5)).await.unwrap();
    h.store.close().await;
    assert!(matches!(
        h.counters.call("c", CounterCmd::Add(3)).await,
        Err(CallError::Storage(_))
    ));
    let mut seen = None;
    for _ in 0..200 {
        match h.counters.call("c", CounterCmd::Get).await {
            Ok(v) => {
                seen = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert_eq!(seen, Some(5), "the refused +3 is not in the state");
}

#[tokio::test]
async fn a_panicking_actor_is_restarted_with_its_journal_state() {
    let h = harness(Duration::from_secs(60), 0).await;
    for n in [5, 7, -2] {
        h.counters.call("c1", CounterCmd::Add(n)).await.unwrap();
    }
    let before = h.counters.live_actor("c1").await.unwrap().get_id();
    assert!(matches!(
        h.counters.call("c1", CounterCmd::Panic).await,
        Err(CallError::Unavailable(_))
    ));

    // The supervisor restarts it; state equals the replayed journal.
    let mut restarted = None;
    for _ in 0..200 {
        if let Some(cell) = h.counters.live_actor("c1").await {
            if cell.get_id() != before {
                restarted = Some(cell);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        restarted.is_some(),
        "the supervisor did not restart the actor"
    );
    let (seq, live) = h.counters.inspect("c1").await.unwrap();
    let r = recover::<Counter>(h.store.as_ref(), "c1", false)
        .await
        .unwrap();
    let (rseq, replayed) = (r.seq, r.state);
    assert_eq!((seq, &live), (rseq, &replayed));
    assert_eq!(live.value, 10);
    assert_eq!(h.counters.call("c1", CounterCmd::Add(1)).await.unwrap(), 11);
    assert!(h
        .metrics
        .render()
        .contains(r#"surge_actor_restarts_total{kind="counter"} 1"#));
}

#[tokio::test]
async fn a_passivated_actor_comes_back_with_the_same_state() {
    let h = harness(Duration::from_millis(100), 0).await;
    for n in 1..=10 {
        h.counters.call("p", CounterCmd::Add(n)).await.unwrap();
    }
    let (seq, state) = h.counters.inspect("p").await.unwrap();
    let mut gone = false;
    for _ in 0..300 {
        if h.counters.live_actor("p").await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the idle actor was not passivated");
    assert_eq!(h.counters.live_count(), 0, "its registry slot is freed");
    let (seq2, state2) = h.counters.inspect("p").await.unwrap();
    assert_eq!((seq2, state2), (seq, state));
    assert!(h
        .metrics
        .render()
        .contains(r#"surge_actor_passivations_total{kind="counter"}"#));
}

#[tokio::test]
async fn one_writer_per_entity_under_concurrency_and_passivation() {
    // Idle time so short that actors passivate between bursts: every
    // re-spawn must wait for the previous actor, or appends would conflict.
    let h = harness(Duration::from_millis(20), 7).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let counters = h.counters.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                counters
                    .call(&format!("hot-{}", i % 3), CounterCmd::Add(1))
                    .await
                    .expect("no conflict, no crash");
                if (t + i) % 9 == 0 {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    for id in ["hot-0", "hot-1", "hot-2"] {
        let (seq, state) = h.counters.inspect(id).await.unwrap();
        assert_eq!(
            seq, state.changes,
            "{id}: every acknowledged command is one journal event"
        );
        total += state.value;
    }
    assert_eq!(total, 8 * 40);
    assert!(
        !h.metrics
            .render()
            .contains("surge_actor_restarts_total{kind=\"counter\"} 1"),
        "no conflict-driven restarts"
    );
}

fn command() -> impl Strategy<Value = CounterCmd> {
    prop_oneof![
        6 => (-1000i64..1000).prop_map(CounterCmd::Add),
        1 => Just(CounterCmd::Reset),
        1 => Just(CounterCmd::Get),
        1 => (-500i64..500).prop_map(CounterCmd::RequireAtLeast),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For random command sequences: the live state equals the state
    /// recovered from the full journal and from the latest snapshot + tail.
    #[test]
    fn live_state_equals_replay_and_snapshot_plus_tail(cmds in proptest::collection::vec(command(), 1..60), every in 1u64..8) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let h = harness(Duration::from_secs(60), every).await;
            for cmd in cmds {
                let _ = h.counters.call("prop", cmd).await;
            }
            let (seq, live) = h.counters.inspect("prop").await.unwrap();
            // Snapshots are written in the background; wait for the first.
            for _ in 0..200 {
                if seq < every || h.store.load_snapshot("counter:prop").await.unwrap().is_some() { break; }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if seq >= every {
                let snap = h.store.load_snapshot("counter:prop").await.unwrap();
                prop_assert!(snap.is_some_and(|s| s.seq > 0 && s.seq <= seq), "a snapshot was written");
            }
            let replayed = recover::<Counter>(h.store.as_ref(), "prop", false).await.map(|r| (r.seq, r.state)).unwrap();
            let from_snapshot = recover::<Counter>(h.store.as_ref(), "prop", true).await.map(|r| (r.seq, r.state)).unwrap();
            prop_assert_eq!(&replayed, &(seq, live.clone()));
            prop_assert_eq!(&from_snapshot, &(seq, live));
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_burst_on_one_entity_is_group_committed() {
    // A pending bound above the 300 concurrent commands, which on a loaded
    // machine may all be waiting at once.
    let h = harness_with(Duration::from_secs(60), 0, 1024).await;
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let counters = h.counters.clone();
            tokio::spawn(async move { counters.call("hot", CounterCmd::Add(1)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("every command succeeds");
    }
    let (seq, state) = h.counters.inspect("hot").await.unwrap();
    assert_eq!((seq, state.value), (300, 300));
    let text = h.metrics.render();
    let appends = crate::helpers::metric_value(&text, "surge_journal_appends_total");
    let commits = crate::helpers::metric_value(&text, "surge_journal_commits_total");
    assert_eq!(appends, 300.0);
    assert!(
        commits < appends / 2.0,
        "one entity's 300 commands took {commits} durable commits"
    );
    let r = recover::<Counter>(h.store.as_ref(), "hot", false)
        .await
        .unwrap();
    let (rseq, replayed) = (r.seq, r.state);
    assert_eq!(
        (rseq, replayed),
        (seq, state),
        "what was acknowledged is what the journal holds"
    );
}

#[tokio::test]
async fn a_failed_append_restarts_the_actor_from_the_journal() {
    let h = harness(Duration::from_secs(60), 0).await;
    assert_eq!(h.counters.call("x", CounterCmd::Add(1)).await.unwrap(), 1);
    let before = h.counters.live_actor("x").await.unwrap().get_id();
    // Another writer slips an event in: the actor's next append conflicts.
    let foreign = surge::store::codec::encode(Counter::VERSION, &CounterEvent::Added(100)).unwrap();
    h.store
        .append(surge::store::AppendRequest {
            stream: "counter:x".into(),
            expected: 1,
            events: vec![foreign],
            index: vec![],
            fence: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(
            h.counters.call("x", CounterCmd::Add(1)).await,
            Err(CallError::Unavailable(_))
        ),
        "the conflicting decision is not acknowledged"
    );
    let mut restarted = false;
    for _ in 0..300 {
        if h.counters
            .live_actor("x")
            .await
            .is_some_and(|c| c.get_id() != before)
        {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(restarted, "the actor was restarted");
    assert_eq!(
        h.counters.inspect("x").await.unwrap(),
        (
            2,
            CounterState {
                value: 101,
                changes: 2,
                log: vec![1, 100]
            }
        )
    );
    assert_eq!(h.counters.call("x", CounterCmd::Add(1)).await.unwrap(), 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_actor_refuses_beyond_its_mailbox_bound_and_loses_nothing_it_accepted() {
    let h = harness(Duration::from_secs(60), 0).await;
    h.counters.call("flood", CounterCmd::Add(0)).await.unwrap();
    let stall = {
        let counters = h.counters.clone();
        tokio::spawn(async move { counters.call("flood", CounterCmd::Stall(1500)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let counters = h.counters.clone();
            tokio::spawn(async move { counters.call("flood", CounterCmd::Add(1)).await })
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(CallError::Overloaded(_)) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stall.await.unwrap().unwrap();
    assert!(
        refused >= 200 - 64,
        "the mailbox bound (64) held: {refused} refused"
    );
    assert_eq!(accepted + refused, 200);
    assert_eq!(
        h.counters.call("flood", CounterCmd::Get).await.unwrap(),
        accepted,
        "every accepted command counted"
    );
}

#[tokio::test]
async fn a_growing_state_is_snapshotted_after_proportionally_more_events() {
    // The counter's state keeps every value added: it grows with its
    // journal. Snapshotting it every event would cost O(n²) bytes; each
    // snapshot waits until the events since the last are as large as it.
    let h = harness(Duration::from_secs(60), 1).await;
    for _ in 0..1_000 {
        h.counters
            .call("grows", CounterCmd::Add(1_000))
            .await
            .unwrap();
    }
    let written = h
        .metrics
        .entity_snapshots
        .get_or_create(&surge::metrics::KindLabels { kind: "counter" })
        .get();
    assert!(
        (2..=40).contains(&written),
        "{written} snapshots for 1,000 events of a growing state"
    );
    // And the latest one plus its tail is still the live state.
    let (seq, live) = h.counters.inspect("grows").await.unwrap();
    let recovered = recover::<Counter>(h.store.as_ref(), "grows", true)
        .await
        .unwrap();
    assert_eq!((recovered.seq, recovered.state), (seq, live));
    assert!(recovered.snapshot_seq > 0, "a snapshot was used");
}

#[tokio::test]
async fn an_entity_recovered_by_a_long_replay_is_snapshotted_at_its_next_decision() {
    let h = harness(Duration::from_secs(60), 10).await;
    // 30 events and no snapshot: written before snapshots were on, say.
    let events: Vec<Vec<u8>> = (0..30)
        .map(|_| surge::store::codec::encode(Counter::VERSION, &CounterEvent::Added(1)).unwrap())
        .collect();
    let req = surge::store::AppendRequest {
        stream: "counter:long".into(),
        expected: 0,
        events,
        index: vec![],
        fence: None,
    };
    assert_eq!(h.store.append(req).await.unwrap(), 30);
    assert_eq!(
        h.counters.call("long", CounterCmd::Add(1)).await.unwrap(),
        31
    );
    let mut saved = None;
    for _ in 0..200 {
        saved = h.store.load_snapshot("counter:long").await.unwrap();
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        saved.map(|s| s.seq),
        Some(31),
        "the next start would replay all 31 events again"
    );
}

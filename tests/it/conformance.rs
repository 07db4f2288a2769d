//! The store conformance suite: what every `Store` backend must do, written
//! once against the trait. `journal.rs` runs it on the embedded store,
//! `scylla.rs` on the ScyllaDB backend (the emulator, or a real cluster).
//! Read tables are the product's own, since the ScyllaDB backend knows
//! each table's partitioning.

use std::sync::Arc;

use surge::actors::course::COURSES_TABLE as OTHER;
use surge::actors::product::PRODUCTS_TABLE as T;
use surge::actors::queue::CLAIMS_BY_QUEUE;
use surge::mail::OUTBOX;
use surge::service::delivery::shipping::TRACK_POINTS;
use surge::store::{AppendRequest, IndexOp, Snapshot, Store, StoreError};

/// An append of `events` (as bytes) to `stream`, expecting it at `expected`.
pub(crate) fn append(stream: &str, expected: u64, events: &[&str]) -> AppendRequest {
    AppendRequest {
        stream: stream.into(),
        expected,
        events: events.iter().map(|e| e.as_bytes().to_vec()).collect(),
        index: vec![],
        fence: None,
    }
}

/// Appends name the sequence they expect; a conflicting one is rejected
/// whole; reads are ordered and bounded.
pub async fn conflicting_appends_are_rejected_whole(store: Arc<dyn Store>) {
    assert_eq!(store.append(append("s", 0, &["a", "b"])).await.unwrap(), 2);
    match store.append(append("s", 0, &["x"])).await {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 2,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store.append(append("s", 5, &["y"])).await {
        Err(StoreError::Conflict { actual: 2, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.append(append("s", 2, &["c"])).await.unwrap(), 3);
    let events = store.read("s", 0, 100).await.unwrap();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(payloads, [b"a".as_slice(), b"b", b"c"]);
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        store.read("s", 1, 1).await.unwrap()[0].seq,
        2,
        "read from a sequence, bounded"
    );
    assert_eq!(store.head("s").await.unwrap(), 3);
    assert_eq!(store.head("other").await.unwrap(), 0);
}

/// Of 32 racers appending to one new stream, exactly one wins, whole.
pub async fn concurrent_racers_on_one_stream_never_interleave(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(append("race", 0, &[&format!("w{i}-1"), &format!("w{i}-2")]))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let events = store.read("race", 0, 100).await.unwrap();
    assert_eq!(events.len(), 2);
    let w = String::from_utf8(events[0].payload.clone()).unwrap();
    let prefix = w.trim_end_matches("-1");
    assert_eq!(
        String::from_utf8(events[1].payload.clone()).unwrap(),
        format!("{prefix}-2"),
        "one writer's events, not interleaved"
    );
}

/// Snapshots never go back in time; read-table rows are written with the
/// append that carries them (and not at all when it conflicts); scans are
/// ordered, prefixed, paged.
pub async fn snapshots_and_read_tables(store: Arc<dyn Store>) {
    assert!(store.load_snapshot("s").await.unwrap().is_none());
    store
        .save_snapshot(
            "s",
            Snapshot {
                seq: 5,
                payload: b"five".to_vec(),
            },
        )
        .await
        .unwrap();
    store
        .save_snapshot(
            "s",
            Snapshot {
                seq: 3,
                payload: b"three".to_vec(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot("s").await.unwrap().unwrap().payload,
        b"five",
        "an older snapshot never replaces a newer one"
    );

    let mut req = append("p", 0, &["e"]);
    req.index = ["b1", "a1", "a2", "a3"]
        .iter()
        .map(|k| IndexOp::Put {
            table: T,
            key: (*k).into(),
            value: k.as_bytes().to_vec(),
        })
        .collect();
    req.index.push(IndexOp::Put {
        table: OTHER,
        key: "a0".into(),
        value: vec![],
    });
    store.append(req).await.unwrap();
    let keys = |rows: Vec<(String, Vec<u8>)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan(T, "", None, 10).await.unwrap()),
        ["a1", "a2", "a3", "b1"]
    );
    assert_eq!(
        keys(store.scan(T, "a", None, 10).await.unwrap()),
        ["a1", "a2", "a3"]
    );
    assert_eq!(
        keys(store.scan(T, "a", Some("a1"), 1).await.unwrap()),
        ["a2"]
    );
    assert_eq!(
        keys(store.scan(T, "", Some("a3"), 10).await.unwrap()),
        ["b1"]
    );
    assert_eq!(
        store.get(T, "a2").await.unwrap().as_deref(),
        Some(b"a2".as_slice())
    );
    let mut del = append("p", 1, &["e2"]);
    del.index = vec![IndexOp::Delete {
        table: T,
        key: "a2".into(),
    }];
    store.append(del).await.unwrap();
    assert_eq!(store.get(T, "a2").await.unwrap(), None);

    // A conflicting append writes none of its read-table rows either.
    let mut stale = append("p", 0, &["x"]);
    stale.index = vec![IndexOp::Put {
        table: T,
        key: "zz".into(),
        value: vec![],
    }];
    assert!(store.append(stale).await.is_err());
    assert_eq!(store.get(T, "zz").await.unwrap(), None);
}

/// Rows that belong to no stream (tracks, the outbox) are written and
/// deleted on their own, durably, and scanned like any read table.
pub async fn rows_outside_streams(store: Arc<dyn Store>) {
    let put = |table: &'static str, k: &str| IndexOp::Put {
        table,
        key: k.into(),
        value: k.as_bytes().to_vec(),
    };
    store
        .write_rows(vec![
            put(TRACK_POINTS, "o1|002"),
            put(TRACK_POINTS, "o1|001"),
            put(TRACK_POINTS, "o2|001"),
            put(OUTBOX, "0002|m2"),
            put(OUTBOX, "0001|m1"),
        ])
        .await
        .unwrap();
    store.write_rows(vec![]).await.unwrap();
    let keys = |rows: Vec<(String, Vec<u8>)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan(TRACK_POINTS, "o1|", None, 10).await.unwrap()),
        ["o1|001", "o1|002"]
    );
    store
        .write_rows(vec![IndexOp::Delete {
            table: TRACK_POINTS,
            key: "o1|001".into(),
        }])
        .await
        .unwrap();
    assert_eq!(
        keys(store.scan(TRACK_POINTS, "o1|", None, 10).await.unwrap()),
        ["o1|002"]
    );
    assert_eq!(
        keys(store.scan(TRACK_POINTS, "o2|", None, 10).await.unwrap()),
        ["o2|001"]
    );
    assert_eq!(
        keys(store.scan(OUTBOX, "", None, 10).await.unwrap()),
        ["0001|m1", "0002|m2"]
    );
    assert_eq!(store.head("o1").await.unwrap(), 0, "no stream was written");
}

/// An owner's rows come back in key order and page without gaps or
/// repeats, however the backend spreads them (400 claims of one queue,
/// interleaved with another queue's).
pub async fn scans_page_through_an_owner_in_order(store: Arc<dyn Store>) {
    let mut ops = Vec::new();
    for i in 0..400 {
        for q in ["qa", "qb"] {
            ops.push(IndexOp::Put {
                table: CLAIMS_BY_QUEUE,
                key: format!("{q}|c{i:04}"),
                value: vec![],
            });
        }
    }
    for chunk in ops.chunks(100) {
        store.write_rows(chunk.to_vec()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .scan(CLAIMS_BY_QUEUE, "qa|", after.as_deref(), 64)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    let expected: Vec<String> = (0..400).map(|i| format!("qa|c{i:04}")).collect();
    assert_eq!(seen, expected);
}

/// An entity may submit appends before the earlier ones are durable: they
/// commit in order, a stale one among them is rejected, and hundreds of
/// them (with rows) on one stream all land.
pub async fn pipelined_appends_commit_in_order(store: Arc<dyn Store>) {
    let mut tickets = Vec::new();
    for i in 0..300u64 {
        let mut req = append("pipe", i, &[&format!("e{i}")]);
        req.index = vec![IndexOp::Put {
            table: T,
            key: format!("pipe{i:03}"),
            value: vec![],
        }];
        tickets.push(store.submit(req).await.unwrap());
    }
    let stale = store.submit(append("pipe", 7, &["stale"])).await.unwrap();
    for (i, t) in tickets.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), i as u64 + 1);
    }
    assert!(matches!(
        stale.await.unwrap(),
        Err(StoreError::Conflict { actual: 300, .. })
    ));
    let events = store.read("pipe", 0, 1000).await.unwrap();
    assert_eq!(events.len(), 300);
    assert!(events
        .iter()
        .enumerate()
        .all(|(i, e)| e.seq == i as u64 + 1 && e.payload == format!("e{i}").into_bytes()));
    assert_eq!(store.read("pipe", 299, 10).await.unwrap().len(), 1);
    assert_eq!(store.scan(T, "pipe", None, 1000).await.unwrap().len(), 300);
    assert_eq!(store.head("pipe").await.unwrap(), 300);
}

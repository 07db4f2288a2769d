//! Cluster mode as it is deployed: three (or four) `surge serve` processes
//! on one PostgreSQL and one redis-server, each node's connections to the
//! store, to Redis and to the other nodes going through a TCP link of its
//! own that a test can cut (a partition) and heal. A bounded burst — a free
//! course, hundreds of distinct users enrolling with idempotency keys at
//! random nodes, retried on 503 — runs through each fault:
//! `kill -9`, `SIGSTOP` past the lease TTL then `SIGCONT` (a zombie owner),
//! a partition, a fourth node joining while another drains (SIGTERM), and a
//! Redis restart with a live watcher. The checkers then read the outcome
//! and the journal: every acknowledged enrollment exists, exactly once;
//! capacity holds; each stream's sequence is contiguous, epochs never go
//! down along a stream and every epoch was handed to one node.

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::burst::users;
use crate::helpers::*;
use crate::lifecycle::{free_port, serve_child, wait_healthy};
use crate::nodes::Redis;
use crate::postgres::Pg;

const SHARDS: u32 = 16;
const TTL_MS: u64 = 2_000;

/// A TCP link to `target` that can be cut (every connection through it
/// closed, new ones refused) and healed.
struct Link {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Link {
    async fn to(target: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (flag, list) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if flag.load(Ordering::Acquire) {
                    continue; // dropped: refused
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                let mut l = list.lock().unwrap();
                l.retain(|t| !t.is_finished());
                l.push(task);
            }
        });
        Link { port, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

/// One node: its process, its HTTP port, and the links carrying its
/// traffic to the store, to Redis and from the other nodes.
struct Node {
    port: u16,
    child: Option<Child>,
    links: Vec<Link>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            std::process::Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap();
        }
    }

    fn kill(&mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit (bounded).
    async fn drain(&mut self) -> Option<i32> {
        self.signal("-TERM");
        let mut c = self.child.take()?;
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn partition(&self) {
        self.links.iter().for_each(Link::cut);
    }

    fn heal(&self) {
        self.links.iter().for_each(Link::heal);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Procs {
    pg: Pg,
    redis: Redis,
    pg_port: u16,
    nodes: Vec<Node>,
    client: reqwest::Client,
}

impl Procs {
    async fn start(n: usize) -> Procs {
        let pg = Pg::new();
        pg.migrate().await;
        let pg_port: u16 = pg
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut p = Procs {
            pg,
            redis: Redis::start(),
            pg_port,
            nodes: Vec::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
        };
        for i in 1..=n {
            p.add(&format!("n{i}")).await;
        }
        p
    }

    async fn add(&mut self, name: &str) {
        let node = self.spawn_node(name).await;
        self.nodes.push(node);
    }

    /// Starts node `name`, its store, Redis and inter-node traffic through
    /// links of its own.
    async fn spawn_node(&self, name: &str) -> Node {
        let to_pg = Link::to(self.pg_port).await;
        let to_redis = Link::to(self.redis.port).await;
        let cluster_port = free_port();
        let from_peers = Link::to(cluster_port).await;
        let pg_url = self
            .pg
            .url
            .replace(&format!(":{}", self.pg_port), &format!(":{}", to_pg.port));
        let env: Vec<(String, String)> = vec![
            ("SURGE_LOG".into(), "error".into()),
            ("SURGE_STORE".into(), "postgres".into()),
            ("SURGE_POSTGRES_URL".into(), pg_url),
            ("SURGE_POSTGRES_SCHEMA".into(), self.pg.schema.clone()),
            ("SURGE_POSTGRES_CONNECT_TIMEOUT_MS".into(), "1000".into()),
            ("SURGE_POSTGRES_STATEMENT_TIMEOUT_MS".into(), "2000".into()),
            ("SURGE_CLUSTER".into(), "true".into()),
            ("SURGE_NODE_ID".into(), name.into()),
            (
                "SURGE_CLUSTER_ADDR".into(),
                format!("127.0.0.1:{cluster_port}"),
            ),
            (
                "SURGE_CLUSTER_ADVERTISE".into(),
                format!("127.0.0.1:{}", from_peers.port),
            ),
            ("SURGE_SHARDS".into(), SHARDS.to_string()),
            ("SURGE_LEASE_TTL_MS".into(), TTL_MS.to_string()),
            ("SURGE_LEASE_RENEW_MS".into(), "400".into()),
            (
                "SURGE_REDIS_URL".into(),
                format!("redis://127.0.0.1:{}", to_redis.port),
            ),
            ("SURGE_JWT_SECRET".into(), TEST_SECRET.into()),
            ("SURGE_HASH_MEMORY_KIB".into(), "8".into()),
            ("SURGE_HASH_ITERATIONS".into(), "1".into()),
            ("SURGE_ACTOR_CALL_TIMEOUT_MS".into(), "3000".into()),
            ("SURGE_BURST_QUEUE_PARTS".into(), "1".into()),
        ];
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = serve_child(dir.path(), port, &env_ref);
        let node = Node {
            port,
            child: Some(child),
            links: vec![to_pg, to_redis, from_peers],
            _dir: dir,
        };
        wait_healthy(&self.client, &node.base()).await;
        node
    }

    fn live_bases(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(Node::base)
            .collect()
    }

    /// Waits (bounded) until placement has settled on `names`.
    async fn settled(&self, names: &[&str]) -> Duration {
        crate::nodes::wait_placed_over(&self.pg, SHARDS, names).await
    }

    /// The node owning the queue of course `id` now.
    async fn owner_of_queue(&self, id: &str) -> usize {
        crate::nodes::owner_index(&self.pg, SHARDS, &format!("queue:{id}")).await
    }
}

/// What the burst's clients were told, per user token: the claim id and
/// whether it was confirmed (201) or waitlisted (202).
type Acks = HashMap<String, (String, bool)>;

/// Each user enrolls once (idempotency key per user) at a random live
/// node, user `i` starting at `i × PACE` so the burst spans the fault;
/// on 503, a timeout or a refused connection it retries at another node,
/// at most 40 times. Once `fault_at` enrollments are acknowledged, `fault`
/// runs alongside; the burst must still be acknowledging after it began.
/// Returns the acknowledgements and the time from the fault to the first
/// acknowledgement of a request sent after it.
async fn burst<F: std::future::Future<Output = ()>>(
    procs: &Procs,
    course: &str,
    tokens: &[String],
    fault_at: usize,
    fault: F,
) -> (Acks, Duration) {
    const PACE: Duration = Duration::from_millis(12);
    let bases = procs.live_bases();
    let client = procs.client.clone();
    let acks: Arc<Mutex<Acks>> = Arc::default();
    let fault_began: Arc<Mutex<Option<Instant>>> = Arc::default();
    let after_fault = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first_after: Arc<Mutex<Option<Duration>>> = Arc::default();
    let run = futures::future::join_all(tokens.iter().enumerate().map(|(i, token)| {
        let (client, bases, acks) = (client.clone(), &bases, acks.clone());
        let (began, after) = (fault_began.clone(), after_fault.clone());
        let first = first_after.clone();
        let key = format!("enroll-{i}");
        async move {
            tokio::time::sleep(PACE * i as u32).await;
            let mut rng = i as u64 * 7919 + 1;
            for attempt in 0..40u64 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let base = &bases[(rng >> 33) as usize % bases.len()];
                let sent_at = Instant::now();
                let sent = client
                    .post(format!("{base}/api/v1/courses/{course}/enrollments"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", &key)
                    .send()
                    .await;
                if let Ok(r) = sent {
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if status == StatusCode::CREATED || status == StatusCode::ACCEPTED {
                        let id = body["id"].as_str().unwrap().to_owned();
                        acks.lock()
                            .unwrap()
                            .insert(token.clone(), (id, status == StatusCode::CREATED));
                        if let Some(at) = *began.lock().unwrap() {
                            after.fetch_add(1, Ordering::AcqRel);
                            if sent_at > at {
                                first.lock().unwrap().get_or_insert(at.elapsed());
                            }
                        }
                        return;
                    }
                    assert!(
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
                        "enrollment refused: {status} {body}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1).min(10))).await;
            }
            panic!("user {i} got no answer in 40 tries");
        }
    }));
    let trigger = async {
        while acks.lock().unwrap().len() < fault_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        *fault_began.lock().unwrap() = Some(Instant::now());
        fault.await;
    };
    tokio::join!(run, trigger);
    let after = after_fault.load(Ordering::Acquire);
    assert!(
        after > 0,
        "the burst was over before the fault began ({fault_at} acknowledged first)"
    );
    let first = first_after
        .lock()
        .unwrap()
        .expect("acknowledged after the fault");
    println!(
        "{} acknowledged: {fault_at} before the fault, {after} after it began (the first {first:?} after)",
        acks.lock().unwrap().len()
    );
    (Arc::try_unwrap(acks).unwrap().into_inner().unwrap(), first)
}

/// The enrollments of `course` as its trainer lists them: claim id →
/// (user, confirmed).
async fn enrollments(
    procs: &Procs,
    trainer: &str,
    course: &str,
) -> HashMap<String, (String, bool)> {
    let base = procs.live_bases()[0].clone();
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/courses/{course}/enrollments?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = procs
            .client
            .get(url)
            .bearer_auth(trainer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
        for c in items {
            let confirmed = c["status"] == "confirmed";
            assert!(confirmed || c["status"] == "waitlisted", "{c}");
            out.insert(
                c["id"].as_str().unwrap().to_owned(),
                (
                    c["user_id"].as_str().unwrap_or_default().to_owned(),
                    confirmed,
                ),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The checkers: acknowledgements against the final state, then the
/// journal itself.
async fn check(procs: &Procs, trainer: &str, course: &str, capacity: usize, acks: &Acks) {
    let listed = enrollments(procs, trainer, course).await;
    let confirmed = listed.values().filter(|(_, c)| *c).count();
    assert!(confirmed <= capacity, "{confirmed} confirmed of {capacity}");
    let users: HashSet<&str> = listed.values().map(|(u, _)| u.as_str()).collect();
    assert_eq!(users.len(), listed.len(), "someone holds two places");
    for (id, was_confirmed) in acks.values() {
        let (_, now) = listed
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged claim {id} is not in the course"));
        if *was_confirmed {
            assert!(now, "claim {id} was confirmed, now waitlisted");
        }
    }
    assert_eq!(
        acks.len(),
        listed.len(),
        "every enrollment was acknowledged once"
    );

    let client = procs.pg.client().await;
    let schema = &procs.pg.schema;
    let rows = client
        .query(
            &format!("SELECT stream, seq, epoch FROM {schema}.journal ORDER BY stream, seq"),
            &[],
        )
        .await
        .unwrap();
    let epochs: HashSet<(i32, i64)> = client
        .query(
            &format!("SELECT shard, epoch FROM {schema}.lease_epochs"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut last: Option<(String, i64, i64)> = None;
    for r in &rows {
        let (stream, seq, epoch): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        let shard = surge::cluster::shard_of(&stream, SHARDS) as i32;
        assert!(
            epochs.contains(&(shard, epoch)),
            "{stream}#{seq} under epoch {epoch} never handed out for shard {shard}"
        );
        match &last {
            Some((s, prev_seq, prev_epoch)) if *s == stream => {
                assert_eq!(seq, prev_seq + 1, "{stream}: a hole after {prev_seq}");
                assert!(
                    epoch >= *prev_epoch,
                    "{stream}#{seq}: epoch {epoch} after {prev_epoch}"
                );
            }
            _ => assert_eq!(seq, 1, "{stream} does not start at 1"),
        }
        last = Some((stream, seq, epoch));
    }
}

/// A course of `capacity` seats, its trainer, and `n` customers' tokens.
async fn course_and_users(procs: &Procs, capacity: u32, n: usize) -> (String, String, Vec<String>) {
    let base = procs.live_bases()[0].clone();
    let trainer = users(&procs.client, &base, 1, "merchant").await.remove(0);
    let r = procs
        .client
        .post(format!("{base}/api/v1/courses"))
        .bearer_auth(&trainer)
        .json(&json!({"title": "Free yoga", "kind": "yoga", "capacity": capacity, "price": 0, "currency": "VND", "sessions": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tokens = users(&procs.client, &base, n, "customer").await;
    (trainer, id, tokens)
}

/// Waits until an enrollment at node `at` succeeds for a fresh user: the
/// queue is served again. Returns how long that took.
async fn served_again(procs: &Procs, at: &str, course: &str, token: &str) -> Duration {
    let start = Instant::now();
    loop {
        let ok = procs
            .client
            .post(format!("{at}/api/v1/courses/{course}/enrollments"))
            .bearer_auth(token)
            .header("Idempotency-Key", "probe")
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_queue_owner_mid_burst_loses_nothing_acknowledged() {
    let mut procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let (trainer, course, mut tokens) = course_and_users(&procs, 120, 361).await;
    let probe = tokens.pop().unwrap();
    let owner = procs.owner_of_queue(&course).await;
    let victim_pid = procs.nodes[owner].child.as_ref().unwrap().id();
    let kill = async {
        std::process::Command::new("kill")
            .args(["-KILL", &victim_pid.to_string()])
            .status()
            .unwrap();
    };
    let (acks, back) = burst(&procs, &course, &tokens, 60, kill).await;
    // Every enrollment goes to the queue the victim owned: the first one
    // acknowledged after the kill is the queue served again, by another
    // node, within the lease TTL and a few renewal rounds.
    assert!(back < Duration::from_millis(TTL_MS + 3_000), "{back:?}");
    procs.nodes[owner].kill();
    let survivor = procs.live_bases()[0].clone();
    served_again(&procs, &survivor, &course, &probe).await;
    let mut acks = acks;
    let probe_ack = enrollments(&procs, &trainer, &course).await;
    let probe_id = probe_ack
        .iter()
        .find(|(id, _)| !acks.values().any(|(a, _)| a == *id))
        .map(|(id, (_, c))| (id.clone(), *c));
    if let Some((id, c)) = probe_id {
        acks.insert(probe.clone(), (id, c));
    }
    check(&procs, &trainer, &course, 120, &acks).await;
}

/// The burst with the queue's owner out of the cluster (`away`) for well
/// past the lease TTL, then back (`back`): the others take its shards over
/// within the TTL and a little more, and nothing acknowledged is lost.
/// Returns the cluster and the node that was away.
async fn owner_away_for_a_while(away: fn(&Node), back: fn(&Node)) -> (Procs, usize) {
    let procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let (trainer, course, tokens) = course_and_users(&procs, 100, 300).await;
    let owner = procs.owner_of_queue(&course).await;
    let node = &procs.nodes[owner];
    let fault = async {
        away(node);
        tokio::time::sleep(Duration::from_millis(TTL_MS * 2 + 1_000)).await;
        back(node);
    };
    let (acks, served) = burst(&procs, &course, &tokens, 60, fault).await;
    // Taken over after the TTL without waiting for the node that is away
    // (a paused one's open transaction is ended by the taker).
    assert!(served < Duration::from_millis(TTL_MS + 3_000), "{served:?}");
    check(&procs, &trainer, &course, 100, &acks).await;
    (procs, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_past_its_lease_is_fenced_when_it_wakes() {
    let (procs, owner) = owner_away_for_a_while(|n| n.signal("-STOP"), |n| n.signal("-CONT")).await;
    // The zombie woke with leases it no longer holds: it dropped them (its
    // own clock, or the store refusing its appends) and took part again.
    let text = procs
        .client
        .get(format!("{}/metrics", procs.nodes[owner].base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric_value(&text, "surge_cluster_leases_lost_total") >= 1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_owner_stops_serving_and_rejoins_when_healed() {
    let (procs, _) = owner_away_for_a_while(Node::partition, Node::heal).await;
    // Healed, it gets its share back.
    procs.settled(&["n1", "n2", "n3"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_and_another_draining_mid_burst_lose_nothing() {
    let mut procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let (trainer, course, tokens) = course_and_users(&procs, 100, 300).await;
    // n4 joins and n1 drains (SIGTERM) while the burst runs; the burst's
    // clients keep n1 in their list (its port refuses after it exits, and
    // they retry elsewhere) and never learn of n4.
    let n1_pid = procs.nodes[0].child.as_ref().unwrap().id();
    let joined = Mutex::new(None);
    let churn = async {
        *joined.lock().unwrap() = Some(procs.spawn_node("n4").await);
        std::process::Command::new("kill")
            .args(["-TERM", &n1_pid.to_string()])
            .status()
            .unwrap();
    };
    let (acks, _) = burst(&procs, &course, &tokens, 60, churn).await;
    procs
        .nodes
        .push(joined.into_inner().unwrap().expect("n4 started"));
    assert_eq!(
        procs.nodes[0].drain().await,
        Some(0),
        "a drained node exits 0"
    );
    procs.settled(&["n2", "n3", "n4"]).await;
    check(&procs, &trainer, &course, 100, &acks).await;

    // `surge cluster status` reads the same from the store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["cluster", "status"])
        .env("SURGE_STORE", "postgres")
        .env("SURGE_POSTGRES_URL", &procs.pg.url)
        .env("SURGE_POSTGRES_SCHEMA", &procs.pg.schema)
        .env("SURGE_LEASE_TTL_MS", TTL_MS.to_string())
        .env("SURGE_REDIS_URL", procs.redis.url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!("cluster: {SHARDS} shards, 3 members (3 live)")),
        "{text}"
    );
    for n in ["n2", "n3", "n4"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains(" live "), "{line}");
    }
    assert!(!text.contains("\nn1 "), "the drained node left: {text}");
    assert!(text.contains("shards held by nobody now: 0"), "{text}");
    assert!(text.contains("reachable (PONG"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_keeps_every_event_through_a_redis_restart() {
    use crate::ws::{recv, send};
    type ServerMsg = surge::ws::protocol::ServerMsg<serde_json::Value>;
    let mut procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let base = procs.live_bases()[0].clone();
    let token = users(&procs.client, &base, 1, "customer").await.remove(0);
    let me: Value = procs
        .client
        .get(format!("{base}/api/v1/users/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let topic = format!("user:{}", me["id"].as_str().unwrap());
    let mut ws = crate::ws::connect_at(&procs.nodes[1].base(), "/api/v1/ws", &token).await;
    send(&mut ws, json!({"type": "subscribe", "topic": topic})).await;
    let mut last = match recv(&mut ws).await {
        ServerMsg::Subscribed { seq, .. } => seq,
        other => panic!("{other:?}"),
    };
    let commander = procs.nodes[2].base();
    for i in 0..40 {
        if i == 10 {
            procs.redis.stop();
        }
        if i == 20 {
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            procs.redis.restart();
        }
        let r = procs
            .client
            .put(format!("{commander}/api/v1/users/profile"))
            .bearer_auth(&token)
            .json(&json!({"name": format!("Name {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    for i in 0..40 {
        match recv(&mut ws).await {
            ServerMsg::Event { seq, data, .. } => {
                assert_eq!(seq, last + 1, "after {last} came {seq}");
                assert_eq!(data["name"], format!("Name {i}"));
                last = seq;
            }
            other => panic!("{other:?}"),
        }
    }
}

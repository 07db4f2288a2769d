//! Cluster mode as it is deployed: three (or four) `surge serve` processes
//! on one PostgreSQL and one redis-server, each node's connections to the
//! store, to Redis and to the other nodes going through a TCP link of its
//! own that a test can cut (a partition) and heal. One bounded workload
//! runs through each fault — a flash sale claimed once by each of
//! 20,000 (`kill -9`) or 3,000 distinct buyers with idempotency keys at
//! random nodes, retried on 503; shoppers filling carts and checking out;
//! orders watched live on one node while their merchant's commands go to
//! another: `kill -9`, `SIGSTOP` past the lease TTL then `SIGCONT` (a
//! zombie owner), a partition, a fourth node joining while another drains
//! (SIGTERM), and a Redis restart. The checkers then read the outcome and
//! the journal: every acknowledged claim and checkout exists, exactly once;
//! capacity and stock hold; the watcher got exactly the events the journal
//! replays, in order; each stream's sequence is contiguous, epochs never go
//! down along a stream and every epoch was handed to one node.

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;
use crate::lifecycle::{free_port, serve_child_logging, wait_healthy};
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

    /// SIGTERM, and the exit (bounded). A drain finishes its requests
    /// in flight and hands its shards over a lease round at a time; it took
    /// more than 30 s once, with four nodes, PostgreSQL and a compiler
    /// sharing two cores (the whole test takes 55 s on a quiet machine).
    /// The bound catches a node that never exits, not a slow one.
    async fn drain(&mut self) -> Option<i32> {
        self.signal("-TERM");
        let mut c = self.child.take()?;
        let start = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no exit within 120 s of SIGTERM"
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
    redis: Mutex<Redis>,
    pg_port: u16,
    nodes: Vec<Node>,
    client: reqwest::Client,
    /// Where each node writes its log (`{name}.log`, JSON lines, debug),
    /// if anywhere.
    logs: Option<std::path::PathBuf>,
    /// More settings for every node.
    extra: Vec<(String, String)>,
}

impl Procs {
    async fn start(n: usize) -> Procs {
        Procs::start_logging(n, None).await
    }

    async fn start_logging(n: usize, logs: Option<std::path::PathBuf>) -> Procs {
        Procs::start_with(n, logs, Vec::new()).await
    }

    async fn start_with(
        n: usize,
        logs: Option<std::path::PathBuf>,
        extra: Vec<(String, String)>,
    ) -> Procs {
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
            redis: Mutex::new(Redis::start()),
            pg_port,
            nodes: Vec::new(),
            client: crate::helpers::client_builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            logs,
            extra,
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
        let redis_port = self.redis.lock().unwrap().port;
        let to_redis = Link::to(redis_port).await;
        let cluster_port = free_port();
        let from_peers = Link::to(cluster_port).await;
        let pg_url = self
            .pg
            .url
            .replace(&format!(":{}", self.pg_port), &format!(":{}", to_pg.port));
        let [ca, cert, key] = crate::nodes::cluster_tls();
        let env: Vec<(String, String)> = vec![
            ("SURGE_CLUSTER_TLS_CA".into(), ca.display().to_string()),
            ("SURGE_CLUSTER_TLS_CERT".into(), cert.display().to_string()),
            ("SURGE_CLUSTER_TLS_KEY".into(), key.display().to_string()),
            ("SURGE_LOG".into(), "error".into()),
            ("SURGE_STORE".into(), "postgres".into()),
            ("SURGE_POSTGRES_URL".into(), pg_url),
            ("SURGE_POSTGRES_SCHEMA".into(), self.pg.schema.clone()),
            ("SURGE_POSTGRES_CONNECT_TIMEOUT_MS".into(), "1000".into()),
            ("SURGE_POSTGRES_STATEMENT_TIMEOUT_MS".into(), "2000".into()),
            ("SURGE_CLUSTER".into(), "true".into()),
            (
                "SURGE_MEDIA_DIR".into(),
                std::env::temp_dir()
                    .join(format!("surge-it-media-{}", self.pg.schema))
                    .display()
                    .to_string(),
            ),
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
        let mut env = env;
        env.extend(self.extra.iter().cloned());
        let log = match &self.logs {
            Some(logs) => {
                env.push(("SURGE_LOG".into(), "warn,surge=debug".into()));
                env.push(("SURGE_LOG_FORMAT".into(), "json".into()));
                let file = std::fs::File::create(logs.join(format!("{name}.log"))).unwrap();
                std::process::Stdio::from(file)
            }
            None => std::process::Stdio::null(),
        };
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = serve_child_logging(dir.path(), port, &env_ref, log);
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

    /// Node `i`'s `/metrics` exposition.
    async fn metrics(&self, i: usize) -> String {
        self.client
            .get(format!("{}/metrics", self.base(i)))
            .bearer_auth(crate::helpers::METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The node owning `stream` now.
    async fn owner_of(&self, stream: &str) -> usize {
        crate::nodes::owner_index(&self.pg, SHARDS, stream).await
    }
}

/// A cluster the workload runs on: `surge serve` processes (`Procs`), or
/// nodes in the test process (`nodes.rs`).
pub(crate) trait Nodes {
    /// The nodes' HTTP bases (the ones running).
    fn bases(&self) -> Vec<String>;
    /// Node `i`'s base.
    fn base(&self, i: usize) -> String;
    fn pg(&self) -> &Pg;
    fn client(&self) -> &reqwest::Client;
    /// The shard count.
    fn shards(&self) -> u32;
}

impl Nodes for Procs {
    fn bases(&self) -> Vec<String> {
        self.live_bases()
    }
    fn base(&self, i: usize) -> String {
        self.nodes[i].base()
    }
    fn pg(&self) -> &Pg {
        &self.pg
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn shards(&self) -> u32 {
        SHARDS
    }
}

/// The workload's size: distinct buyers who claim one unit each of a
/// flash sale of `CAPACITY` units — `SURGE_FAULT_CLAIMS` when set, else
/// `default`. The `kill -9` test runs the full 20,000 in every run; the
/// others 3,000 (at 20,000 each takes 4–7 minutes on the 2-core CI
/// machine, mostly registering the buyers: 60,000 requests to debug
/// builds; run them at full size with `SURGE_FAULT_CLAIMS=20000`).
pub(crate) fn claims(default: usize) -> usize {
    std::env::var("SURGE_FAULT_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
/// The size every fault but `kill -9` runs at by default.
const CLAIMS: usize = 3_000;
const CAPACITY: usize = 200;
/// Shoppers who fill a cart and check out while the burst runs.
const SHOPPERS: usize = 40;
/// Orders placed before the burst, watched live on one node while their
/// merchant's commands go to another.
const TRACKED: usize = 12;

/// What every fault test runs: a flash sale claimed by many distinct
/// buyers, shoppers buying from the shop's shelf, and orders tracked live.
pub(crate) struct Workload {
    merchant: String,
    product: String,
    sale: String,
    /// Buyers' tokens, each with a delivery address.
    buyers: Vec<String>,
    /// Shoppers' tokens and address ids.
    shoppers: Vec<(String, String)>,
    /// The customer whose orders are tracked, and the orders.
    watcher: String,
    tracked: Vec<String>,
    /// The product's shelf stock after the sale took its reserve and the
    /// tracked orders theirs.
    shelf: u64,
}

/// What a burst's clients were told.
#[derive(Default)]
pub(crate) struct Acks {
    /// Buyer index → (claim id, confirmed) for claims answered 201/202.
    claims: HashMap<usize, (String, bool)>,
    /// Buyers answered 409 (the sale and its waitlist full).
    refused: HashSet<usize>,
    /// Shopper index → the order id its checkout was answered with.
    orders: HashMap<usize, String>,
}

/// `n` customers registered and logged in through the nodes in turn, each
/// with a delivery address: their tokens and address ids.
async fn customers(procs: &impl Nodes, n: usize) -> Vec<(String, String)> {
    use futures::StreamExt;
    let apps: Vec<TestApp> = procs.bases().into_iter().map(TestApp::at).collect();
    futures::stream::iter(0..n)
        .map(|i| {
            let app = &apps[i % apps.len()];
            async move {
                let (c, address) = crate::commerce::customer(app).await;
                (c.access, address)
            }
        })
        .buffer_unordered(48)
        .collect()
        .await
}

impl Workload {
    /// The sale, `n` buyers, the shoppers and the tracked orders.
    pub(crate) async fn prepare(procs: &impl Nodes, n: usize) -> Workload {
        let app = TestApp::at(procs.bases()[0].clone());
        let stock = (CAPACITY + SHOPPERS + TRACKED) as u64;
        let (m, _, product) = shop_with_product(&app, 100_000, stock).await;
        let (status, sale) = app
            .post(
                "/api/v1/flash-sales",
                Some(&m.access),
                json!({"product_id": product, "stock": CAPACITY, "per_user_limit": 1, "price": 50_000}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sale}");
        let mut shoppers = customers(procs, n + SHOPPERS + 1).await;
        let (watcher, home) = shoppers.pop().unwrap();
        let buyers = shoppers
            .split_off(SHOPPERS)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let mut tracked = Vec::new();
        for _ in 0..TRACKED {
            let (status, cart) = app
                .put(
                    &format!("/api/v1/cart/items/{product}"),
                    Some(&watcher),
                    json!({"quantity": 1}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{cart}");
            let (status, placed) = app
                .post(
                    "/api/v1/orders",
                    Some(&watcher),
                    json!({"address_id": home, "payment_method": "cod"}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{placed}");
            tracked.push(placed["orders"][0]["id"].as_str().unwrap().to_owned());
        }
        Workload {
            merchant: m.access,
            product,
            sale: sale["id"].as_str().unwrap().to_owned(),
            buyers,
            shoppers,
            watcher,
            tracked,
            shelf: stock - (CAPACITY + TRACKED) as u64,
        }
    }

    /// The stream of the sale's queue (the burst's hot entity).
    fn queue(&self) -> String {
        format!("queue:{}", self.sale)
    }
}

/// Sends `req` (built for a node's base) to random live nodes until it is
/// answered with something other than 5xx, 429 or a failed connection, at
/// most 40 times with growing pauses; `seed` picks the nodes.
async fn until_answered(
    client: &reqwest::Client,
    bases: &[String],
    seed: u64,
    req: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> (StatusCode, Value) {
    let mut rng = seed.wrapping_mul(7919).wrapping_add(1);
    for attempt in 0..40u64 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = &bases[(rng >> 33) as usize % bases.len()];
        if let Ok(r) = req(client, base).send().await {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                return (status, body);
            }
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1).min(10))).await;
    }
    panic!("no answer in 40 tries");
}

/// Runs the workload with `fault` alongside once `fault_at` claims are
/// acknowledged: every buyer claims once (an idempotency key each, at
/// most 96 in flight, at random live nodes, retried on 503/429/refused
/// connections); shopper `j` fills a cart and checks out (keyed) after
/// `j × 150 ms`; the merchant confirms then cancels tracked order `k`
/// at node `commander` after `k × 400 ms` while a WebSocket on node
/// `watch_at` watches them. The burst must still be acknowledging after
/// the fault began. Returns the acknowledgements and the time from the
/// fault to the first claim acknowledged that was sent after it.
pub(crate) async fn run<F: std::future::Future<Output = ()>>(
    procs: &impl Nodes,
    w: &Workload,
    (watch_at, commander): (usize, usize),
    fault_at: usize,
    fault: F,
) -> (Acks, Duration) {
    use futures::StreamExt;
    let bases = procs.bases();
    let client = procs.client().clone();
    let acks: Arc<Mutex<Acks>> = Arc::default();
    let fault_began: Arc<Mutex<Option<Instant>>> = Arc::default();
    let after_fault = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first_after: Arc<Mutex<Option<Duration>>> = Arc::default();
    let mut watch = Watch::open(&procs.base(watch_at), &w.watcher, &w.tracked).await;

    let claims = futures::stream::iter(w.buyers.iter().enumerate())
        .map(|(i, token)| {
            let (client, bases, acks) = (client.clone(), &bases, acks.clone());
            let (began, after, first) = (
                fault_began.clone(),
                after_fault.clone(),
                first_after.clone(),
            );
            let sale = &w.sale;
            async move {
                let sent_at = Instant::now();
                let (status, body) = until_answered(&client, bases, i as u64, |c, base| {
                    c.post(format!("{base}/api/v1/flash-sales/{sale}/claims"))
                        .bearer_auth(token)
                        .header("Idempotency-Key", format!("claim-{i}"))
                        .json(&json!({"quantity": 1, "payment_method": "cod"}))
                })
                .await;
                let mut a = acks.lock().unwrap();
                match status {
                    StatusCode::CREATED | StatusCode::ACCEPTED => {
                        let id = body["id"].as_str().unwrap().to_owned();
                        a.claims.insert(i, (id, status == StatusCode::CREATED));
                    }
                    StatusCode::CONFLICT if body["error"]["code"] == "sold_out" => {
                        a.refused.insert(i);
                    }
                    other => panic!("claim {i}: {other} {body}"),
                }
                if let Some(at) = *began.lock().unwrap() {
                    after.fetch_add(1, Ordering::AcqRel);
                    if sent_at > at {
                        first.lock().unwrap().get_or_insert(at.elapsed());
                    }
                }
            }
        })
        .buffer_unordered(96)
        .collect::<Vec<()>>();
    let shopping =
        futures::future::join_all(w.shoppers.iter().enumerate().map(|(j, (token, home))| {
            let (client, bases, acks) = (client.clone(), &bases, acks.clone());
            let product = &w.product;
            async move {
                tokio::time::sleep(Duration::from_millis(150) * j as u32).await;
                let (status, cart) = until_answered(&client, bases, j as u64, |c, base| {
                    c.put(format!("{base}/api/v1/cart/items/{product}"))
                        .bearer_auth(token)
                        .json(&json!({"quantity": 1}))
                })
                .await;
                assert_eq!(status, StatusCode::OK, "shopper {j}'s cart: {cart}");
                let (status, placed) = until_answered(&client, bases, j as u64 + 1, |c, base| {
                    c.post(format!("{base}/api/v1/orders"))
                        .bearer_auth(token)
                        .header("Idempotency-Key", format!("checkout-{j}"))
                        .json(&json!({"address_id": home, "payment_method": "cod"}))
                })
                .await;
                assert_eq!(
                    status,
                    StatusCode::CREATED,
                    "shopper {j}'s checkout: {placed}"
                );
                let id = placed["orders"][0]["id"].as_str().unwrap().to_owned();
                acks.lock().unwrap().orders.insert(j, id);
            }
        }));
    let commands = async {
        let at = [procs.base(commander)];
        for (k, order) in w.tracked.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(400)).await;
            for step in ["confirm", "cancel"] {
                let (status, body) = until_answered(&client, &at, k as u64, |c, base| {
                    c.put(format!("{base}/api/v1/orders/{order}/{step}"))
                        .bearer_auth(&w.merchant)
                        .json(&json!({}))
                })
                .await;
                // A 409 is a retry of a step the lost answer had taken.
                assert!(
                    status == StatusCode::OK
                        || (status == StatusCode::CONFLICT
                            && body["error"]["code"] == "illegal_transition"),
                    "{step} of tracked order {k}: {status} {body}"
                );
            }
        }
    };
    let trigger = async {
        while acks.lock().unwrap().claims.len() < fault_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        *fault_began.lock().unwrap() = Some(Instant::now());
        fault.await;
    };
    let started = Instant::now();
    let mut work = Box::pin(async { tokio::join!(claims, shopping, commands, trigger) });
    loop {
        tokio::select! {
            _ = &mut work => break,
            msg = watch.next() => watch.take(msg),
        }
    }
    drop(work);
    let after = after_fault.load(Ordering::Acquire);
    assert!(
        after > 0,
        "the burst was over before the fault began ({fault_at} acknowledged first)"
    );
    let first = first_after
        .lock()
        .unwrap()
        .expect("acknowledged after the fault");
    let acks = Arc::try_unwrap(acks).ok().unwrap().into_inner().unwrap();
    println!(
        "{} claims answered in {:?} ({} acknowledged, {} refused; {after} after the fault began, the first {first:?} after it), {} checkouts",
        w.buyers.len(),
        started.elapsed(),
        acks.claims.len(),
        acks.refused.len(),
        acks.orders.len(),
    );
    watch.finish(&procs.base(commander), &w.watcher).await;
    (acks, first)
}

/// A WebSocket watching the tracked orders: the sequence numbers of the
/// events it receives, per topic.
struct Watch {
    ws: crate::ws::Ws,
    /// Topic → the head it subscribed at, and the events received since.
    seen: HashMap<String, (u64, Vec<u64>)>,
}

type ServerMsg = surge::http::ws::protocol::ServerMsg<serde_json::Value>;

/// The next message on `ws` (no deadline: during a fault nothing may come
/// for a while; callers bound the wait).
async fn next_msg(ws: &mut crate::ws::Ws) -> ServerMsg {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await.expect("open").expect("a frame") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Binary(b) => return rmp_serde::from_slice(&b).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

impl Watch {
    async fn open(base: &str, token: &str, orders: &[String]) -> Watch {
        use crate::ws::{recv, send};
        let mut ws = crate::ws::connect_at(base, "/api/v1/ws", token).await;
        let mut seen = HashMap::new();
        for id in orders {
            let topic = format!("order:{id}");
            send(&mut ws, json!({"type": "subscribe", "topic": topic})).await;
            match recv(&mut ws).await {
                ServerMsg::Subscribed { topic: t, seq } if t == topic => {
                    seen.insert(t, (seq, Vec::new()))
                }
                other => panic!("{other:?}"),
            };
        }
        Watch { ws, seen }
    }

    async fn next(&mut self) -> ServerMsg {
        next_msg(&mut self.ws).await
    }

    /// Records an event; each must come after the topic's last one.
    fn take(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Event { topic, seq, data } => {
                let (head, got) = self.seen.get_mut(&topic).expect("a watched topic");
                let last = got.last().unwrap_or(head);
                assert!(seq > *last, "{topic}: {seq} after {last}: {data}");
                got.push(seq);
            }
            ServerMsg::Location { .. } | ServerMsg::Pong => {}
            other => panic!("{other:?}"),
        }
    }

    /// What a client subscribing afresh at `base` with `since` = each
    /// topic's first head is replayed from the journal up to the head now
    /// (the events that are live-visible): the watcher must have received
    /// exactly those, in order — no gap, no duplicate. Reads on until it
    /// has (bounded).
    async fn finish(&mut self, base: &str, token: &str) {
        use crate::ws::send;
        let mut fresh = crate::ws::connect_at(base, "/api/v1/ws", token).await;
        let mut expected: HashMap<String, Vec<u64>> = HashMap::new();
        // What each replayed event was, for the message of a stall.
        let mut kinds: HashMap<String, Vec<(u64, String)>> = HashMap::new();
        for (topic, (since, _)) in &self.seen {
            send(
                &mut fresh,
                json!({"type": "subscribe", "topic": topic, "since": since}),
            )
            .await;
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(10), next_msg(&mut fresh))
                    .await
                    .expect("the replay in time");
                match msg {
                    ServerMsg::Event {
                        topic: t,
                        seq,
                        data,
                    } => {
                        let kind = data.to_string();
                        kinds.entry(t.clone()).or_default().push((seq, kind));
                        expected.entry(t).or_default().push(seq)
                    }
                    ServerMsg::Subscribed { topic: t, .. } if &t == topic => break,
                    ServerMsg::Pong | ServerMsg::Location { .. } => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        let start = Instant::now();
        let behind = |w: &Watch| {
            expected.iter().any(|(t, e)| {
                let got = &w.seen[t].1;
                got.len() < e.len() && got.last() < e.last()
            })
        };
        while behind(self) {
            let left = Duration::from_secs(20).saturating_sub(start.elapsed());
            let msg = tokio::time::timeout(left, self.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the watcher stopped short: {:?}\nthe journal's: {kinds:?}",
                        self.seen
                    )
                });
            self.take(msg);
        }
        for (topic, e) in &expected {
            let got = &self.seen[topic].1;
            assert_eq!(
                &got[..e.len().min(got.len())],
                &e[..],
                "{topic}: the watcher's events against the journal's"
            );
        }
        let events: usize = expected.values().map(Vec::len).sum();
        assert!(
            events >= 2 * self.seen.len(),
            "each tracked order was confirmed and cancelled: {expected:?}"
        );
        println!(
            "the watcher received all {events} events of {} tracked orders",
            self.seen.len()
        );
    }
}

/// The claims of the sale as its merchant lists them: claim id → (user,
/// confirmed).
async fn listed_claims(procs: &impl Nodes, w: &Workload) -> HashMap<String, (String, bool)> {
    let app = TestApp::at(procs.bases()[0].clone());
    let path = format!("/api/v1/flash-sales/{}/claims?limit=100", w.sale);
    let mut out = HashMap::new();
    for c in app.all_pages(&path, Some(&w.merchant), 1_000).await {
        let confirmed = c["status"] == "confirmed";
        assert!(confirmed || c["status"] == "waitlisted", "{c}");
        let user = c["user_id"].as_str().unwrap_or_default().to_owned();
        out.insert(c["id"].as_str().unwrap().to_owned(), (user, confirmed));
    }
    out
}

/// The checkers: what the clients were told against the final state, then
/// the journal itself.
pub(crate) async fn check(procs: &impl Nodes, w: &Workload, acks: &Acks) {
    // The sale: every acknowledged claim exactly once, no other; capacity
    // holds; nobody twice; a confirmed claim stays confirmed.
    let listed = listed_claims(procs, w).await;
    let confirmed = listed.values().filter(|(_, c)| *c).count();
    assert!(confirmed <= CAPACITY, "{confirmed} confirmed of {CAPACITY}");
    let users: HashSet<&str> = listed.values().map(|(u, _)| u.as_str()).collect();
    assert_eq!(users.len(), listed.len(), "someone holds two claims");
    for (i, (id, was_confirmed)) in &acks.claims {
        let (_, now) = listed
            .get(id)
            .unwrap_or_else(|| panic!("buyer {i}'s acknowledged claim {id} is not in the sale"));
        assert!(
            now | !was_confirmed,
            "claim {id} was confirmed, now waitlisted"
        );
    }
    assert_eq!(
        acks.claims.len(),
        listed.len(),
        "the sale holds exactly the acknowledged claims"
    );
    assert_eq!(
        acks.claims.len() + acks.refused.len(),
        w.buyers.len(),
        "every buyer was answered"
    );
    if !acks.refused.is_empty() {
        assert_eq!(confirmed, CAPACITY, "refused while units were left");
    }

    // The shelf: each acknowledged checkout is its shopper's one order;
    // stock = what was put on it − the sale's reserve − the checkouts (the
    // tracked orders were cancelled and gave theirs back).
    let app = TestApp::at(procs.bases()[0].clone());
    assert_eq!(acks.orders.len(), SHOPPERS, "every checkout was answered");
    for (j, id) in &acks.orders {
        let (status, page) = app.get("/api/v1/orders", Some(&w.shoppers[*j].0)).await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id.as_str()], "shopper {j}'s orders");
    }
    for id in &w.tracked {
        let (_, o) = app
            .get(&format!("/api/v1/orders/{id}"), Some(&w.watcher))
            .await;
        assert_eq!(o["status"], "cancelled", "{o}");
    }
    let expected = w.shelf + TRACKED as u64 - SHOPPERS as u64;
    let start = Instant::now();
    loop {
        let (_, p) = app
            .get(&format!("/api/v1/products/{}", w.product), None)
            .await;
        if p["stock"] == expected {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "shelf stock {} instead of {expected}",
            p["stock"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The journal: contiguous streams, epochs never down along a stream,
    // every epoch one handed out for the stream's shard.
    let client = procs.pg().client().await;
    let schema = &procs.pg().schema;
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
        let shard = surge::cluster::shard_of(&stream, procs.shards()) as i32;
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
    println!("checked: {} journal rows", rows.len());
}

/// Claims for `token` at node `at` (key `probe`) until the sale's queue
/// decides it there (201, 202 or 409 `sold_out`), and records the answer
/// as buyer `i`'s.
async fn served_again(at: &str, w: &Workload, token: &str, i: usize, acks: &mut Acks) {
    let client = crate::helpers::client();
    let (status, body) = until_answered(&client, &[at.to_owned()], 0, |c, base| {
        c.post(format!("{base}/api/v1/flash-sales/{}/claims", w.sale))
            .bearer_auth(token)
            .header("Idempotency-Key", "probe")
            .json(&json!({"quantity": 1, "payment_method": "cod"}))
    })
    .await;
    match status {
        StatusCode::CREATED | StatusCode::ACCEPTED => {
            let id = body["id"].as_str().unwrap().to_owned();
            acks.claims.insert(i, (id, status == StatusCode::CREATED));
        }
        StatusCode::CONFLICT if body["error"]["code"] == "sold_out" => {
            acks.refused.insert(i);
        }
        other => panic!("the probe: {other} {body}"),
    }
}

/// Two live nodes other than `not`: where the watcher's socket is and
/// where the tracked orders' commands go.
fn watch_pair(procs: &Procs, not: &[usize]) -> (usize, usize) {
    let others: Vec<usize> = (0..procs.nodes.len())
        .filter(|i| !not.contains(i))
        .collect();
    (others[0], others[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_queue_owner_mid_burst_loses_nothing_acknowledged() {
    let mut procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let mut w = Workload::prepare(&procs, claims(20_000)).await;
    let probe = w.buyers.pop().unwrap();
    let owner = procs.owner_of(&w.queue()).await;
    let victim_pid = procs.nodes[owner].child.as_ref().unwrap().id();
    let kill = async {
        std::process::Command::new("kill")
            .args(["-KILL", &victim_pid.to_string()])
            .status()
            .unwrap();
    };
    let pair = watch_pair(&procs, &[owner]);
    let (mut acks, back) = run(&procs, &w, pair, 1_000, kill).await;
    // Every claim goes to the queue the victim owned: the first one
    // acknowledged after the kill is the queue served again, by another
    // node, within the lease TTL and a few renewal rounds.
    assert!(back < Duration::from_millis(TTL_MS + 3_000), "{back:?}");
    procs.nodes[owner].kill();
    let survivor = procs.live_bases()[0].clone();
    served_again(&survivor, &w, &probe, w.buyers.len(), &mut acks).await;
    w.buyers.push(probe);
    check(&procs, &w, &acks).await;
}

/// Run I of the flake sweep (#44): the watcher missed the *last* event of
/// one tracked order, its cancel, committed by the killed owner. Redis
/// pub/sub is at-most-once and a gap shows only at the topic's next event,
/// so an event committed and never published (the owner killed in
/// between) stayed unseen for good. Made certain here by cutting the
/// owner's link to Redis before the command: (1) healed after longer than
/// a command's timeout, the publish goes out on reconnection; (2) killed
/// instead,
/// the other nodes see it stop heartbeating and have every watched topic
/// checked against the journal. Either way the watcher gets the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_publish_failed_reaches_the_watcher_once_redis_is_back_or_its_owner_gone() {
    use crate::ws::{recv, send};
    let mut procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let app = TestApp::at(procs.base(0));
    let user = app.user("customer").await;
    let topic = format!("user:{}", user.id);
    let owner = procs.owner_of(&topic).await;
    let (watcher, commander) = ((owner + 1) % 3, (owner + 2) % 3);
    let mut ws = crate::ws::connect_at(&procs.base(watcher), "/api/v1/ws", &user.access).await;
    send(&mut ws, json!({"type": "subscribe", "topic": topic})).await;
    let mut last = match recv(&mut ws).await {
        ServerMsg::Subscribed { seq, .. } => seq,
        other => panic!("{other:?}"),
    };
    let base = procs.base(commander);
    let client = procs.client.clone();
    let update = |name: &'static str| {
        let req = client
            .put(format!("{base}/api/v1/users/profile"))
            .bearer_auth(&user.access)
            .json(&json!({ "name": name }));
        async move { assert_eq!(req.send().await.unwrap().status(), StatusCode::OK) }
    };
    let mut expect =
        async |ws: &mut crate::ws::Ws, name: &str, within: Duration| match tokio::time::timeout(
            within,
            next_msg(ws),
        )
        .await
        {
            Ok(ServerMsg::Event { seq, data, .. }) => {
                assert_eq!((seq, &data["name"]), (last + 1, &json!(name)), "{data}");
                last = seq;
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => panic!("{name:?} not delivered within {within:?}"),
        };
    // Delivered at once while the owner reaches Redis.
    update("Before").await;
    expect(&mut ws, "Before", Duration::from_secs(5)).await;

    // (1) Published while Redis is out of reach for longer than a
    // command's timeout (2 s): the Redis client sends again what a broken
    // connection left unanswered once it reconnects (without the heal,
    // nothing arrives).
    let link = &procs.nodes[owner].links[1];
    link.cut();
    update("Unreachable").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    link.heal();
    expect(&mut ws, "Unreachable", Duration::from_secs(10)).await;

    // (2) Committed by the owner, never published: killed with its Redis
    // link cut. The others see it silent for the lease TTL within a round
    // or two.
    procs.nodes[owner].links[1].cut();
    update("Last").await;
    procs.nodes[owner].kill();
    expect(&mut ws, "Last", Duration::from_millis(TTL_MS * 5)).await;
    let text = procs.metrics(watcher).await;
    assert_eq!(
        metric_value(&text, "surge_cluster_members_departed_total"),
        1.0,
        "{text}"
    );
}

/// The workload with the queue's owner out of the cluster (`away`) for
/// well past the lease TTL, then back (`back`): the others take its shards
/// over within the TTL and a little more, and nothing acknowledged is
/// lost. Returns the cluster and the node that was away.
async fn owner_away_for_a_while(away: fn(&Node), back: fn(&Node)) -> (Procs, usize) {
    let procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let w = Workload::prepare(&procs, claims(CLAIMS)).await;
    let owner = procs.owner_of(&w.queue()).await;
    let node = &procs.nodes[owner];
    let fault = async {
        away(node);
        tokio::time::sleep(Duration::from_millis(TTL_MS * 2 + 1_000)).await;
        back(node);
    };
    let pair = watch_pair(&procs, &[owner]);
    let (acks, served) = run(&procs, &w, pair, 1_000, fault).await;
    // Taken over after the TTL without waiting for the node that is away
    // (a paused one's open transaction is ended by the taker).
    assert!(served < Duration::from_millis(TTL_MS + 3_000), "{served:?}");
    check(&procs, &w, &acks).await;
    (procs, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_past_its_lease_is_fenced_when_it_wakes() {
    let (procs, owner) = owner_away_for_a_while(|n| n.signal("-STOP"), |n| n.signal("-CONT")).await;
    // The zombie woke with leases it no longer holds: it dropped them (its
    // own clock, or the store refusing its appends) and took part again.
    let text = procs.metrics(owner).await;
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
    let w = Workload::prepare(&procs, claims(CLAIMS)).await;
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
    let (acks, _) = run(&procs, &w, (1, 2), 1_000, churn).await;
    procs
        .nodes
        .push(joined.into_inner().unwrap().expect("n4 started"));
    assert_eq!(
        procs.nodes[0].drain().await,
        Some(0),
        "a drained node exits 0"
    );
    procs.settled(&["n2", "n3", "n4"]).await;
    check(&procs, &w, &acks).await;

    // `surge cluster status` reads the same from the store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["cluster", "status"])
        .env("SURGE_STORE", "postgres")
        .env("SURGE_POSTGRES_URL", &procs.pg.url)
        .env("SURGE_POSTGRES_SCHEMA", &procs.pg.schema)
        .env("SURGE_LEASE_TTL_MS", TTL_MS.to_string())
        .env("SURGE_REDIS_URL", procs.redis.lock().unwrap().url())
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
async fn a_redis_restart_mid_burst_loses_no_live_event_and_nothing_acknowledged() {
    let procs = Procs::start(3).await;
    procs.settled(&["n1", "n2", "n3"]).await;
    let w = Workload::prepare(&procs, claims(CLAIMS)).await;
    let outage = async {
        procs.redis.lock().unwrap().stop();
        // Down long enough that what was published meanwhile is gone.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        procs.redis.lock().unwrap().restart();
    };
    let (acks, _) = run(&procs, &w, (1, 2), 1_000, outage).await;
    check(&procs, &w, &acks).await;
}

/// Node `name`'s log lines (JSON) whose span is `span` and carries
/// `request_id`.
fn logged(logs: &std::path::Path, name: &str, span: &str, request_id: &str) -> usize {
    std::fs::read_to_string(logs.join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["name"] == span && l["span"]["request_id"] == request_id)
        .count()
}

/// JSON logs name a request on every node it touches: registrations sent
/// to n1 whose entities n2 owns are logged by n1 (the request) and by n2
/// (the forwarded commands) under the one id, the client's own here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_requests_log_lines_carry_its_id_on_both_nodes() {
    let logs = tempfile::tempdir().unwrap();
    let procs = Procs::start_logging(2, Some(logs.path().to_owned())).await;
    procs.settled(&["n1", "n2"]).await;
    let mut forwarded = 0;
    for i in 0..8 {
        let id = format!("it-forwarded-{i}");
        let email = format!("log{i}@example.com");
        let resp = procs
            .client
            .post(format!("{}/api/v1/auth/register", procs.base(0)))
            .header("x-request-id", &id)
            .json(&json!({"email": email, "password": PASSWORD, "name": "Log", "role": "customer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["x-request-id"], id.as_str());
        let owners = [
            procs.owner_of(&format!("email:{email}")).await,
            procs
                .owner_of(&format!(
                    "user:{}",
                    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap()
                ))
                .await,
        ];
        // The request's own line on n1 comes as it is answered; n2's
        // while it serves (bounded wait for the files to be written).
        let deadline = Instant::now() + Duration::from_secs(5);
        while logged(logs.path(), "n1", "request", &id) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            logged(logs.path(), "n1", "request", &id) > 0,
            "n1 logged {id}"
        );
        let on_n2 = logged(logs.path(), "n2", "forwarded", &id);
        if owners.contains(&1) {
            assert!(on_n2 > 0, "n2 served part of {id} and logged it");
            forwarded += 1;
        } else {
            assert_eq!(on_n2, 0, "n2 had no part in {id}");
        }
    }
    assert!(forwarded > 0, "some registration touched n2 (8 tries)");
    // An id that is not plain is replaced by one of Surge's own.
    let resp = procs
        .client
        .get(format!("{}/healthz", procs.base(0)))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    let given = resp.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(given.len(), 32, "{given}");
}

/// One exported span: the node that sent it, its name, ids and string
/// attributes.
#[derive(Debug, Clone)]
struct Exported {
    node: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    attributes: HashMap<String, String>,
}

/// A small OTLP/HTTP receiver (protobuf) on a free port: its URL and the
/// spans it has been sent.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Exported>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let spans: Arc<Mutex<Vec<Exported>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return StatusCode::BAD_REQUEST;
                };
                let mut out = kept.lock().unwrap();
                for rs in req.resource_spans {
                    let node = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.instance.id")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            Any::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let attributes = span
                            .attributes
                            .iter()
                            .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
                                Any::StringValue(s) => Some((a.key.clone(), s.clone())),
                                Any::IntValue(i) => Some((a.key.clone(), i.to_string())),
                                _ => None,
                            })
                            .collect();
                        out.push(Exported {
                            node: node.clone(),
                            name: span.name,
                            trace: span.trace_id,
                            id: span.span_id,
                            parent: span.parent_span_id,
                            attributes,
                        });
                    }
                }
                StatusCode::OK
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

/// With `otlp_endpoint` set, a claim sent to the node that does not own
/// the sale's queue is one trace over both nodes: the request, the
/// commands, the forward on the first node; the forwarded command, the
/// queue's command and its journal commit on the owner, the `forwarded`
/// span a child of the `forward` span across the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_claim_is_one_trace_over_both_nodes() {
    let (collector, spans) = otlp_receiver().await;
    let procs = Procs::start_with(
        2,
        None,
        vec![
            ("SURGE_OTLP_ENDPOINT".into(), collector),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
    )
    .await;
    procs.settled(&["n1", "n2"]).await;
    let app = TestApp::at(procs.base(0));
    let (m, _, product) = shop_with_product(&app, 100_000, 10).await;
    let (status, sale) = app
        .post(
            "/api/v1/flash-sales",
            Some(&m.access),
            json!({"product_id": product, "stock": 5, "per_user_limit": 1, "price": 50_000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    let sale = sale["id"].as_str().unwrap().to_owned();
    // One claim through each node: one of them is not the queue's owner.
    for node in 0..2 {
        let (buyer, _) = crate::commerce::customer(&app).await;
        let resp = procs
            .client
            .post(format!(
                "{}/api/v1/flash-sales/{sale}/claims",
                procs.base(node)
            ))
            .bearer_auth(&buyer.access)
            .header("x-request-id", format!("traced-claim-{node}"))
            .json(&json!({"quantity": 1, "payment_method": "cod"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
    let request = |spans: &[Exported], id: &str| {
        spans
            .iter()
            .find(|s| {
                s.name == "request"
                    && s.attributes.get("request_id").map(String::as_str) == Some(id)
            })
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let over_both = loop {
        let all = spans.lock().unwrap().clone();
        let found = (0..2).find_map(|node| {
            let root = request(&all, &format!("traced-claim-{node}"))?;
            let trace: Vec<&Exported> = all.iter().filter(|s| s.trace == root.trace).collect();
            let nodes: HashSet<&str> = trace.iter().map(|s| s.node.as_str()).collect();
            let forwarded = trace.iter().find(|s| {
                s.name == "forwarded"
                    && s.attributes.get("kind").map(String::as_str) == Some("queue")
            })?;
            let commit = trace
                .iter()
                .any(|s| s.name == "journal_commit" && s.node == forwarded.node);
            (nodes.len() == 2 && commit)
                .then(|| (root.clone(), trace.into_iter().cloned().collect::<Vec<_>>()))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no claim's trace spans both nodes: {:#?}",
            all.iter()
                .map(|s| (&s.node, &s.name, &s.attributes))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (root, trace) = over_both;
    let forwarded = trace
        .iter()
        .find(|s| {
            s.name == "forwarded" && s.attributes.get("kind").map(String::as_str) == Some("queue")
        })
        .unwrap();
    let forward = trace
        .iter()
        .find(|s| s.id == forwarded.parent)
        .expect("the forwarded span's parent is in the trace");
    assert_eq!(forward.name, "forward");
    assert_eq!(
        forward.node, root.node,
        "sent by the node the claim came to"
    );
    assert_ne!(forwarded.node, root.node, "served by the other");
    assert_eq!(
        forwarded.attributes.get("request_id"),
        root.attributes.get("request_id"),
        "the same request id on both nodes"
    );
    assert!(trace
        .iter()
        .any(|s| s.name == "command" && s.node == root.node));
}

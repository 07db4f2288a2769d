//! The ScyllaDB backend over the real CQL wire, with the real `scylla`
//! driver. By default against the kassandra emulator served in this process
//! (`surge::emulator`, what `surge cql-emulator` runs); when
//! `SURGE_SCYLLA_NODES` is set, against that cluster instead, each test in a
//! fresh keyspace (`SURGE_SCYLLA_LWT=false` turns lightweight transactions
//! off there; `SURGE_SCYLLA_REPLICATION` sets the keyspace's replication).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use surge::config::{Settings, StoreKind};
use surge::emulator::Emulator;
use surge::metrics::Metrics;
use surge::store::scylla::{schema, ScyllaOptions, ScyllaStore};
use surge::store::Store;

use crate::helpers::*;

/// Where the tests' CQL goes: an emulator of their own, or a real cluster.
struct Cql {
    options: ScyllaOptions,
    _emulator: Option<Emulator>,
}

async fn cql() -> Cql {
    let mut options = Settings::default().scylla();
    options.request_timeout = Duration::from_secs(10);
    match std::env::var("SURGE_SCYLLA_NODES") {
        Ok(nodes) if !nodes.trim().is_empty() => {
            options.nodes = nodes.split(',').map(|n| n.trim().to_owned()).collect();
            options.keyspace = format!(
                "surge_t{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            options.lwt = std::env::var("SURGE_SCYLLA_LWT").map_or(true, |v| v != "false");
            options.emulator = false;
            if let Ok(r) = std::env::var("SURGE_SCYLLA_REPLICATION") {
                options.replication = r;
            }
            Cql {
                options,
                _emulator: None,
            }
        }
        _ => {
            let emulator = Emulator::start("127.0.0.1:0").await.expect("emulator");
            options.nodes = vec![emulator.addr.to_string()];
            options.lwt = false;
            options.emulator = true;
            Cql {
                options,
                _emulator: Some(emulator),
            }
        }
    }
}

impl Cql {
    async fn migrate(&self) -> Vec<&'static str> {
        let session = surge::store::scylla::connect(&self.options).await.unwrap();
        schema::migrate(&session, &self.options.keyspace, &self.options.replication)
            .await
            .unwrap()
    }

    async fn store(&self) -> Arc<ScyllaStore> {
        self.migrate().await;
        Arc::new(
            ScyllaStore::open(&self.options, Arc::new(Metrics::new()))
                .await
                .unwrap(),
        )
    }
}

conformance_on!(async {
    let cql = cql().await;
    let store = cql.store().await;
    (cql, store)
});

#[tokio::test]
async fn migrations_are_recorded_once_and_serve_refuses_a_schema_behind() {
    let cql = cql().await;
    // Nothing migrated yet: the store refuses to open, naming the command.
    let err = ScyllaStore::open(&cql.options, Arc::new(Metrics::new()))
        .await
        .err()
        .expect("no schema yet");
    assert!(err.to_string().contains("surge migrate"), "{err}");

    let every: Vec<&str> = schema::MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(
        every[..4],
        [
            "001_init.cql",
            "002_cluster.cql",
            "003_reviews.cql",
            "004_behavior.cql"
        ]
    );
    assert_eq!(cql.migrate().await, every);
    assert!(cql.migrate().await.is_empty(), "applied once");
    let session = surge::store::scylla::connect(&cql.options).await.unwrap();
    let applied = schema::applied(&session, &cql.options.keyspace)
        .await
        .unwrap()
        .unwrap();
    let recorded: Vec<_> = schema::MIGRATIONS
        .iter()
        .map(|m| (m.version, schema::checksum(m.text)))
        .collect();
    assert_eq!(applied, recorded);
    schema::check(&session, &cql.options.keyspace)
        .await
        .unwrap();

    // A schema recorded at a version this build does not know is refused.
    session
        .query_unpaged(
            format!(
                "INSERT INTO {}.schema_migrations (version, name, checksum, applied_ms) VALUES (99, '099_future.cql', 'x', 0)",
                cql.options.keyspace
            ),
            (),
        )
        .await
        .unwrap();
    let err = schema::check(&session, &cql.options.keyspace)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("upgrade Surge"), "{err}");
}

/// Cluster mode on ScyllaDB. With lightweight transactions (a real
/// cluster, `SURGE_SCYLLA_NODES`): leases as LWT, each stream's fence in
/// its partition, fenced appends as one conditional batch — the scenario
/// PostgreSQL passes, plus the epoch record. On the emulator (no LWT): no
/// cluster is offered, a fenced append is refused and writes nothing, and
/// cluster mode refuses the configuration with the reason.
#[tokio::test]
async fn a_shard_taken_over_refuses_the_old_owners_appends() {
    let cql = cql().await;
    let a = cql.store().await;
    if cql.options.lwt {
        let b = ScyllaStore::open(&cql.options, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let acked =
            crate::postgres::a_shard_taken_over_refuses_the_old_owners_appends_on(a.as_ref(), &b)
                .await;
        println!("A's appends acknowledged before the takeover: {acked}");
        let session = surge::store::scylla::connect(&cql.options).await.unwrap();
        let mut owners: Vec<(i32, i64, String)> = session
            .query_unpaged(
                format!(
                    "SELECT shard, epoch, owner FROM {}.lease_epochs",
                    cql.options.keyspace
                ),
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .rows::<(i32, i64, String)>()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        owners.sort();
        assert_eq!(owners, crate::postgres::epochs_handed_out());
        b.close().await;
    } else {
        assert!(a.coordination().is_none(), "no leases without LWT");
        let mut req = crate::conformance::append("s", 0, &["e"]);
        req.fence = Some(surge::store::Fence { shard: 0, epoch: 1 });
        match a.append(req).await {
            Err(surge::store::StoreError::Backend(m)) => assert!(m.contains("scylla_lwt"), "{m}"),
            other => panic!("a fenced append without LWT must be refused, got {other:?}"),
        }
        assert_eq!(a.head("s").await.unwrap(), 0, "nothing written");
        let toml = format!(
            "cluster = true\nstore = \"scylla\"\nscylla_emulator = true\nscylla_lwt = false\nnode_id = \"n1\"\nredis_url = \"redis://127.0.0.1:1\"\njwt_secret = \"{TEST_SECRET}\"\n"
        );
        let err = Settings::from_toml(&toml).unwrap_err();
        assert!(err.to_string().contains("scylla_lwt = true"), "{err}");
    }
    a.close().await;
}

/// An app on the ScyllaDB backend: `surge serve --store scylla` built in
/// this process, its CQL server kept alive with it.
async fn scylla_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let cql = cql().await;
    cql.migrate().await;
    let o = cql.options.clone();
    let mut app = spawn_app_with(|s| {
        tweak(s);
        s.store = StoreKind::Scylla;
        s.scylla_nodes = o.nodes.join(",");
        s.scylla_keyspace = o.keyspace.clone();
        s.scylla_replication = o.replication.clone();
        s.scylla_lwt = o.lwt;
        s.scylla_emulator = o.emulator;
    })
    .await;
    app.guard = Some(Box::new(cql));
    app
}

flows_on!(scylla_app);

#[tokio::test]
async fn the_dev_commands_run_the_product_on_the_emulator() {
    use crate::lifecycle::{free_port, wait_healthy};
    use std::process::{Command, Stdio};

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let bin = env!("CARGO_BIN_EXE_surge");
    let cql_addr = format!("127.0.0.1:{}", free_port());
    let _emulator = Kill(
        Command::new(bin)
            .args(["cql-emulator", "--addr", &cql_addr])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SURGE_STORE", "scylla"),
        ("SURGE_SCYLLA_EMULATOR", "true"),
        ("SURGE_SCYLLA_LWT", "false"),
        ("SURGE_JWT_SECRET", TEST_SECRET),
        ("SURGE_LOG", "warn"),
        ("SURGE_METRICS_ADDR", "127.0.0.1:0"),
    ];
    let surge = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args)
            .args(["--scylla-nodes", &cql_addr])
            .envs(env)
            .env_remove("SURGE_SCYLLA_NODES")
            .env("SURGE_DATA_DIR", dir.path());
        c
    };
    // The emulator may take a moment to listen.
    let mut refused = None;
    for _ in 0..100 {
        let out = surge(&["serve", "--addr", "127.0.0.1:0"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("surge migrate") {
            refused = Some(out.status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        refused.is_some_and(|s| !s.success()),
        "serve refuses an unmigrated keyspace"
    );
    let out = surge(&["migrate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 001_init.cql"));
    // `surge cluster status` asks the configured store, ScyllaDB here (it
    // once always asked PostgreSQL): the emulator has no lightweight
    // transactions, so no cluster, and the command says why.
    let out = surge(&["cluster", "status"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        said.contains("scylla_lwt") && !said.contains("PostgreSQL"),
        "{said}"
    );

    let client = crate::helpers::client();
    let serve = |port: u16| {
        Kill(
            surge(&["serve", "--addr", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let port = free_port();
    let server = serve(port);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&client, &base).await;
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let r = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "dev@example.com", "password": PASSWORD, "name": "Dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    drop(server);

    let port = free_port();
    let _server = serve(port);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&client, &base).await;
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "dev@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the account outlived the restart"
    );
}

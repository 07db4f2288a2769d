//! The operator's commands: the configuration reference, the first admin,
//! reindexing, backup and restore.

use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{shop_with_product, spawn_app, spawn_app_in};

/// docs/configuration.md is what `surge config reference` prints, so a
/// setting added, removed, re-documented or given another default without
/// the doc fails here. `SURGE_BLESS_DOCS=1` writes the file instead.
#[test]
fn the_configuration_doc_is_generated_from_the_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(["config", "reference"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    if std::env::var_os("SURGE_BLESS_DOCS").is_some() {
        std::fs::write(&path, &printed).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written == printed,
        "docs/configuration.md differs from `surge config reference`: edit the doc \
         comments of Settings, then run SURGE_BLESS_DOCS=1 cargo nextest run \
         -E 'test(the_configuration_doc)'"
    );
    // A few rows, read back as a reader would.
    assert!(written.contains("| `addr` | `127.0.0.1:8080` |"));
    assert!(written.contains("| `hash_concurrency` | CPU count |"));
    assert!(written.contains("| `smtp_url` | unset |"));
}

/// `surge <args>` on data dir `dir`, `stdin` written to it; (success,
/// stdout, stderr).
fn surge(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    surge_env(dir, args, stdin, &[])
}

/// [`surge`] with more environment.
fn surge_env(
    dir: &std::path::Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(args)
        .envs(env.iter().copied())
        .env("SURGE_DATA_DIR", dir)
        .env("SURGE_JWT_SECRET", crate::helpers::TEST_SECRET)
        .env_remove("RUST_LOG")
        .env("SURGE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_create_makes_the_first_admin_without_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let email = "ops@example.com";
    let password = "a long admin password 7";
    // A weak password is refused, and nothing is created.
    let (ok, _, err) = surge(dir.path(), &["admin", "create", email], "short\n");
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, out, err) = surge(
        dir.path(),
        &["admin", "create", email],
        &format!("{password}\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("ops@example.com is an admin"), "{out}");

    let app = spawn_app_in(dir, |_| {}).await;
    // A customer who registers later is no admin; the created one is.
    let customer = app.user("customer").await;
    let (status, _) = app.get("/api/v1/admin/users", Some(&customer.access)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": "short"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "only the strong password was kept"
    );
    let admin = app.login_with(email, password).await;
    let (status, users) = app.get("/api/v1/admin/users", Some(&admin.access)).await;
    assert_eq!(status, StatusCode::OK, "{users}");

    // Run again on an existing customer: promoted, password unchanged.
    let dir = app.stop().await;
    let (ok, _, err) = surge(
        dir.path(),
        &["admin", "create", &customer.email],
        "another long password 8\n",
    );
    assert!(ok, "{err}");
    let app = spawn_app_in(dir, |_| {}).await;
    let promoted = app.login(&customer.email).await;
    let (status, _) = app.get("/api/v1/admin/users", Some(&promoted.access)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reindex_rebuilds_the_search_index_from_the_catalog() {
    let app = spawn_app().await;
    let (_m, _shop, product) = shop_with_product(&app, 100_000, 5).await;
    let dir = app.stop().await;
    let index = dir.path().join("search");
    std::fs::remove_dir_all(&index).unwrap();
    let (ok, out, err) = surge(dir.path(), &["reindex"], "");
    assert!(ok, "{err}");
    // One shop and one product.
    assert!(out.contains("indexed 2 "), "{out}");
    assert!(index.is_dir(), "the index is written again");

    // With the server running the index is locked: refused, not spoiled.
    let app = spawn_app_in(dir, |_| {}).await;
    let (ok, _, err) = surge(&app.data_dir(), &["reindex"], "");
    assert!(!ok, "reindex beside a running server");
    assert!(!err.is_empty());
    let (status, found) = app.get("/api/v1/search?q=yoga+mat", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == product.as_str()),
        "{found}"
    );
}

/// Every answer carries its request's id; an error quotes the same id (the
/// one its log lines carry); a plain id from a proxy is kept.
#[tokio::test]
async fn an_error_quotes_the_request_id_its_answer_carries() {
    let app = spawn_app().await;
    let client = crate::helpers::client();
    let resp = client
        .post(format!("{}/api/v1/auth/register", app.base))
        .json(&json!({"email": "x@example.com", "password": "short", "name": "X", "role": "customer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["id"], id.as_str());
    let resp = client
        .get(format!("{}/api/v1/no-such-route", app.base))
        .header("x-request-id", "edge-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "edge-42");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["id"], "edge-42");
}

const ADMIN: &str = "backup-admin@example.com";

/// A backup taken while registrations go on holds one moment of the store:
/// every stream whole from its first event, each event the one the
/// server has, and the account listing naming exactly the accounts whose
/// journals it holds. Restored into an empty directory, a server on it
/// has every account, and refuses a second restore there; a cut copy is
/// refused and leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writes_go_on_restores_to_one_consistent_moment() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use surge::store::backup::{Reader, Record};

    let app = crate::helpers::spawn_app_with(|s| {
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(crate::helpers::PASSWORD.into());
    })
    .await;
    shop_with_product(&app, 30_000, 100).await;
    // Only admins take the copy (it holds every account's data).
    let customer = app.user("customer").await;
    let (status, _) = app
        .get("/api/v1/admin/backup", Some(&customer.access))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/api/v1/admin/backup", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut before = Vec::new();
    for i in 0..6 {
        let email = format!("before{i}@example.com");
        app.register(&email, "customer").await;
        before.push(email);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (base, stop) = (app.base.clone(), stop.clone());
        async move {
            let app = crate::helpers::TestApp::at(base);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 300 {
                app.register(&format!("during{n}@example.com"), "customer")
                    .await;
                n += 1;
            }
            n
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("a.backup");
    let args: Vec<String> = [
        "backup",
        "--server",
        &app.base,
        "--email",
        ADMIN,
        "--to",
        file.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, out, err) = tokio::task::spawn_blocking({
        let dir = files.path().to_owned();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            surge(&dir, &args, &format!("{}\n", crate::helpers::PASSWORD))
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("checked"), "{out}");
    assert!(
        during > 2,
        "registrations went on around the backup ({during})"
    );

    // The backup's moment.
    let mut reader = Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let mut streams: BTreeMap<String, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    let mut listed = BTreeSet::new();
    while let Some(record) = reader.next_record().unwrap() {
        match record {
            Record::Event { stream, seq, data } => {
                streams.entry(stream).or_default().push((seq, data))
            }
            Record::Row { table, key, .. } if table == "users_by_role" => {
                listed.insert(key.split_once('|').unwrap().1.to_owned());
            }
            _ => {}
        }
    }
    let store = app.state.as_ref().unwrap().services.store.clone();
    for (stream, events) in &streams {
        let seqs: Vec<u64> = events.iter().map(|e| e.0).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{stream} whole"
        );
        let served = store.read(stream, 0, events.len()).await.unwrap();
        for (e, s) in events.iter().zip(&served) {
            assert_eq!(
                (e.0, &e.1),
                (s.seq, &s.payload),
                "{stream}: the server's event"
            );
        }
    }
    let journaled: BTreeSet<String> = streams
        .keys()
        .filter_map(|s| s.strip_prefix("user:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed, journaled,
        "the listing and the journals are of one moment"
    );
    let in_backup = journaled.len();
    let users_now = app
        .all_pages(
            "/api/v1/admin/users?limit=100",
            Some(&app.login(ADMIN).await.access),
            50,
        )
        .await
        .len();
    assert!(
        users_now > in_backup,
        "writes went on after the copy ({users_now} > {in_backup})"
    );

    // A cut copy is refused and leaves nothing behind.
    let bytes = std::fs::read(&file).unwrap();
    let cut = files.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restore = |from: &std::path::Path, to: &std::path::Path| {
        surge(
            files.path(),
            &[
                "restore",
                "--from",
                from.to_str().unwrap(),
                "--data-dir",
                to.to_str().unwrap(),
            ],
            "",
        )
    };
    let (ok, _, err) = restore(&cut, target.path());
    assert!(!ok && err.contains("ends early"), "{err}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);

    let (ok, out, err) = restore(&file, target.path());
    assert!(ok, "{err}");
    assert!(out.contains("restored"), "{out}");
    let (ok, _, err) = restore(&file, target.path());
    assert!(!ok && err.contains("already holds a store"), "{err}");

    drop(app);
    let restored = spawn_app_in(target, |_| {}).await;
    for email in &before {
        restored.login(email).await;
    }
    let admin = restored.login(ADMIN).await;
    let users = restored
        .all_pages("/api/v1/admin/users?limit=100", Some(&admin.access), 50)
        .await;
    assert_eq!(
        users.len(),
        in_backup,
        "every account of the moment, no other"
    );
    let (status, found) = restored.get("/api/v1/search?q=yoga+mat", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        found["items"].as_array().unwrap().len(),
        1,
        "the index is rebuilt: {found}"
    );
}

/// `surge backup --to s3://…` keeps the backup in a bucket (the AWS_*
/// environment names it) and `surge restore --from s3://…` restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_goes_to_an_s3_bucket_and_comes_back() {
    let s3 = crate::media::s3_server().await;
    let app = crate::helpers::spawn_app_with(|s| {
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(crate::helpers::PASSWORD.into());
    })
    .await;
    app.register("kept@example.com", "customer").await;
    let env = [
        ("AWS_ENDPOINT_URL", s3.url.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let at = "s3://surge-media/backups/nightly.backup";
    let base = app.base.clone();
    let work = tempfile::tempdir().unwrap();
    let (ok, out, err) = tokio::task::spawn_blocking({
        let dir = work.path().to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            surge_env(
                &dir,
                &["backup", "--server", &base, "--email", ADMIN, "--to", at],
                &format!("{}\n", crate::helpers::PASSWORD),
                &env,
            )
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let target = tempfile::tempdir().unwrap();
    let (ok, out, err) = surge_env(
        work.path(),
        &[
            "restore",
            "--from",
            at,
            "--data-dir",
            target.path().to_str().unwrap(),
        ],
        "",
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(
        !target.path().join("surge.backup.download").exists(),
        "the download is removed"
    );
    drop(app);
    let restored = spawn_app_in(target, |_| {}).await;
    restored.login("kept@example.com").await;
}

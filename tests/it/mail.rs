//! Mail and the inbox: the reset code delivered to a real SMTP server (or
//! written to files), used once and only once; welcome mails; broadcasts;
//! mark-all-read and the unread count.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::{Handler, Response, Server, SslConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Every message the SMTP server accepted, as raw text.
#[derive(Clone, Default)]
struct Inbox {
    done: Arc<Mutex<Vec<String>>>,
    current: Vec<u8>,
}

impl Handler for Inbox {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
        self.done.lock().unwrap().push(text);
        mailin_embedded::response::OK
    }
}

/// Starts an SMTP server on a free loopback port.
fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Inbox::default();
    let mails = inbox.done.clone();
    let mut server = Server::new(inbox);
    server
        .with_name("smtp.test")
        .with_ssl(SslConfig::None)
        .unwrap()
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, mails)
}

fn subject(mail: &str) -> Option<&str> {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(str::trim)
}

/// The code in a reset mail's subject.
fn code_of(mail: &str) -> Option<String> {
    subject(mail)?
        .strip_prefix("Your Surge password reset code: ")
        .map(str::to_owned)
}

async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_reset_code_reaches_a_real_smtp_server_and_works_once() {
    let (port, mails) = smtp_server();
    let app = spawn_app_with(|s| s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    let user = app.user("customer").await;
    let to = format!("To: {}", user.email);
    wait_for("the welcome mail", || {
        let m = mails.lock().unwrap();
        m.iter()
            .any(|m| subject(m) == Some("Welcome to Surge") && m.contains(&to))
            .then_some(())
    })
    .await;

    let (status, _) = app
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": user.email}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = wait_for("the reset mail", || {
        mails.lock().unwrap().iter().find_map(|m| code_of(m))
    })
    .await;
    assert_eq!(code.len(), 6);
    // Unknown addresses get the same answer and no mail.
    let (status, _) = app
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = app
        .post(
            "/api/v1/auth/forgot-password",
            None,
            json!({"email": "not an email"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let reset = |otp: &str, password: &str| json!({"email": user.email, "otp": otp, "new_password": password});
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            reset(wrong, "a brand new password"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .post("/api/v1/auth/reset-password", None, reset(&code, "short"))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak password: {body}"
    );
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            reset(&code, "a brand new password"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Once and only once.
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            reset(&code, "yet another password"),
        )
        .await;
    // A used code answers like a wrong one (no hint about the account).
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "validation_failed");
    // The new password works, the old one does not, old sessions ended.
    let (status, _) = app.get("/api/v1/users/profile", Some(&user.access)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let login = |password: &str| json!({"email": user.email, "password": password});
    let (status, _) = app
        .post("/api/v1/auth/login", None, login("a brand new password"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post("/api/v1/auth/login", None, login(PASSWORD)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A new code stops working after 5 wrong tries, even the right one.
    mails.lock().unwrap().clear();
    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": user.email}),
    )
    .await;
    let code = wait_for("the second reset mail", || {
        mails.lock().unwrap().iter().find_map(|m| code_of(m))
    })
    .await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let (status, _) = app
            .post(
                "/api/v1/auth/reset-password",
                None,
                reset(wrong, "a third password!"),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            reset(&code, "a third password!"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": user.email, "password": "a third password!"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the used-up code changed nothing"
    );
}

#[tokio::test]
async fn without_smtp_mails_are_files_and_broadcasts_reach_inboxes() {
    let app = spawn_app_with(|s| {
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    let dir = app.dir.as_ref().unwrap().path().join("mail");
    let files = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let user = app.user("customer").await;
    let merchant = app.user("merchant").await;
    wait_for("the welcome mail file", || {
        files()
            .iter()
            .any(|m| m.contains(&format!("To: {}", user.email)))
            .then_some(())
    })
    .await;
    app.post(
        "/api/v1/auth/forgot-password",
        None,
        json!({"email": user.email}),
    )
    .await;
    let code = wait_for("the reset mail file", || {
        files().iter().find_map(|m| code_of(m))
    })
    .await;
    let (status, body) = app
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"email": user.email, "otp": code, "new_password": "from a file, once"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let user = app.login_with(&user.email, "from a file, once").await;

    // Preferences: the customer turns announcement mails off.
    let (status, prefs) = app
        .get(
            "/api/v1/users/me/notification-preferences",
            Some(&user.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prefs["email"]["announcements"], true);
    let mut off = prefs.clone();
    off["email"]["announcements"] = json!(false);
    let (status, _) = app
        .put(
            "/api/v1/users/me/notification-preferences",
            Some(&user.access),
            off,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(
            "/api/v1/users/me/notification-preferences",
            Some(&user.access),
            json!({"email": {"orders": "yes"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Only admins broadcast.
    let (status, _) = app
        .post(
            "/api/v1/notifications/broadcast",
            Some(&merchant.access),
            json!({"title": "Hi", "body": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = app.login("root@example.com").await;
    let (status, out) = app
        .post(
            "/api/v1/notifications/broadcast",
            Some(&admin.access),
            json!({"title": "Maintenance tonight", "body": "Surge restarts at 23:00.", "role": "merchant"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["recipients"], 1, "only the merchant");
    let (status, out) = app
        .post(
            "/api/v1/notifications/broadcast",
            Some(&admin.access),
            json!({"title": "Flash sale at noon", "body": "Yoga mats half price."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["recipients"], 3, "customer, merchant, admin");
    let (status, _) = app
        .post(
            "/api/v1/notifications/broadcast",
            Some(&admin.access),
            json!({"title": "", "body": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, inbox) = app
        .get("/api/v1/notifications", Some(&merchant.access))
        .await;
    assert_eq!(inbox["unread"], 2, "{inbox}");
    let (_, count) = app
        .get("/api/v1/notifications/unread-count", Some(&user.access))
        .await;
    assert_eq!(count["unread"], 1);
    let (status, _) = app
        .post(
            "/api/v1/notifications/mark-all-read",
            Some(&merchant.access),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, count) = app
        .get("/api/v1/notifications/unread-count", Some(&merchant.access))
        .await;
    assert_eq!(count["unread"], 0);

    // The merchant wants announcements by mail; the customer opted out.
    wait_for("the merchant's announcement mail", || {
        files()
            .iter()
            .any(|m| {
                m.contains(&format!("To: {}", merchant.email))
                    && subject(m) == Some("Flash sale at noon")
            })
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !files()
            .iter()
            .any(|m| m.contains(&format!("To: {}", user.email))
                && subject(m) == Some("Flash sale at noon")),
        "the customer turned announcement mails off"
    );
}

/// An outbox on a fresh embedded store holding one mail per `attempts`
/// entry (made that many attempts, due at `due`), and a mailer sending to
/// `smtp_url` (unset: files): the data dir, the store, the metrics, the
/// mailer.
async fn outbox(
    attempts: &[u32],
    due: chrono::DateTime<chrono::Utc>,
    smtp_url: Option<String>,
) -> (
    tempfile::TempDir,
    Arc<dyn surge::store::Store>,
    Arc<surge::metrics::Metrics>,
    surge::mail::Mailer,
) {
    use surge::mail::{outbox_row, MailConfig, Mailer, OutMail};
    use surge::store::redb::{RedbOptions, RedbStore};
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(surge::metrics::Metrics::new());
    let store: Arc<dyn surge::store::Store> =
        Arc::new(RedbStore::open(dir.path(), RedbOptions::default(), metrics.clone()).unwrap());
    let rows = attempts
        .iter()
        .enumerate()
        .map(|(i, attempts)| {
            let mail = OutMail {
                id: format!("m{i}"),
                to: format!("u{i}@example.com"),
                subject: "Hi".into(),
                body: "Hello".into(),
                attempts: *attempts,
                created_at: due,
                last_error: None,
            };
            outbox_row(&mail, due)
        })
        .collect();
    store.write_rows(rows).await.unwrap();
    let mailer = Mailer::new(
        &MailConfig {
            smtp_url,
            from: "Surge <no-reply@surge.localhost>".into(),
            dir: dir.path().join("mail"),
        },
        store.clone(),
        surge::cluster::Duty::default(),
        metrics.clone(),
    )
    .unwrap();
    (dir, store, metrics, mailer)
}

#[tokio::test]
async fn a_round_of_mails_is_one_durable_write() {
    let (dir, _store, metrics, mailer) = outbox(&[0; 10], chrono::Utc::now(), None).await;
    let before = metrics.journal_commits.get();
    assert_eq!(mailer.drain().await.unwrap(), 10);
    assert_eq!(metrics.mail_counts(), (10, 0, 0));
    assert_eq!(metrics.mail_due.get(), 10, "the round found ten due");
    assert_eq!(
        metrics.journal_commits.get() - before,
        1,
        "ten mails sent, their rows deleted in one commit"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("mail")).unwrap().count(),
        10
    );
    assert_eq!(mailer.drain().await.unwrap(), 0, "nothing is sent twice");
    assert_eq!(metrics.mail_due.get(), 0);
    assert_eq!(metrics.mail_oldest_due_seconds.get(), 0.0);
}

/// With the SMTP server away, the metrics say so: sends fail, the mails
/// wait (how many, how long), and one past its last attempt is dead.
#[tokio::test]
async fn the_outbox_metrics_tell_a_failing_server() {
    use surge::mail::MAX_ATTEMPTS;
    // Nothing listens on the port.
    let port = crate::lifecycle::free_port();
    let due = chrono::Utc::now() - chrono::Duration::seconds(30);
    let (_dir, store, metrics, mailer) = outbox(
        &[0, MAX_ATTEMPTS - 1],
        due,
        Some(format!("smtp://127.0.0.1:{port}")),
    )
    .await;
    assert_eq!(mailer.drain().await.unwrap(), 2);
    assert_eq!(
        metrics.mail_counts(),
        (0, 2, 1),
        "two failed, one of them dead"
    );
    assert_eq!(metrics.mail_due.get(), 2);
    let waited = metrics.mail_oldest_due_seconds.get();
    assert!((29.0..120.0).contains(&waited), "{waited}");
    let dead = store.scan("outbox_dead", "", None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let text = metrics.render();
    for line in [
        "surge_mails_dead_total 1",
        "surge_mail_send_failures_total 2",
        "surge_mail_outbox_due 2",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

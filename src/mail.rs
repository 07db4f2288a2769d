//! Mail: a durable outbox and the worker that drains it.
//!
//! A mail is a row of the `outbox` read table keyed by its due time. Rows
//! are written atomically with the event that causes them (a welcome mail
//! with the registration, an order-status mail with the in-app
//! notification), or right after it (the password-reset code, which is
//! never journaled in clear). The worker sends due rows through SMTP
//! (lettre) when `smtp_url` is set, or writes them as `.eml` files under
//! `data_dir/mail/` when it is not, and deletes the rows of a round (up to
//! `ROUND` mails) in one durable write once they are sent. A
//! failure is retried with exponential back-off (1 s, 2 s, 4 s … at most
//! 10 min); after `MAX_ATTEMPTS` the mail moves to `outbox_dead`.
//! Delivery is at least once: a crash between sending and deleting the
//! rows sends the mails of that round again (same `Message-ID`, so a
//! receiver can drop the copy).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::domain::notification::Notification;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{OUTBOX, OUTBOX_DEAD};
use crate::store::{codec, IndexOp, Store, StoreError};

/// Sends tried before a mail is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// Mails sent per worker round.
const ROUND: usize = 64;
/// Pages of due rows one round reads at most (cluster mode skips other
/// nodes' mails).
const MAX_PAGES: usize = 16;

/// The stream whose shard's owner sends mail `id` (cluster mode).
pub fn mail_stream(id: &str) -> String {
    format!("mail:{id}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutMail {
    /// Stable per cause, so the same mail queued twice is one row.
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// The outbox row that queues `mail` to be sent at `due`.
pub fn outbox_row(mail: &OutMail, due: DateTime<Utc>) -> IndexOp {
    IndexOp::Put {
        table: OUTBOX,
        key: format!("{:020}|{}", due.timestamp_millis().max(0), mail.id),
        value: codec::encode(1, mail).expect("mails always encode"),
    }
}

/// Templates: `(subject, text body)`.
pub mod templates {
    use super::Notification;

    pub fn welcome(name: &str) -> (String, String) {
        (
            "Welcome to Surge".into(),
            format!(
                "Hello {name},\n\nyour account is ready. Sign in to follow your orders live, \
                 join courses and catch flash sales.\n\n— Surge\n"
            ),
        )
    }

    pub fn password_reset(name: &str, code: &str, minutes: i64) -> (String, String) {
        (
            format!("Your Surge password reset code: {code}"),
            format!(
                "Hello {name},\n\nsomeone (hopefully you) asked to reset your password.\n\n\
                 Your code: {code}\n\nIt expires in {minutes} minutes and works once. If you did \
                 not ask for it, ignore this mail; your password is unchanged.\n\n— Surge\n"
            ),
        )
    }

    /// Order status, delivery and enrollment results, announcements: the
    /// notification's own words.
    pub fn notification(name: &str, n: &Notification) -> (String, String) {
        let link = n
            .order_id
            .as_ref()
            .map(|id| format!("\nOrder: {id}\n"))
            .unwrap_or_default();
        (
            n.title.clone(),
            format!("Hello {name},\n\n{}\n{link}\n— Surge\n", n.body),
        )
    }
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://host:port`, `smtps://user:pass@host`, … (lettre's URL
    /// form). `None`: write files under `dir`.
    pub smtp_url: Option<String>,
    pub from: String,
    pub dir: PathBuf,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    store: Arc<dyn Store>,
    wake: Notify,
    /// Cluster mode: a mail is sent by the owner of `mail:{id}`'s shard.
    duty: crate::cluster::Duty,
    metrics: Arc<crate::metrics::Metrics>,
}

fn backoff(attempts: u32) -> chrono::Duration {
    chrono::Duration::seconds(1i64 << attempts.min(10)).min(chrono::Duration::minutes(10))
}

impl Mailer {
    pub fn new(
        cfg: &MailConfig,
        store: Arc<dyn Store>,
        duty: crate::cluster::Duty,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("mail_from '{}': {e}", cfg.from))?;
        let transport = match &cfg.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("smtp_url: {e}"))?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&cfg.dir)
                    .map_err(|e| format!("mail dir {}: {e}", cfg.dir.display()))?;
                Transport::Files(AsyncFileTransport::new(&cfg.dir))
            }
        };
        Ok(Mailer {
            transport,
            from,
            store,
            wake: Notify::new(),
            duty,
            metrics,
        })
    }

    /// Queues `mail` durably and nudges the worker.
    pub async fn enqueue(&self, mail: OutMail) -> Result<(), StoreError> {
        self.store
            .write_rows(vec![outbox_row(&mail, mail.created_at)])
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Something was queued: look at the outbox now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn send(&self, m: &OutMail) -> Result<(), String> {
        let to: Mailbox = m.to.parse().map_err(|e| format!("recipient: {e}"))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@surge>", m.id.replace([':', '|'], "."))))
            .body(m.body.clone())
            .map_err(|e| e.to_string())?;
        match &self.transport {
            Transport::Smtp(t) => t.send(msg).await.map(|_| ()).map_err(|e| e.to_string()),
            Transport::Files(t) => t.send(msg).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }

    /// Sends what is due; returns how many due mails were handled (sent,
    /// rescheduled or given up).
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let now = Utc::now();
        let mut handled = 0;
        // What the round's sends change in the outbox, written at once: one
        // commit per round, not one per mail.
        let mut ops = Vec::new();
        // In cluster mode the due rows of other nodes' mails are skipped.
        let due_by = now.timestamp_millis();
        let rows = crate::store::scan_picking(
            self.store.as_ref(),
            OUTBOX,
            ROUND,
            MAX_PAGES,
            |key, value| {
                let (due, id) = key
                    .split_once('|')
                    .map(|(ms, id)| (ms.parse::<i64>().unwrap_or(0), id))
                    .unwrap_or((0, ""));
                if due > due_by {
                    crate::store::Pick::Stop
                } else if self.duty.mine(&mail_stream(id)) {
                    crate::store::Pick::Take((key, value))
                } else {
                    crate::store::Pick::Skip
                }
            },
        )
        .await?;
        // How much is waiting, and for how long, as this round found it.
        let oldest = rows
            .first()
            .and_then(|(key, _)| key.split_once('|'))
            .and_then(|(ms, _)| ms.parse::<i64>().ok());
        self.metrics.mail_due.set(rows.len() as i64);
        self.metrics
            .mail_oldest_due_seconds
            .set(oldest.map_or(0.0, |ms| (due_by - ms).max(0) as f64 / 1000.0));
        for (key, value) in rows {
            handled += 1;
            let done = IndexOp::Delete {
                table: OUTBOX,
                key: key.clone(),
            };
            let Ok(mut mail) = codec::decode::<OutMail>(1, &value) else {
                tracing::error!(%key, "undecodable outbox row dropped");
                ops.push(done);
                continue;
            };
            match self.send(&mail).await {
                Ok(()) => {
                    self.metrics.mail_sent.inc();
                    ops.push(done)
                }
                Err(e) => {
                    self.metrics.mail_failures.inc();
                    mail.attempts += 1;
                    tracing::warn!(mail = %mail.id, attempts = mail.attempts, error = %e, "mail not sent");
                    mail.last_error = Some(e);
                    let next = if mail.attempts >= MAX_ATTEMPTS {
                        self.metrics.mail_dead.inc();
                        IndexOp::Put {
                            table: OUTBOX_DEAD,
                            key: mail.id.clone(),
                            value: codec::encode(1, &mail)?,
                        }
                    } else {
                        outbox_row(&mail, now + backoff(mail.attempts))
                    };
                    ops.extend([done, next]);
                }
            }
        }
        if !ops.is_empty() {
            self.store.write_rows(ops).await?;
        }
        Ok(handled)
    }

    /// Drains the outbox whenever woken, and at least every `every`, until
    /// `shutdown` flips.
    pub async fn run(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while crate::worker::next_round(every, Some(&self.wake), &mut shutdown).await {
            match self.drain().await {
                Ok(ROUND..) => self.wake.notify_one(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox scan failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1).num_seconds(), 2);
        assert_eq!(backoff(3).num_seconds(), 8);
        assert_eq!(backoff(30).num_seconds(), 600);
    }
}

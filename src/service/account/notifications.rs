//! Notifications: the caller's list, marking read (one or all), mail
//! preferences, and admin broadcasts.

use crate::actors::user::User;
use crate::actors::Registry;
use chrono::Utc;
use futures_util::StreamExt;
use std::sync::Arc;

use crate::actors::user::USERS_BY_ROLE;
use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::{check_text, Caller, DomainError, Role};
use crate::service::{new_id, ServiceError};

/// Most recipients of one broadcast.
pub const MAX_BROADCAST: usize = 100_000;
/// Notifications delivered at once during a broadcast.
const BROADCAST_CONCURRENCY: usize = 32;

/// In-app notifications, mail preferences and broadcasts.
#[derive(Clone)]
pub struct Notifications {
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) mailer: Arc<crate::mail::Mailer>,
    pub(in crate::service) store: Arc<dyn crate::store::Store>,
}

impl Notifications {
    /// Delivers each `(user id, notification)`, `concurrency` at a time;
    /// the first failure is returned once all have been tried.
    pub(crate) async fn notify_each(
        &self,
        items: Vec<(crate::domain::ids::UserId, Notification)>,
        concurrency: usize,
    ) -> Result<(), ServiceError> {
        let results: Vec<Result<(), ServiceError>> = futures_util::stream::iter(items)
            .map(|(user_id, n)| async move {
                self.users.notify(&user_id, n).await?;
                Ok(())
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    pub async fn mark_all_read(&self, user_id: &str) -> Result<(), ServiceError> {
        Ok(self.users.mark_all_read(user_id).await?)
    }

    pub async fn mail_prefs(
        &self,
        user_id: &str,
        set: Option<MailPrefs>,
    ) -> Result<MailPrefs, ServiceError> {
        Ok(match set {
            Some(p) => self.users.set_mail_prefs(user_id, p).await?,
            None => self.users.mail_prefs(user_id).await?,
        })
    }

    /// An admin's message to every user with `role` (everyone when
    /// `None`), in-app and, for those who want announcements, by mail.
    /// Returns how many users it reached.
    pub async fn broadcast(
        &self,
        caller: &Caller,
        title: &str,
        body: &str,
        role: Option<Role>,
    ) -> Result<usize, ServiceError> {
        if caller.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins may broadcast".into()).into());
        }
        let title = check_text("title", title, 120)?;
        let body = check_text("body", body, 2000)?;
        let id = new_id();
        // users_by_role is read one role at a time: its rows are kept by
        // role (a partition per role on ScyllaDB).
        let roles = role.map_or(Role::ALL.to_vec(), |r| vec![r]);
        let mut reached = 0;
        for role in roles {
            let prefix = format!("{}|", role.as_str());
            let mut after: Option<String> = None;
            while reached < MAX_BROADCAST {
                let page = self
                    .store
                    .scan(USERS_BY_ROLE, &prefix, after.as_deref(), 512)
                    .await?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = Some(last.clone());
                let n = Notification {
                    id: format!("broadcast:{id}"),
                    kind: "announcement".into(),
                    title: title.clone(),
                    body: body.clone(),
                    order_id: None,
                    created_at: Utc::now(),
                    read: false,
                };
                let to: Vec<_> = page
                    .into_iter()
                    .take(MAX_BROADCAST - reached)
                    .map(|(key, _)| {
                        let user_id = key.split_once('|').map_or(key.as_str(), |(_, id)| id);
                        (user_id.into(), n.clone())
                    })
                    .collect();
                reached += to.len();
                self.notify_each(to, BROADCAST_CONCURRENCY).await?;
            }
        }
        self.mailer.wake();
        Ok(reached)
    }
}

impl Notifications {
    /// The caller's notifications, newest first, and how many are unread.
    pub async fn notifications(
        &self,
        user_id: &str,
    ) -> Result<(Vec<Notification>, usize), ServiceError> {
        let items = self.users.notifications(user_id).await?;
        let unread = items.iter().filter(|n| !n.read).count();
        Ok((items, unread))
    }

    pub async fn mark_notification_read(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<(), ServiceError> {
        Ok(self.users.mark_read(user_id, id.to_owned()).await?)
    }
}

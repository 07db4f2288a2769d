//! The user actor's state and the data it keeps.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::user::{Address, Suspension, UserView};
use crate::domain::Role;

pub struct User;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: crate::domain::ids::UserId,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// Set while the account is suspended.
    #[serde(default)]
    pub suspension: Option<Suspension>,
    /// When its owner erased it (then nothing personal is left).
    #[serde(default)]
    pub erased_at: Option<DateTime<Utc>>,
}

impl Account {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            phone: self.phone.clone(),
            role: self.role,
            created_at: self.created_at,
            suspension: self.suspension.clone(),
        }
    }
}

/// A login session; its refresh token id rotates on every refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub sid: String,
    pub refresh_jti: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub account: Option<Account>,
    /// Oldest first; at most `MAX_SESSIONS`.
    pub sessions: Vec<Session>,
    /// At most `MAX_ADDRESSES`; exactly one is default when any exist.
    pub addresses: Vec<Address>,
    /// In-app notifications, oldest first; at most `MAX_NOTIFICATIONS`.
    /// Persistent (imbl): each decision works on a copy of the state, and
    /// copying this list is then a reference count, not up to 200
    /// notifications; decoded through a `Vec` (see `codec::via`).
    #[serde(
        default,
        deserialize_with = "crate::store::codec::via::<_, Vec<Notification>, _>"
    )]
    pub notifications: imbl::Vector<Notification>,
    /// Which notifications are mailed too.
    #[serde(default)]
    pub mail_prefs: MailPrefs,
    /// A pending password reset.
    #[serde(default)]
    pub reset: Option<PendingReset>,
    /// When the latest reset codes were issued (newest last; at most
    /// `MAX_RESET_HISTORY`): the daily cap counts them.
    #[serde(default)]
    pub reset_requests: VecDeque<DateTime<Utc>>,
}

/// Reset-code issue times kept per account (bounds the daily cap).
pub const MAX_RESET_HISTORY: usize = 64;

/// A password-reset code waiting to be used (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingReset {
    pub code_hash: String,
    pub expires_at: DateTime<Utc>,
    pub attempts: u32,
    pub requested_at: DateTime<Utc>,
}

/// A new reset code is not issued more often than this.
pub const RESET_COOLDOWN_SECS: i64 = 30;

/// Notifications kept per user (the oldest go first).
pub const MAX_NOTIFICATIONS: usize = 200;

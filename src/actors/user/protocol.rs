//! What the user actor is asked (commands), answers (replies) and records
//! (events): all serializable, so a command can travel to another node unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::*;
use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::user::{Address, AddressInput, UserView};
use crate::domain::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserEvent {
    Registered {
        id: String,
        email: String,
        name: String,
        role: Role,
        password_hash: String,
        at: DateTime<Utc>,
    },
    ProfileUpdated {
        name: String,
        phone: Option<String>,
        at: DateTime<Utc>,
    },
    RoleChanged {
        role: Role,
        at: DateTime<Utc>,
    },
    /// An admin suspended the account (its sessions end in the same append).
    Suspended {
        reason: String,
        by: String,
        at: DateTime<Utc>,
    },
    /// The user erased their account: every personal field is replaced
    /// or emptied; no session, login or read of it works again.
    Erased {
        at: DateTime<Utc>,
    },
    /// An admin lifted the suspension.
    Reactivated {
        by: String,
        at: DateTime<Utc>,
    },
    SessionStarted {
        sid: String,
        refresh_jti: String,
        expires_at: DateTime<Utc>,
    },
    SessionRotated {
        sid: String,
        refresh_jti: String,
        expires_at: DateTime<Utc>,
    },
    SessionEnded {
        sid: String,
        reason: String,
        at: DateTime<Utc>,
    },
    AddressAdded {
        address: Address,
    },
    AddressUpdated {
        address: Address,
    },
    AddressRemoved {
        id: String,
    },
    DefaultAddressSet {
        id: String,
    },
    Notified {
        notification: Notification,
    },
    NotificationRead {
        id: String,
        at: DateTime<Utc>,
    },
    AllNotificationsRead {
        at: DateTime<Utc>,
    },
    MailPrefsSet {
        prefs: MailPrefs,
    },
    ResetRequested {
        code_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    ResetAttemptFailed,
    /// The password was replaced (by a reset); every session ends.
    PasswordChanged {
        password_hash: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserCommand {
    Register {
        email: String,
        name: String,
        role: Role,
        password_hash: String,
    },
    Get,
    /// The account including its password hash (for login).
    Credentials,
    StartSession {
        sid: String,
        refresh_jti: String,
        expires_at: DateTime<Utc>,
    },
    /// Rotate a session's refresh token. A token that is not the current
    /// one (a replayed, stolen token) ends the whole session.
    Rotate {
        sid: String,
        presented_jti: String,
        new_jti: String,
        expires_at: DateTime<Utc>,
    },
    EndSession {
        sid: String,
    },
    /// End every session (an admin's revocation); answers how many.
    EndAllSessions {
        reason: String,
    },
    /// Is this session live? Answers the account and its default address
    /// when it is (`Session`): what a request needs of its caller, in the
    /// one round trip that authenticates it.
    CheckSession {
        sid: String,
    },
    UpdateProfile {
        name: Option<String>,
        phone: Option<String>,
    },
    /// A new role; every session ends with it (the next login carries
    /// the new role, and no socket keeps what the old one could see).
    SetRole(Role),
    /// Suspend the account: every session ends, no new one starts.
    Suspend {
        reason: String,
        by: String,
    },
    Reactivate {
        by: String,
    },
    AddAddress {
        id: String,
        input: AddressInput,
    },
    UpdateAddress {
        id: String,
        input: AddressInput,
    },
    RemoveAddress {
        id: String,
    },
    ListAddresses,
    /// Deliver a notification (no effect if its id is already there).
    Notify(Notification),
    Notifications,
    MarkRead {
        id: String,
    },
    MarkAllRead,
    GetMailPrefs,
    SetMailPrefs(MailPrefs),
    /// Keep the hash of a new reset code (refused while a recent one is
    /// still pending).
    RequestReset {
        code_hash: String,
        expires_at: DateTime<Utc>,
        /// Codes an account may be sent per 24 hours (refused beyond).
        max_per_day: u32,
    },
    /// Replace the password if `code_hash` matches the pending code.
    ResetPassword {
        code_hash: String,
        password_hash: String,
        max_attempts: u32,
    },
    /// Everything the entity holds about the user (for their export).
    Export,
    /// Erase the account (its sessions end in the same append); answers
    /// the email it had.
    Erase,
    /// Replace the password its owner just proved to know: the one whose
    /// hash is `verified_hash` (refused if it changed meanwhile).
    ChangePassword {
        verified_hash: String,
        password_hash: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum UserReply {
    Account(UserView),
    /// A live session's account and default delivery address.
    Session(UserView, Option<Address>),
    Credentials(Account),
    Addresses(Vec<Address>),
    Address(Address),
    /// The refresh token was refused (and the session ended).
    Refused,
    Notifications(Vec<Notification>),
    MailPrefs(MailPrefs),
    Export(Box<UserExport>),
    /// The email the erased account had.
    Erased(String),
    Done,
}

/// What the user entity holds about its user, as their export shows it
/// (never the password hash, refresh-token ids or reset codes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserExport {
    pub account: UserView,
    pub addresses: Vec<Address>,
    pub notifications: Vec<Notification>,
    pub mail_preferences: MailPrefs,
    /// Live sign-ins: session id and when its refresh token expires.
    pub sessions: Vec<(String, DateTime<Utc>)>,
    /// When password-reset codes were mailed (the last 24 h or so).
    pub reset_requests: Vec<DateTime<Utc>>,
}

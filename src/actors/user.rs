//! The user entity: account, sessions (refresh-token rotation, logout) and
//! delivery addresses. One actor per user id.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Entity};
use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::user::{
    check_address, check_phone, default_after_add, default_after_remove, set_default, Address,
    AddressInput, UserView, MAX_ADDRESSES, MAX_SESSIONS,
};
use crate::domain::{check_text, DomainError, Role};
use crate::live::{LiveEvent, Topic, UserLive};
use crate::mail::{outbox_row, templates, OutMail};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::USERS_BY_ROLE;
use crate::store::IndexOp;

pub struct User;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
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
    #[serde(default)]
    pub notifications: VecDeque<Notification>,
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
    /// Is this session live? Answers the account when it is.
    CheckSession {
        sid: String,
    },
    UpdateProfile {
        name: Option<String>,
        phone: Option<String>,
    },
    SetRole(Role),
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
}

#[derive(Debug)]
pub enum UserReply {
    Account(UserView),
    Credentials(Account),
    Addresses(Vec<Address>),
    Address(Address),
    /// The refresh token was refused (and the session ended).
    Refused,
    Notifications(Vec<Notification>),
    MailPrefs(MailPrefs),
    Done,
}

fn account(state: &UserState) -> Result<&Account, DomainError> {
    state.account.as_ref().ok_or(DomainError::NotFound("user"))
}

fn live_session<'a>(state: &'a UserState, sid: &str, now: DateTime<Utc>) -> Option<&'a Session> {
    state
        .sessions
        .iter()
        .find(|s| s.sid == sid && s.expires_at > now)
}

impl Entity for User {
    const KIND: &'static str = "user";
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;
    type Reply = UserReply;
    type Rejection = DomainError;

    fn decide(
        state: &UserState,
        cmd: UserCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<UserEvent>, UserReply), DomainError> {
        let now = ctx.now;
        match cmd {
            UserCommand::Register {
                email,
                name,
                role,
                password_hash,
            } => {
                if state.account.is_some() {
                    return Err(DomainError::Conflict {
                        code: "already_exists",
                        message: "this user is already registered".into(),
                    });
                }
                let ev = UserEvent::Registered {
                    id: ctx.id.to_owned(),
                    email,
                    name,
                    role,
                    password_hash,
                    at: now,
                };
                let view = User::evolve(state, std::slice::from_ref(&ev))
                    .account
                    .expect("registered")
                    .view();
                Ok((vec![ev], UserReply::Account(view)))
            }
            UserCommand::Get => Ok((vec![], UserReply::Account(account(state)?.view()))),
            UserCommand::Credentials => {
                Ok((vec![], UserReply::Credentials(account(state)?.clone())))
            }
            UserCommand::StartSession {
                sid,
                refresh_jti,
                expires_at,
            } => {
                account(state)?;
                // Drop expired sessions, then the oldest ones beyond the bound.
                let mut events: Vec<UserEvent> = state
                    .sessions
                    .iter()
                    .filter(|s| s.expires_at <= now)
                    .map(|s| UserEvent::SessionEnded {
                        sid: s.sid.clone(),
                        reason: "expired".into(),
                        at: now,
                    })
                    .collect();
                let live: Vec<&Session> = state
                    .sessions
                    .iter()
                    .filter(|s| s.expires_at > now)
                    .collect();
                let excess = (live.len() + 1).saturating_sub(MAX_SESSIONS);
                events.extend(live.iter().take(excess).map(|s| UserEvent::SessionEnded {
                    sid: s.sid.clone(),
                    reason: "session limit".into(),
                    at: now,
                }));
                events.push(UserEvent::SessionStarted {
                    sid,
                    refresh_jti,
                    expires_at,
                });
                Ok((events, UserReply::Done))
            }
            UserCommand::Rotate {
                sid,
                presented_jti,
                new_jti,
                expires_at,
            } => {
                let view = account(state)?.view();
                match live_session(state, &sid, now) {
                    None => Ok((vec![], UserReply::Refused)),
                    Some(s) if s.refresh_jti != presented_jti => Ok((
                        vec![UserEvent::SessionEnded {
                            sid,
                            reason: "refresh token reuse".into(),
                            at: now,
                        }],
                        UserReply::Refused,
                    )),
                    Some(_) => Ok((
                        vec![UserEvent::SessionRotated {
                            sid,
                            refresh_jti: new_jti,
                            expires_at,
                        }],
                        UserReply::Account(view),
                    )),
                }
            }
            UserCommand::EndSession { sid } => {
                if state.sessions.iter().any(|s| s.sid == sid) {
                    Ok((
                        vec![UserEvent::SessionEnded {
                            sid,
                            reason: "logout".into(),
                            at: now,
                        }],
                        UserReply::Done,
                    ))
                } else {
                    Ok((vec![], UserReply::Done))
                }
            }
            UserCommand::EndAllSessions { reason } => {
                let acc = account(state)?.view();
                let events = state
                    .sessions
                    .iter()
                    .map(|s| UserEvent::SessionEnded {
                        sid: s.sid.clone(),
                        reason: reason.clone(),
                        at: now,
                    })
                    .collect();
                Ok((events, UserReply::Account(acc)))
            }
            UserCommand::CheckSession { sid } => {
                let acc =
                    account(state).map_err(|_| DomainError::Unauthorized("unknown user".into()))?;
                if live_session(state, &sid, now).is_none() {
                    return Err(DomainError::Unauthorized("the session has ended".into()));
                }
                Ok((vec![], UserReply::Account(acc.view())))
            }
            UserCommand::UpdateProfile { name, phone } => {
                let acc = account(state)?;
                let name = match name {
                    Some(n) => check_text("name", &n, 100)?,
                    None => acc.name.clone(),
                };
                let phone = match phone {
                    Some(p) => check_phone(&p)?,
                    None => acc.phone.clone(),
                };
                let ev = UserEvent::ProfileUpdated {
                    name,
                    phone,
                    at: now,
                };
                let view = User::evolve(state, std::slice::from_ref(&ev))
                    .account
                    .expect("exists")
                    .view();
                Ok((vec![ev], UserReply::Account(view)))
            }
            UserCommand::SetRole(role) => {
                let acc = account(state)?;
                if acc.role == role {
                    return Ok((vec![], UserReply::Account(acc.view())));
                }
                let mut view = acc.view();
                view.role = role;
                Ok((
                    vec![UserEvent::RoleChanged { role, at: now }],
                    UserReply::Account(view),
                ))
            }
            UserCommand::AddAddress { id, input } => {
                account(state)?;
                if state.addresses.len() >= MAX_ADDRESSES {
                    return Err(DomainError::Conflict {
                        code: "address_limit",
                        message: format!("a user keeps at most {MAX_ADDRESSES} addresses"),
                    });
                }
                let mut address = check_address(id, &input)?;
                let default = default_after_add(&state.addresses, &address);
                address.is_default = false;
                let mut events = vec![UserEvent::AddressAdded {
                    address: address.clone(),
                }];
                if let Some(id) = default {
                    events.push(UserEvent::DefaultAddressSet { id });
                }
                let next = User::evolve(state, &events);
                let added = next
                    .addresses
                    .iter()
                    .find(|a| a.id == address.id)
                    .cloned()
                    .expect("added");
                Ok((events, UserReply::Address(added)))
            }
            UserCommand::UpdateAddress { id, input } => {
                account(state)?;
                let current = state
                    .addresses
                    .iter()
                    .find(|a| a.id == id)
                    .ok_or(DomainError::NotFound("address"))?;
                if current.is_default && !input.is_default {
                    return Err(DomainError::Conflict {
                        code: "default_address_required",
                        message: "make another address the default instead of unsetting this one"
                            .into(),
                    });
                }
                let mut address = check_address(id.clone(), &input)?;
                address.is_default = current.is_default;
                let mut events = vec![UserEvent::AddressUpdated { address }];
                if input.is_default && !current.is_default {
                    events.push(UserEvent::DefaultAddressSet { id: id.clone() });
                }
                let next = User::evolve(state, &events);
                let updated = next
                    .addresses
                    .iter()
                    .find(|a| a.id == id)
                    .cloned()
                    .expect("exists");
                Ok((events, UserReply::Address(updated)))
            }
            UserCommand::RemoveAddress { id } => {
                account(state)?;
                if !state.addresses.iter().any(|a| a.id == id) {
                    return Err(DomainError::NotFound("address"));
                }
                let mut events = vec![];
                let next_default = default_after_remove(&state.addresses, &id);
                events.push(UserEvent::AddressRemoved { id });
                if let Some(id) = next_default {
                    events.push(UserEvent::DefaultAddressSet { id });
                }
                Ok((events, UserReply::Done))
            }
            UserCommand::ListAddresses => {
                account(state)?;
                Ok((vec![], UserReply::Addresses(state.addresses.clone())))
            }
            UserCommand::Notify(notification) => {
                account(state)?;
                if state.notifications.iter().any(|n| n.id == notification.id) {
                    return Ok((vec![], UserReply::Done));
                }
                Ok((vec![UserEvent::Notified { notification }], UserReply::Done))
            }
            UserCommand::Notifications => {
                account(state)?;
                Ok((
                    vec![],
                    UserReply::Notifications(state.notifications.iter().rev().cloned().collect()),
                ))
            }
            UserCommand::MarkAllRead => {
                account(state)?;
                if state.notifications.iter().all(|n| n.read) {
                    return Ok((vec![], UserReply::Done));
                }
                Ok((
                    vec![UserEvent::AllNotificationsRead { at: now }],
                    UserReply::Done,
                ))
            }
            UserCommand::GetMailPrefs => {
                account(state)?;
                Ok((vec![], UserReply::MailPrefs(state.mail_prefs)))
            }
            UserCommand::SetMailPrefs(prefs) => {
                account(state)?;
                let events = if prefs == state.mail_prefs {
                    vec![]
                } else {
                    vec![UserEvent::MailPrefsSet { prefs }]
                };
                Ok((events, UserReply::MailPrefs(prefs)))
            }
            UserCommand::RequestReset {
                code_hash,
                expires_at,
                max_per_day,
            } => {
                account(state)?;
                let recent = state.reset.as_ref().is_some_and(|r| {
                    r.expires_at > now
                        && now - r.requested_at < chrono::Duration::seconds(RESET_COOLDOWN_SECS)
                });
                let today = state
                    .reset_requests
                    .iter()
                    .filter(|t| now - **t < chrono::Duration::days(1))
                    .count();
                if recent || today >= max_per_day as usize {
                    return Ok((vec![], UserReply::Refused));
                }
                Ok((
                    vec![UserEvent::ResetRequested {
                        code_hash,
                        expires_at,
                        at: now,
                    }],
                    UserReply::Done,
                ))
            }
            UserCommand::ResetPassword {
                code_hash,
                password_hash,
                max_attempts,
            } => {
                account(state)?;
                let expired = || DomainError::Conflict {
                    code: "otp_expired",
                    message: "this reset code is no longer valid: ask for a new one".into(),
                };
                let Some(reset) = state.reset.as_ref() else {
                    return Err(expired());
                };
                if reset.expires_at <= now || reset.attempts >= max_attempts {
                    return Err(expired());
                }
                let matches: bool =
                    subtle::ConstantTimeEq::ct_eq(reset.code_hash.as_bytes(), code_hash.as_bytes())
                        .into();
                if !matches {
                    // The failed attempt is recorded; the caller answers 422.
                    return Ok((vec![UserEvent::ResetAttemptFailed], UserReply::Refused));
                }
                Ok((
                    vec![UserEvent::PasswordChanged {
                        password_hash,
                        at: now,
                    }],
                    UserReply::Done,
                ))
            }
            UserCommand::MarkRead { id } => {
                account(state)?;
                match state.notifications.iter().find(|n| n.id == id) {
                    None => Err(DomainError::NotFound("notification")),
                    Some(n) if n.read => Ok((vec![], UserReply::Done)),
                    Some(_) => Ok((
                        vec![UserEvent::NotificationRead { id, at: now }],
                        UserReply::Done,
                    )),
                }
            }
        }
    }

    /// Mails the events cause, queued atomically with them (welcome;
    /// notifications the user wants by mail), and the role index.
    fn index(
        id: &str,
        before: &UserState,
        after: &UserState,
        events: &[UserEvent],
    ) -> Vec<IndexOp> {
        let Some(account) = after.account.as_ref() else {
            return vec![];
        };
        let mut ops = Vec::new();
        let old_role = before.account.as_ref().map(|a| a.role);
        if old_role != Some(account.role) {
            if let Some(role) = old_role {
                ops.push(IndexOp::Delete {
                    table: USERS_BY_ROLE,
                    key: format!("{}|{id}", role.as_str()),
                });
            }
            ops.push(IndexOp::Put {
                table: USERS_BY_ROLE,
                key: format!("{}|{id}", account.role.as_str()),
                value: Vec::new(),
            });
        }
        for event in events {
            let (mail_id, at, (subject, body)) = match event {
                UserEvent::Registered { at, .. } => (
                    format!("welcome:{id}"),
                    *at,
                    templates::welcome(&account.name),
                ),
                UserEvent::Notified { notification }
                    if after.mail_prefs.wants(&notification.kind) =>
                {
                    (
                        format!("note:{id}:{}", notification.id),
                        notification.created_at,
                        templates::notification(&account.name, notification),
                    )
                }
                _ => continue,
            };
            let mail = OutMail {
                id: mail_id,
                to: account.email.clone(),
                subject,
                body,
                attempts: 0,
                created_at: at,
                last_error: None,
            };
            ops.push(outbox_row(&mail, at));
        }
        ops
    }

    fn revokes(event: &UserEvent) -> Option<crate::live::Revocation> {
        use crate::live::Revocation;
        match event {
            UserEvent::SessionEnded { sid, .. } => Some(Revocation::Session(sid.clone())),
            UserEvent::PasswordChanged { .. } => Some(Revocation::AllSessions),
            _ => None,
        }
    }

    /// Public on `user:{id}`: profile, role, address and session-end
    /// changes. Never the password hash or refresh-token ids.
    fn publish(id: &str, event: &UserEvent) -> Option<(Topic, LiveEvent)> {
        let data = match event {
            UserEvent::Registered { .. }
            | UserEvent::SessionStarted { .. }
            | UserEvent::SessionRotated { .. }
            | UserEvent::ResetRequested { .. }
            | UserEvent::ResetAttemptFailed => return None,
            UserEvent::ProfileUpdated { name, phone, at } => UserLive::ProfileUpdated {
                name: name.clone(),
                phone: phone.clone(),
                at: *at,
            },
            UserEvent::RoleChanged { role, at } => UserLive::RoleChanged {
                role: *role,
                at: *at,
            },
            UserEvent::SessionEnded { sid, reason, at } => UserLive::SessionEnded {
                sid: sid.clone(),
                reason: reason.clone(),
                at: *at,
            },
            UserEvent::AddressAdded { address } => UserLive::AddressAdded {
                address: address.clone(),
            },
            UserEvent::AddressUpdated { address } => UserLive::AddressUpdated {
                address: address.clone(),
            },
            UserEvent::AddressRemoved { id } => UserLive::AddressRemoved { id: id.clone() },
            UserEvent::DefaultAddressSet { id } => UserLive::DefaultAddressSet { id: id.clone() },
            UserEvent::Notified { notification } => UserLive::Notification {
                notification: notification.clone(),
            },
            UserEvent::NotificationRead { id, at } => UserLive::NotificationRead {
                id: id.clone(),
                at: *at,
            },
            UserEvent::AllNotificationsRead { at } => UserLive::AllNotificationsRead { at: *at },
            UserEvent::MailPrefsSet { prefs } => UserLive::MailPreferences { email: *prefs },
            UserEvent::PasswordChanged { at, .. } => UserLive::PasswordChanged { at: *at },
        };
        Some((Topic::user(id), LiveEvent::User(data)))
    }

    fn apply(state: &mut UserState, event: &UserEvent) {
        match event {
            UserEvent::Registered {
                id,
                email,
                name,
                role,
                password_hash,
                at,
            } => {
                state.account = Some(Account {
                    id: id.clone(),
                    email: email.clone(),
                    name: name.clone(),
                    phone: None,
                    role: *role,
                    password_hash: password_hash.clone(),
                    created_at: *at,
                })
            }
            UserEvent::ProfileUpdated { name, phone, .. } => {
                if let Some(a) = state.account.as_mut() {
                    a.name = name.clone();
                    a.phone = phone.clone();
                }
            }
            UserEvent::RoleChanged { role, .. } => {
                if let Some(a) = state.account.as_mut() {
                    a.role = *role;
                }
            }
            UserEvent::SessionStarted {
                sid,
                refresh_jti,
                expires_at,
            } => state.sessions.push(Session {
                sid: sid.clone(),
                refresh_jti: refresh_jti.clone(),
                expires_at: *expires_at,
            }),
            UserEvent::SessionRotated {
                sid,
                refresh_jti,
                expires_at,
            } => {
                if let Some(s) = state.sessions.iter_mut().find(|s| &s.sid == sid) {
                    s.refresh_jti = refresh_jti.clone();
                    s.expires_at = *expires_at;
                }
            }
            UserEvent::SessionEnded { sid, .. } => state.sessions.retain(|s| &s.sid != sid),
            UserEvent::AddressAdded { address } => state.addresses.push(address.clone()),
            UserEvent::AddressUpdated { address } => {
                if let Some(a) = state.addresses.iter_mut().find(|a| a.id == address.id) {
                    *a = address.clone();
                }
            }
            UserEvent::AddressRemoved { id } => state.addresses.retain(|a| &a.id != id),
            UserEvent::DefaultAddressSet { id } => set_default(&mut state.addresses, id),
            UserEvent::Notified { notification } => {
                state.notifications.push_back(notification.clone());
                while state.notifications.len() > MAX_NOTIFICATIONS {
                    state.notifications.pop_front();
                }
            }
            UserEvent::NotificationRead { id, .. } => {
                if let Some(n) = state.notifications.iter_mut().find(|n| &n.id == id) {
                    n.read = true;
                }
            }
            UserEvent::AllNotificationsRead { .. } => {
                state.notifications.iter_mut().for_each(|n| n.read = true)
            }
            UserEvent::MailPrefsSet { prefs } => state.mail_prefs = *prefs,
            UserEvent::ResetRequested {
                code_hash,
                expires_at,
                at,
            } => {
                state.reset = Some(PendingReset {
                    code_hash: code_hash.clone(),
                    expires_at: *expires_at,
                    attempts: 0,
                    requested_at: *at,
                });
                state.reset_requests.push_back(*at);
                while state.reset_requests.len() > MAX_RESET_HISTORY {
                    state.reset_requests.pop_front();
                }
            }
            UserEvent::ResetAttemptFailed => {
                if let Some(r) = state.reset.as_mut() {
                    r.attempts += 1;
                }
            }
            UserEvent::PasswordChanged { password_hash, .. } => {
                if let Some(a) = state.account.as_mut() {
                    a.password_hash = password_hash.clone();
                }
                state.reset = None;
                state.sessions.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn registered(now: DateTime<Utc>) -> UserState {
        let ctx = Ctx { id: "u1", now };
        let cmd = UserCommand::Register {
            email: "a@example.com".into(),
            name: "A".into(),
            role: Role::Customer,
            password_hash: "h".into(),
        };
        let (events, _) = User::decide(&UserState::default(), cmd, &ctx).unwrap();
        User::evolve(&UserState::default(), &events)
    }

    fn run(state: &UserState, cmd: UserCommand, now: DateTime<Utc>) -> (UserState, UserReply) {
        let (events, reply) = User::decide(state, cmd, &Ctx { id: "u1", now }).unwrap();
        (User::evolve(state, &events), reply)
    }

    fn start(sid: &str, expires_at: DateTime<Utc>) -> UserCommand {
        UserCommand::StartSession {
            sid: sid.into(),
            refresh_jti: format!("{sid}-j"),
            expires_at,
        }
    }

    #[test]
    fn sessions_are_bounded_and_expired_ones_pruned() {
        let now = Utc::now();
        let mut s = registered(now);
        s = run(&s, start("old", now + Duration::seconds(1)), now).0;
        for i in 0..MAX_SESSIONS + 3 {
            s = run(
                &s,
                start(&format!("s{i}"), now + Duration::days(1)),
                now + Duration::seconds(2),
            )
            .0;
        }
        assert_eq!(s.sessions.len(), MAX_SESSIONS);
        assert!(
            s.sessions.iter().all(|x| x.sid != "old"),
            "expired session pruned"
        );
        assert_eq!(
            s.sessions.last().unwrap().sid,
            format!("s{}", MAX_SESSIONS + 2)
        );
        assert_eq!(
            s.sessions.first().unwrap().sid,
            "s3",
            "the oldest live sessions were ended first"
        );
    }

    #[test]
    fn rotation_accepts_only_the_current_refresh_token() {
        let now = Utc::now();
        let s = run(&registered(now), start("s", now + Duration::days(1)), now).0;
        let rotate = |presented: &str, new: &str| UserCommand::Rotate {
            sid: "s".into(),
            presented_jti: presented.into(),
            new_jti: new.into(),
            expires_at: now + Duration::days(2),
        };
        let (s2, reply) = run(&s, rotate("s-j", "j2"), now);
        assert!(matches!(reply, UserReply::Account(_)));
        assert_eq!(s2.sessions[0].refresh_jti, "j2");
        let (s3, reply) = run(&s2, rotate("s-j", "j3"), now);
        assert!(matches!(reply, UserReply::Refused));
        assert!(
            s3.sessions.is_empty(),
            "reuse of an old token ends the session"
        );
        let later = now + Duration::days(3);
        let (events, reply) = User::decide(
            &s2,
            rotate("j2", "j4"),
            &Ctx {
                id: "u1",
                now: later,
            },
        )
        .unwrap();
        assert!(
            events.is_empty() && matches!(reply, UserReply::Refused),
            "an expired session cannot be refreshed"
        );
        let err = User::decide(
            &s2,
            UserCommand::CheckSession { sid: "s".into() },
            &Ctx {
                id: "u1",
                now: later,
            },
        );
        assert!(matches!(err, Err(DomainError::Unauthorized(_))));
    }
}

//! The user entity: account, sessions (refresh-token rotation, logout) and
//! delivery addresses. One actor per user id.

mod client;
mod live;
mod protocol;
mod state;

pub use client::Rotation;
pub use protocol::*;
pub use state::*;

use chrono::{DateTime, Utc};

use crate::actors::{Ctx, Entity};
use crate::domain::user::{
    check_address, check_phone, default_after_add, default_after_remove, set_default,
    MAX_ADDRESSES, MAX_SESSIONS,
};
use crate::domain::{check_text, DomainError};
use crate::live::{LiveEvent, Topic};
use crate::mail::{outbox_row, templates, OutMail};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::USERS_BY_ROLE;
use crate::store::IndexOp;

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
        live::payload(id, event)
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
mod tests;

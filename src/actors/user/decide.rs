//! The user's decisions, one function per command: what each command
//! records and answers, or why it is refused. Pure: state and command in,
//! events and reply out.

use chrono::{DateTime, Utc};

use super::*;
use crate::actors::{Ctx, Entity};
use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::user::{
    check_address, check_phone, default_after_add, default_after_remove, AddressInput,
    MAX_ADDRESSES, MAX_SESSIONS,
};
use crate::domain::{check_text, DomainError, Role};

type Decided = Result<(Vec<UserEvent>, UserReply), DomainError>;

pub(super) fn register(
    state: &UserState,
    email: String,
    name: String,
    role: Role,
    password_hash: String,
    ctx: &Ctx<'_>,
) -> Decided {
    let now = ctx.now;
    if state.account.is_some() {
        return Err(DomainError::conflict(
            "already_exists",
            "this user is already registered",
        ));
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

pub(super) fn get(state: &UserState) -> Decided {
    Ok((vec![], UserReply::Account(account(state)?.view())))
}

pub(super) fn credentials(state: &UserState) -> Decided {
    Ok((vec![], UserReply::Credentials(account(state)?.clone())))
}

pub(super) fn start_session(
    state: &UserState,
    sid: String,
    refresh_jti: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decided {
    if account(state)?.suspension.is_some() {
        return Err(suspended());
    }
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

pub(super) fn rotate(
    state: &UserState,
    sid: String,
    presented_jti: String,
    new_jti: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decided {
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

pub(super) fn end_session(state: &UserState, sid: String, now: DateTime<Utc>) -> Decided {
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

/// The refusal of a session to a suspended account.
pub(crate) fn suspended() -> DomainError {
    DomainError::Forbidden("this account is suspended".into())
}

/// Every session of the account ends, for `reason`.
fn all_sessions_end(state: &UserState, reason: &str, now: DateTime<Utc>) -> Vec<UserEvent> {
    state
        .sessions
        .iter()
        .map(|s| UserEvent::SessionEnded {
            sid: s.sid.clone(),
            reason: reason.to_owned(),
            at: now,
        })
        .collect()
}

pub(super) fn end_all_sessions(state: &UserState, reason: String, now: DateTime<Utc>) -> Decided {
    let acc = account(state)?.view();
    Ok((
        all_sessions_end(state, &reason, now),
        UserReply::Account(acc),
    ))
}

/// The answer to an admin's change: the account as the events leave it.
fn changed(state: &UserState, events: Vec<UserEvent>) -> Decided {
    let view = User::evolve(state, &events).account.expect("exists").view();
    Ok((events, UserReply::Account(view)))
}

pub(super) fn suspend(
    state: &UserState,
    reason: String,
    by: String,
    now: DateTime<Utc>,
) -> Decided {
    let acc = account(state)?;
    if acc.suspension.is_some() {
        return Ok((vec![], UserReply::Account(acc.view())));
    }
    let reason = check_text("reason", &reason, 500)?;
    let mut events = vec![UserEvent::Suspended {
        reason,
        by,
        at: now,
    }];
    events.extend(all_sessions_end(state, "account suspended", now));
    changed(state, events)
}

pub(super) fn reactivate(state: &UserState, by: String, now: DateTime<Utc>) -> Decided {
    let acc = account(state)?;
    if acc.suspension.is_none() {
        return Ok((vec![], UserReply::Account(acc.view())));
    }
    changed(state, vec![UserEvent::Reactivated { by, at: now }])
}

pub(super) fn check_session(state: &UserState, sid: String, now: DateTime<Utc>) -> Decided {
    let acc = account(state).map_err(|_| DomainError::Unauthorized("unknown user".into()))?;
    if live_session(state, &sid, now).is_none() {
        return Err(DomainError::Unauthorized("the session has ended".into()));
    }
    let address = crate::domain::user::default_address(&state.addresses).cloned();
    Ok((vec![], UserReply::Session(acc.view(), address)))
}

pub(super) fn update_profile(
    state: &UserState,
    name: Option<String>,
    phone: Option<String>,
    now: DateTime<Utc>,
) -> Decided {
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

pub(super) fn set_role(state: &UserState, role: Role, now: DateTime<Utc>) -> Decided {
    let acc = account(state)?;
    if acc.role == role {
        return Ok((vec![], UserReply::Account(acc.view())));
    }
    let mut events = vec![UserEvent::RoleChanged { role, at: now }];
    events.extend(all_sessions_end(state, "role changed", now));
    changed(state, events)
}

pub(super) fn add_address(state: &UserState, id: String, input: AddressInput) -> Decided {
    account(state)?;
    if state.addresses.len() >= MAX_ADDRESSES {
        return Err(DomainError::conflict(
            "address_limit",
            format!("a user keeps at most {MAX_ADDRESSES} addresses"),
        ));
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

pub(super) fn update_address(state: &UserState, id: String, input: AddressInput) -> Decided {
    account(state)?;
    let current = state
        .addresses
        .iter()
        .find(|a| a.id == id)
        .ok_or(DomainError::NotFound("address"))?;
    if current.is_default && !input.is_default {
        return Err(DomainError::conflict(
            "default_address_required",
            "make another address the default instead of unsetting this one",
        ));
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

pub(super) fn remove_address(state: &UserState, id: String) -> Decided {
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

pub(super) fn list_addresses(state: &UserState) -> Decided {
    account(state)?;
    Ok((vec![], UserReply::Addresses(state.addresses.clone())))
}

pub(super) fn notify(state: &UserState, notification: Notification) -> Decided {
    // An erased account is told nothing (and its senders need not care).
    if state
        .account
        .as_ref()
        .is_some_and(|a| a.erased_at.is_some())
    {
        return Ok((vec![], UserReply::Done));
    }
    account(state)?;
    if state.notifications.iter().any(|n| n.id == notification.id) {
        return Ok((vec![], UserReply::Done));
    }
    Ok((vec![UserEvent::Notified { notification }], UserReply::Done))
}

pub(super) fn notifications(state: &UserState) -> Decided {
    account(state)?;
    Ok((
        vec![],
        UserReply::Notifications(state.notifications.iter().rev().cloned().collect()),
    ))
}

pub(super) fn mark_all_read(state: &UserState, now: DateTime<Utc>) -> Decided {
    account(state)?;
    if state.notifications.iter().all(|n| n.read) {
        return Ok((vec![], UserReply::Done));
    }
    Ok((
        vec![UserEvent::AllNotificationsRead { at: now }],
        UserReply::Done,
    ))
}

pub(super) fn get_mail_prefs(state: &UserState) -> Decided {
    account(state)?;
    Ok((vec![], UserReply::MailPrefs(state.mail_prefs)))
}

pub(super) fn set_mail_prefs(state: &UserState, prefs: MailPrefs) -> Decided {
    account(state)?;
    let events = if prefs == state.mail_prefs {
        vec![]
    } else {
        vec![UserEvent::MailPrefsSet { prefs }]
    };
    Ok((events, UserReply::MailPrefs(prefs)))
}

pub(super) fn request_reset(
    state: &UserState,
    code_hash: String,
    expires_at: DateTime<Utc>,
    max_per_day: u32,
    now: DateTime<Utc>,
) -> Decided {
    account(state)?;
    let recent = state.reset.as_ref().is_some_and(|r| {
        r.expires_at > now && now - r.requested_at < chrono::Duration::seconds(RESET_COOLDOWN_SECS)
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

pub(super) fn reset_password(
    state: &UserState,
    code_hash: String,
    password_hash: String,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Decided {
    account(state)?;
    let expired = || {
        DomainError::conflict(
            "otp_expired",
            "this reset code is no longer valid: ask for a new one",
        )
    };
    let Some(reset) = state.reset.as_ref() else {
        return Err(expired());
    };
    if reset.expires_at <= now || reset.attempts >= max_attempts {
        return Err(expired());
    }
    let matches: bool =
        subtle::ConstantTimeEq::ct_eq(reset.code_hash.as_bytes(), code_hash.as_bytes()).into();
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

pub(super) fn change_password(
    state: &UserState,
    verified_hash: String,
    password_hash: String,
    now: DateTime<Utc>,
) -> Decided {
    let a = account(state)?;
    let same: bool =
        subtle::ConstantTimeEq::ct_eq(a.password_hash.as_bytes(), verified_hash.as_bytes()).into();
    if !same {
        return Err(DomainError::conflict(
            "password_changed",
            "the password was changed meanwhile: check it again",
        ));
    }
    Ok((
        vec![UserEvent::PasswordChanged {
            password_hash,
            at: now,
        }],
        UserReply::Done,
    ))
}

pub(super) fn mark_read(state: &UserState, id: String, now: DateTime<Utc>) -> Decided {
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

pub(super) fn export(state: &UserState) -> Decided {
    let a = account(state)?;
    Ok((
        vec![],
        UserReply::Export(Box::new(UserExport {
            account: a.view(),
            addresses: state.addresses.clone(),
            notifications: state.notifications.iter().rev().cloned().collect(),
            mail_preferences: state.mail_prefs,
            sessions: state
                .sessions
                .iter()
                .map(|s| (s.sid.clone(), s.expires_at))
                .collect(),
            reset_requests: state.reset_requests.iter().copied().collect(),
        })),
    ))
}

pub(super) fn erase(state: &UserState, now: DateTime<Utc>) -> Decided {
    let a = account(state)?;
    let email = a.email.clone();
    let mut events = all_sessions_end(state, "account erased", now);
    events.push(UserEvent::Erased { at: now });
    Ok((events, UserReply::Erased(email)))
}

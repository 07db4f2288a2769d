//! The user entity: account, sessions (refresh-token rotation, logout) and
//! delivery addresses. One actor per user id.

mod apply;
mod client;
mod decide;
mod live;
mod protocol;
mod state;

pub use client::Rotation;
pub use protocol::*;
pub use state::*;

use chrono::{DateTime, Utc};

use crate::actors::{Ctx, Entity};
use crate::domain::DomainError;
use crate::live::{LiveEvent, Topic};
use crate::mail::{outbox_row, templates, OutMail};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{USERS_BY_EMAIL, USERS_BY_ROLE};
use crate::store::{codec, IndexOp};

/// The version of the `UserView` rows of `users_by_role` and
/// `users_by_email` (rows written before it hold no value).
pub const USER_ROW_VERSION: u16 = 1;

/// The account, unless there is none or it was erased.
fn account(state: &UserState) -> Result<&Account, DomainError> {
    state
        .account
        .as_ref()
        .filter(|a| a.erased_at.is_none())
        .ok_or(DomainError::NotFound("user"))
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
        use decide as d;
        let now = ctx.now;
        match cmd {
            UserCommand::Register {
                email,
                name,
                role,
                password_hash,
            } => d::register(state, email, name, role, password_hash, ctx),
            UserCommand::Get => d::get(state),
            UserCommand::Credentials => d::credentials(state),
            UserCommand::StartSession {
                sid,
                refresh_jti,
                expires_at,
            } => d::start_session(state, sid, refresh_jti, expires_at, now),
            UserCommand::Rotate {
                sid,
                presented_jti,
                new_jti,
                expires_at,
            } => d::rotate(state, sid, presented_jti, new_jti, expires_at, now),
            UserCommand::EndSession { sid } => d::end_session(state, sid, now),
            UserCommand::EndAllSessions { reason } => d::end_all_sessions(state, reason, now),
            UserCommand::CheckSession { sid } => d::check_session(state, sid, now),
            UserCommand::UpdateProfile { name, phone } => {
                d::update_profile(state, name, phone, now)
            }
            UserCommand::SetRole(role) => d::set_role(state, role, now),
            UserCommand::Suspend { reason, by } => d::suspend(state, reason, by, now),
            UserCommand::Reactivate { by } => d::reactivate(state, by, now),
            UserCommand::AddAddress { id, input } => d::add_address(state, id, input),
            UserCommand::UpdateAddress { id, input } => d::update_address(state, id, input),
            UserCommand::RemoveAddress { id } => d::remove_address(state, id),
            UserCommand::ListAddresses => d::list_addresses(state),
            UserCommand::Notify(notification) => d::notify(state, notification),
            UserCommand::Notifications => d::notifications(state),
            UserCommand::MarkAllRead => d::mark_all_read(state, now),
            UserCommand::GetMailPrefs => d::get_mail_prefs(state),
            UserCommand::SetMailPrefs(prefs) => d::set_mail_prefs(state, prefs),
            UserCommand::RequestReset {
                code_hash,
                expires_at,
                max_per_day,
            } => d::request_reset(state, code_hash, expires_at, max_per_day, now),
            UserCommand::ResetPassword {
                code_hash,
                password_hash,
                max_attempts,
            } => d::reset_password(state, code_hash, password_hash, max_attempts, now),
            UserCommand::ChangePassword {
                verified_hash,
                password_hash,
            } => d::change_password(state, verified_hash, password_hash, now),
            UserCommand::MarkRead { id } => d::mark_read(state, id, now),
            UserCommand::Export => d::export(state),
            UserCommand::Erase => d::erase(state, now),
        }
    }

    /// Mails the events cause, queued atomically with them (welcome;
    /// notifications the user wants by mail), and the account's rows in
    /// the role and email listings whenever its public view changes.
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
        // Most appends (notifications, sessions) leave the account as it
        // was: its views are built only when it changed.
        let changed = before.account.as_ref() != Some(account);
        let view = changed.then(|| account.view());
        let old = changed
            .then(|| before.account.as_ref().map(Account::view))
            .flatten();
        if let Some(view) = view.filter(|v| old.as_ref() != Some(v)) {
            if let Some(old) = old.as_ref().filter(|o| o.role != view.role) {
                ops.push(IndexOp::Delete {
                    table: USERS_BY_ROLE,
                    key: format!("{}|{id}", old.role.as_str()),
                });
            }
            // An erased account's email leaves the listing with it.
            if let Some(old) = old.as_ref().filter(|o| o.email != view.email) {
                ops.push(IndexOp::Delete {
                    table: USERS_BY_EMAIL,
                    key: old.email.clone(),
                });
            }
            let value = codec::encode(USER_ROW_VERSION, &view).expect("user views encode");
            let role_key = format!("{}|{id}", view.role.as_str());
            if account.erased_at.is_some() {
                // Gone from the listings (and from broadcasts).
                ops.push(IndexOp::Delete {
                    table: USERS_BY_ROLE,
                    key: role_key,
                });
            } else {
                ops.push(IndexOp::Put {
                    table: USERS_BY_ROLE,
                    key: role_key,
                    value: value.clone(),
                });
                ops.push(IndexOp::Put {
                    table: USERS_BY_EMAIL,
                    key: view.email.clone(),
                    value,
                });
            }
        }
        for event in events {
            if let UserEvent::Registered { at, .. } = event {
                let key = format!("user:{id}:registered");
                let fact = crate::domain::stats::Fact::UserRegistered;
                ops.push(crate::actors::entity::stats_fact(*at, &key, &fact));
            }
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
            UserEvent::PasswordChanged { .. }
            | UserEvent::Suspended { .. }
            | UserEvent::Erased { .. } => Some(Revocation::AllSessions),
            _ => None,
        }
    }

    /// Public on `user:{id}`: profile, role, address and session-end
    /// changes. Never the password hash or refresh-token ids.
    fn publish(id: &str, event: &UserEvent) -> Option<(Topic, LiveEvent)> {
        live::payload(id, event)
    }

    fn apply(state: &mut UserState, event: &UserEvent) {
        apply::apply(state, event)
    }
}

#[cfg(test)]
mod tests;

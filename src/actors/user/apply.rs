//! How a user's events change its state, by theme: the account, its
//! sessions, its addresses and its notifications.

use super::{Account, PendingReset, Session, UserEvent, UserState};
use super::{MAX_NOTIFICATIONS, MAX_RESET_HISTORY};
use crate::domain::user::{set_default, Suspension};

pub(super) fn apply(state: &mut UserState, event: &UserEvent) {
    use UserEvent as E;
    // Exhaustive on purpose: a new event must be given a theme.
    match event {
        E::Registered { .. }
        | E::ProfileUpdated { .. }
        | E::RoleChanged { .. }
        | E::Suspended { .. }
        | E::Reactivated { .. }
        | E::Erased { .. }
        | E::ResetRequested { .. }
        | E::ResetAttemptFailed
        | E::PasswordChanged { .. } => account(state, event),
        E::SessionStarted { .. } | E::SessionRotated { .. } | E::SessionEnded { .. } => {
            sessions(state, event)
        }
        E::AddressAdded { .. }
        | E::AddressUpdated { .. }
        | E::AddressRemoved { .. }
        | E::DefaultAddressSet { .. } => addresses(state, event),
        E::Notified { .. }
        | E::NotificationRead { .. }
        | E::AllNotificationsRead { .. }
        | E::MailPrefsSet { .. } => notifications(state, event),
    }
}

fn account(state: &mut UserState, event: &UserEvent) {
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
                id: id.clone().into(),
                email: email.clone(),
                name: name.clone(),
                phone: None,
                role: *role,
                password_hash: password_hash.clone(),
                created_at: *at,
                suspension: None,
                erased_at: None,
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
        UserEvent::Suspended { reason, at, .. } => {
            if let Some(a) = state.account.as_mut() {
                a.suspension = Some(Suspension {
                    reason: reason.clone(),
                    at: *at,
                });
            }
        }
        UserEvent::Erased { at } => {
            if let Some(a) = state.account.as_mut() {
                a.email = format!("erased+{}@invalid", a.id);
                a.name = "Deleted user".into();
                a.phone = None;
                a.password_hash = String::new();
                a.suspension = None;
                a.erased_at = Some(*at);
            }
            state.sessions.clear();
            state.addresses.clear();
            state.notifications.clear();
            state.mail_prefs = crate::domain::notification::MailPrefs {
                orders: false,
                delivery: false,
                enrollment: false,
                announcements: false,
                inventory: false,
            };
            state.reset = None;
            state.reset_requests.clear();
        }
        UserEvent::Reactivated { .. } => {
            if let Some(a) = state.account.as_mut() {
                a.suspension = None;
            }
        }
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
        _ => {}
    }
}

fn sessions(state: &mut UserState, event: &UserEvent) {
    match event {
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
        _ => {}
    }
}

fn addresses(state: &mut UserState, event: &UserEvent) {
    match event {
        UserEvent::AddressAdded { address } => state.addresses.push(address.clone()),
        UserEvent::AddressUpdated { address } => {
            if let Some(a) = state.addresses.iter_mut().find(|a| a.id == address.id) {
                *a = address.clone();
            }
        }
        UserEvent::AddressRemoved { id } => state.addresses.retain(|a| &a.id != id),
        UserEvent::DefaultAddressSet { id } => set_default(&mut state.addresses, id),
        _ => {}
    }
}

fn notifications(state: &mut UserState, event: &UserEvent) {
    match event {
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
        _ => {}
    }
}

//! What of the user's events live watchers see.

use super::*;
use crate::live::{LiveEvent, Topic, UserLive};

/// Public on `user:{id}`: profile, role, address and session-end
/// changes. Never the password hash or refresh-token ids.
pub(super) fn payload(id: &str, event: &UserEvent) -> Option<(Topic, LiveEvent)> {
    let data = match event {
        UserEvent::Registered { .. }
        | UserEvent::SessionStarted { .. }
        | UserEvent::SessionRotated { .. }
        | UserEvent::ResetRequested { .. }
        | UserEvent::ResetAttemptFailed
        // The user hears of it as their sessions ending ("account
        // suspended"); there is nobody signed in to hear a reactivation.
        | UserEvent::Suspended { .. }
        | UserEvent::Reactivated { .. }
        | UserEvent::Erased { .. } => return None,
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

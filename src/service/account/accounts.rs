//! The admin's console over accounts: the user listing (by email prefix,
//! by role), suspension and role changes. Every method is for admins only.

use std::sync::Arc;

use crate::actors::user::{User, USERS_BY_EMAIL, USERS_BY_ROLE, USER_ROW_VERSION};
use crate::actors::Registry;
use crate::domain::user::UserView;
use crate::domain::{Caller, DomainError, Role};
use crate::service::products::catalog::{decode_cursor, encode_cursor, Page};
use crate::service::{found, ServiceError};
use crate::store::{codec, Store};

/// Which users a listing returns.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Emails starting with this (compared in lower case).
    pub email: Option<String>,
    pub role: Option<Role>,
    /// Only suspended (`Some(true)`) or only active (`Some(false)`) accounts.
    pub suspended: Option<bool>,
}

impl UserFilter {
    fn keeps(&self, u: &UserView) -> bool {
        self.role.is_none_or(|r| u.role == r)
            && self.email.as_deref().is_none_or(|e| u.email.starts_with(e))
            && self.suspended.is_none_or(|s| u.suspension.is_some() == s)
    }
}

/// Accounts as an admin manages them.
pub struct Accounts {
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) store: Arc<dyn Store>,
    /// A seller's shops follow their seller rights.
    pub(in crate::service) catalog: crate::service::products::moderation::CatalogModeration,
}

fn admin_only(caller: &Caller) -> Result<(), ServiceError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only admins manage accounts".into()).into())
    }
}

/// An admin cannot suspend or demote themselves (nor lock the platform out
/// of its last admin by doing so).
fn not_self(caller: &Caller, id: &str) -> Result<(), ServiceError> {
    if caller.user_id.as_str() == id {
        Err(DomainError::conflict(
            "own_account",
            "admins cannot suspend themselves or change their own role",
        )
        .into())
    } else {
        Ok(())
    }
}

impl Accounts {
    /// Users in email order (or, filtered by role alone, in id order within
    /// the role). A page holds the matches among the next `limit` accounts
    /// scanned, so a filtered page may be short while `next_cursor` still
    /// leads on.
    pub async fn list(
        &self,
        caller: &Caller,
        filter: UserFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<UserView>, ServiceError> {
        admin_only(caller)?;
        let filter = UserFilter {
            email: filter.email.map(|e| e.trim().to_lowercase()),
            ..filter
        };
        let (table, prefix) = match (&filter.email, filter.role) {
            (None, Some(role)) => (USERS_BY_ROLE, format!("{}|", role.as_str())),
            (email, _) => (USERS_BY_EMAIL, email.clone().unwrap_or_default()),
        };
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .scan(table, &prefix, after.as_deref(), limit)
            .await?;
        let next_cursor = (rows.len() == limit)
            .then(|| rows.last().map(|(k, _)| encode_cursor(k)))
            .flatten();
        let mut items = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let user = if value.is_empty() {
                // A role row from before the rows held the view.
                let id = key.split_once('|').map(|(_, id)| id).unwrap_or(&key);
                self.users.account(id).await?
            } else {
                codec::decode::<UserView>(USER_ROW_VERSION, &value)?
            };
            if filter.keeps(&user) {
                items.push(user);
            }
        }
        Ok(Page { items, next_cursor })
    }

    /// One user, as an admin sees them.
    pub async fn user(&self, caller: &Caller, id: &str) -> Result<UserView, ServiceError> {
        admin_only(caller)?;
        found(&self.users, id, "user").await?;
        Ok(self.users.account(id).await?)
    }

    /// Suspends `id`: every session and socket of it ends at once and no
    /// login succeeds until it is reactivated. Suspending a suspended
    /// account changes nothing. A suspended seller's shops leave the
    /// storefront until the account is reactivated.
    pub async fn suspend(
        &self,
        caller: &Caller,
        id: &str,
        reason: String,
    ) -> Result<UserView, ServiceError> {
        admin_only(caller)?;
        found(&self.users, id, "user").await?;
        not_self(caller, id)?;
        let user = self
            .users
            .suspend(id, reason, caller.user_id.to_string())
            .await?;
        self.catalog.follow_seller_rights(caller, &user).await?;
        Ok(user)
    }

    pub async fn reactivate(&self, caller: &Caller, id: &str) -> Result<UserView, ServiceError> {
        admin_only(caller)?;
        found(&self.users, id, "user").await?;
        let user = self
            .users
            .reactivate(id, caller.user_id.to_string())
            .await?;
        self.catalog.follow_seller_rights(caller, &user).await?;
        Ok(user)
    }

    /// Gives `id` another role; its sessions end (the next login carries
    /// the new role, and no socket keeps what the old role could watch).
    /// A merchant made another role keeps no seller right (every merchant
    /// operation requires the role) and their shops leave the storefront
    /// until they are a merchant again.
    pub async fn set_role(
        &self,
        caller: &Caller,
        id: &str,
        role: Role,
    ) -> Result<UserView, ServiceError> {
        admin_only(caller)?;
        found(&self.users, id, "user").await?;
        not_self(caller, id)?;
        let user = self.users.set_role(id, role).await?;
        self.catalog.follow_seller_rights(caller, &user).await?;
        Ok(user)
    }
}

//! The typed client of user actors: one function per request, each
//! returning the one answer its command has. The reply enum is matched
//! here and nowhere else; a variant a command cannot produce is a protocol
//! bug, reported as `Unavailable` (never reached by these requests).

use chrono::{DateTime, Utc};

use super::{Account, User, UserCommand, UserReply};
use crate::actors::{CallError, Registry};
use crate::domain::notification::{MailPrefs, Notification};
use crate::domain::user::{Address, AddressInput, UserView};
use crate::domain::{DomainError, Role};

type Answer<T> = Result<T, CallError<DomainError>>;

fn unexpected<T>(reply: UserReply) -> Answer<T> {
    Err(CallError::Unavailable(format!(
        "unexpected reply from a user actor: {reply:?}"
    )))
}

/// What a refresh-token rotation came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The new token is recorded; the account as it is now.
    Rotated(UserView),
    /// The presented token was not the session's current one: the session
    /// ended (a reused refresh token).
    Refused,
}

impl Registry<User> {
    async fn account_of(&self, id: &str, cmd: UserCommand) -> Answer<UserView> {
        match self.call(id, cmd).await? {
            UserReply::Account(v) => Ok(v),
            other => unexpected(other),
        }
    }

    async fn done(&self, id: &str, cmd: UserCommand) -> Answer<()> {
        match self.call(id, cmd).await? {
            UserReply::Done => Ok(()),
            other => unexpected(other),
        }
    }

    /// `Done` if it happened, `Refused` if the actor declined (without an
    /// error: the refusal itself is recorded).
    async fn done_or_refused(&self, id: &str, cmd: UserCommand) -> Answer<bool> {
        match self.call(id, cmd).await? {
            UserReply::Done => Ok(true),
            UserReply::Refused => Ok(false),
            other => unexpected(other),
        }
    }

    async fn address_of(&self, id: &str, cmd: UserCommand) -> Answer<Address> {
        match self.call(id, cmd).await? {
            UserReply::Address(a) => Ok(a),
            other => unexpected(other),
        }
    }

    async fn mail_prefs_of(&self, id: &str, cmd: UserCommand) -> Answer<MailPrefs> {
        match self.call(id, cmd).await? {
            UserReply::MailPrefs(p) => Ok(p),
            other => unexpected(other),
        }
    }

    pub async fn register(
        &self,
        id: &str,
        email: String,
        name: String,
        role: Role,
        password_hash: String,
    ) -> Answer<UserView> {
        let cmd = UserCommand::Register {
            email,
            name,
            role,
            password_hash,
        };
        self.account_of(id, cmd).await
    }

    pub async fn account(&self, id: &str) -> Answer<UserView> {
        self.account_of(id, UserCommand::Get).await
    }

    pub async fn credentials(&self, id: &str) -> Answer<Account> {
        match self.call(id, UserCommand::Credentials).await? {
            UserReply::Credentials(a) => Ok(a),
            other => unexpected(other),
        }
    }

    pub async fn start_session(
        &self,
        id: &str,
        sid: String,
        refresh_jti: String,
        expires_at: DateTime<Utc>,
    ) -> Answer<()> {
        let cmd = UserCommand::StartSession {
            sid,
            refresh_jti,
            expires_at,
        };
        self.done(id, cmd).await
    }

    pub async fn rotate(
        &self,
        id: &str,
        sid: String,
        presented_jti: String,
        new_jti: String,
        expires_at: DateTime<Utc>,
    ) -> Answer<Rotation> {
        let cmd = UserCommand::Rotate {
            sid,
            presented_jti,
            new_jti,
            expires_at,
        };
        match self.call(id, cmd).await? {
            UserReply::Account(v) => Ok(Rotation::Rotated(v)),
            UserReply::Refused => Ok(Rotation::Refused),
            other => unexpected(other),
        }
    }

    pub async fn end_session(&self, id: &str, sid: String) -> Answer<()> {
        self.done(id, UserCommand::EndSession { sid }).await
    }

    pub async fn end_all_sessions(&self, id: &str, reason: String) -> Answer<UserView> {
        self.account_of(id, UserCommand::EndAllSessions { reason })
            .await
    }

    /// The account and its default address, if session `sid` is live.
    pub async fn check_session(
        &self,
        id: &str,
        sid: String,
    ) -> Answer<(UserView, Option<Address>)> {
        match self.call(id, UserCommand::CheckSession { sid }).await? {
            UserReply::Session(view, address) => Ok((view, address)),
            other => unexpected(other),
        }
    }

    pub async fn update_profile(
        &self,
        id: &str,
        name: Option<String>,
        phone: Option<String>,
    ) -> Answer<UserView> {
        self.account_of(id, UserCommand::UpdateProfile { name, phone })
            .await
    }

    pub async fn set_role(&self, id: &str, role: Role) -> Answer<UserView> {
        self.account_of(id, UserCommand::SetRole(role)).await
    }

    pub async fn suspend(&self, id: &str, reason: String, by: String) -> Answer<UserView> {
        self.account_of(id, UserCommand::Suspend { reason, by })
            .await
    }

    pub async fn export(&self, id: &str) -> Answer<super::UserExport> {
        match self.call(id, UserCommand::Export).await? {
            UserReply::Export(e) => Ok(*e),
            other => unexpected(other),
        }
    }

    /// Erases the account; answers the email it had.
    pub async fn erase(&self, id: &str) -> Answer<String> {
        match self.call(id, UserCommand::Erase).await? {
            UserReply::Erased(email) => Ok(email),
            other => unexpected(other),
        }
    }

    pub async fn reactivate(&self, id: &str, by: String) -> Answer<UserView> {
        self.account_of(id, UserCommand::Reactivate { by }).await
    }

    pub async fn add_address(
        &self,
        id: &str,
        address_id: String,
        input: AddressInput,
    ) -> Answer<Address> {
        let cmd = UserCommand::AddAddress {
            id: address_id,
            input,
        };
        self.address_of(id, cmd).await
    }

    pub async fn update_address(
        &self,
        id: &str,
        address_id: String,
        input: AddressInput,
    ) -> Answer<Address> {
        let cmd = UserCommand::UpdateAddress {
            id: address_id,
            input,
        };
        self.address_of(id, cmd).await
    }

    pub async fn remove_address(&self, id: &str, address_id: String) -> Answer<()> {
        self.done(id, UserCommand::RemoveAddress { id: address_id })
            .await
    }

    pub async fn addresses(&self, id: &str) -> Answer<Vec<Address>> {
        match self.call(id, UserCommand::ListAddresses).await? {
            UserReply::Addresses(a) => Ok(a),
            other => unexpected(other),
        }
    }

    pub async fn notify(&self, id: &str, notification: Notification) -> Answer<()> {
        self.done(id, UserCommand::Notify(notification)).await
    }

    pub async fn notifications(&self, id: &str) -> Answer<Vec<Notification>> {
        match self.call(id, UserCommand::Notifications).await? {
            UserReply::Notifications(n) => Ok(n),
            other => unexpected(other),
        }
    }

    pub async fn mark_read(&self, id: &str, notification_id: String) -> Answer<()> {
        let cmd = UserCommand::MarkRead {
            id: notification_id,
        };
        self.done(id, cmd).await
    }

    pub async fn mark_all_read(&self, id: &str) -> Answer<()> {
        self.done(id, UserCommand::MarkAllRead).await
    }

    pub async fn mail_prefs(&self, id: &str) -> Answer<MailPrefs> {
        self.mail_prefs_of(id, UserCommand::GetMailPrefs).await
    }

    pub async fn set_mail_prefs(&self, id: &str, prefs: MailPrefs) -> Answer<MailPrefs> {
        self.mail_prefs_of(id, UserCommand::SetMailPrefs(prefs))
            .await
    }

    /// `false` when refused (cooldown or the daily cap).
    pub async fn request_reset(
        &self,
        id: &str,
        code_hash: String,
        expires_at: DateTime<Utc>,
        max_per_day: u32,
    ) -> Answer<bool> {
        let cmd = UserCommand::RequestReset {
            code_hash,
            expires_at,
            max_per_day,
        };
        self.done_or_refused(id, cmd).await
    }

    /// `false` when the code is wrong or used up.
    /// Sets `password_hash` if the password is still the one whose hash
    /// the caller verified.
    pub async fn change_password(
        &self,
        id: &str,
        verified_hash: String,
        password_hash: String,
    ) -> Answer<()> {
        let cmd = UserCommand::ChangePassword {
            verified_hash,
            password_hash,
        };
        self.done(id, cmd).await
    }

    pub async fn reset_password(
        &self,
        id: &str,
        code_hash: String,
        password_hash: String,
        max_attempts: u32,
    ) -> Answer<bool> {
        let cmd = UserCommand::ResetPassword {
            code_hash,
            password_hash,
            max_attempts,
        };
        self.done_or_refused(id, cmd).await
    }
}

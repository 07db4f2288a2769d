//! Account flows: register, login, refresh (rotating), logout, and
//! authenticating a bearer token on every request.

use crate::actors::email::EmailClaim;
use crate::actors::user::User;
use crate::actors::Registry;
use crate::service::found;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::actors::email::EmailCommand;
use crate::actors::user::Rotation;
use crate::auth::TokenType;
use crate::domain::user::{check_password, check_self_assigned_role, normalize_email, UserView};
use crate::domain::{check_text, Caller, DomainError, Role};
use crate::service::{new_id, ServiceError};

/// Tokens answered by login and refresh.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: crate::domain::ids::UserId,
    pub role: Role,
    /// The auth session the token belongs to: its live connections end
    /// with it.
    pub sid: String,
    pub view: UserView,
    /// The account's default delivery address when the request was
    /// authenticated (a flash-sale claim without `address_id` ships there).
    pub default_address: Option<crate::domain::user::Address>,
    /// When the access token expires (Unix seconds): a live connection
    /// ends then unless it presents a fresh token.
    pub expires_at: i64,
}

impl AuthUser {
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.id.clone(),
            role: self.role,
        }
    }
}

fn invalid_credentials() -> ServiceError {
    DomainError::Unauthorized("invalid email or password".into()).into()
}

/// A token that does not verify. Why (signature, expiry, parser detail) is
/// logged at debug level, never told to the client.
fn invalid_token(why: crate::auth::jwt::TokenError) -> ServiceError {
    tracing::debug!(reason = %why, "token refused");
    DomainError::Unauthorized("invalid token".into()).into()
}

/// Accounts and sessions: registration, login, token refresh and
/// revocation, password reset, and authenticating every request.
pub struct Auth {
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) emails: Registry<EmailClaim>,
    pub(in crate::service) hasher: crate::auth::PasswordHasher,
    pub(in crate::service) jwt: crate::auth::JwtKeys,
    pub(in crate::service) mailer: Arc<crate::mail::Mailer>,
    pub(in crate::service) reset: ResetConfig,
    pub(in crate::service) throttles: Arc<crate::auth::Throttles>,
}

impl Auth {
    /// Creates an account. The email claim is the commit point: of many
    /// concurrent registrations of one email exactly one wins.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        role: Option<Role>,
        client: std::net::IpAddr,
    ) -> Result<UserView, ServiceError> {
        self.throttles
            .register(client)
            .map_err(ServiceError::Throttled)?;
        let email = normalize_email(email)?;
        let name = check_text("name", name, 100)?;
        let role = check_self_assigned_role(role)?;
        check_password(password, &email)?;
        self.create_account(email, password, name, role).await
    }

    async fn create_account(
        &self,
        email: String,
        password: &str,
        name: String,
        role: Role,
    ) -> Result<UserView, ServiceError> {
        // The hash is computed whether or not the email is taken, so the
        // answer's timing does not tell who has an account.
        let taken = self.owner_of(&email).await?;
        let password_hash = self.hasher.hash(password.to_owned()).await?;
        if taken.is_some() {
            return Err(email_taken());
        }
        let user_id = new_id();
        // The user stream is written first and is unreachable until the
        // email claim below succeeds; a loser leaves an inert stream.
        let view = self
            .users
            .register(&user_id, email.clone(), name, role, password_hash)
            .await?;
        self.emails
            .call(
                &email,
                EmailCommand::Claim {
                    user_id: user_id.clone().into(),
                },
            )
            .await?;
        Ok(view)
    }

    /// The account `email` belongs to. An email still claimed by an
    /// erased account (its release interrupted) is released here.
    async fn owner_of(&self, email: &str) -> Result<Option<String>, ServiceError> {
        let Some(id) = self.emails.call(email, EmailCommand::Lookup).await? else {
            return Ok(None);
        };
        match self.users.account(&id).await {
            Ok(_) => Ok(Some(id.to_string())),
            Err(crate::actors::CallError::Rejected(DomainError::NotFound(_))) => {
                self.emails
                    .call(email, EmailCommand::Release { user_id: id })
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the caller's own password (throttled like a login from
    /// `client`): 422 on `password` when it is wrong.
    pub(crate) async fn check_own_password(
        &self,
        user: &AuthUser,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<(), ServiceError> {
        let account = self.users.credentials(&user.id).await?;
        self.throttles
            .login(client, &account.email)
            .map_err(ServiceError::Throttled)?;
        if self
            .hasher
            .verify(password.to_owned(), Some(account.password_hash))
            .await?
        {
            Ok(())
        } else {
            Err(DomainError::invalid("password", "the password is wrong").into())
        }
    }

    /// Makes sure the configured bootstrap admin exists and is an admin.
    pub async fn ensure_admin(
        &self,
        email: &str,
        password: &str,
    ) -> Result<UserView, ServiceError> {
        let email = normalize_email(email)?;
        check_password(password, &email)?;
        match self.owner_of(&email).await? {
            Some(user_id) => Ok(self.users.set_role(&user_id, Role::Admin).await?),
            None => {
                self.create_account(email, password, "Administrator".into(), Role::Admin)
                    .await
            }
        }
    }

    /// Logs in from `client`; attempts are throttled per client address
    /// and per account (and address) before the password is checked.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<TokenPair, ServiceError> {
        let normalized = normalize_email(email);
        self.throttles
            .login(client, normalized.as_deref().unwrap_or(email.trim()))
            .map_err(ServiceError::Throttled)?;
        let Ok(email) = normalized else {
            return Err(invalid_credentials());
        };
        let account = match self.emails.call(&email, EmailCommand::Lookup).await? {
            Some(user_id) => match self.users.credentials(&user_id).await {
                Ok(a) => Some(a),
                // Erased, its email not yet released: no account.
                Err(crate::actors::CallError::Rejected(DomainError::NotFound(_))) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let hash = account.as_ref().map(|a| a.password_hash.clone());
        if !self.hasher.verify(password.to_owned(), hash).await? {
            return Err(invalid_credentials());
        }
        let account = account.expect("verified against a real hash");
        if account.suspension.is_some() {
            return Err(ServiceError::Suspended);
        }
        self.new_session(&account.id, account.role).await
    }

    /// A new session of user `id`, and its token pair.
    async fn new_session(&self, id: &str, role: Role) -> Result<TokenPair, ServiceError> {
        let now = Utc::now();
        let (sid, jti) = (
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::new_v4().to_string(),
        );
        self.users
            .start_session(id, sid.clone(), jti.clone(), now + self.jwt.refresh_ttl)
            .await
            .map_err(|e| match ServiceError::from(e) {
                // Suspended between the password check and now.
                ServiceError::Domain(DomainError::Forbidden(_)) => ServiceError::Suspended,
                other => other,
            })?;
        Ok(self.token_pair(id, role, &sid, &jti, now))
    }

    /// `POST /auth/change-password`: the current password (checked, and
    /// throttled like a login from `client`) is replaced by `new`. Every
    /// session of the account ends, the caller's too, so every device and
    /// socket signed in with the old password is out; the caller gets a
    /// new session's pair in the answer.
    pub async fn change_password(
        &self,
        user: &AuthUser,
        current: &str,
        new: &str,
        client: std::net::IpAddr,
    ) -> Result<TokenPair, ServiceError> {
        let account = self.users.credentials(&user.id).await?;
        self.throttles
            .login(client, &account.email)
            .map_err(ServiceError::Throttled)?;
        check_password(new, &account.email)?;
        let verified = account.password_hash.clone();
        if !self
            .hasher
            .verify(current.to_owned(), Some(verified.clone()))
            .await?
        {
            return Err(
                DomainError::invalid("current_password", "the current password is wrong").into(),
            );
        }
        if new == current {
            return Err(DomainError::invalid(
                "new_password",
                "the new password must differ from the current one",
            )
            .into());
        }
        let hash = self.hasher.hash(new.to_owned()).await?;
        self.users.change_password(&user.id, verified, hash).await?;
        self.new_session(&account.id, account.role).await
    }

    /// Exchanges a refresh token for a new pair; the presented token stops
    /// working. Presenting an already-rotated token ends the session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ServiceError> {
        let claims = self
            .jwt
            .verify(refresh_token, TokenType::Refresh)
            .map_err(invalid_token)?;
        let now = Utc::now();
        let new_jti = uuid::Uuid::new_v4().to_string();
        let rotation = self
            .users
            .rotate(
                &claims.sub,
                claims.sid.clone(),
                claims.jti,
                new_jti.clone(),
                now + self.jwt.refresh_ttl,
            )
            .await
            .map_err(|e| match ServiceError::from(e) {
                ServiceError::Domain(DomainError::NotFound(_)) => {
                    ServiceError::Domain(DomainError::Unauthorized("unknown user".into()))
                }
                other => other,
            })?;
        match rotation {
            Rotation::Rotated(v) => Ok(self.token_pair(&v.id, v.role, &claims.sid, &new_jti, now)),
            Rotation::Refused => {
                Err(DomainError::Unauthorized("the refresh token is no longer valid".into()).into())
            }
        }
    }

    /// Ends the caller's session: its access and refresh tokens stop working.
    pub async fn logout(&self, user: &AuthUser) -> Result<(), ServiceError> {
        self.users.end_session(&user.id, user.sid.clone()).await?;
        Ok(())
    }

    /// An admin ends every session of `user_id`: its tokens stop working
    /// and its live connections close.
    pub async fn end_all_sessions(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<UserView, ServiceError> {
        if caller.role != Role::Admin {
            return Err(DomainError::Forbidden(
                "only admins may end other people's sessions".into(),
            )
            .into());
        }
        found(&self.users, user_id, "user").await?;
        let reason = format!("ended by admin {}", caller.user_id);
        Ok(self.users.end_all_sessions(user_id, reason).await?)
    }

    /// The user an access token names, checking only the token itself (not
    /// whether its session is live).
    pub fn token_subject(&self, token: &str) -> Result<String, ServiceError> {
        Ok(self
            .jwt
            .verify(token, TokenType::Access)
            .map_err(invalid_token)?
            .sub)
    }

    /// Verifies an access token and that its session is still live.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ServiceError> {
        let claims = self
            .jwt
            .verify(token, TokenType::Access)
            .map_err(invalid_token)?;
        if uuid::Uuid::try_parse(&claims.sub).is_err() {
            return Err(DomainError::Unauthorized("unknown user".into()).into());
        }
        let (view, default_address) = self
            .users
            .check_session(&claims.sub, claims.sid.clone())
            .await?;
        Ok(AuthUser {
            id: view.id.clone(),
            role: view.role,
            sid: claims.sid,
            view,
            default_address,
            expires_at: claims.exp,
        })
    }

    fn token_pair(
        &self,
        user_id: &str,
        role: Role,
        sid: &str,
        refresh_jti: &str,
        now: chrono::DateTime<Utc>,
    ) -> TokenPair {
        let (access_token, _) = self.jwt.issue(
            TokenType::Access,
            user_id,
            role,
            sid,
            &uuid::Uuid::new_v4().to_string(),
            now,
        );
        let (refresh_token, _) =
            self.jwt
                .issue(TokenType::Refresh, user_id, role, sid, refresh_jti, now);
        TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in: self.jwt.access_ttl.num_seconds(),
        }
    }
}

fn email_taken() -> ServiceError {
    DomainError::conflict("email_taken", "an account with this email already exists").into()
}

/// Password reset by a one-time code sent by mail.
#[derive(Debug, Clone)]
pub struct ResetConfig {
    /// Key of the code's HMAC (only the HMAC is journaled).
    pub key: Vec<u8>,
    pub ttl: chrono::Duration,
    /// Wrong codes allowed before the code stops working.
    pub max_attempts: u32,
    /// Codes mailed to one account per 24 hours; beyond, forgot-password
    /// still answers 202 but sends nothing.
    pub max_per_day: u32,
}

impl Auth {
    fn reset_hash(&self, user_id: &str, code: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.reset.key).expect("any key length");
        mac.update(user_id.as_bytes());
        mac.update(b":");
        mac.update(code.trim().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `POST /auth/forgot-password`: mails a 6-digit code to the account,
    /// if there is one. The answer is the same either way, so it does not
    /// tell who has an account.
    /// Codes per account are capped per day (by the user entity, so the
    /// cap survives restarts); past it the answer is the same 202 and no
    /// mail is sent.
    pub async fn forgot_password(
        &self,
        email: &str,
        client: std::net::IpAddr,
    ) -> Result<(), ServiceError> {
        self.throttles
            .forgot_password(client)
            .map_err(ServiceError::Throttled)?;
        let email = normalize_email(email)?;
        let Some(user_id) = self.owner_of(&email).await? else {
            return Ok(());
        };
        let account = self.users.credentials(&user_id).await?;
        // 6 digits from 122 random bits.
        let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
        let now = Utc::now();
        let requested = self
            .users
            .request_reset(
                &user_id,
                self.reset_hash(&user_id, &code),
                now + self.reset.ttl,
                self.reset.max_per_day,
            )
            .await?;
        if requested {
            let (subject, body) = crate::mail::templates::password_reset(
                &account.name,
                &code,
                self.reset.ttl.num_minutes(),
            );
            self.mailer
                .enqueue(crate::mail::OutMail {
                    id: format!("reset:{user_id}:{}", now.timestamp_millis()),
                    to: account.email,
                    subject,
                    body,
                    attempts: 0,
                    created_at: now,
                    last_error: None,
                })
                .await?;
        }
        Ok(())
    }

    /// `POST /auth/reset-password`: the code from the mail sets a new
    /// password once; every session of the account ends.
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), ServiceError> {
        // One answer for every failure (wrong, expired or used-up code, an
        // email without an account), so it does not tell who has one.
        let invalid = || -> ServiceError {
            DomainError::invalid(
                "otp",
                "the code is wrong, expired or used up (or was not sent to this email)",
            )
            .into()
        };
        let email = normalize_email(email).map_err(|_| invalid())?;
        check_password(new_password, &email)?;
        if code.trim().len() != 6 || !code.trim().bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let user_id = self.owner_of(&email).await?;
        // Hashed either way: the answer takes as long with or without an
        // account.
        let password_hash = self.hasher.hash(new_password.to_owned()).await?;
        let Some(user_id) = user_id else {
            return Err(invalid());
        };
        let code_hash = self.reset_hash(&user_id, code);
        match self
            .users
            .reset_password(&user_id, code_hash, password_hash, self.reset.max_attempts)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) | Err(crate::actors::CallError::Rejected(DomainError::Conflict { .. })) => {
                Err(invalid())
            }
            Err(e) => Err(e.into()),
        }
    }
}

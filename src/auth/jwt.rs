//! JWT access and refresh tokens (HS256, algorithm pinned). Every token
//! carries `iss`, `aud`, `exp`, `nbf`, a type and a session id; an access
//! token is never accepted where a refresh token is expected, and back.

use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The login session this token belongs to.
    pub sid: String,
    pub typ: TokenType,
    /// Unique token id; refresh rotation tracks it.
    pub jti: String,
    pub role: Role,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("expected a {expected:?} token")]
    WrongType { expected: TokenType },
}

pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: chrono::Duration,
    pub refresh_ttl: chrono::Duration,
}

impl JwtKeys {
    pub fn new(
        secret: &[u8],
        issuer: &str,
        audience: &str,
        access_ttl_secs: u64,
        refresh_ttl_secs: u64,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl: chrono::Duration::seconds(access_ttl_secs as i64),
            refresh_ttl: chrono::Duration::seconds(refresh_ttl_secs as i64),
        }
    }

    /// Signs a token of type `typ` issued at `now`.
    pub fn issue(
        &self,
        typ: TokenType,
        user_id: &str,
        role: Role,
        sid: &str,
        jti: &str,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let ttl = match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let exp = now + ttl;
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: sid.to_owned(),
            typ,
            jti: jti.to_owned(),
            role,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: exp.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .expect("HS256 signing cannot fail");
        (token, exp)
    }

    /// Verifies signature, algorithm, `iss`, `aud`, `exp`, `nbf` and type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let data = decode::<Claims>(token, &self.dec, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        if data.claims.typ != expected {
            return Err(TokenError::WrongType { expected });
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "surge",
            "surge-api",
            900,
            86400,
        )
    }

    #[test]
    fn access_and_refresh_are_not_interchangeable() {
        let k = keys();
        let (access, _) = k.issue(
            TokenType::Access,
            "u1",
            Role::Customer,
            "s1",
            "j1",
            Utc::now(),
        );
        let (refresh, _) = k.issue(
            TokenType::Refresh,
            "u1",
            Role::Customer,
            "s1",
            "j2",
            Utc::now(),
        );
        assert_eq!(k.verify(&access, TokenType::Access).unwrap().sub, "u1");
        assert_eq!(k.verify(&refresh, TokenType::Refresh).unwrap().jti, "j2");
        assert!(matches!(
            k.verify(&access, TokenType::Refresh),
            Err(TokenError::WrongType { .. })
        ));
        assert!(matches!(
            k.verify(&refresh, TokenType::Access),
            Err(TokenError::WrongType { .. })
        ));
    }

    #[test]
    fn rejects_other_issuer_audience_key_and_expiry() {
        let k = keys();
        let now = Utc::now();
        let other_iss = JwtKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "evil",
            "surge-api",
            900,
            900,
        );
        let other_aud = JwtKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "surge",
            "other",
            900,
            900,
        );
        let other_key = JwtKeys::new(
            b"ffffffffffffffffffffffffffffffff",
            "surge",
            "surge-api",
            900,
            900,
        );
        for (name, signer, at) in [
            ("issuer", &other_iss, now),
            ("audience", &other_aud, now),
            ("key", &other_key, now),
            ("expired", &k, now - chrono::Duration::seconds(3600)),
            ("not yet valid", &k, now + chrono::Duration::seconds(600)),
        ] {
            let (t, _) = signer.issue(TokenType::Access, "u1", Role::Customer, "s", "j", at);
            assert!(
                k.verify(&t, TokenType::Access).is_err(),
                "{name} must be rejected"
            );
        }
    }
}

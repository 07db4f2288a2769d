//! argon2id password hashing with OWASP parameters (19 MiB, 2 passes, 1
//! lane), run on the blocking pool behind a semaphore so that a burst of
//! logins cannot starve the server; past a bound on waiting requests the
//! caller is told to retry instead of queueing without end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password checks in progress; retry shortly")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

pub struct PasswordHasher {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// A real hash of a random password, verified against when the account
    /// does not exist so that response time does not reveal which emails
    /// are registered.
    dummy: String,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once; at most `max_waiting` more wait.
    /// OWASP's argon2id baseline: 19 MiB, 2 passes.
    pub fn new(concurrency: usize, max_waiting: usize) -> Result<Self, HashError> {
        Self::with_cost(concurrency, max_waiting, 19 * 1024, 2)
    }

    /// With an explicit memory cost (KiB) and number of passes. Existing
    /// hashes keep verifying: each carries its own parameters.
    pub fn with_cost(
        concurrency: usize,
        max_waiting: usize,
        memory_kib: u32,
        iterations: u32,
    ) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| HashError::Internal(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon
            .hash_password(uuid::Uuid::new_v4().as_bytes(), &salt)
            .map_err(|e| HashError::Internal(e.to_string()))?
            .to_string();
        Ok(PasswordHasher {
            argon,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            dummy,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel)
            >= self.max_waiting + self.permits.available_permits().max(1)
        {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|e| HashError::Internal(e.to_string()))?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || f(&argon))
            .await
            .map_err(|e| HashError::Internal(e.to_string()))
    }

    /// A PHC-format argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Internal(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash` (`None`: no such account; the
    /// dummy hash is checked so the answer takes as long).
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move |argon| {
                PasswordHash::new(&hash)
                    .map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let h = PasswordHasher::new(2, 8).unwrap();
        let a = h.hash("correct horse battery".into()).await.unwrap();
        let b = h.hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(h
            .verify("correct horse battery".into(), Some(a.clone()))
            .await
            .unwrap());
        assert!(!h
            .verify("wrong horse battery".into(), Some(a))
            .await
            .unwrap());
        assert!(!h.verify("anything at all".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn rejects_when_the_wait_queue_is_full() {
        let h = Arc::new(PasswordHasher::new(1, 0).unwrap());
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash("some password here".into()).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(HashError::Busy)) {
                busy += 1;
            }
        }
        assert!(
            busy >= 1,
            "with one permit and no queue, concurrent hashes must be refused"
        );
    }
}

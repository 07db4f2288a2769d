//! Throttles against guessing and abuse of the account endpoints: governor
//! token buckets (GCRA) keyed by client address, account, or both. A
//! throttled request is answered 429 with `Retry-After` before any work
//! (no password hash, no mail). The buckets slow an attacker down; they
//! never lock an account: a bucket refills by itself, and the per-account
//! login bucket is per client address too, so someone guessing from one
//! address does not shut the owner out from another.
//!
//! Counts live in this process's memory (bounded: idle keys are dropped
//! by `sweep`); a restart forgets them. The daily cap on reset codes per
//! account is not here: the user entity keeps it, durably.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Most requests one bucket lets through at once.
const MAX_BURST: u32 = 10;

/// A keyed bucket: `per` requests per `window`, up to `burst` at once.
/// `None` when the limit is 0 (off).
struct Bucket<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Bucket<K> {
    fn new(per: u32, window: Duration, burst: u32) -> Option<Self> {
        let per = NonZeroU32::new(per)?;
        let burst = NonZeroU32::new(burst.min(per.get()).max(1)).expect("at least 1");
        let quota = Quota::with_period(window / per.get())?.allow_burst(burst);
        Some(Bucket {
            limiter: RateLimiter::keyed(quota),
        })
    }

    /// Takes one request from `key`'s bucket, or says how long until it
    /// may try again (whole seconds, at least 1).
    fn take(&self, key: &K) -> Result<(), u64> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

/// The limits, from the settings (0 switches one off).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThrottleConfig {
    pub login_per_ip_per_minute: u32,
    pub login_per_account_per_hour: u32,
    pub forgot_per_ip_per_hour: u32,
    pub register_per_ip_per_hour: u32,
    pub reports_per_account_per_hour: u32,
    pub uploads_per_account_per_minute: u32,
}

pub struct Throttles {
    login_ip: Option<Bucket<IpAddr>>,
    login_account: Option<Bucket<(String, IpAddr)>>,
    forgot_ip: Option<Bucket<IpAddr>>,
    register_ip: Option<Bucket<IpAddr>>,
    report_account: Option<Bucket<String>>,
    upload_account: Option<Bucket<String>>,
}

/// Why a request was throttled: which limit, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub what: &'static str,
    pub retry_after_secs: u64,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn off_or<K: std::hash::Hash + Eq + Clone>(
    b: &Option<Bucket<K>>,
    key: &K,
    what: &'static str,
) -> Result<(), Throttled> {
    match b {
        Some(b) => b.take(key).map_err(|retry_after_secs| Throttled {
            what,
            retry_after_secs,
        }),
        None => Ok(()),
    }
}

impl Throttles {
    pub fn new(c: ThrottleConfig) -> Self {
        Throttles {
            login_ip: Bucket::new(c.login_per_ip_per_minute, MINUTE, c.login_per_ip_per_minute),
            login_account: Bucket::new(c.login_per_account_per_hour, HOUR, MAX_BURST),
            forgot_ip: Bucket::new(c.forgot_per_ip_per_hour, HOUR, c.forgot_per_ip_per_hour),
            register_ip: Bucket::new(c.register_per_ip_per_hour, HOUR, c.register_per_ip_per_hour),
            report_account: Bucket::new(c.reports_per_account_per_hour, HOUR, MAX_BURST),
            upload_account: Bucket::new(c.uploads_per_account_per_minute, MINUTE, MAX_BURST),
        }
    }

    /// A login attempt on `email` from `ip` (counted before the password
    /// is checked, right or wrong).
    pub fn login(&self, ip: IpAddr, email: &str) -> Result<(), Throttled> {
        off_or(&self.login_ip, &ip, "login attempts from this address")?;
        off_or(
            &self.login_account,
            &(email.to_owned(), ip),
            "login attempts on this account",
        )
    }

    pub fn forgot_password(&self, ip: IpAddr) -> Result<(), Throttled> {
        off_or(&self.forgot_ip, &ip, "password resets from this address")
    }

    pub fn register(&self, ip: IpAddr) -> Result<(), Throttled> {
        off_or(&self.register_ip, &ip, "registrations from this address")
    }

    /// A report (of a review) by account `user`.
    pub fn report(&self, user: &str) -> Result<(), Throttled> {
        off_or(
            &self.report_account,
            &user.to_owned(),
            "reports from this account",
        )
    }

    /// An image upload by account `user` (before its bytes are decoded).
    pub fn upload(&self, user: &str) -> Result<(), Throttled> {
        off_or(
            &self.upload_account,
            &user.to_owned(),
            "image uploads from this account",
        )
    }

    /// Forgets keys whose buckets are full again (bounds the memory).
    pub fn sweep(&self) {
        for b in [&self.login_ip, &self.forgot_ip, &self.register_ip]
            .into_iter()
            .flatten()
        {
            b.limiter.retain_recent();
        }
        if let Some(b) = &self.login_account {
            b.limiter.retain_recent();
        }
        for b in [&self.report_account, &self.upload_account]
            .into_iter()
            .flatten()
        {
            b.limiter.retain_recent();
        }
    }

    /// Keys currently tracked, all buckets together.
    pub fn tracked(&self) -> usize {
        let mut n = 0;
        for b in [&self.login_ip, &self.forgot_ip, &self.register_ip]
            .into_iter()
            .flatten()
        {
            n += b.limiter.len();
        }
        n + self.login_account.as_ref().map_or(0, |b| b.limiter.len())
            + self.report_account.as_ref().map_or(0, |b| b.limiter.len())
            + self.upload_account.as_ref().map_or(0, |b| b.limiter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn login_attempts_are_slowed_per_account_and_address_and_per_address() {
        let t = Throttles::new(ThrottleConfig {
            login_per_ip_per_minute: 30,
            login_per_account_per_hour: 40,
            ..Default::default()
        });
        for _ in 0..MAX_BURST {
            t.login(ip(1), "a@x").unwrap();
        }
        let refused = t.login(ip(1), "a@x").unwrap_err();
        assert!(
            (1..=90).contains(&refused.retry_after_secs),
            "{refused:?}: one more try every 90 s"
        );
        t.login(ip(2), "a@x")
            .expect("the owner, from another address, is not locked out");
        // The address's own bucket: 30 a minute, whatever the account.
        for i in 0..(30 - MAX_BURST - 1) {
            t.login(ip(1), &format!("other{i}@x")).unwrap();
        }
        assert_eq!(
            t.login(ip(1), "fresh@x").unwrap_err().what,
            "login attempts from this address"
        );
    }

    #[test]
    fn a_zero_limit_is_off_and_idle_keys_are_swept() {
        let t = Throttles::new(ThrottleConfig::default());
        for _ in 0..1000 {
            t.login(ip(1), "a@x").unwrap();
            t.register(ip(1)).unwrap();
        }
        assert_eq!(t.tracked(), 0);
        let t = Throttles::new(ThrottleConfig {
            register_per_ip_per_hour: 10,
            ..Default::default()
        });
        for _ in 0..10 {
            t.register(ip(1)).unwrap();
        }
        assert!(t.register(ip(1)).unwrap_err().retry_after_secs >= 300);
        assert_eq!(t.tracked(), 1);
    }
}

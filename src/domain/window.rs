//! A sign-up window: when a flash sale's or a course's claims are decided.
//!
//! Before `opens_at` a claim is refused `not_started`; from `closes_at` on
//! it is refused `ended` (a window is half-open: `[opens_at, closes_at)`).
//! The opening is announced once, on `queue:{id}`, the moment it passes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

/// Where a window stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    /// Before `opens_at`.
    Scheduled,
    /// Claims are decided.
    Open,
    /// Open, with nothing left but the waitlist.
    SoldOut,
    /// From `closes_at` on.
    Closed,
}

/// The state at `now` of a window `[opens_at, closes_at)` with `remaining`
/// units.
pub fn state(
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
    remaining: u32,
    now: DateTime<Utc>,
) -> WindowState {
    if opens_at.is_some_and(|t| now < t) {
        WindowState::Scheduled
    } else if closes_at.is_some_and(|t| now >= t) {
        WindowState::Closed
    } else if remaining == 0 {
        WindowState::SoldOut
    } else {
        WindowState::Open
    }
}

/// Whether a claim at `now` is inside the window.
pub fn admits(
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    if opens_at.is_some_and(|t| now < t) {
        return Err(DomainError::conflict(
            "not_started",
            "this sign-up has not started yet",
        ));
    }
    if closes_at.is_some_and(|t| now >= t) {
        return Err(DomainError::conflict("ended", "this sign-up has ended"));
    }
    Ok(())
}

/// A window's bounds as given: the end after the start.
pub fn validate(
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
) -> Result<(), DomainError> {
    match (opens_at, closes_at) {
        (Some(o), Some(c)) if c <= o => Err(DomainError::invalid(
            "closes_at",
            "closes_at must be after opens_at",
        )),
        _ => Ok(()),
    }
}

/// A report's or a listing's `[from, to)` as given: `to` after `from`.
pub fn check_period(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(), DomainError> {
    match (from, to) {
        (Some(f), Some(t)) if t <= f => Err(DomainError::invalid("to", "to must be after from")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_window_is_half_open_and_refuses_by_name_outside() {
        let o = Utc.with_ymd_and_hms(2026, 12, 12, 12, 0, 0).unwrap();
        let c = o + chrono::Duration::hours(1);
        let ms = chrono::Duration::milliseconds(1);
        let code = |r: Result<(), DomainError>| match r {
            Ok(()) => "ok",
            Err(DomainError::Conflict { code, .. }) => code,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(code(admits(Some(o), Some(c), o - ms)), "not_started");
        assert_eq!(code(admits(Some(o), Some(c), o)), "ok");
        assert_eq!(code(admits(Some(o), Some(c), c - ms)), "ok");
        assert_eq!(code(admits(Some(o), Some(c), c)), "ended");
        assert_eq!(code(admits(None, None, c)), "ok");
        assert_eq!(state(Some(o), Some(c), 5, o - ms), WindowState::Scheduled);
        assert_eq!(state(Some(o), Some(c), 5, o), WindowState::Open);
        assert_eq!(state(Some(o), Some(c), 0, o), WindowState::SoldOut);
        assert_eq!(state(Some(o), Some(c), 0, c), WindowState::Closed);
        assert!(validate(Some(o), Some(o)).is_err());
        assert!(validate(Some(o), Some(c)).is_ok());
        assert!(validate(None, Some(c)).is_ok());
    }
}

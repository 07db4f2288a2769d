//! The time zone reports count days in (`report_time_zone`): a shop in
//! Vietnam sees "today" roll over at its own midnight, not at 07:00.
//!
//! Statistics are stored by UTC hour, so a day in a zone whose offset is
//! whole hours is exactly the hours that start in it; in a zone with a
//! half-hour offset (India, +05:30) a day holds the UTC hours that *start*
//! in it. Days are local calendar days: 23 or 25 hours long where the
//! clocks change.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// An IANA time zone (`Asia/Ho_Chi_Minh`, `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportZone(pub chrono_tz::Tz);

impl Default for ReportZone {
    fn default() -> Self {
        ReportZone(chrono_tz::UTC)
    }
}

impl std::str::FromStr for ReportZone {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        name.parse::<chrono_tz::Tz>()
            .map(ReportZone)
            .map_err(|_| format!("`{name}` is not an IANA time zone (e.g. Asia/Ho_Chi_Minh, UTC)"))
    }
}

impl ReportZone {
    /// The local calendar day `at` falls on.
    pub fn day_of(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.0).date_naive()
    }

    /// The first instant of a local day: its midnight, or where the clocks
    /// skip midnight, the first local time that exists.
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight");
        (0..=24)
            .find_map(|h| {
                self.0
                    .from_local_datetime(&(midnight + Duration::minutes(30 * h)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
    }

    /// The first instant of the local day `at` falls on.
    pub fn start_of_day(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.start_of(self.day_of(at))
    }

    /// The first instant of the local day after `day`.
    pub fn start_of_next(&self, day: NaiveDate) -> DateTime<Utc> {
        self.start_of(day.succ_opt().unwrap_or(day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> ReportZone {
        name.parse().unwrap()
    }

    #[test]
    fn a_vietnamese_day_starts_at_17_utc_the_day_before() {
        let vn = zone("Asia/Ho_Chi_Minh");
        // 16:59:59 UTC is 23:59:59 on the 6th in Hanoi; a second later, the 7th.
        assert_eq!(
            vn.day_of(at("2026-12-06T16:59:59Z")).to_string(),
            "2026-12-06"
        );
        assert_eq!(
            vn.day_of(at("2026-12-06T17:00:00Z")).to_string(),
            "2026-12-07"
        );
        assert_eq!(
            vn.start_of_day(at("2026-12-07T03:00:00Z")),
            at("2026-12-06T17:00:00Z")
        );
        assert_eq!(
            vn.start_of_next(vn.day_of(at("2026-12-07T03:00:00Z"))),
            at("2026-12-07T17:00:00Z")
        );
        // UTC is the default and counts UTC days.
        let utc = ReportZone::default();
        assert_eq!(
            utc.day_of(at("2026-12-06T23:59:59Z")).to_string(),
            "2026-12-06"
        );
        assert_eq!(
            utc.start_of_day(at("2026-12-06T23:59:59Z")),
            at("2026-12-06T00:00:00Z")
        );
    }

    #[test]
    fn days_where_the_clocks_change_are_23_and_25_hours() {
        let ny = zone("America/New_York");
        let spring = "2026-03-08".parse().unwrap();
        assert_eq!(
            ny.start_of_next(spring) - ny.start_of(spring),
            Duration::hours(23)
        );
        let autumn = "2026-11-01".parse().unwrap();
        assert_eq!(
            ny.start_of_next(autumn) - ny.start_of(autumn),
            Duration::hours(25)
        );
        // Where midnight itself is skipped (Santiago, September), the day
        // starts at 01:00 local.
        let cl = zone("America/Santiago");
        let skipped: NaiveDate = "2026-09-06".parse().unwrap();
        let start = cl.start_of(skipped);
        assert_eq!(cl.day_of(start), skipped);
        assert_eq!(
            cl.day_of(start - Duration::seconds(1)),
            skipped.pred_opt().unwrap()
        );
    }

    #[test]
    fn unknown_zones_are_refused_by_name() {
        let err = "Mars/Olympus".parse::<ReportZone>().unwrap_err();
        assert!(err.contains("Mars/Olympus"), "{err}");
        assert!("Europe/Paris".parse::<ReportZone>().is_ok());
    }
}

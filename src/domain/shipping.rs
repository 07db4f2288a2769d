//! Live shipper positions as pure rules: which device fixes count, speed and
//! ETA, and the arrival geofence. No I/O; `service::delivery::shipping` feeds it.
//!
//! - Fixes are ordered by the device's timestamp: a fix not newer than the
//!   last accepted one, too old, or from the future is ignored.
//! - Speed is the device's, or derived from the last fix, smoothed (EWMA).
//! - ETA is the remaining great-circle distance over the recent speed (or a
//!   default city speed while the shipper is nearly still).
//! - Arrival: inside `radius` of the destination continuously for `dwell`
//!   (by device time) announces "arriving" once. Leaving needs to go past
//!   `radius × EXIT_FACTOR`, so jitter at the boundary does not flap.
//! - Closing a delivery ([`closing`]): the carrying shipper marks an order
//!   delivered from inside the fence around its address, by a fresh fix,
//!   or says why not (recorded on the order's timeline).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::pricing::haversine_km;
use super::{check_point, DomainError, GeoPoint};

/// A shipper must go this far past the radius to count as having left.
pub const EXIT_FACTOR: f64 = 1.5;
/// Weight of the newest speed sample in the moving average.
const SPEED_ALPHA: f64 = 0.3;
/// Below this (m/s) the shipper counts as stopped for the ETA.
const MIN_MOVING_SPEED: f64 = 1.0;
/// Fastest plausible shipper (m/s, about 216 km/h).
pub const MAX_SPEED: f64 = 60.0;

/// One position report from a shipper's device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fix {
    pub lat: f64,
    pub lng: f64,
    /// Degrees clockwise from north, 0–360.
    #[serde(default)]
    pub heading: Option<f64>,
    /// Metres per second.
    #[serde(default)]
    pub speed: Option<f64>,
    /// Device time, milliseconds since the Unix epoch.
    pub ts: i64,
}

impl Fix {
    pub fn point(&self) -> GeoPoint {
        GeoPoint {
            lat: self.lat,
            lng: self.lng,
        }
    }
}

/// How far device clocks may run ahead or behind the server's.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub max_age_ms: i64,
    pub max_skew_ms: i64,
}

/// Checks a fix's fields; `Err` is a 4xx.
pub fn check_fix(fix: &Fix, now_ms: i64, fresh: Freshness) -> Result<(), DomainError> {
    check_point("location", fix.point())?;
    if let Some(h) = fix.heading {
        if !h.is_finite() || !(0.0..=360.0).contains(&h) {
            return Err(DomainError::invalid(
                "heading",
                "heading must be between 0 and 360",
            ));
        }
    }
    if let Some(s) = fix.speed {
        if !s.is_finite() || !(0.0..=MAX_SPEED).contains(&s) {
            return Err(DomainError::invalid(
                "speed",
                format!("speed must be between 0 and {MAX_SPEED} m/s"),
            ));
        }
    }
    if fix.ts > now_ms + fresh.max_skew_ms {
        return Err(DomainError::invalid(
            "ts",
            "ts is in the future: send the device time in milliseconds since the epoch",
        ));
    }
    Ok(())
}

/// The geofence rule.
#[derive(Debug, Clone, Copy)]
pub struct Geofence {
    pub radius_m: f64,
    pub dwell_ms: i64,
}

/// Why a fix changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ignored {
    /// Not newer than the last accepted fix.
    OutOfOrder,
    /// Older than the freshness window.
    Stale,
}

/// What one shipper's device has told us, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    pub last: Option<Fix>,
    /// Smoothed speed, m/s.
    pub speed: Option<f64>,
    /// Arrival tracking toward the current destination.
    pub fence: FenceState,
}

/// Where the shipper is relative to the destination's geofence.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FenceState {
    /// Device time the shipper (last) entered the fence.
    pub inside_since: Option<i64>,
    /// "Arriving" was announced for this destination.
    pub announced: bool,
}

/// What a destination-bound fix means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub distance_m: f64,
    pub eta_s: u64,
    /// This fix completed the dwell: announce "arriving" now.
    pub arrived_now: bool,
    pub arriving: bool,
}

impl Live {
    /// Folds in `fix` if it counts.
    pub fn accept(&mut self, fix: Fix, now_ms: i64, fresh: Freshness) -> Result<(), Ignored> {
        if fix.ts < now_ms - fresh.max_age_ms {
            return Err(Ignored::Stale);
        }
        if let Some(last) = self.last {
            if fix.ts <= last.ts {
                return Err(Ignored::OutOfOrder);
            }
            let sample = fix.speed.unwrap_or_else(|| {
                let metres = haversine_km(last.point(), fix.point()) * 1000.0;
                (metres / ((fix.ts - last.ts) as f64 / 1000.0)).min(MAX_SPEED)
            });
            self.speed = Some(match self.speed {
                Some(s) => s + SPEED_ALPHA * (sample - s),
                None => sample,
            });
        } else {
            self.speed = fix.speed;
        }
        self.last = Some(fix);
        Ok(())
    }

    /// Distance, ETA and arrival toward `dest` after the last accepted fix.
    pub fn progress(&mut self, dest: GeoPoint, fence: Geofence, default_speed: f64) -> Progress {
        let Some(fix) = self.last else {
            return Progress {
                distance_m: f64::NAN,
                eta_s: 0,
                arrived_now: false,
                arriving: false,
            };
        };
        let distance_m = haversine_km(fix.point(), dest) * 1000.0;
        let speed = self
            .speed
            .filter(|s| *s >= MIN_MOVING_SPEED)
            .unwrap_or(default_speed)
            .max(MIN_MOVING_SPEED);
        let eta_s = (distance_m / speed).ceil() as u64;
        let st = &mut self.fence;
        if distance_m <= fence.radius_m {
            st.inside_since.get_or_insert(fix.ts);
        } else if distance_m > fence.radius_m * EXIT_FACTOR {
            st.inside_since = None;
        }
        let dwelled = st
            .inside_since
            .is_some_and(|since| fix.ts - since >= fence.dwell_ms);
        let arrived_now = dwelled && !st.announced;
        if arrived_now {
            st.announced = true;
        }
        Progress {
            distance_m,
            eta_s: if st.announced { 0 } else { eta_s },
            arrived_now,
            arriving: st.announced,
        }
    }
}

/// The newest position of a shipper as watchers see it (`location` frames
/// and `GET /shipping/{order_id}/tracking`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Position {
    pub shipper_id: crate::domain::ids::UserId,
    /// The order the shipper is delivering, if any.
    pub order_id: Option<crate::domain::ids::OrderId>,
    pub lat: f64,
    pub lng: f64,
    pub heading: Option<f64>,
    /// Smoothed speed, m/s.
    pub speed: Option<f64>,
    /// Device time, ms since the epoch.
    pub ts: i64,
    /// Metres to the delivery address (while delivering).
    pub distance_m: Option<f64>,
    /// Seconds to the delivery address at the recent speed.
    pub eta_s: Option<u64>,
    /// Inside the delivery geofence for the dwell time.
    pub arriving: bool,
}

/// Shippers whose distances to the shop fall in the same band of this
/// many metres count as equally near: among them, the better rated one is
/// offered the order first.
pub const DISPATCH_TIE_BAND_M: f64 = 250.0;

/// A shipper's rating for dispatch: the mean of their approved reviews
/// pulled towards 4 stars as if by 5 more reviews, so a newcomer (4.0)
/// is neither first nor last, and one review moves it little.
pub fn dispatch_score(r: &crate::domain::review::RatingSummary) -> f64 {
    const PRIOR_STARS: f64 = 4.0;
    const PRIOR_WEIGHT: f64 = 5.0;
    let sum: f64 = r
        .distribution
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 + 1.0) * *n as f64)
        .sum();
    (sum + PRIOR_STARS * PRIOR_WEIGHT) / (r.count as f64 + PRIOR_WEIGHT)
}

/// The order in which candidates `(shipper, metres, score)` are offered an
/// order: nearest band first, then the higher score, then the nearer.
pub fn dispatch_order(mut candidates: Vec<(String, f64, f64)>) -> Vec<(String, f64)> {
    let band = |m: f64| (m / DISPATCH_TIE_BAND_M).floor() as i64;
    candidates.sort_by(|a, b| {
        band(a.1)
            .cmp(&band(b.1))
            .then(b.2.total_cmp(&a.2))
            .then(a.1.total_cmp(&b.1))
    });
    candidates.into_iter().map(|(id, m, _)| (id, m)).collect()
}

#[cfg(test)]
impl Position {
    /// Shipper `s` at one fixed point at device time `ts`, delivering
    /// nothing (for tests of what carries positions).
    pub(crate) fn sample(ts: i64) -> Self {
        Position {
            shipper_id: "s".into(),
            order_id: None,
            lat: 10.0,
            lng: 106.0,
            heading: None,
            speed: None,
            ts,
            distance_m: None,
            eta_s: None,
            arriving: false,
        }
    }
}

/// Longest reason a shipper gives for marking an order delivered away from
/// its address.
pub const MAX_OVERRIDE_REASON: usize = 300;

/// Where the carrying shipper was last seen, by device time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub at: GeoPoint,
    pub ts: i64,
}

/// The delivery-closing rule: the shipper carrying an order may mark it
/// delivered when their newest fix (no older than `fresh.max_age_ms`) is
/// inside `fence.radius_m` of the address (no dwell needed); otherwise
/// only with an override reason, which the order's timeline records.
/// Returns the timeline reason to record (`None` at the address).
pub fn closing(
    seen: Option<Seen>,
    dest: GeoPoint,
    fence: Geofence,
    fresh: Freshness,
    now_ms: i64,
    override_reason: Option<&str>,
) -> Result<Option<String>, DomainError> {
    let away = match seen {
        Some(s) if now_ms - s.ts <= fresh.max_age_ms => {
            let m = haversine_km(s.at, dest) * 1000.0;
            if m <= fence.radius_m {
                return Ok(None);
            }
            format!("{} m from the address", m.round())
        }
        Some(_) => "no recent position".to_owned(),
        None => "no position".to_owned(),
    };
    match override_reason {
        Some(r) => {
            let r = super::check_text("override_reason", r, MAX_OVERRIDE_REASON)?;
            Ok(Some(format!("delivered away from the address ({away}): {r}")))
        }
        None => Err(DomainError::conflict(
            "not_at_address",
            format!(
                "you are not at the delivery address ({away}; within {} m needed): mark it delivered there, or give override_reason",
                fence.radius_m
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_a_band_the_better_rated_shipper_goes_first_and_bands_go_by_distance() {
        let rated = |d: [u64; 5]| dispatch_score(&crate::domain::review::summarize("s", d));
        let (great, poor, new) = (
            rated([0, 0, 0, 0, 20]),
            rated([10, 0, 0, 0, 0]),
            rated([0; 5]),
        );
        assert!(great > new && new > poor, "{great} {new} {poor}");
        assert_eq!(new, 4.0);
        let order = dispatch_order(vec![
            ("poor-near".into(), 10.0, poor),
            ("great-same-band".into(), 200.0, great),
            ("new-same-band".into(), 120.0, new),
            ("great-far".into(), 260.0, great),
        ]);
        let ids: Vec<&str> = order.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["great-same-band", "new-same-band", "poor-near", "great-far"]
        );
        // Same score: the nearer first.
        let order = dispatch_order(vec![("b".into(), 90.0, 4.0), ("a".into(), 30.0, 4.0)]);
        assert_eq!(order[0].0, "a");
    }

    const FRESH: Freshness = Freshness {
        max_age_ms: 60_000,
        max_skew_ms: 5_000,
    };
    const FENCE: Geofence = Geofence {
        radius_m: 50.0,
        dwell_ms: 10_000,
    };
    const DEST: GeoPoint = GeoPoint {
        lat: 10.0,
        lng: 106.0,
    };

    /// A point `metres` north of the destination.
    fn north(metres: f64, ts: i64) -> Fix {
        Fix {
            lat: DEST.lat + metres / 111_195.0,
            lng: DEST.lng,
            heading: None,
            speed: None,
            ts,
        }
    }

    #[test]
    fn fixes_are_ordered_by_device_time() {
        let mut live = Live::default();
        let now = 1_000_000;
        assert_eq!(live.accept(north(500.0, now - 2000), now, FRESH), Ok(()));
        assert_eq!(
            live.accept(north(400.0, now - 3000), now, FRESH),
            Err(Ignored::OutOfOrder)
        );
        assert_eq!(
            live.accept(north(400.0, now - 2000), now, FRESH),
            Err(Ignored::OutOfOrder),
            "same timestamp"
        );
        assert_eq!(
            live.accept(north(400.0, now - 120_000), now, FRESH),
            Err(Ignored::Stale)
        );
        assert_eq!(live.last.unwrap().ts, now - 2000);
        assert_eq!(live.accept(north(400.0, now - 1000), now, FRESH), Ok(()));
        // 100 m in 1 s.
        assert!((live.speed.unwrap() - 100.0f64.min(MAX_SPEED)).abs() < 1.0);
    }

    #[test]
    fn invalid_fixes_are_rejected() {
        let now = 1_000_000;
        let ok = north(0.0, now);
        assert!(check_fix(&ok, now, FRESH).is_ok());
        for bad in [
            Fix { lat: 91.0, ..ok },
            Fix {
                lng: f64::NAN,
                ..ok
            },
            Fix {
                heading: Some(400.0),
                ..ok
            },
            Fix {
                speed: Some(-1.0),
                ..ok
            },
            Fix {
                ts: now + 60_000,
                ..ok
            },
        ] {
            assert!(check_fix(&bad, now, FRESH).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn eta_uses_recent_speed_or_the_default() {
        let mut live = Live::default();
        live.accept(
            Fix {
                speed: Some(10.0),
                ..north(1000.0, 1000)
            },
            1000,
            FRESH,
        )
        .unwrap();
        let p = live.progress(DEST, FENCE, 5.0);
        assert!((p.distance_m - 1000.0).abs() < 2.0);
        assert!((100..=101).contains(&p.eta_s), "{}", p.eta_s);
        let mut still = Live::default();
        still.accept(north(1000.0, 1000), 1000, FRESH).unwrap();
        assert!((200..=201).contains(&still.progress(DEST, FENCE, 5.0).eta_s));
    }

    #[test]
    fn jitter_at_the_boundary_does_not_flap_and_dwell_is_needed() {
        let mut live = Live::default();
        let mut announced = 0;
        // Jitter between 45 m and 70 m (inside the exit band) for 20 s.
        for i in 0..20 {
            let metres = if i % 2 == 0 { 45.0 } else { 70.0 };
            let ts = 1_000 + i * 1_000;
            live.accept(north(metres, ts), ts, FRESH).unwrap();
            let p = live.progress(DEST, FENCE, 5.0);
            if p.arrived_now {
                announced += 1;
                assert!(ts - 1_000 >= FENCE.dwell_ms, "announced before the dwell");
            }
        }
        assert_eq!(announced, 1, "announced exactly once");
    }

    #[test]
    fn leaving_the_fence_resets_the_dwell() {
        let mut live = Live::default();
        let steps = [
            (40.0, 0),
            (40.0, 5_000),
            (200.0, 6_000),
            (40.0, 7_000),
            (40.0, 16_000),
        ];
        for (metres, ts) in steps {
            live.accept(north(metres, ts), ts, FRESH).unwrap();
            assert!(
                !live.progress(DEST, FENCE, 5.0).arrived_now,
                "left at 6 s, so the dwell restarts at 7 s"
            );
        }
        live.accept(north(40.0, 17_000), 17_000, FRESH).unwrap();
        assert!(live.progress(DEST, FENCE, 5.0).arrived_now);
    }

    fn seen(metres: f64, ts: i64) -> Option<Seen> {
        let f = north(metres, ts);
        Some(Seen {
            at: GeoPoint {
                lat: f.lat,
                lng: f.lng,
            },
            ts,
        })
    }

    #[test]
    fn a_delivery_closes_at_the_address_or_with_a_recorded_reason() {
        let now = 1_000_000;
        let close = |seen, why| closing(seen, DEST, FENCE, FRESH, now, why);
        assert_eq!(close(seen(30.0, now), None).unwrap(), None);
        let far = close(seen(525.0, now), None).unwrap_err();
        assert!(
            matches!(
                far,
                DomainError::Conflict {
                    code: "not_at_address",
                    ..
                }
            ),
            "{far:?}"
        );
        // Near, but the fix is stale: as good as unknown.
        assert!(close(seen(10.0, now - FRESH.max_age_ms - 1), None).is_err());
        assert!(close(None, None).is_err());
        let why = close(seen(525.0, now), Some("gate locked, left with the guard"))
            .unwrap()
            .unwrap();
        assert!(
            why.contains("525 m from the address") && why.contains("left with the guard"),
            "{why}"
        );
        assert!(close(seen(525.0, now), Some("\u{202e}x")).is_err());
    }
}

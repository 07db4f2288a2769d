//! The engine's picture of the shippers: one live slot per shipper, in
//! memory (the newest position with speed, heading and arrival state, the
//! order it carries), because positions are high-rate and not journal
//! events. A restarted server relearns positions from the next fixes the
//! devices send. `dispatch` offers orders from it; `tracking` feeds it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::actors::shipper::Shipper;
use crate::domain::pricing::haversine_km;
use crate::domain::shipping::{Fix, Freshness, Geofence, Ignored, Live, Position, Seen};
use crate::domain::GeoPoint;

/// Most sampled points kept per order.
pub const MAX_TRACK_POINTS: u32 = 5_000;

#[derive(Debug, Clone, Copy)]
pub struct TrackingConfig {
    pub dispatch_radius_km: f64,
    pub offer_timeout: chrono::Duration,
    pub dispatch_retry: chrono::Duration,
    pub fence: Geofence,
    pub fresh: Freshness,
    /// Speed assumed for the ETA while the shipper is nearly still (m/s).
    pub default_speed: f64,
    pub sample_every_ms: i64,
    pub retention: chrono::Duration,
    /// Most shippers with a live slot; fixes from more are refused (503).
    pub max_shippers: usize,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            dispatch_radius_km: 10.0,
            offer_timeout: chrono::Duration::seconds(30),
            dispatch_retry: chrono::Duration::seconds(15),
            fence: Geofence {
                radius_m: 50.0,
                dwell_ms: 20_000,
            },
            fresh: Freshness {
                max_age_ms: 120_000,
                max_skew_ms: 30_000,
            },
            default_speed: 6.0,
            sample_every_ms: 5_000,
            retention: chrono::Duration::days(7),
            max_shippers: 1_000_000,
        }
    }
}

/// The order a shipper is carrying, as the tracker needs it.
#[derive(Debug, Clone)]
pub(in crate::service) struct Target {
    pub(in crate::service) order_id: crate::domain::ids::OrderId,
    pub(in crate::service) dest: GeoPoint,
    pub(in crate::service) last_sample: Option<i64>,
    pub(in crate::service) samples: u32,
}

/// One shipper's live slot.
#[derive(Debug, Clone, Default)]
pub(in crate::service) struct Slot {
    pub(in crate::service) live: Live,
    /// The shipper actor's state as last seen (a prefilter for dispatch;
    /// the actor itself decides).
    pub(in crate::service) shipper: Shipper,
    pub(in crate::service) target: Option<Target>,
    pub(in crate::service) newest: Option<Arc<Position>>,
    /// The newest revision of the shipper's state another node reported.
    pub(in crate::service) announced: u64,
}

/// What a fix the slot accepted leads to.
pub(in crate::service) struct Advanced {
    pub(in crate::service) position: Arc<Position>,
    /// The order whose path samples this fix.
    pub(in crate::service) sample: Option<crate::domain::ids::OrderId>,
    /// The order whose destination the shipper just reached.
    pub(in crate::service) arrived: Option<crate::domain::ids::OrderId>,
}

impl Slot {
    /// Another node saw a newer state of the shipper than this slot knows.
    pub(in crate::service) fn behind(&self) -> bool {
        self.announced > self.shipper.revision
    }

    /// Takes in the shipper actor's state unless the slot already knows a
    /// later one: replies to concurrent commands (an offer refused, an
    /// assignment) can arrive in any order, and a stale one would drop the
    /// order being delivered, and with it every position its watchers wait
    /// for. A changed delivery resets the target and the arrival fence.
    pub(in crate::service) fn take_in(&mut self, s: &Shipper) {
        if s.revision < self.shipper.revision {
            return;
        }
        self.shipper = s.clone();
        if self.target.as_ref().map(|t| &t.order_id) != s.active_order.as_ref() {
            self.target = None;
            self.live.fence = Default::default();
        }
    }

    /// Takes a fix in (or says why not): the new position with its progress
    /// toward the order's destination, whether the path samples it, and
    /// whether it crossed the arrival fence.
    pub(in crate::service) fn advance(
        &mut self,
        shipper_id: &str,
        fix: Fix,
        now_ms: i64,
        cfg: &TrackingConfig,
    ) -> Result<Advanced, Ignored> {
        self.live.accept(fix, now_ms, cfg.fresh)?;
        let (mut sample, mut arrived) = (None, None);
        let progress = self
            .target
            .as_ref()
            .map(|t| t.dest)
            .map(|dest| self.live.progress(dest, cfg.fence, cfg.default_speed));
        if let Some(t) = self.target.as_mut() {
            let due = t
                .last_sample
                .is_none_or(|last| fix.ts - last >= cfg.sample_every_ms);
            if due && t.samples < MAX_TRACK_POINTS {
                t.last_sample = Some(fix.ts);
                t.samples += 1;
                sample = Some(t.order_id.clone());
            }
            if progress.is_some_and(|p| p.arrived_now) {
                arrived = Some(t.order_id.clone());
            }
        }
        let position = Arc::new(Position {
            shipper_id: shipper_id.into(),
            order_id: self.target.as_ref().map(|t| t.order_id.clone()),
            lat: fix.lat,
            lng: fix.lng,
            heading: fix.heading,
            speed: self.live.speed,
            ts: fix.ts,
            distance_m: progress.map(|p| p.distance_m.round()),
            eta_s: progress.map(|p| p.eta_s),
            arriving: progress.is_some_and(|p| p.arriving),
        });
        self.newest = Some(position.clone());
        Ok(Advanced {
            position,
            sample,
            arrived,
        })
    }
}

/// A shipper whose fixes another node takes (cluster mode): where it was
/// and whether it was available for an offer then.
#[derive(Debug, Clone, Copy)]
struct Remote {
    at: GeoPoint,
    ts: i64,
    available: bool,
}

/// The live slots of all shippers seen since start, and (cluster mode)
/// the newest fix of every shipper whose fixes other nodes take.
pub struct Tracker {
    pub cfg: TrackingConfig,
    pub(in crate::service) slots: DashMap<String, Slot>,
    remote: DashMap<String, Remote>,
}

impl Tracker {
    pub fn new(cfg: TrackingConfig) -> Self {
        Tracker {
            cfg,
            slots: DashMap::new(),
            remote: DashMap::new(),
        }
    }

    /// A fix or status another node took: kept (the newest per shipper, at
    /// most `max_shippers`) for `nearest`. The offer itself goes to the
    /// shipper's actor, which refuses it if the shipper is no longer free.
    pub fn apply_remote(&self, u: crate::live::FleetUpdate) {
        if let Some(revision) = u.revision {
            if let Some(mut slot) = self.slots.get_mut(u.shipper_id.as_str()) {
                slot.announced = slot.announced.max(revision);
            }
        }
        match u.at {
            // A state seen without a known position: only availability.
            None if u.revision.is_some() => {
                if let Some(mut r) = self.remote.get_mut(&u.shipper_id) {
                    r.available = u.available;
                }
            }
            None => {
                self.remote.remove(&u.shipper_id);
            }
            Some((lat, lng, ts)) => {
                let newer = self.remote.get(&u.shipper_id).is_none_or(|r| r.ts <= ts);
                let room = self.remote.len() < self.cfg.max_shippers
                    || self.remote.contains_key(&u.shipper_id);
                if newer && room {
                    self.remote.insert(
                        u.shipper_id,
                        Remote {
                            at: GeoPoint { lat, lng },
                            ts,
                            available: u.available,
                        },
                    );
                }
            }
        }
    }

    /// Takes in the shipper actor's state; returns what the other nodes
    /// should now know of it: the state's revision, whether it is free
    /// (for their dispatch) and its newest fix this node knows.
    pub(in crate::service) fn observe(&self, s: &Shipper) -> crate::live::FleetUpdate {
        let available = s.available(Utc::now());
        if let Some(mut r) = self.remote.get_mut(s.id.as_str()) {
            r.available = available;
        }
        if let Some(mut slot) = self.slots.get_mut(s.id.as_str()) {
            slot.take_in(s);
        }
        crate::live::FleetUpdate {
            shipper_id: s.id.to_string(),
            at: self
                .last_seen(s.id.as_str())
                .map(|seen| (seen.at.lat, seen.at.lng, seen.ts)),
            available,
            revision: Some(s.revision),
        }
    }

    /// Where `shipper_id` was last seen: the newest fix this node took or
    /// another node published.
    pub(in crate::service) fn last_seen(&self, shipper_id: &str) -> Option<Seen> {
        let local = self
            .slots
            .get(shipper_id)
            .and_then(|s| s.live.last)
            .map(|f| Seen {
                at: GeoPoint {
                    lat: f.lat,
                    lng: f.lng,
                },
                ts: f.ts,
            });
        let remote = self
            .remote
            .get(shipper_id)
            .map(|r| Seen { at: r.at, ts: r.ts });
        match (local, remote) {
            (Some(l), Some(r)) => Some(if r.ts > l.ts { r } else { l }),
            (l, r) => l.or(r),
        }
    }

    pub(in crate::service) fn newest(&self, shipper_id: &str) -> Option<Arc<Position>> {
        self.slots.get(shipper_id).and_then(|s| s.newest.clone())
    }

    /// Available shippers with a fresh position within the dispatch radius
    /// of `from`, nearest first, leaving out `exclude`.
    pub fn nearest(
        &self,
        from: GeoPoint,
        exclude: &[String],
        now: DateTime<Utc>,
    ) -> Vec<(String, f64)> {
        let oldest = now.timestamp_millis() - self.cfg.fresh.max_age_ms;
        let within = |at: GeoPoint| {
            let km = haversine_km(at, from);
            (km <= self.cfg.dispatch_radius_km).then_some(km * 1000.0)
        };
        let mut found: Vec<(String, f64)> = self
            .slots
            .iter()
            .filter(|e| e.shipper.available(now) && !exclude.contains(e.key()))
            .filter_map(|e| {
                let fix = e.live.last.filter(|f| f.ts >= oldest)?;
                within(fix.point()).map(|m| (e.key().clone(), m))
            })
            .collect();
        // Shippers whose fixes other nodes take, unless this node's own
        // slot of them is newer.
        for e in self.remote.iter() {
            let r = e.value();
            let local = self
                .slots
                .get(e.key())
                .and_then(|s| s.live.last.map(|f| f.ts));
            if !r.available
                || r.ts < oldest
                || exclude.contains(e.key())
                || local.is_some_and(|ts| ts >= r.ts)
            {
                continue;
            }
            if let Some(m) = within(r.at) {
                found.retain(|(id, _)| id != e.key());
                found.push((e.key().clone(), m));
            }
        }
        found.sort_by(|a, b| a.1.total_cmp(&b.1));
        found
    }

    pub fn live_shippers(&self) -> usize {
        self.slots.len()
    }
}

impl crate::config::Settings {
    /// Dispatch and tracking, from the settings.
    pub fn tracking(&self) -> TrackingConfig {
        use crate::domain::shipping::{Freshness, Geofence};
        let secs = |s: u64| chrono::Duration::seconds(s.min(i64::MAX as u64 / 1000) as i64);
        TrackingConfig {
            dispatch_radius_km: self.dispatch_radius_km,
            offer_timeout: secs(self.dispatch_offer_secs),
            dispatch_retry: secs(self.dispatch_retry_secs),
            fence: Geofence {
                radius_m: self.geofence_radius_m,
                dwell_ms: secs(self.arrival_dwell_secs).num_milliseconds(),
            },
            fresh: Freshness {
                max_age_ms: secs(self.location_max_age_secs).num_milliseconds(),
                max_skew_ms: secs(self.location_max_skew_secs).num_milliseconds(),
            },
            default_speed: self.eta_default_speed_mps,
            sample_every_ms: secs(self.track_sample_secs).num_milliseconds(),
            retention: secs(self.track_retention_secs),
            max_shippers: self.actor_max_live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::entity::Entity;
    use crate::actors::shipper::{ShipperEntity, ShipperEvent};

    #[test]
    fn a_reply_older_than_the_state_a_slot_knows_changes_nothing() {
        let at = Utc::now();
        let order = crate::domain::ids::OrderId::from("o1");
        let online = ShipperEntity::evolve(
            &Shipper {
                id: "s1".into(),
                ..Default::default()
            },
            &[ShipperEvent::WentOnline { at }],
        );
        let offered = ShipperEntity::evolve(
            &online,
            &[ShipperEvent::Offered {
                order_id: order.clone(),
                expires_at: at + chrono::Duration::seconds(30),
            }],
        );
        let assigned = ShipperEntity::evolve(
            &offered,
            &[ShipperEvent::Assigned {
                order_id: order.clone(),
                at,
            }],
        );
        let tracker = Tracker::new(TrackingConfig::default());
        tracker.slots.insert("s1".into(), Slot::default());
        tracker.slots.get_mut("s1").unwrap().take_in(&assigned);
        tracker.slots.get_mut("s1").unwrap().target = Some(Target {
            order_id: order.clone(),
            dest: GeoPoint { lat: 0.0, lng: 0.0 },
            last_sample: None,
            samples: 0,
        });
        // Another order's dispatch read the shipper while it held the
        // offer; that reply is observed after the assignment's.
        tracker.observe(&offered);
        let slot = tracker.slots.get("s1").unwrap();
        assert_eq!(slot.shipper.active_order.as_ref(), Some(&order));
        assert!(slot.target.is_some(), "the delivery stays the target");
        drop(slot);
        // The delivery's end is newer: it clears the target.
        let released = ShipperEntity::evolve(
            &assigned,
            &[ShipperEvent::Released {
                order_id: order.clone(),
                at,
            }],
        );
        tracker.observe(&released);
        let slot = tracker.slots.get("s1").unwrap();
        assert_eq!(slot.shipper.active_order, None);
        assert!(slot.target.is_none());
    }

    #[test]
    fn a_newer_state_seen_on_another_node_makes_the_slot_read_the_actor_again() {
        let tracker = Tracker::new(TrackingConfig::default());
        let mut known = Shipper {
            id: "s1".into(),
            revision: 3,
            ..Default::default()
        };
        tracker.slots.insert("s1".into(), Slot::default());
        tracker.slots.get_mut("s1").unwrap().take_in(&known);
        let update = |revision| crate::live::FleetUpdate {
            shipper_id: "s1".into(),
            at: None,
            available: false,
            revision: Some(revision),
        };
        tracker.apply_remote(update(2));
        assert!(!tracker.slots.get("s1").unwrap().behind(), "an older one");
        tracker.apply_remote(update(5));
        assert!(tracker.slots.get("s1").unwrap().behind());
        known.revision = 5;
        tracker.slots.get_mut("s1").unwrap().take_in(&known);
        assert!(!tracker.slots.get("s1").unwrap().behind(), "read again");
    }
}

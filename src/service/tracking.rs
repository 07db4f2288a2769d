//! Shippers, live positions and dispatch.
//!
//! The shipper actor (`actors::shipper`) persists what must survive a
//! restart: online/offline, the offer it holds, the order it delivers. Its
//! live side, the newest position with speed, heading and arrival state, is
//! kept here in memory, one slot per shipper, because positions are
//! high-rate and not journal events. A restarted server relearns positions
//! from the next fixes the devices send. Each accepted fix is published as
//! the newest position on `shipper:{id}` and, while delivering, on
//! `order:{id}`; one fix per `track_sample` is written to the `track_points`
//! read table for history and removed after the retention period.
//!
//! Dispatch (offering orders to the nearest shippers) is in `dispatch`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ServiceError, Services};
use crate::actors::order::OrderCommand;
use crate::actors::shipper::{Shipper, ShipperCommand};
use crate::domain::pricing::haversine_km;
use crate::domain::shipping::{check_fix, Fix, Freshness, Geofence, Ignored, Live, Position};
use crate::domain::{Caller, DomainError, GeoPoint, Role};
use crate::live::Topic;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{TRACK_EXPIRY, TRACK_POINTS};
use crate::store::{codec, IndexOp};

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

/// A sampled point of a delivery's path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackPoint {
    pub lat: f64,
    pub lng: f64,
    pub speed: Option<f64>,
    pub heading: Option<f64>,
    /// Device time, ms since the epoch.
    pub ts: i64,
}

/// The order a shipper is carrying, as the tracker needs it.
#[derive(Debug, Clone)]
struct Target {
    order_id: String,
    dest: GeoPoint,
    last_sample: Option<i64>,
    samples: u32,
}

/// One shipper's live slot.
#[derive(Debug, Clone, Default)]
struct Slot {
    live: Live,
    /// The shipper actor's state as last seen (a prefilter for dispatch;
    /// the actor itself decides).
    shipper: Shipper,
    target: Option<Target>,
    newest: Option<Arc<Position>>,
}

/// What a fix the slot accepted leads to.
struct Advanced {
    position: Arc<Position>,
    /// The order whose path samples this fix.
    sample: Option<String>,
    /// The order whose destination the shipper just reached.
    arrived: Option<String>,
}

impl Slot {
    /// Takes a fix in (or says why not): the new position with its progress
    /// toward the order's destination, whether the path samples it, and
    /// whether it crossed the arrival fence.
    fn advance(
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
            shipper_id: shipper_id.to_owned(),
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

/// The live slots of all shippers seen since start.
pub struct Tracker {
    pub cfg: TrackingConfig,
    slots: DashMap<String, Slot>,
}

/// What became of a fix.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocationOutcome {
    pub accepted: bool,
    /// Why it was not used (`out_of_order`, `stale`).
    pub ignored: Option<Ignored>,
    /// The shipper's newest position after it.
    pub position: Option<Position>,
}

/// `GET /shipping/{order_id}/tracking`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tracking {
    pub order_id: String,
    pub status: crate::domain::order::OrderStatus,
    pub shipper_id: Option<String>,
    pub destination: GeoPoint,
    pub arriving: bool,
    /// The shipper's newest position while delivering this order.
    pub current: Option<Position>,
    /// Sampled points, oldest first.
    pub path: Vec<TrackPoint>,
}

/// `GET /shipping/shippers/me`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShipperView {
    #[serde(flatten)]
    pub shipper: Shipper,
    pub position: Option<Position>,
}

impl Tracker {
    pub fn new(cfg: TrackingConfig) -> Self {
        Tracker {
            cfg,
            slots: DashMap::new(),
        }
    }

    pub(super) fn observe(&self, s: &Shipper) {
        if let Some(mut slot) = self.slots.get_mut(&s.id) {
            slot.shipper = s.clone();
            if slot.target.as_ref().map(|t| &t.order_id) != s.active_order.as_ref() {
                slot.target = None;
                slot.live.fence = Default::default();
            }
        }
    }

    fn newest(&self, shipper_id: &str) -> Option<Arc<Position>> {
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
        let mut found: Vec<(String, f64)> = self
            .slots
            .iter()
            .filter(|e| e.shipper.available(now) && !exclude.contains(e.key()))
            .filter_map(|e| {
                let fix = e.live.last.filter(|f| f.ts >= oldest)?;
                let km = haversine_km(fix.point(), from);
                (km <= self.cfg.dispatch_radius_km).then(|| (e.key().clone(), km * 1000.0))
            })
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1));
        found
    }

    pub fn live_shippers(&self) -> usize {
        self.slots.len()
    }
}

pub(super) fn shipper_only(user: &Caller) -> Result<(), ServiceError> {
    if user.role == Role::Shipper {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only shippers may do this".into()).into())
    }
}

fn track_key(order_id: &str, ts: i64) -> String {
    format!("{order_id}|{:020}", ts.max(0))
}

impl Services {
    pub(super) async fn shipper(
        &self,
        id: &str,
        cmd: ShipperCommand,
    ) -> Result<Shipper, ServiceError> {
        let s = self.shippers.call(id, cmd).await?;
        self.tracker.observe(&s);
        Ok(s)
    }

    /// `PUT /shipping/shippers/me/status`.
    pub async fn set_shipper_online(
        &self,
        caller: &Caller,
        online: bool,
        at: Option<Fix>,
    ) -> Result<ShipperView, ServiceError> {
        shipper_only(caller)?;
        if let Some(fix) = &at {
            check_fix(fix, Utc::now().timestamp_millis(), self.tracker.cfg.fresh)?;
        }
        let shipper = self
            .shipper(&caller.user_id, ShipperCommand::SetOnline(online))
            .await?;
        if !online {
            // An offline shipper's live slot goes; it comes back with the
            // next position.
            self.tracker.slots.remove(&caller.user_id);
        }
        if let Some(fix) = at {
            self.report_location(caller, fix).await?;
        }
        Ok(ShipperView {
            position: self.tracker.newest(&shipper.id).map(|p| (*p).clone()),
            shipper,
        })
    }

    /// `GET /shipping/shippers/me`.
    pub async fn shipper_me(&self, caller: &Caller) -> Result<ShipperView, ServiceError> {
        shipper_only(caller)?;
        let shipper = self.shipper(&caller.user_id, ShipperCommand::Get).await?;
        Ok(ShipperView {
            position: self.tracker.newest(&shipper.id).map(|p| (*p).clone()),
            shipper,
        })
    }

    /// Makes sure the shipper has a live slot that knows its actor's state
    /// and, while delivering, the delivery address.
    pub(super) async fn ensure_slot(&self, shipper_id: &str) -> Result<(), ServiceError> {
        // A slot exists only once its shipper's state was loaded into it.
        let known = self
            .tracker
            .slots
            .get(shipper_id)
            .map(|s| (s.shipper.active_order.clone(), s.target.is_some()));
        let active = match known {
            Some((_, true)) => return Ok(()),
            Some((active, false)) => active,
            None => {
                if self.tracker.slots.len() >= self.tracker.cfg.max_shippers {
                    return Err(ServiceError::Busy(
                        "too many live shippers on this node".into(),
                    ));
                }
                let s = self.shippers.call(shipper_id, ShipperCommand::Get).await?;
                let active = s.active_order.clone();
                self.tracker
                    .slots
                    .entry(shipper_id.to_owned())
                    .or_default()
                    .shipper = s;
                active
            }
        };
        if let Some(order_id) = active {
            let o = self.orders.get(&order_id).await?;
            if let Some(mut slot) = self.tracker.slots.get_mut(shipper_id) {
                if slot.shipper.active_order.as_deref() == Some(order_id.as_str()) {
                    slot.target = Some(Target {
                        order_id,
                        dest: GeoPoint {
                            lat: o.address.lat,
                            lng: o.address.lng,
                        },
                        last_sample: None,
                        samples: 0,
                    });
                    // Arrival already announced before a restart stays announced.
                    slot.live.fence.announced = o.delivery.arriving_at.is_some();
                }
            }
        }
        Ok(())
    }

    /// A position report from a shipper (WebSocket `location` frame or
    /// `POST /shipping/{order_id}/location`).
    pub async fn report_location(
        &self,
        caller: &Caller,
        fix: Fix,
    ) -> Result<LocationOutcome, ServiceError> {
        shipper_only(caller)?;
        let now_ms = Utc::now().timestamp_millis();
        let cfg = self.tracker.cfg;
        check_fix(&fix, now_ms, cfg.fresh)?;
        self.ensure_slot(&caller.user_id).await?;
        let Advanced {
            position,
            sample,
            arrived,
        } = {
            let Some(mut slot) = self.tracker.slots.get_mut(&caller.user_id) else {
                return Err(ServiceError::Unavailable("shipper slot vanished".into()));
            };
            match slot.advance(&caller.user_id, fix, now_ms, &cfg) {
                Ok(advanced) => advanced,
                Err(why) => {
                    return Ok(LocationOutcome {
                        accepted: false,
                        ignored: Some(why),
                        position: slot.newest.as_deref().cloned(),
                    })
                }
            }
        };
        self.bus
            .publish_position(&Topic::shipper(&caller.user_id), position.clone());
        if let Some(order_id) = &position.order_id {
            self.bus
                .publish_position(&Topic::order(order_id), position.clone());
        }
        if let Some(order_id) = sample {
            self.record_track_point(&order_id, &fix, position.speed)
                .await?;
        }
        if let Some(order_id) = arrived {
            self.orders.call(&order_id, OrderCommand::Arriving).await?;
            self.advance_order(&order_id).await?;
        }
        Ok(LocationOutcome {
            accepted: true,
            ignored: None,
            position: Some((*position).clone()),
        })
    }

    /// Keeps a sampled point of the path `order_id` took.
    async fn record_track_point(
        &self,
        order_id: &str,
        fix: &Fix,
        speed: Option<f64>,
    ) -> Result<(), ServiceError> {
        let point = TrackPoint {
            lat: fix.lat,
            lng: fix.lng,
            speed,
            heading: fix.heading,
            ts: fix.ts,
        };
        self.store
            .write_rows(vec![IndexOp::Put {
                table: TRACK_POINTS,
                key: track_key(order_id, fix.ts),
                value: codec::encode(1, &point).map_err(ServiceError::Storage)?,
            }])
            .await?;
        Ok(())
    }

    /// `POST /shipping/{order_id}/location`: like a WebSocket `location`
    /// frame, from the shipper delivering `order_id`.
    pub async fn report_order_location(
        &self,
        caller: &Caller,
        order_id: &str,
        fix: Fix,
    ) -> Result<LocationOutcome, ServiceError> {
        shipper_only(caller)?;
        self.ensure_slot(&caller.user_id).await?;
        let delivering = self
            .tracker
            .slots
            .get(&caller.user_id)
            .is_some_and(|s| s.shipper.active_order.as_deref() == Some(order_id));
        if !delivering {
            return Err(DomainError::Conflict {
                code: "not_delivering",
                message: "you are not delivering this order".into(),
            }
            .into());
        }
        self.report_location(caller, fix).await
    }

    /// `GET /shipping/{order_id}/tracking`: the path so far and the
    /// current position (customer, merchant, the shipper, admins).
    pub async fn tracking(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<Tracking, ServiceError> {
        let o = self.get_order(caller, order_id).await?;
        let rows = self
            .store
            .scan(
                TRACK_POINTS,
                &format!("{order_id}|"),
                None,
                MAX_TRACK_POINTS as usize,
            )
            .await?;
        let path = rows
            .iter()
            .filter_map(|(_, v)| codec::decode::<TrackPoint>(1, v).ok())
            .collect();
        let current = o
            .delivery
            .shipper_id
            .as_deref()
            .and_then(|s| self.tracker.newest(s))
            .filter(|p| o.in_delivery() && p.order_id.as_deref() == Some(order_id))
            .map(|p| (*p).clone());
        Ok(Tracking {
            order_id: o.id.clone(),
            status: o.status,
            shipper_id: o.delivery.shipper_id.clone(),
            destination: GeoPoint {
                lat: o.address.lat,
                lng: o.address.lng,
            },
            arriving: o.delivery.arriving_at.is_some(),
            current,
            path,
        })
    }

    /// Deletes the tracks whose retention ended (at most `budget` points).
    pub async fn expire_tracks(&self, budget: usize) -> Result<usize, ServiceError> {
        let now_ms = Utc::now().timestamp_millis();
        let mut deleted = 0;
        for (key, _) in self.store.scan(TRACK_EXPIRY, "", None, 64).await? {
            let Some((ms, order_id)) = key.split_once('|') else {
                continue;
            };
            if ms.parse::<i64>().map_or(true, |ms| ms > now_ms) {
                break;
            }
            loop {
                let rows = self
                    .store
                    .scan(TRACK_POINTS, &format!("{order_id}|"), None, 512)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                deleted += rows.len();
                self.store
                    .write_rows(
                        rows.into_iter()
                            .map(|(key, _)| IndexOp::Delete {
                                table: TRACK_POINTS,
                                key,
                            })
                            .collect(),
                    )
                    .await?;
                if deleted >= budget {
                    return Ok(deleted);
                }
            }
            self.store
                .write_rows(vec![IndexOp::Delete {
                    table: TRACK_EXPIRY,
                    key,
                }])
                .await?;
        }
        Ok(deleted)
    }

    /// May `user` watch `shipper:{shipper_id}`? `Ok(None)`: everything on
    /// it; `Ok(Some(order))`: only what concerns that order (a customer
    /// whose order the shipper is delivering).
    pub async fn shipper_topic_scope(
        &self,
        caller: &Caller,
        shipper_id: &str,
    ) -> Result<Option<String>, ServiceError> {
        if caller.user_id == shipper_id || caller.role == Role::Admin {
            return Ok(None);
        }
        let forbidden = || ServiceError::Domain(DomainError::Forbidden("not your shipper".into()));
        self.exists(&self.shippers, shipper_id, "shipper")
            .await
            .map_err(|_| forbidden())?;
        let s = self.shipper(shipper_id, ShipperCommand::Get).await?;
        let order_id = s.active_order.ok_or_else(forbidden)?;
        let o = self.orders.get(&order_id).await?;
        if o.customer_id == caller.user_id {
            Ok(Some(order_id))
        } else {
            Err(forbidden())
        }
    }
}

//! The shipper's use cases (`Shipping`): going online and offline,
//! reporting positions, taking or turning down offers, and following a
//! delivery.
//!
//! The shipper actor (`actors::shipper`) persists what must survive a
//! restart: online/offline, the offer it holds, the order it delivers. Its
//! live side, the newest position with speed, heading and arrival state,
//! is kept in memory in `fleet`, one slot per shipper. Each accepted fix is
//! published as the newest position on `shipper:{id}` and, while
//! delivering, on `order:{id}`; one fix per `track_sample` is written to the
//! `track_points` read table for history and removed after the retention
//! period (`dispatch`).

use crate::domain::order::{Order, Step};
use crate::service::commerce::fulfilment::Fulfilment;
use crate::service::commerce::orders::Orders;
use crate::service::delivery::dispatch::Dispatch;
use crate::service::delivery::tracker::{Advanced, MAX_TRACK_POINTS};
use crate::service::found;
use crate::store::Store;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::actors::order::OrderCommand;
use crate::actors::shipper::{Shipper, ShipperCommand};
use crate::domain::shipping::{check_fix, closing, Fix, Ignored, Position};
use crate::domain::{Caller, DomainError, GeoPoint, Role};
use crate::live::Topic;
use crate::service::ServiceError;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{TRACK_EXPIRY, TRACK_POINTS};
use crate::store::{codec, IndexOp};

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
    pub order_id: crate::domain::ids::OrderId,
    pub status: crate::domain::order::OrderStatus,
    pub shipper_id: Option<crate::domain::ids::UserId>,
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

pub(in crate::service) fn shipper_only(user: &Caller) -> Result<(), ServiceError> {
    if user.role == Role::Shipper {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only shippers may do this".into()).into())
    }
}

fn track_key(order_id: &str, ts: i64) -> String {
    format!("{order_id}|{:020}", ts.max(0))
}

/// The shipper's use cases (going online, reporting positions, taking or
/// turning down offers) and following a delivery.
pub struct Shipping {
    pub(in crate::service) dispatch: Dispatch,
    pub(in crate::service) orders: Orders,
    pub(in crate::service) fulfilment: Arc<Fulfilment>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) bus: Arc<crate::live::Bus>,
}

impl Shipping {
    /// A delivery step (`PUT /shipping/{order_id}/status`). The shipper
    /// carrying the order closes it only at its address, by their newest
    /// fix, or with an override reason that the timeline records
    /// (`domain::shipping::closing`); a merchant carries only orders they
    /// deliver themselves (`domain::order::may_carry`).
    pub async fn delivery_step(
        &self,
        caller: &Caller,
        order_id: &str,
        step: Step,
        override_reason: Option<String>,
    ) -> Result<Order, ServiceError> {
        let carrier = step == Step::Deliver && caller.role == Role::Shipper;
        if override_reason.is_some() && !carrier {
            return Err(DomainError::invalid(
                "override_reason",
                "override_reason is given only by the shipper marking an order delivered",
            )
            .into());
        }
        let mut reason = None;
        if carrier {
            let o = self.orders.get_order(caller, order_id).await?;
            if o.delivery.shipper_id.as_deref() == Some(caller.user_id.as_str()) {
                let tracker = &self.dispatch.tracker;
                reason = closing(
                    tracker.last_seen(&caller.user_id),
                    GeoPoint {
                        lat: o.address.lat,
                        lng: o.address.lng,
                    },
                    tracker.cfg.fence,
                    tracker.cfg.fresh,
                    Utc::now().timestamp_millis(),
                    override_reason.as_deref(),
                )?;
            }
        }
        self.orders.order_step(caller, order_id, step, reason).await
    }

    /// A shipper's answer to the offer of `order_id`, given to the order.
    async fn answer_offer(
        &self,
        caller: &Caller,
        order_id: &str,
        answer: OrderCommand,
    ) -> Result<(), ServiceError> {
        shipper_only(caller)?;
        self.orders.order_exists(order_id).await?;
        self.dispatch.orders.call(order_id, answer).await?;
        Ok(())
    }

    /// The offered shipper takes the order.
    pub async fn accept_offer(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<Order, ServiceError> {
        let accept = OrderCommand::Accept {
            caller: caller.clone(),
        };
        self.answer_offer(caller, order_id, accept).await?;
        // Binding the shipper actor is the order's next action: run it now.
        self.fulfilment.advance_order(order_id).await?;
        self.dispatch.ensure_slot(&caller.user_id).await?;
        self.orders.get_order(caller, order_id).await
    }

    /// The offered shipper turns the order down; it goes to the next one.
    pub async fn decline_offer(&self, caller: &Caller, order_id: &str) -> Result<(), ServiceError> {
        let decline = OrderCommand::Decline {
            caller: caller.clone(),
        };
        self.answer_offer(caller, order_id, decline).await?;
        self.dispatch
            .shipper(
                &caller.user_id,
                ShipperCommand::Withdraw {
                    order_id: order_id.into(),
                },
            )
            .await?;
        self.fulfilment.advance_order(order_id).await
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
            check_fix(
                fix,
                Utc::now().timestamp_millis(),
                self.dispatch.tracker.cfg.fresh,
            )?;
        }
        let shipper = self
            .dispatch
            .shipper(&caller.user_id, ShipperCommand::SetOnline(online))
            .await?;
        if !online {
            // An offline shipper's live slot goes; it comes back with the
            // next position.
            self.dispatch.tracker.slots.remove(caller.user_id.as_str());
            self.bus.publish_fleet(crate::live::FleetUpdate {
                shipper_id: caller.user_id.to_string(),
                at: None,
                available: false,
                revision: None,
            });
        }
        if let Some(fix) = at {
            self.report_location(caller, fix).await?;
        }
        Ok(ShipperView {
            position: self
                .dispatch
                .tracker
                .newest(&shipper.id)
                .map(|p| (*p).clone()),
            shipper,
        })
    }

    /// `GET /shipping/shippers/me`.
    pub async fn shipper_me(&self, caller: &Caller) -> Result<ShipperView, ServiceError> {
        shipper_only(caller)?;
        let shipper = self
            .dispatch
            .shipper(&caller.user_id, ShipperCommand::Get)
            .await?;
        Ok(ShipperView {
            position: self
                .dispatch
                .tracker
                .newest(&shipper.id)
                .map(|p| (*p).clone()),
            shipper,
        })
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
        let cfg = self.dispatch.tracker.cfg;
        check_fix(&fix, now_ms, cfg.fresh)?;
        self.dispatch.ensure_slot(&caller.user_id).await?;
        let Advanced {
            position,
            sample,
            arrived,
        } = {
            let Some(mut slot) = self.dispatch.tracker.slots.get_mut(caller.user_id.as_str())
            else {
                return Err(ServiceError::Unavailable("shipper slot vanished".into()));
            };
            match slot.advance(&caller.user_id, fix, now_ms, &cfg) {
                Ok(advanced) => {
                    // The other nodes' dispatch sees this shipper too.
                    self.bus.publish_fleet(crate::live::FleetUpdate {
                        shipper_id: caller.user_id.to_string(),
                        at: Some((fix.lat, fix.lng, fix.ts)),
                        available: slot.shipper.available(Utc::now()),
                        revision: None,
                    });
                    advanced
                }
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
            self.dispatch
                .orders
                .call(&order_id, OrderCommand::Arriving)
                .await?;
            self.fulfilment.advance_order(&order_id).await?;
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
        self.dispatch.ensure_slot(&caller.user_id).await?;
        let delivering = || {
            self.dispatch
                .tracker
                .slots
                .get(caller.user_id.as_str())
                .is_some_and(|s| s.shipper.active_order.as_deref() == Some(order_id))
        };
        if !delivering() {
            // Another node may have bound the delivery a moment ago (its
            // word comes over Redis): the actor decides, asked once.
            self.dispatch.refresh_slot(&caller.user_id).await?;
            self.dispatch.ensure_slot(&caller.user_id).await?;
            if !delivering() {
                return Err(DomainError::conflict(
                    "not_delivering",
                    "you are not delivering this order",
                )
                .into());
            }
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
        let o = self.orders.get_order(caller, order_id).await?;
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
            .and_then(|s| self.dispatch.tracker.newest(s))
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
        found(&self.dispatch.shippers, shipper_id, "shipper")
            .await
            .map_err(|_| forbidden())?;
        let s = self
            .dispatch
            .shipper(shipper_id, ShipperCommand::Get)
            .await?;
        let order_id = s.active_order.ok_or_else(forbidden)?;
        let o = self.dispatch.orders.get(&order_id).await?;
        if o.customer_id == caller.user_id {
            Ok(Some(order_id.into()))
        } else {
            Err(forbidden())
        }
    }
}

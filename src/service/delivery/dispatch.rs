//! Dispatch: an order's next action offers it to the nearest available
//! shipper with a fresh position within `dispatch_radius` of the shop
//! (among shippers about as near — the same 250 m band — the better rated
//! first: `domain::shipping::dispatch_order`); a decline or a lapse offers it to the next one; nobody available retries
//! after `dispatch_retry`. The order and the shipper actor each hold their
//! half of an offer, and the shipper's half lapses by itself. `Dispatch`
//! also binds and releases shippers and expires tracks: the follow-up work
//! (`fulfilment`) calls it.

use crate::actors::order::OrderEntity;
use crate::actors::shipper::Shipper;
use crate::actors::shipper::ShipperEntity;
use crate::actors::shop::ShopEntity;
use crate::actors::Registry;
use crate::domain::shipping::{dispatch_order, dispatch_score};
use crate::domain::GeoPoint;
use crate::service::delivery::tracker::Target;
use crate::service::delivery::tracker::Tracker;
use crate::store::Store;
use chrono::Utc;
use std::sync::Arc;

use crate::actors::order::OrderCommand;
use crate::actors::shipper::ShipperCommand;
use crate::actors::shop::ShopCommand;
use crate::actors::CallError;
use crate::domain::order::Order;
use crate::service::ServiceError;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{TRACK_EXPIRY, TRACK_POINTS};
use crate::store::IndexOp;

/// The engine's side of the shippers: their live slots, offers, binding
/// and releasing them, and the retention of their tracks.
#[derive(Clone)]
pub struct Dispatch {
    pub(in crate::service) tracker: Arc<Tracker>,
    pub(in crate::service) shippers: Registry<ShipperEntity>,
    pub(in crate::service) orders: Registry<OrderEntity>,
    pub(in crate::service) shops: Registry<ShopEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
    /// Cluster mode: what this node learns of a shipper goes to the others.
    pub(in crate::service) bus: Arc<crate::live::Bus>,
}

impl Dispatch {
    /// Takes in a shipper actor's state, here and (cluster mode) on the
    /// other nodes, whose dispatch would otherwise go on offering orders to
    /// a busy shipper, or never again to one free again, until its next fix.
    pub(in crate::service) fn seen(&self, s: &Shipper) {
        self.bus.publish_fleet(self.tracker.observe(s));
    }

    pub(in crate::service) async fn shipper(
        &self,
        id: &str,
        cmd: ShipperCommand,
    ) -> Result<Shipper, ServiceError> {
        let s = self.shippers.call(id, cmd).await?;
        self.seen(&s);
        Ok(s)
    }

    /// Reads the shipper actor's state into its slot (made if missing);
    /// the order the slot now knows it carries.
    pub(in crate::service) async fn refresh_slot(
        &self,
        shipper_id: &str,
    ) -> Result<Option<crate::domain::ids::OrderId>, ServiceError> {
        let s = self.shippers.call(shipper_id, ShipperCommand::Get).await?;
        let mut slot = self.tracker.slots.entry(shipper_id.to_owned()).or_default();
        slot.take_in(&s);
        // The actor is the truth: a revision announced beyond it (a node
        // counting otherwise) does not make every later fix read it again.
        slot.announced = slot.announced.min(slot.shipper.revision);
        Ok(slot.shipper.active_order.clone())
    }

    /// Makes sure the shipper has a live slot that knows its actor's state
    /// and, while delivering, the delivery address.
    pub(in crate::service) async fn ensure_slot(
        &self,
        shipper_id: &str,
    ) -> Result<(), ServiceError> {
        // A slot exists only once its shipper's state was loaded into it.
        let known = self.tracker.slots.get(shipper_id).map(|s| {
            (
                s.shipper.active_order.clone(),
                s.target.is_some(),
                s.behind(),
            )
        });
        let active = match known {
            Some((_, true, false)) => return Ok(()),
            Some((active, false, false)) => active,
            // Another node saw a newer state of the shipper.
            Some((_, _, true)) => self.refresh_slot(shipper_id).await?,
            None => {
                if self.tracker.slots.len() >= self.tracker.cfg.max_shippers {
                    return Err(ServiceError::Busy(
                        "too many live shippers on this node".into(),
                    ));
                }
                self.refresh_slot(shipper_id).await?
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

    /// The dispatch step of an order's next actions: the command that
    /// records what happened.
    pub(crate) async fn dispatch(&self, o: &Order) -> Result<OrderCommand, ServiceError> {
        let now = Utc::now();
        if let Some(offer) = &o.delivery.offer {
            // Due means unanswered at its deadline.
            self.shipper(
                &offer.shipper_id,
                ShipperCommand::Withdraw {
                    order_id: o.id.clone(),
                },
            )
            .await?;
            return Ok(OrderCommand::ExpireOffer);
        }
        let shop = self
            .shops
            .call(&o.shop_id, ShopCommand::Get)
            .await
            .map_err(ServiceError::from)?;
        let expires_at = now + self.tracker.cfg.offer_timeout;
        let mut candidates = Vec::new();
        for (shipper_id, distance_m) in self
            .tracker
            .nearest(shop.location, &o.delivery.declined, now)
            .into_iter()
            .take(8)
        {
            let rating = crate::service::products::ratings::rating_of(
                self.store.as_ref(),
                crate::domain::review::ReviewKind::Shipper,
                &shipper_id,
            )
            .await?;
            candidates.push((shipper_id, distance_m, dispatch_score(&rating)));
        }
        for (shipper_id, distance_m) in dispatch_order(candidates) {
            let offered = self
                .shippers
                .call(
                    &shipper_id,
                    ShipperCommand::Offer {
                        order_id: o.id.clone(),
                        expires_at,
                    },
                )
                .await;
            match offered {
                Ok(s) => {
                    self.seen(&s);
                    return Ok(OrderCommand::Offer {
                        shipper_id: shipper_id.into(),
                        expires_at,
                        distance_m: distance_m.round(),
                    });
                }
                // Went offline or got busy since we looked: try the next.
                Err(CallError::Rejected(_)) => {
                    if let Ok(s) = self.shippers.call(&shipper_id, ShipperCommand::Get).await {
                        self.seen(&s);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(OrderCommand::DeferDispatch {
            until: now + self.tracker.cfg.dispatch_retry,
        })
    }

    /// Tells the accepting shipper's actor it carries `o`.
    pub(crate) async fn bind_shipper(&self, o: &Order) -> Result<OrderCommand, ServiceError> {
        if let Some(shipper_id) = &o.delivery.shipper_id {
            self.shipper(
                shipper_id,
                ShipperCommand::Assign {
                    order_id: o.id.clone(),
                },
            )
            .await?;
        }
        Ok(OrderCommand::ShipperBound)
    }

    /// Frees the shipper of `o` and schedules its track's deletion.
    pub(crate) async fn release_shipper(&self, o: &Order) -> Result<OrderCommand, ServiceError> {
        if let Some(shipper_id) = &o.delivery.shipper_id {
            self.shipper(
                shipper_id,
                ShipperCommand::Release {
                    order_id: o.id.clone(),
                },
            )
            .await?;
        }
        let expires = Utc::now() + self.tracker.cfg.retention;
        self.store
            .write_rows(vec![IndexOp::Put {
                table: TRACK_EXPIRY,
                key: format!("{:020}|{}", expires.timestamp_millis().max(0), o.id),
                value: Vec::new(),
            }])
            .await?;
        Ok(OrderCommand::ShipperReleased)
    }
}

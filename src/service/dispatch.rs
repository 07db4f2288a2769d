//! Dispatch: an order's next action offers it to the nearest available
//! shipper with a fresh position within `dispatch_radius` of the shop; a
//! decline or a lapse offers it to the next one; nobody available retries
//! after `dispatch_retry`. The order and the shipper actor each hold their
//! half of an offer, and the shipper's half lapses by itself.

use chrono::Utc;

use super::tracking::shipper_only;
use super::{ServiceError, Services};
use crate::actors::order::OrderCommand;
use crate::actors::shipper::ShipperCommand;
use crate::actors::shop::ShopCommand;
use crate::actors::CallError;
use crate::domain::order::Order;
use crate::domain::Caller;
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{TRACK_EXPIRY, TRACK_POINTS};
use crate::store::IndexOp;

impl Services {
    /// The offered shipper takes the order.
    pub async fn accept_offer(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<Order, ServiceError> {
        shipper_only(caller)?;
        self.order_exists(order_id).await?;
        self.orders
            .call(
                order_id,
                OrderCommand::Accept {
                    caller: caller.clone(),
                },
            )
            .await?;
        // Binding the shipper actor is the order's next action: run it now.
        self.advance_order(order_id).await?;
        self.ensure_slot(&caller.user_id).await?;
        self.get_order(caller, order_id).await
    }

    /// The offered shipper turns the order down; it goes to the next one.
    pub async fn decline_offer(&self, caller: &Caller, order_id: &str) -> Result<(), ServiceError> {
        shipper_only(caller)?;
        self.order_exists(order_id).await?;
        self.orders
            .call(
                order_id,
                OrderCommand::Decline {
                    caller: caller.clone(),
                },
            )
            .await?;
        self.shipper(
            &caller.user_id,
            ShipperCommand::Withdraw {
                order_id: order_id.to_owned(),
            },
        )
        .await?;
        self.advance_order(order_id).await
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
        for (shipper_id, distance_m) in self
            .tracker
            .nearest(shop.location, &o.delivery.declined, now)
            .into_iter()
            .take(8)
        {
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
                    self.tracker.observe(&s);
                    return Ok(OrderCommand::Offer {
                        shipper_id,
                        expires_at,
                        distance_m: distance_m.round(),
                    });
                }
                // Went offline or got busy since we looked: try the next.
                Err(CallError::Rejected(_)) => {
                    if let Ok(s) = self.shippers.call(&shipper_id, ShipperCommand::Get).await {
                        self.tracker.observe(&s);
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

//! The shipper entity: one actor per shipper (keyed by the shipper's user
//! id). It is the single writer of what must survive a restart: online or
//! offline, the delivery offer it holds, and the order it is delivering.
//! Its position is deliberately not here: positions are high-rate and not
//! journal events (see `service::delivery::shipping`).
//!
//! A shipper holds at most one offer and one delivery at a time. An offer
//! lapses by itself at its deadline, so a dispatcher that crashed between
//! offering and recording the offer on the order never leaves the shipper
//! stuck.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Ctx, Entity};
use crate::domain::DomainError;
use crate::live::{LiveEvent, ShipperLive, Topic};

pub struct ShipperEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Offer {
    pub order_id: crate::domain::ids::OrderId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Shipper {
    pub id: crate::domain::ids::UserId,
    pub online: bool,
    /// The delivery offer waiting for an answer.
    pub offer: Option<Offer>,
    /// The order being delivered.
    pub active_order: Option<crate::domain::ids::OrderId>,
    /// Deliveries finished (delivered or ended otherwise).
    pub deliveries: u64,
    pub updated_at: Option<DateTime<Utc>>,
    /// Events applied so far: a later state has a higher revision, so a
    /// reply that arrives after a newer one is recognised as stale.
    #[serde(default)]
    pub revision: u64,
}

impl Shipper {
    /// The offer, unless it has lapsed.
    pub fn live_offer(&self, now: DateTime<Utc>) -> Option<&Offer> {
        self.offer.as_ref().filter(|o| o.expires_at > now)
    }

    /// May be offered a delivery now.
    pub fn available(&self, now: DateTime<Utc>) -> bool {
        self.online && self.active_order.is_none() && self.live_offer(now).is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShipperEvent {
    WentOnline {
        at: DateTime<Utc>,
    },
    WentOffline {
        at: DateTime<Utc>,
    },
    Offered {
        order_id: crate::domain::ids::OrderId,
        expires_at: DateTime<Utc>,
    },
    OfferWithdrawn {
        order_id: crate::domain::ids::OrderId,
    },
    /// The shipper is delivering `order_id`.
    Assigned {
        order_id: crate::domain::ids::OrderId,
        at: DateTime<Utc>,
    },
    /// The delivery of `order_id` is over (delivered, cancelled…).
    Released {
        order_id: crate::domain::ids::OrderId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShipperCommand {
    SetOnline(bool),
    /// Hold an offer of `order_id` until `expires_at` (rejected unless
    /// available; repeating the same offer is a no-op).
    Offer {
        order_id: crate::domain::ids::OrderId,
        expires_at: DateTime<Utc>,
    },
    /// Drop the offer of `order_id` (declined or given to someone else).
    Withdraw {
        order_id: crate::domain::ids::OrderId,
    },
    /// The order recorded this shipper as its carrier. Idempotent.
    Assign {
        order_id: crate::domain::ids::OrderId,
    },
    /// The delivery of `order_id` ended. Idempotent.
    Release {
        order_id: crate::domain::ids::OrderId,
    },
    Get,
}

fn busy(message: impl Into<String>) -> DomainError {
    DomainError::conflict("shipper_busy", message)
}

impl Entity for ShipperEntity {
    const KIND: &'static str = "shipper";
    type State = Shipper;
    type Command = ShipperCommand;
    type Event = ShipperEvent;
    type Reply = Shipper;
    type Rejection = DomainError;

    fn decide(
        s: &Shipper,
        cmd: ShipperCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<ShipperEvent>, Shipper), DomainError> {
        let now = ctx.now;
        let events = match cmd {
            ShipperCommand::Get => vec![],
            ShipperCommand::SetOnline(true) if s.online => vec![],
            ShipperCommand::SetOnline(true) => vec![ShipperEvent::WentOnline { at: now }],
            ShipperCommand::SetOnline(false) if !s.online => vec![],
            ShipperCommand::SetOnline(false) => {
                if let Some(order) = &s.active_order {
                    return Err(DomainError::conflict(
                        "delivery_in_progress",
                        format!("finish delivering order {order} before going offline"),
                    ));
                }
                let mut events = vec![];
                if let Some(o) = s.live_offer(now) {
                    events.push(ShipperEvent::OfferWithdrawn {
                        order_id: o.order_id.clone(),
                    });
                }
                events.push(ShipperEvent::WentOffline { at: now });
                events
            }
            ShipperCommand::Offer {
                order_id,
                expires_at,
            } => {
                if s.live_offer(now).is_some_and(|o| o.order_id == order_id) {
                    vec![]
                } else if !s.available(now) {
                    return Err(busy("this shipper is offline or busy"));
                } else {
                    vec![ShipperEvent::Offered {
                        order_id,
                        expires_at,
                    }]
                }
            }
            ShipperCommand::Withdraw { order_id } => match &s.offer {
                Some(o) if o.order_id == order_id => {
                    vec![ShipperEvent::OfferWithdrawn { order_id }]
                }
                _ => vec![],
            },
            ShipperCommand::Assign { order_id } => match &s.active_order {
                Some(current) if *current == order_id => vec![],
                Some(current) => {
                    return Err(busy(format!("this shipper is delivering order {current}")))
                }
                None => vec![ShipperEvent::Assigned { order_id, at: now }],
            },
            ShipperCommand::Release { order_id } => match &s.active_order {
                Some(current) if *current == order_id => {
                    vec![ShipperEvent::Released { order_id, at: now }]
                }
                _ => vec![],
            },
        };
        let mut next = Self::evolve(s, &events);
        next.id = ctx.id.into();
        Ok((events, next))
    }

    fn apply(s: &mut Shipper, event: &ShipperEvent) {
        s.revision += 1;
        match event {
            ShipperEvent::WentOnline { at } => {
                s.online = true;
                s.updated_at = Some(*at);
            }
            ShipperEvent::WentOffline { at } => {
                s.online = false;
                s.updated_at = Some(*at);
            }
            ShipperEvent::Offered {
                order_id,
                expires_at,
            } => {
                s.offer = Some(Offer {
                    order_id: order_id.clone(),
                    expires_at: *expires_at,
                })
            }
            ShipperEvent::OfferWithdrawn { order_id } => {
                if s.offer.as_ref().is_some_and(|o| o.order_id == *order_id) {
                    s.offer = None;
                }
            }
            ShipperEvent::Assigned { order_id, at } => {
                s.active_order = Some(order_id.clone());
                if s.offer.as_ref().is_some_and(|o| o.order_id == *order_id) {
                    s.offer = None;
                }
                s.updated_at = Some(*at);
            }
            ShipperEvent::Released { at, .. } => {
                s.active_order = None;
                s.deliveries += 1;
                s.updated_at = Some(*at);
            }
        }
    }

    /// On `shipper:{id}`: online/offline and the start and end of each
    /// delivery (with its order id, so watchers scoped to one order can
    /// tell theirs from the next).
    fn publish(id: &str, event: &ShipperEvent) -> Option<(Topic, LiveEvent)> {
        let data = match event {
            ShipperEvent::WentOnline { at } => ShipperLive::Online { at: *at },
            ShipperEvent::WentOffline { at } => ShipperLive::Offline { at: *at },
            ShipperEvent::Assigned { order_id, at } => ShipperLive::Assigned {
                order_id: order_id.clone(),
                at: *at,
            },
            ShipperEvent::Released { order_id, at } => ShipperLive::Released {
                order_id: order_id.clone(),
                at: *at,
            },
            ShipperEvent::Offered { .. } | ShipperEvent::OfferWithdrawn { .. } => return None,
        };
        Some((Topic::shipper(id), LiveEvent::Shipper(data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &Shipper, cmd: ShipperCommand, now: DateTime<Utc>) -> Result<Shipper, DomainError> {
        ShipperEntity::decide(s, cmd, &Ctx { id: "s1", now }).map(|(_, s)| s)
    }

    #[test]
    fn one_offer_and_one_delivery_at_a_time() {
        let t0 = Utc::now();
        let secs = chrono::Duration::seconds;
        let offline = Shipper::default();
        assert!(run(
            &offline,
            ShipperCommand::Offer {
                order_id: "o1".into(),
                expires_at: t0 + secs(30)
            },
            t0
        )
        .is_err());
        let s = run(&offline, ShipperCommand::SetOnline(true), t0).unwrap();
        let offer = |o: &str| ShipperCommand::Offer {
            order_id: o.into(),
            expires_at: t0 + secs(30),
        };
        let s = run(&s, offer("o1"), t0).unwrap();
        assert!(run(&s, offer("o2"), t0).is_err(), "one offer at a time");
        assert_eq!(run(&s, offer("o1"), t0).unwrap(), s, "repeat is a no-op");
        // The offer lapses by itself.
        assert!(run(&s, offer("o2"), t0 + secs(31)).is_ok());
        let s = run(
            &s,
            ShipperCommand::Assign {
                order_id: "o1".into(),
            },
            t0,
        )
        .unwrap();
        assert_eq!(s.active_order.as_deref(), Some("o1"));
        assert!(s.offer.is_none());
        assert!(run(&s, ShipperCommand::SetOnline(false), t0).is_err());
        assert!(run(
            &s,
            ShipperCommand::Assign {
                order_id: "o2".into()
            },
            t0
        )
        .is_err());
        let s = run(
            &s,
            ShipperCommand::Release {
                order_id: "o1".into(),
            },
            t0,
        )
        .unwrap();
        assert!(s.available(t0));
        assert_eq!(s.deliveries, 1);
    }
}

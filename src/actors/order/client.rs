//! The typed client of order actors. Every order command answers the
//! order as it is after the command; a payment report also says whether it
//! was a duplicate (an event id already seen). The reply enum is matched
//! here and nowhere else.

use super::{OrderCommand, OrderEntity, OrderReply, PaymentReport};
use crate::actors::{CallError, Registry};
use crate::domain::order::{Order, Step};
use crate::domain::{Caller, DomainError};

type Answer<T> = Result<T, CallError<DomainError>>;

/// A payment report as the order took it.
#[derive(Debug, Clone)]
pub struct PaymentApplied {
    pub order: Order,
    /// The report's event id was seen before: nothing changed.
    pub duplicate: bool,
}

impl Registry<OrderEntity> {
    /// `cmd`, answered with the order after it.
    pub async fn send(&self, id: &str, cmd: OrderCommand) -> Answer<Order> {
        match self.call(id, cmd).await? {
            OrderReply::Order(o) | OrderReply::Duplicate(o) => Ok(*o),
        }
    }

    /// The order, unchecked (for Surge's own work).
    pub async fn get(&self, id: &str) -> Answer<Order> {
        self.send(id, OrderCommand::Get { caller: None }).await
    }

    /// The order, if `caller` is one of its parties.
    pub async fn get_for(&self, id: &str, caller: &Caller) -> Answer<Order> {
        let caller = Some(caller.clone());
        self.send(id, OrderCommand::Get { caller }).await
    }

    /// Places `order` (idempotent by its id).
    pub async fn place(&self, order: Order) -> Answer<Order> {
        let id = order.id.clone();
        let cmd = OrderCommand::Place {
            order: Box::new(order),
        };
        self.send(&id, cmd).await
    }

    /// `caller` takes `step`.
    pub async fn act(
        &self,
        id: &str,
        caller: &Caller,
        step: Step,
        reason: Option<String>,
    ) -> Answer<Order> {
        let cmd = OrderCommand::Act {
            caller: caller.clone(),
            step,
            reason,
        };
        self.send(id, cmd).await
    }

    pub async fn report_payment(&self, id: &str, report: PaymentReport) -> Answer<PaymentApplied> {
        Ok(match self.call(id, OrderCommand::Payment(report)).await? {
            OrderReply::Order(o) => PaymentApplied {
                order: *o,
                duplicate: false,
            },
            OrderReply::Duplicate(o) => PaymentApplied {
                order: *o,
                duplicate: true,
            },
        })
    }
}

//! The typed client of order actors. Every order command answers the
//! order as it is after the command; a payment report also says whether it
//! was a duplicate (an event id already seen). The reply enum is matched
//! here and nowhere else.

use super::{OrderCommand, OrderEntity, OrderReply, PaymentReport, ReviewRef};
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
            OrderReply::Reviews(_) => Err(unexpected()),
        }
    }

    /// Records `caller`'s review of `subject` as `review_id` unless one
    /// is recorded; the id of the order's review of `subject`.
    pub async fn attach_review(
        &self,
        id: &str,
        caller: &Caller,
        subject: String,
        review_id: String,
    ) -> Answer<String> {
        let cmd = OrderCommand::AttachReview {
            caller: caller.clone(),
            subject: subject.clone(),
            review_id,
        };
        self.reviews_of(id, cmd)
            .await?
            .into_iter()
            .find(|r| r.subject == subject)
            .map(|r| r.review_id)
            .ok_or_else(unexpected)
    }

    /// The reviews of the order, for one of its parties.
    pub async fn reviews(&self, id: &str, caller: &Caller) -> Answer<Vec<ReviewRef>> {
        let caller = caller.clone();
        self.reviews_of(id, OrderCommand::Reviews { caller }).await
    }

    async fn reviews_of(&self, id: &str, cmd: OrderCommand) -> Answer<Vec<ReviewRef>> {
        match self.call(id, cmd).await? {
            OrderReply::Reviews(r) => Ok(r),
            OrderReply::Order(_) | OrderReply::Duplicate(_) => Err(unexpected()),
        }
    }

    /// The order, unchecked (for Surge's own work).
    pub async fn get(&self, id: &str) -> Answer<Order> {
        self.send(id, OrderCommand::Get { caller: None }).await
    }

    /// The orders of `order`'s checkout payment, in the session's order
    /// (`order` itself among them, not read again); just `order` when it
    /// is paid alone.
    pub async fn checkout_orders(&self, order: Order) -> Answer<Vec<Order>> {
        let Some(session) = order.payment.session.clone() else {
            return Ok(vec![order]);
        };
        let mut orders = Vec::with_capacity(session.orders.len());
        for id in &session.orders {
            orders.push(match *id == order.id {
                true => order.clone(),
                false => self.get(id).await?,
            });
        }
        Ok(orders)
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

    /// The customer asks to return lines of order `id`.
    pub async fn request_return(
        &self,
        id: &str,
        caller: &Caller,
        input: crate::domain::order::returns::ReturnInput,
    ) -> Answer<Order> {
        let cmd = OrderCommand::RequestReturn {
            caller: caller.clone(),
            input,
        };
        self.send(id, cmd).await
    }

    /// The customer adds a photo (`url`) for a return of order `id`.
    pub async fn add_return_photo(&self, id: &str, caller: &Caller, url: String) -> Answer<Order> {
        let cmd = OrderCommand::AddReturnPhoto {
            caller: caller.clone(),
            url,
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
            OrderReply::Reviews(_) => return Err(unexpected()),
        })
    }
}

/// A reply of another kind than the command's: a bug, not the caller's.
fn unexpected() -> CallError<DomainError> {
    CallError::Unavailable("the order actor answered another kind of reply".into())
}

//! The sandbox gateway's own record of a payment: the state a real
//! gateway would keep on its side (so status queries and refunds survive
//! restarts just as they would at a real provider). One actor per payment
//! reference.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Ctx, Entity};
use crate::domain::DomainError;

pub struct SandboxPaymentEntity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    Pending,
    Paid,
    Failed,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxPayment {
    pub reference: String,
    pub amount: u64,
    pub currency: String,
    pub status: SandboxStatus,
    pub updated_at: DateTime<Utc>,
    /// Refunded so far (a checkout's payment is refunded order by order).
    #[serde(default)]
    pub refunded: u64,
    /// The keys of the refunds made (one per order): a repeated one is a no-op.
    #[serde(default)]
    pub refunds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SandboxEvent {
    Created {
        payment: SandboxPayment,
    },
    StatusChanged {
        status: SandboxStatus,
        at: DateTime<Utc>,
    },
    /// `amount` of the payment went back under refund `key`.
    RefundedPart {
        key: String,
        amount: u64,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SandboxCommand {
    Create {
        amount: u64,
        currency: String,
    },
    Get,
    Pay,
    Fail,
    /// Refunds `amount` more under `key` (once per key).
    Refund {
        amount: u64,
        key: String,
    },
    /// Closes an unpaid payment (`Fail` without a webhook); refused once paid.
    Cancel,
}

impl Entity for SandboxPaymentEntity {
    const KIND: &'static str = "sandbox_payment";
    type State = Option<SandboxPayment>;
    type Command = SandboxCommand;
    type Event = SandboxEvent;
    type Reply = SandboxPayment;
    type Rejection = DomainError;

    fn decide(
        state: &Option<SandboxPayment>,
        cmd: SandboxCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<SandboxEvent>, SandboxPayment), DomainError> {
        let change =
            |to: SandboxStatus, from: &[SandboxStatus]| -> Result<Vec<SandboxEvent>, DomainError> {
                let p = state.as_ref().ok_or(DomainError::NotFound("payment"))?;
                if p.status == to {
                    Ok(vec![])
                } else if from.contains(&p.status) {
                    Ok(vec![SandboxEvent::StatusChanged {
                        status: to,
                        at: ctx.now,
                    }])
                } else {
                    Err(DomainError::conflict(
                        "illegal_payment_state",
                        format!("the payment is {:?}", p.status).to_lowercase(),
                    ))
                }
            };
        let events = match cmd {
            SandboxCommand::Create { amount, currency } => match state {
                Some(_) => vec![],
                None => vec![SandboxEvent::Created {
                    payment: SandboxPayment {
                        reference: ctx.id.to_owned(),
                        amount,
                        currency,
                        status: SandboxStatus::Pending,
                        updated_at: ctx.now,
                        refunded: 0,
                        refunds: Vec::new(),
                    },
                }],
            },
            SandboxCommand::Get => vec![],
            SandboxCommand::Pay => change(SandboxStatus::Paid, &[SandboxStatus::Pending])?,
            SandboxCommand::Fail => change(SandboxStatus::Failed, &[SandboxStatus::Pending])?,
            SandboxCommand::Cancel => change(SandboxStatus::Failed, &[SandboxStatus::Pending])?,
            SandboxCommand::Refund { amount, key } => {
                let p = state.as_ref().ok_or(DomainError::NotFound("payment"))?;
                if p.refunds.contains(&key) {
                    vec![]
                } else if p.status != SandboxStatus::Paid {
                    change(SandboxStatus::Refunded, &[SandboxStatus::Paid])?
                } else if amount == 0 || amount > p.amount.saturating_sub(p.refunded) {
                    return Err(DomainError::conflict(
                        "refund_exceeds_payment",
                        format!(
                            "{amount} more would refund more than the {} paid ({} refunded)",
                            p.amount, p.refunded
                        ),
                    ));
                } else {
                    vec![SandboxEvent::RefundedPart {
                        key,
                        amount,
                        at: ctx.now,
                    }]
                }
            }
        };
        let next = Self::evolve(state, &events).ok_or(DomainError::NotFound("payment"))?;
        Ok((events, next))
    }

    fn apply(state: &mut Option<SandboxPayment>, event: &SandboxEvent) {
        match event {
            SandboxEvent::Created { payment } => *state = Some(payment.clone()),
            SandboxEvent::StatusChanged { status, at } => {
                if let Some(p) = state.as_mut() {
                    p.status = *status;
                    p.updated_at = *at;
                }
            }
            SandboxEvent::RefundedPart { key, amount, at } => {
                if let Some(p) = state.as_mut() {
                    p.refunded += amount;
                    p.refunds.push(key.clone());
                    if p.refunded >= p.amount {
                        p.status = SandboxStatus::Refunded;
                    }
                    p.updated_at = *at;
                }
            }
        }
    }
}

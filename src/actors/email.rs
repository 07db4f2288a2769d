//! The email-claim entity: one actor per normalised email address, holding
//! which user owns it. Serialising claims through one actor (and the
//! journal's expected-sequence check behind it) makes email uniqueness hold
//! under any number of concurrent registrations. Its stream doubles as the
//! "users by email" lookup.

use serde::{Deserialize, Serialize};

use super::{Ctx, Entity};
use crate::domain::ids::UserId;
use crate::domain::DomainError;

pub struct EmailClaim;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EmailEvent {
    Claimed { user_id: UserId },
    Released,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EmailCommand {
    Claim {
        user_id: UserId,
    },
    Lookup,
    /// `user_id` erased their account: the email is free again.
    Release {
        user_id: UserId,
    },
}

impl Entity for EmailClaim {
    const KIND: &'static str = "email";
    type State = Option<UserId>;
    type Command = EmailCommand;
    type Event = EmailEvent;
    /// The owning user id, if any.
    type Reply = Option<UserId>;
    type Rejection = DomainError;

    fn decide(
        owner: &Option<UserId>,
        cmd: EmailCommand,
        _ctx: &Ctx<'_>,
    ) -> Result<(Vec<EmailEvent>, Option<UserId>), DomainError> {
        match cmd {
            EmailCommand::Claim { user_id } => match owner {
                Some(existing) if *existing == user_id => Ok((vec![], Some(user_id))),
                Some(_) => Err(DomainError::conflict(
                    "email_taken",
                    "an account with this email already exists",
                )),
                None => Ok((
                    vec![EmailEvent::Claimed {
                        user_id: user_id.clone(),
                    }],
                    Some(user_id),
                )),
            },
            EmailCommand::Lookup => Ok((vec![], owner.clone())),
            EmailCommand::Release { user_id } => match owner {
                Some(o) if *o == user_id => Ok((vec![EmailEvent::Released], None)),
                _ => Ok((vec![], owner.clone())),
            },
        }
    }

    fn apply(owner: &mut Option<UserId>, event: &EmailEvent) {
        match event {
            EmailEvent::Claimed { user_id } => *owner = Some(user_id.clone()),
            EmailEvent::Released => *owner = None,
        }
    }
}

//! The shop entity: one actor per shop. Only its owner (or an admin) may
//! change it.

use serde::{Deserialize, Serialize};

use super::entity::{catalog_change, record_row};
use super::{Ctx, Entity};
use crate::domain::catalog::{check_shop, patch_shop, Moderation, Shop, ShopInput, ShopPatch};
use crate::domain::{Caller, DomainError};
/// The read table this module writes (named in the store's catalog).
pub use crate::store::tables::{SHOPS_BY_OWNER, SHOPS_TABLE};
use crate::store::IndexOp;

pub struct ShopEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShopEvent {
    Created { shop: Shop },
    Updated { shop: Shop },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ShopCommand {
    Create {
        caller: Caller,
        input: ShopInput,
    },
    Update {
        caller: Caller,
        patch: ShopPatch,
    },
    Get,
    /// An admin hides the shop (`Some`) or lifts it (`None`; with
    /// `only_by_owner`, only a hiding for the owner's ended seller rights).
    Moderate {
        caller: Caller,
        hidden: Option<crate::domain::catalog::Moderation>,
        #[serde(default)]
        only_by_owner: bool,
    },
}

impl Entity for ShopEntity {
    const KIND: &'static str = "shop";
    type State = Option<Shop>;
    type Command = ShopCommand;
    type Event = ShopEvent;
    type Reply = Shop;
    type Rejection = DomainError;

    fn decide(
        state: &Option<Shop>,
        cmd: ShopCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<ShopEvent>, Shop), DomainError> {
        match cmd {
            ShopCommand::Create { caller, input } => {
                if state.is_some() {
                    return Err(DomainError::conflict(
                        "already_exists",
                        "this shop already exists",
                    ));
                }
                let input = check_shop(&input)?;
                let shop = Shop {
                    id: ctx.id.into(),
                    owner_id: caller.user_id,
                    name: input.name,
                    location: input.location,
                    address: input.address,
                    hidden: None,
                    created_at: ctx.now,
                    updated_at: ctx.now,
                };
                Ok((vec![ShopEvent::Created { shop: shop.clone() }], shop))
            }
            ShopCommand::Update { caller, patch } => {
                let current = state.as_ref().ok_or(DomainError::NotFound("shop"))?;
                caller.ensure_owner(&current.owner_id, "shop")?;
                let input = patch_shop(current, &patch)?;
                let shop = Shop {
                    name: input.name,
                    location: input.location,
                    address: input.address,
                    updated_at: ctx.now,
                    ..current.clone()
                };
                Ok((vec![ShopEvent::Updated { shop: shop.clone() }], shop))
            }
            ShopCommand::Get => Ok((vec![], state.clone().ok_or(DomainError::NotFound("shop"))?)),
            ShopCommand::Moderate {
                caller,
                hidden,
                only_by_owner,
            } => {
                let current = state.as_ref().ok_or(DomainError::NotFound("shop"))?;
                super::product::admin_only(&caller)?;
                if !Moderation::changes(current.hidden.as_ref(), hidden.as_ref(), only_by_owner) {
                    return Ok((vec![], current.clone()));
                }
                let shop = Shop {
                    hidden,
                    updated_at: ctx.now,
                    ..current.clone()
                };
                Ok((vec![ShopEvent::Updated { shop: shop.clone() }], shop))
            }
        }
    }

    fn apply(state: &mut Option<Shop>, event: &ShopEvent) {
        match event {
            ShopEvent::Created { shop } | ShopEvent::Updated { shop } => {
                *state = Some(shop.clone())
            }
        }
    }

    fn index(
        id: &str,
        _before: &Option<Shop>,
        after: &Option<Shop>,
        _events: &[ShopEvent],
    ) -> Vec<IndexOp> {
        let mut ops = record_row(SHOPS_TABLE, id, Self::VERSION, after.as_ref());
        if let Some(shop) = after {
            ops.extend(record_row(
                SHOPS_BY_OWNER,
                &format!("{}|{id}", shop.owner_id),
                Self::VERSION,
                Some(shop),
            ));
            ops.push(catalog_change("shop", id, shop.updated_at));
        }
        ops
    }
}

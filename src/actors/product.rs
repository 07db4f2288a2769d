//! The product entity: one actor per product, the single writer of its
//! stock (so that checkouts in a later issue can never oversell). Writes the
//! `products` read table used by the catalog search.

use serde::{Deserialize, Serialize};

use super::entity::record_row;
use super::{Ctx, Entity};
use crate::domain::catalog::{
    check_product, patch_product, Product, ProductInput, ProductPatch, Shop,
};
use crate::domain::{Caller, DomainError};
use crate::store::IndexOp;

/// Read table: product id → encoded `Product`.
pub const PRODUCTS_TABLE: &str = "products";

pub struct ProductEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductEvent {
    Created { product: Product },
    Updated { product: Product },
}

pub enum ProductCommand {
    /// Create in `shop`, which the caller must own.
    Create {
        caller: Caller,
        shop: Shop,
        input: ProductInput,
    },
    Update {
        caller: Caller,
        patch: ProductPatch,
    },
    Get,
}

impl Entity for ProductEntity {
    const KIND: &'static str = "product";
    type State = Option<Product>;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Reply = Product;
    type Rejection = DomainError;

    fn decide(
        state: &Option<Product>,
        cmd: ProductCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<ProductEvent>, Product), DomainError> {
        match cmd {
            ProductCommand::Create {
                caller,
                shop,
                input,
            } => {
                if state.is_some() {
                    return Err(DomainError::Conflict {
                        code: "already_exists",
                        message: "this product already exists".into(),
                    });
                }
                caller.ensure_owner(&shop.owner_id, "shop")?;
                let input = check_product(&input)?;
                let product = Product {
                    id: ctx.id.to_owned(),
                    shop_id: shop.id,
                    owner_id: shop.owner_id,
                    name: input.name,
                    category: input.category,
                    price: input.price,
                    currency: input.currency,
                    stock: input.stock,
                    weight_grams: input.weight_grams,
                    active: true,
                    created_at: ctx.now,
                    updated_at: ctx.now,
                };
                Ok((
                    vec![ProductEvent::Created {
                        product: product.clone(),
                    }],
                    product,
                ))
            }
            ProductCommand::Update { caller, patch } => {
                let current = state.as_ref().ok_or(DomainError::NotFound("product"))?;
                caller.ensure_owner(&current.owner_id, "product")?;
                let input = patch_product(current, &patch)?;
                let product = Product {
                    name: input.name,
                    category: input.category,
                    price: input.price,
                    currency: input.currency,
                    stock: input.stock,
                    weight_grams: input.weight_grams,
                    active: patch.active.unwrap_or(current.active),
                    updated_at: ctx.now,
                    ..current.clone()
                };
                Ok((
                    vec![ProductEvent::Updated {
                        product: product.clone(),
                    }],
                    product,
                ))
            }
            ProductCommand::Get => Ok((
                vec![],
                state.clone().ok_or(DomainError::NotFound("product"))?,
            )),
        }
    }

    fn apply(state: &mut Option<Product>, event: &ProductEvent) {
        match event {
            ProductEvent::Created { product } | ProductEvent::Updated { product } => {
                *state = Some(product.clone())
            }
        }
    }

    fn index(id: &str, state: &Option<Product>, _events: &[ProductEvent]) -> Vec<IndexOp> {
        record_row(PRODUCTS_TABLE, id, Self::VERSION, state.as_ref())
    }
}

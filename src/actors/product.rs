//! The product entity: one actor per product, the single writer of its
//! stock. Checkouts hold stock per order (`Hold`), which a cancelled order
//! gives back (`Release`) and a delivered order consumes (`Consume`); all
//! three are idempotent per order id, so a retried step never counts twice.
//! Writes the `products` read table used by the catalog search.

use serde::{Deserialize, Serialize};

use super::entity::record_row;
use super::{Ctx, Entity};
use crate::domain::catalog::{
    check_product, patch_product, Product, ProductInput, ProductPatch, Shop,
};
use crate::domain::{Caller, DomainError};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::PRODUCTS_TABLE;
use crate::store::{codec, IndexOp};

pub struct ProductEntity;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductState {
    /// The public record; `stock` is what is still available.
    pub product: Option<Product>,
    /// Stock held by open orders: order id → quantity. A persistent map:
    /// deciding a hold clones the state (`evolve`) in O(1), not once per
    /// open order; decoded through its std counterpart (`codec::via`).
    #[serde(deserialize_with = "codec::via::<_, std::collections::BTreeMap<String, u64>, _>")]
    pub held: imbl::OrdMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProductEvent {
    Created {
        product: Product,
    },
    Updated {
        product: Product,
    },
    StockHeld {
        order_id: String,
        quantity: u64,
    },
    StockReleased {
        order_id: String,
        quantity: u64,
    },
    StockConsumed {
        order_id: String,
        quantity: u64,
    },
    /// Held stock moved from one holder to another (a flash sale's reserve
    /// to a claim's order, and back).
    StockTransferred {
        from: String,
        to: String,
        quantity: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Hold `quantity` for `order_id` (409 `out_of_stock` if not available).
    Hold {
        order_id: String,
        quantity: u64,
    },
    /// Give an order's held stock back.
    Release {
        order_id: String,
    },
    /// The order was delivered: its held stock is sold.
    Consume {
        order_id: String,
    },
    /// Move `quantity` held by `from` to `to` (a no-op once `to` holds
    /// stock; 409 `out_of_stock` when `from` holds too little).
    Transfer {
        from: String,
        to: String,
        quantity: u64,
    },
    /// Give everything `from` holds back to `to`, adding to what `to`
    /// holds (a no-op once `from` holds nothing).
    Return {
        from: String,
        to: String,
    },
}

fn product(state: &ProductState) -> Result<&Product, DomainError> {
    state
        .product
        .as_ref()
        .ok_or(DomainError::NotFound("product"))
}

/// A new product in `shop`, which `caller` must own.
fn create(
    state: &ProductState,
    caller: &Caller,
    shop: Shop,
    input: &ProductInput,
    ctx: &Ctx<'_>,
) -> Result<Vec<ProductEvent>, DomainError> {
    if state.product.is_some() {
        return Err(DomainError::conflict(
            "already_exists",
            "this product already exists",
        ));
    }
    caller.ensure_owner(&shop.owner_id, "shop")?;
    let input = check_product(input)?;
    let product = Product {
        id: ctx.id.into(),
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
    Ok(vec![ProductEvent::Created { product }])
}

/// The product with `patch` applied, by its owner.
fn update(
    state: &ProductState,
    caller: &Caller,
    patch: &ProductPatch,
    ctx: &Ctx<'_>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let current = product(state)?;
    caller.ensure_owner(&current.owner_id, "product")?;
    let input = patch_product(current, patch)?;
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
    Ok(vec![ProductEvent::Updated { product }])
}

/// What `holder` (an order, or a claim's reservation) holds of an existing
/// product.
fn held(state: &ProductState, holder: &str) -> Result<Option<u64>, DomainError> {
    product(state)?;
    Ok(state.held.get(holder).copied())
}

/// Holds stock for an order (idempotent per order).
fn hold(
    state: &ProductState,
    order_id: String,
    quantity: u64,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    if state.held.contains_key(&order_id) {
        Ok(vec![])
    } else if !p.active {
        Err(DomainError::conflict(
            "product_unavailable",
            format!("{} is no longer sold", p.name),
        ))
    } else if quantity == 0 || p.stock < quantity {
        Err(DomainError::conflict(
            "out_of_stock",
            format!("only {} of {} left", p.stock, p.name),
        ))
    } else {
        Ok(vec![ProductEvent::StockHeld { order_id, quantity }])
    }
}

/// Moves held stock from one holder to another (idempotent per receiver).
fn transfer(
    state: &ProductState,
    from: String,
    to: String,
    quantity: u64,
) -> Result<Vec<ProductEvent>, DomainError> {
    product(state)?;
    if state.held.contains_key(&to) {
        Ok(vec![])
    } else if quantity == 0 || state.held.get(&from).copied().unwrap_or(0) < quantity {
        Err(DomainError::conflict(
            "out_of_stock",
            "the reserved stock is used up",
        ))
    } else {
        Ok(vec![ProductEvent::StockTransferred { from, to, quantity }])
    }
}

impl Entity for ProductEntity {
    const KIND: &'static str = "product";
    type State = ProductState;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Reply = Product;
    type Rejection = DomainError;

    fn decide(
        state: &ProductState,
        cmd: ProductCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<ProductEvent>, Product), DomainError> {
        let events = match cmd {
            ProductCommand::Create {
                caller,
                shop,
                input,
            } => create(state, &caller, shop, &input, ctx)?,
            ProductCommand::Update { caller, patch } => update(state, &caller, &patch, ctx)?,
            ProductCommand::Get => vec![],
            ProductCommand::Hold { order_id, quantity } => hold(state, order_id, quantity)?,
            ProductCommand::Release { order_id } => {
                let held = held(state, &order_id)?;
                held.map(|quantity| ProductEvent::StockReleased { order_id, quantity })
                    .into_iter()
                    .collect()
            }
            ProductCommand::Transfer { from, to, quantity } => transfer(state, from, to, quantity)?,
            ProductCommand::Return { from, to } => {
                let held = held(state, &from)?;
                held.map(|quantity| ProductEvent::StockTransferred { from, to, quantity })
                    .into_iter()
                    .collect()
            }
            ProductCommand::Consume { order_id } => {
                let held = held(state, &order_id)?;
                held.map(|quantity| ProductEvent::StockConsumed { order_id, quantity })
                    .into_iter()
                    .collect()
            }
        };
        let next = Self::evolve(state, &events);
        let reply = next
            .product
            .clone()
            .ok_or(DomainError::NotFound("product"))?;
        Ok((events, reply))
    }

    fn apply(state: &mut ProductState, event: &ProductEvent) {
        match event {
            ProductEvent::Created { product } | ProductEvent::Updated { product } => {
                state.product = Some(product.clone())
            }
            ProductEvent::StockHeld { order_id, quantity } => {
                state.held.insert(order_id.clone(), *quantity);
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_sub(*quantity);
                }
            }
            ProductEvent::StockReleased { order_id, quantity } => {
                state.held.remove(order_id);
                if let Some(p) = state.product.as_mut() {
                    p.stock = p.stock.saturating_add(*quantity);
                }
            }
            ProductEvent::StockConsumed { order_id, .. } => {
                state.held.remove(order_id);
            }
            ProductEvent::StockTransferred { from, to, quantity } => {
                if let Some(q) = state.held.get_mut(from) {
                    *q = q.saturating_sub(*quantity);
                    if *q == 0 {
                        state.held.remove(from);
                    }
                }
                *state.held.entry(to.clone()).or_insert(0) += quantity;
            }
        }
    }

    fn index(
        id: &str,
        _before: &ProductState,
        state: &ProductState,
        _events: &[ProductEvent],
    ) -> Vec<IndexOp> {
        record_row(PRODUCTS_TABLE, id, Self::VERSION, state.product.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use chrono::Utc;

    fn created(stock: u64) -> ProductState {
        let caller = Caller {
            user_id: "m".into(),
            role: Role::Merchant,
        };
        let now = Utc::now();
        let shop = Shop {
            id: "s".into(),
            owner_id: "m".into(),
            name: "S".into(),
            location: crate::domain::GeoPoint { lat: 0.0, lng: 0.0 },
            address: "a".into(),
            created_at: now,
            updated_at: now,
        };
        let input = ProductInput {
            name: "Mat".into(),
            category: "yoga".into(),
            price: 100,
            currency: "VND".into(),
            stock,
            weight_grams: 1,
        };
        run(
            &ProductState::default(),
            ProductCommand::Create {
                caller,
                shop,
                input,
            },
        )
        .unwrap()
    }

    fn run(state: &ProductState, cmd: ProductCommand) -> Result<ProductState, DomainError> {
        let (events, _) = ProductEntity::decide(
            state,
            cmd,
            &Ctx {
                id: "p",
                now: Utc::now(),
            },
        )?;
        Ok(ProductEntity::evolve(state, &events))
    }

    fn hold(order: &str, q: u64) -> ProductCommand {
        ProductCommand::Hold {
            order_id: order.into(),
            quantity: q,
        }
    }

    #[test]
    fn holds_never_exceed_stock_and_are_idempotent() {
        let s = created(3);
        let s = run(&s, hold("o1", 2)).unwrap();
        assert_eq!(s.product.as_ref().unwrap().stock, 1);
        let again = run(&s, hold("o1", 2)).unwrap();
        assert_eq!(again, s, "holding twice for one order counts once");
        assert!(matches!(
            run(&s, hold("o2", 2)),
            Err(DomainError::Conflict {
                code: "out_of_stock",
                ..
            })
        ));
        assert!(matches!(
            run(&s, hold("o2", 0)),
            Err(DomainError::Conflict {
                code: "out_of_stock",
                ..
            })
        ));
        let s = run(
            &s,
            ProductCommand::Release {
                order_id: "o1".into(),
            },
        )
        .unwrap();
        assert_eq!(s.product.as_ref().unwrap().stock, 3);
        assert_eq!(
            run(
                &s,
                ProductCommand::Release {
                    order_id: "o1".into()
                }
            )
            .unwrap(),
            s,
            "release is idempotent"
        );
        let s = run(&s, hold("o3", 3)).unwrap();
        let s = run(
            &s,
            ProductCommand::Consume {
                order_id: "o3".into(),
            },
        )
        .unwrap();
        assert_eq!(
            (s.product.as_ref().unwrap().stock, s.held.len()),
            (0, 0),
            "consumed stock does not come back"
        );
    }
}

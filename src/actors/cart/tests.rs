//! The cart entity's rules.

use super::*;

fn run(state: &CartState, cmd: CartCommand) -> Result<(CartState, CartReply), DomainError> {
    let (events, reply) = CartEntity::decide(
        state,
        cmd,
        &Ctx {
            id: "u",
            now: Utc::now(),
        },
    )?;
    Ok((CartEntity::evolve(state, &events), reply))
}

fn set(p: &str, q: u32) -> CartCommand {
    CartCommand::SetItem {
        product_id: p.into(),
        quantity: q,
    }
}

#[test]
fn checkouts_are_idempotent_by_key_and_exclusive() {
    let (s, _) = run(&CartState::default(), set("p1", 2)).unwrap();
    let plan = vec![PlannedOrder {
        shop_id: "s".into(),
        order_id: "o1".into(),
    }];
    let (s, r) = run(
        &s,
        CartCommand::BeginCheckout {
            key: "k".into(),
            request: Some("r".into()),
            orders: plan.clone(),
        },
    )
    .unwrap();
    assert!(matches!(r, CartReply::Checkout(c) if c.orders == plan));
    let other = vec![PlannedOrder {
        shop_id: "s".into(),
        order_id: "o2".into(),
    }];
    let (_, r) = run(
        &s,
        CartCommand::BeginCheckout {
            key: "k".into(),
            request: Some("r".into()),
            orders: other.clone(),
        },
    )
    .unwrap();
    assert!(
        matches!(r, CartReply::Checkout(c) if c.orders == plan),
        "the same key finds the first plan"
    );
    assert!(matches!(
        run(
            &s,
            CartCommand::BeginCheckout {
                key: "k2".into(),
                request: None,
                orders: other
            }
        ),
        Err(DomainError::Conflict {
            code: "checkout_in_progress",
            ..
        })
    ));
    let (s, _) = run(&s, set("p2", 1)).unwrap();
    let (s, _) = run(&s, CartCommand::CompleteCheckout { key: "k".into() }).unwrap();
    assert_eq!(
        s.items,
        vec![CartItem {
            product_id: "p2".into(),
            quantity: 1
        }],
        "items added during checkout stay"
    );
}

#[test]
fn quantities_and_bounds() {
    assert!(run(&CartState::default(), set("p", 0)).is_err());
    assert!(run(&CartState::default(), set("p", MAX_QUANTITY + 1)).is_err());
    let mut s = CartState::default();
    for i in 0..MAX_ITEMS {
        s = run(&s, set(&format!("p{i}"), 1)).unwrap().0;
    }
    assert!(matches!(
        run(&s, set("extra", 1)),
        Err(DomainError::Conflict {
            code: "cart_full",
            ..
        })
    ));
    assert!(
        run(&s, set("p0", 5)).is_ok(),
        "changing a present item is fine when full"
    );
}

#[test]
fn save_and_restore() {
    let (s, _) = run(&CartState::default(), set("p", 2)).unwrap();
    let (s, _) = run(
        &s,
        CartCommand::Save {
            id: "saved1".into(),
        },
    )
    .unwrap();
    let (s, _) = run(&s, CartCommand::Clear).unwrap();
    assert!(s.items.is_empty());
    let (s, _) = run(
        &s,
        CartCommand::Restore {
            id: "saved1".into(),
        },
    )
    .unwrap();
    assert_eq!(s.items.len(), 1);
    assert!(s.saved.is_empty());
    assert!(run(&s, CartCommand::Restore { id: "nope".into() }).is_err());
}

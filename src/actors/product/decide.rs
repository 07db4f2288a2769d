//! The product's decisions, one function per command: what each command
//! records, or why it is refused. Pure: state and command in, events out.

use super::*;

/// The product with its images changed by its owner.
pub(super) fn media(
    state: &ProductState,
    caller: &Caller,
    change: &crate::domain::media::MediaChange,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = live(state)?;
    caller.ensure_owner(&p.owner_id, "product")?;
    let media = crate::domain::media::change(&p.media, change, crate::domain::media::MAX_MEDIA)?;
    Ok((media != p.media)
        .then(|| ProductEvent::Updated {
            product: Product {
                media,
                updated_at: now,
                ..p.clone()
            },
        })
        .into_iter()
        .collect())
}

/// Deletes the product (its owner), unless stock of it is held.
pub(super) fn delete(
    state: &ProductState,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    caller.ensure_owner(&p.owner_id, "product")?;
    if p.deleted_at.is_some() {
        return Ok(vec![]);
    }
    let in_buckets = state
        .allotted
        .iter()
        .enumerate()
        .any(|(i, a)| *a > state.recovered.get(i).copied().unwrap_or(0));
    if !state.held.is_empty() || in_buckets {
        return Err(DomainError::conflict(
            "stock_held",
            "orders or a flash sale still hold its stock: set active to false and delete it when they are done",
        ));
    }
    Ok(vec![ProductEvent::Updated {
        product: Product {
            active: false,
            deleted_at: Some(now),
            updated_at: now,
            ..p.clone()
        },
    }])
}

/// A new product in `shop`, which `caller` must own.
pub(super) fn create(
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
    let description = described(&input)?;
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
        stock_buckets: input.stock_buckets,
        low_stock_threshold: input.low_stock_threshold,
        category_id: input.category_id,
        hidden: None,
        active: true,
        media: Vec::new(),
        deleted_at: None,
        created_at: ctx.now,
        updated_at: ctx.now,
        sale: input.sale,
        description,
        brand: input.brand,
        attributes: input.attributes,
    };
    Ok(vec![ProductEvent::Created { product }])
}

/// The checked input's description, rendered.
pub(super) fn described(
    input: &ProductInput,
) -> Result<Option<crate::domain::description::Description>, DomainError> {
    match &input.description {
        Some(d) => crate::domain::description::render(d),
        None => Ok(None),
    }
}

/// The product with `patch` applied, by its owner.
pub(super) fn update(
    state: &ProductState,
    caller: &Caller,
    patch: &ProductPatch,
    ctx: &Ctx<'_>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let current = live(state)?;
    caller.ensure_owner(&current.owner_id, "product")?;
    let input = patch_product(current, patch)?;
    if input.stock_buckets != current.stock_buckets && !state.allotted.is_empty() {
        return Err(DomainError::conflict(
            "stock_buckets_fixed",
            "stock_buckets cannot change once a bucket has been stocked",
        ));
    }
    // A new stock is what is available: the buckets' free units count.
    let in_buckets: u64 = state.bucket_free.iter().sum();
    let stock = match patch.stock {
        Some(n) => n.saturating_sub(in_buckets),
        None => current.stock,
    };
    let description = match &patch.description {
        // Rendered again only when it changes.
        None => current.description.clone(),
        Some(_) => described(&input)?,
    };
    let product = Product {
        name: input.name,
        category: input.category,
        price: input.price,
        currency: input.currency,
        weight_grams: input.weight_grams,
        stock_buckets: input.stock_buckets,
        low_stock_threshold: input.low_stock_threshold,
        category_id: input.category_id,
        active: patch.active.unwrap_or(current.active),
        sale: input.sale,
        description,
        brand: input.brand,
        attributes: input.attributes,
        updated_at: ctx.now,
        ..current.clone()
    };
    let mut events = vec![ProductEvent::Updated { product }];
    // A new stock is recorded as the correction it is.
    if stock != current.stock {
        events.push(ProductEvent::StockAdjusted {
            kind: crate::domain::inventory::AdjustmentKind::Adjusted,
            quantity: stock as i64 - current.stock as i64,
            reason: Some(format!("available set to {}", patch.stock.unwrap_or(stock))),
            order_id: None,
            by: caller.user_id.to_string(),
            at: ctx.now,
        });
    }
    Ok(events)
}

/// Only admins moderate.
pub(crate) fn admin_only(caller: &Caller) -> Result<(), DomainError> {
    if caller.role == crate::domain::Role::Admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only admins moderate".into()))
    }
}

/// Hides the product or lifts its hiding; hiding a hidden product keeps
/// the first reason.
pub(super) fn moderate(
    state: &ProductState,
    caller: &Caller,
    hidden: Option<crate::domain::catalog::Moderation>,
    only_by_shop: bool,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = live(state)?;
    admin_only(caller)?;
    let change = match (&p.hidden, &hidden) {
        (None, Some(_)) => true,
        (Some(now), None) => !only_by_shop || now.by_shop,
        _ => false,
    };
    Ok(change
        .then_some(ProductEvent::Moderated { hidden, at: now })
        .into_iter()
        .collect())
}

/// What `holder` (an order, or a claim's reservation) holds of an existing
/// product.
pub(super) fn held(state: &ProductState, holder: &str) -> Result<Option<u64>, DomainError> {
    product(state)?;
    Ok(state.held.get(holder).copied())
}

/// Holds stock for an order (idempotent per order).
pub(super) fn hold(
    state: &ProductState,
    order_id: String,
    quantity: u64,
    now: DateTime<Utc>,
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    if state.held.contains_key(&order_id) {
        Ok(vec![])
    } else if !p.on_sale() {
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
        Ok(vec![ProductEvent::StockHeld {
            order_id,
            quantity,
            at: Some(now),
        }])
    }
}

/// Moves held stock from one holder to another (idempotent per receiver).
pub(super) fn transfer(
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

/// Units for bucket `bucket` (short of `need`): what it needs, or more,
/// up to its fair share of the pool (pool ÷ buckets), so refills are few:
/// each is two durable steps under the product's refill lock, and 32-unit
/// refills queued checkouts for 20 s in `mixed` at 250 journeys/s. The
/// last units (fewer than two per bucket) are not allotted: those holds
/// are decided by the product itself (`END_OF_STOCK`).
pub(super) fn allot(
    state: &ProductState,
    bucket: u32,
    need: u64,
    (free, changes): (u64, u64),
) -> Result<Vec<ProductEvent>, DomainError> {
    let p = product(state)?;
    if !p.on_sale() {
        return Err(DomainError::conflict(
            "product_unavailable",
            format!("{} is no longer sold", p.name),
        ));
    }
    if bucket >= p.stock_buckets {
        return Err(DomainError::conflict(
            "not_split",
            "this product's stock is not split over that many buckets",
        ));
    }
    let k = u64::from(p.stock_buckets);
    let share = p.stock / k;
    let units = if p.stock < END_OF_STOCK * k {
        0
    } else {
        need.max(share).min(p.stock)
    };
    Ok((units > 0)
        .then_some(ProductEvent::Allotted {
            bucket,
            units,
            free,
            changes,
        })
        .into_iter()
        .collect())
}

/// What bucket `bucket` gave back since the last recovery.
pub(super) fn recover(
    state: &ProductState,
    bucket: u32,
    returned: u64,
    (free, changes): (u64, u64),
) -> Result<Vec<ProductEvent>, DomainError> {
    product(state)?;
    let i = bucket as usize;
    let done = state.recovered.get(i).copied().unwrap_or(0);
    let out = state.allotted.get(i).copied().unwrap_or(0);
    // Never more than was allotted: a bucket gives back only what it got.
    let units = returned.min(out).saturating_sub(done);
    let newer = changes > state.bucket_changes.get(i).copied().unwrap_or(0);
    let stale = newer && state.bucket_free.get(i).copied().unwrap_or(0) != free;
    Ok((units > 0 || stale)
        .then_some(ProductEvent::Recovered {
            bucket,
            units,
            free,
            changes,
        })
        .into_iter()
        .collect())
}

/// Bucket `bucket` said it had `free` units after `changes` changes: kept
/// unless a newer report came first.
pub(super) fn report(state: &mut ProductState, bucket: u32, free: u64, changes: u64) {
    let seen = slot(&mut state.bucket_changes, bucket);
    if changes >= *seen {
        *seen = changes;
        *slot(&mut state.bucket_free, bucket) = free;
    }
}

/// Below this many units per bucket, a split product's pool is not
/// allotted any more: its holds go to the product (no refill per unit at
/// the end of a sale).
pub const END_OF_STOCK: u64 = 2;

/// `v[i]`, grown to hold it.
pub(super) fn slot(v: &mut Vec<u64>, i: u32) -> &mut u64 {
    let i = i as usize;
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    &mut v[i]
}

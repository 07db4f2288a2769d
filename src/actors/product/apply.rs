//! What the product's events do to its state.

use super::*;

/// `event` applied to `state`.
pub(super) fn apply(state: &mut ProductState, event: &ProductEvent) {
    if inventory::is_movement(event) {
        state.movements += 1;
    }
    match event {
        ProductEvent::Created { product } | ProductEvent::Updated { product } => {
            state.product = Some(product.clone())
        }
        ProductEvent::StockHeld {
            order_id, quantity, ..
        } => {
            let before = state.held.insert(order_id.clone(), *quantity);
            state.count_held(before, Some(*quantity));
            if let Some(p) = state.product.as_mut() {
                p.stock = p.stock.saturating_sub(*quantity);
            }
        }
        ProductEvent::StockReleased {
            order_id, quantity, ..
        } => {
            let before = state.held.remove(order_id);
            state.count_held(before, None);
            if let Some(p) = state.product.as_mut() {
                p.stock = p.stock.saturating_add(*quantity);
            }
        }
        ProductEvent::StockConsumed { order_id, .. } => {
            let before = state.held.remove(order_id);
            state.count_held(before, None);
        }
        ProductEvent::StockTransferred { from, to, quantity } => {
            // Held stays held: only the holders change.
            if let Some(q) = state.held.get_mut(from) {
                *q = q.saturating_sub(*quantity);
                if *q == 0 {
                    state.held.remove(from);
                }
            }
            *state.held.entry(to.clone()).or_insert(0) += quantity;
        }
        ProductEvent::StockAdjusted {
            kind,
            quantity,
            order_id,
            ..
        } => {
            if let Some(p) = state.product.as_mut() {
                p.stock = p.stock.saturating_add_signed(*quantity);
            }
            if *kind == crate::domain::inventory::AdjustmentKind::Returned {
                if let Some(o) = order_id {
                    state.restocked.insert(o.clone());
                }
            }
        }
        ProductEvent::LowStockReached { crossing, .. } => {
            state.low = true;
            state.crossings = *crossing;
        }
        ProductEvent::LowStockCleared { .. } => state.low = false,
        ProductEvent::Moderated { hidden, at } => {
            if let Some(p) = state.product.as_mut() {
                p.hidden = hidden.clone();
                // Dated now: the search indexers follow catalog
                // changes by their time.
                p.updated_at = *at;
            }
        }
        ProductEvent::Allotted {
            bucket,
            units,
            free,
            changes,
        } => {
            *slot(&mut state.allotted, *bucket) += units;
            slot(&mut state.recovered, *bucket);
            report(state, *bucket, *free, *changes);
            *slot(&mut state.bucket_free, *bucket) += units;
            if let Some(p) = state.product.as_mut() {
                p.stock = p.stock.saturating_sub(*units);
            }
        }
        ProductEvent::Recovered {
            bucket,
            units,
            free,
            changes,
        } => {
            *slot(&mut state.recovered, *bucket) += units;
            report(state, *bucket, *free, *changes);
            if let Some(p) = state.product.as_mut() {
                p.stock = p.stock.saturating_add(*units);
            }
        }
    }
}

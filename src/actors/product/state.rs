//! The product entity's state.

use super::*;

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
    /// Split stock: per bucket, units allotted and recovered, in total.
    #[serde(default)]
    pub allotted: Vec<u64>,
    #[serde(default)]
    pub recovered: Vec<u64>,
    /// Per bucket, what it had free when it last asked or gave back, plus
    /// what was allotted to it since.
    #[serde(default)]
    pub bucket_free: Vec<u64>,
    /// Per bucket, how many changes it had made at that report (an older
    /// report arriving late does not overwrite a newer one).
    #[serde(default)]
    pub bucket_changes: Vec<u64>,
    /// The sum of `held` (`None` in states saved before it was kept:
    /// counted once, then kept).
    #[serde(default)]
    pub held_units: Option<u64>,
    /// Movements recorded: the newest one's seq.
    #[serde(default)]
    pub movements: u64,
    /// Available is at or below the threshold (and the crossing alerted).
    #[serde(default)]
    pub low: bool,
    /// Low-stock crossings so far.
    #[serde(default)]
    pub crossings: u64,
    /// Returned orders whose goods were put back (each once).
    #[serde(
        default,
        deserialize_with = "codec::via::<_, std::collections::BTreeSet<String>, _>"
    )]
    pub restocked: imbl::OrdSet<String>,
}

impl ProductState {
    /// Keeps `held_units` with a holder's change from `before` to `after`
    /// (counting `held` once if it was not kept yet).
    pub(super) fn count_held(&mut self, before: Option<u64>, after: Option<u64>) {
        self.held_units = Some(match self.held_units {
            Some(t) => t
                .saturating_sub(before.unwrap_or(0))
                .saturating_add(after.unwrap_or(0)),
            // `held` already has the change.
            None => self.held.values().copied().sum(),
        });
    }

    /// The public record: the pool plus what the buckets have free.
    pub fn public(&self) -> Option<Product> {
        let mut p = self.product.clone()?;
        p.stock = p.stock.saturating_add(self.bucket_free.iter().sum::<u64>());
        Some(p)
    }
}

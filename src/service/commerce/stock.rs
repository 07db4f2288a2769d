//! Stock holds, on the product or — for a product whose stock is split
//! (`stock_buckets` > 1) — on the order's bucket, so that the checkouts of
//! one hot product are decided on several cores.
//!
//! An order's hold lives in bucket `bucket_of(order, k)`. A bucket short of
//! units asks the product for more (`Allot`: its fair share of the pool,
//! pool ÷ k, or what the hold needs) and takes them and decides the hold
//! in one step (`Hold { grant }`), so no other order takes a refill meant
//! for this one; a bucket left with less than a quarter of its last refill
//! is refilled ahead of need, off the holds' path. One refill at a time
//! per product. The last units (fewer than
//! [`END_OF_STOCK`](crate::actors::product::END_OF_STOCK) per bucket) are
//! not allotted: those holds are decided by the product itself, and when
//! it is short every bucket first gives back what it has free (`drain`);
//! only then is a hold refused (`out_of_stock`), with the public stock
//! exact. Units move as growing totals on both sides
//! (see `actors::stock_bucket`), so nothing is ever sold twice:
//! Σ held + sold in buckets ≤ Σ granted − given back ≤ Σ allotted − recovered,
//! and the pool never goes below zero.
//!
//! Holds that are not an order's own (a flash sale's reserve, which claims
//! transfer to their orders) stay on the product. Release and consume go
//! to the product and to the order's bucket; each is a no-op where the
//! order holds nothing.

use std::sync::Arc;
use std::time::Duration;

use dashmap::{DashMap, DashSet};

use crate::actors::product::{ProductCommand, ProductEntity, ProductReply};
use crate::actors::stock_bucket::{
    bucket_id, bucket_of, BucketCommand, BucketView, StockBucketEntity,
};
use crate::actors::{CallError, Registry};
use crate::domain::catalog::Product;
use crate::domain::DomainError;
use crate::service::ServiceError;

/// Refill rounds of one hold before it is decided on the product.
const MAX_REFILL_ROUNDS: usize = 4;

/// How long after a hold its bucket tells the product what it has free
/// (one report for all the holds of that while): the public stock of a
/// split product is behind its buckets by about this much.
const REPORT_AFTER: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Stock {
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) buckets: Registry<StockBucketEntity>,
    /// `stock_buckets` per product as last seen (it only changes before a
    /// bucket is stocked; a stale 1 holds on the product, a stale k > 1 is
    /// refused by the product's `Allot` and holds on the product too).
    split: Arc<DashMap<String, u32>>,
    /// One refill at a time per product.
    refills: Arc<DashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Buckets with a report to the product due.
    reports_due: Arc<DashSet<String>>,
    /// Buckets being refilled ahead of need.
    refilling: Arc<DashSet<String>>,
    /// Per bucket, the units of its last refill (it is refilled ahead once
    /// it has less than a quarter of that free).
    chunks: Arc<DashMap<String, u64>>,
}

impl Stock {
    pub fn new(products: Registry<ProductEntity>, buckets: Registry<StockBucketEntity>) -> Self {
        Stock {
            products,
            buckets,
            split: Arc::default(),
            refills: Arc::default(),
            reports_due: Arc::default(),
            refilling: Arc::default(),
            chunks: Arc::default(),
        }
    }

    /// Remembers how `product` is split.
    pub(in crate::service) fn note(&self, product: &Product) {
        self.split
            .insert(product.id.to_string(), product.stock_buckets.max(1));
    }

    async fn buckets_of(&self, product_id: &str) -> Result<u32, ServiceError> {
        if let Some(k) = self.split.get(product_id) {
            return Ok(*k);
        }
        let reply = self.products.call(product_id, ProductCommand::Get).await?;
        self.note(&reply.product);
        Ok(reply.product.stock_buckets.max(1))
    }

    /// Holds `quantity` of `product_id` for `order_id` (idempotent per
    /// order): 409 `out_of_stock` when not that many are left.
    pub async fn hold(
        &self,
        product_id: &str,
        order_id: &str,
        quantity: u64,
    ) -> Result<(), ServiceError> {
        let k = self.buckets_of(product_id).await?;
        if k > 1 {
            match self.hold_in_bucket(product_id, order_id, quantity, k).await {
                Err(ServiceError::Domain(DomainError::Conflict {
                    code: "not_split", ..
                })) => {}
                done => return done,
            }
        }
        let hold = ProductCommand::Hold {
            order_id: order_id.to_owned(),
            quantity,
        };
        self.products.call(product_id, hold).await?;
        Ok(())
    }

    async fn hold_in_bucket(
        &self,
        product_id: &str,
        order_id: &str,
        quantity: u64,
        k: u32,
    ) -> Result<(), ServiceError> {
        let i = bucket_of(order_id, k);
        let bucket = bucket_id(product_id, i);
        let hold = |grant| BucketCommand::Hold {
            order_id: order_id.to_owned(),
            quantity,
            grant,
        };
        let first = self.buckets.call(&bucket, hold(None)).await?;
        if first.holds {
            self.held(product_id, i, &first);
            return Ok(());
        }
        // A retried checkout whose hold was made on the product (the end
        // of its stock) holds there already: never a second unit here.
        let here = ProductCommand::Holds {
            order_id: order_id.to_owned(),
        };
        if self.products.call(product_id, here).await?.holds {
            return Ok(());
        }
        {
            let _turn = self.refill_turn(product_id).await;
            // Holds that take the bucket's free units without waiting for
            // a refill can overtake this one: a bounded number of rounds.
            for _ in 0..MAX_REFILL_ROUNDS {
                // A refill before this turn may have stocked the bucket.
                let seen = self.buckets.call(&bucket, hold(None)).await?;
                if seen.holds {
                    self.held(product_id, i, &seen);
                    return Ok(());
                }
                let got = self.allot(product_id, i, quantity, &seen).await?;
                if got.allotted < seen.received + quantity.saturating_sub(seen.free) {
                    break; // the end of the stock
                }
                let after = self.buckets.call(&bucket, hold(Some(got.allotted))).await?;
                if after.holds {
                    self.chunks
                        .insert(bucket.clone(), got.allotted - seen.received);
                    self.held(product_id, i, &after);
                    return Ok(());
                }
            }
        }
        // The last units of the product are held on the product itself
        // (the buckets' free units taken back first if it is short).
        self.hold_on_product(product_id, order_id, quantity).await
    }

    async fn refill_turn(&self, product_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .refills
            .entry(product_id.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// After a hold in bucket `i`: its report to the product is due, and
    /// when it runs low it is refilled ahead of need, off the hold's path.
    fn held(&self, product_id: &str, i: u32, view: &BucketView) {
        self.report_later(product_id, i);
        let bucket = bucket_id(product_id, i);
        let chunk = self.chunks.get(&bucket).map_or(0, |c| *c);
        if view.free.saturating_mul(4) >= chunk || !self.refilling.insert(bucket.clone()) {
            return;
        }
        let (this, product_id) = (self.clone(), product_id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = this.refill_ahead(&product_id, i).await {
                tracing::debug!(bucket = %bucket, error = %e, "stock refill ahead failed");
            }
            this.refilling.remove(&bucket);
        });
    }

    async fn refill_ahead(&self, product_id: &str, i: u32) -> Result<(), ServiceError> {
        let _turn = self.refill_turn(product_id).await;
        let bucket = bucket_id(product_id, i);
        let seen = self.buckets.call(&bucket, BucketCommand::Get).await?;
        let got = self.allot(product_id, i, 0, &seen).await?;
        if got.allotted > seen.received {
            self.chunks
                .insert(bucket.clone(), got.allotted - seen.received);
            let grant = BucketCommand::Grant {
                total: got.allotted,
            };
            self.buckets.call(&bucket, grant).await?;
        }
        Ok(())
    }

    /// Bucket `i` of `product_id` tells the product what it has free,
    /// `REPORT_AFTER` from now (once for all holds until then).
    fn report_later(&self, product_id: &str, i: u32) {
        let bucket = bucket_id(product_id, i);
        if !self.reports_due.insert(bucket.clone()) {
            return;
        }
        let (this, product_id) = (self.clone(), product_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(REPORT_AFTER).await;
            this.reports_due.remove(&bucket);
            if let Err(e) = this.report(&product_id, i).await {
                tracing::debug!(bucket = %bucket, error = %e, "stock report not delivered");
            }
        });
    }

    async fn report(&self, product_id: &str, i: u32) -> Result<(), ServiceError> {
        let now = self
            .buckets
            .call(&bucket_id(product_id, i), BucketCommand::Get)
            .await?;
        self.heard(product_id, i, &now).await
    }

    /// The product hears what bucket `i` answered: what it gave back in
    /// total (counted in the pool again) and what it has free.
    async fn heard(&self, product_id: &str, i: u32, view: &BucketView) -> Result<(), ServiceError> {
        let recover = ProductCommand::Recover {
            bucket: i,
            returned: view.returned,
            free: view.free,
            changes: view.changes,
        };
        self.products.call(product_id, recover).await?;
        Ok(())
    }

    async fn allot(
        &self,
        product_id: &str,
        bucket: u32,
        quantity: u64,
        seen: &BucketView,
    ) -> Result<ProductReply, ServiceError> {
        let allot = ProductCommand::Allot {
            bucket,
            need: quantity.saturating_sub(seen.free),
            free: seen.free,
            changes: seen.changes,
        };
        Ok(self.products.call(product_id, allot).await?)
    }

    /// Every bucket of `product_id` but `except` gives back what it has
    /// free, and the product counts it in its pool again.
    async fn drain_except(
        &self,
        product_id: &str,
        k: u32,
        except: Option<u32>,
    ) -> Result<(), ServiceError> {
        let visits = (0..k).filter(|j| Some(*j) != except).map(|j| async move {
            let back = self
                .buckets
                .call(&bucket_id(product_id, j), BucketCommand::GiveBack)
                .await?;
            self.heard(product_id, j, &back).await
        });
        for visit in futures_util::future::join_all(visits).await {
            visit?;
        }
        Ok(())
    }

    /// Every bucket of `product` gives back what it has free (after a
    /// change of its stock or availability, so the pool is what is left).
    /// `product` as it is after (read again only when it is split).
    pub(in crate::service) async fn drain(
        &self,
        product: Product,
    ) -> Result<Product, ServiceError> {
        self.note(&product);
        if product.stock_buckets <= 1 {
            return Ok(product);
        }
        self.drain_except(&product.id, product.stock_buckets, None)
            .await?;
        Ok(self
            .products
            .call(&product.id, ProductCommand::Get)
            .await?
            .product)
    }

    /// Holds `quantity` on the product itself for `holder` (a flash sale's
    /// reserve), taking back the buckets' free units if the pool is short.
    pub async fn hold_on_product(
        &self,
        product_id: &str,
        holder: &str,
        quantity: u64,
    ) -> Result<(), ServiceError> {
        let hold = || ProductCommand::Hold {
            order_id: holder.to_owned(),
            quantity,
        };
        let refused = match self.products.call(product_id, hold()).await {
            Err(CallError::Rejected(
                e @ DomainError::Conflict {
                    code: "out_of_stock",
                    ..
                },
            )) => e,
            other => return other.map(|_| ()).map_err(Into::into),
        };
        let k = self.buckets_of(product_id).await?;
        if k <= 1 {
            return Err(refused.into());
        }
        self.drain_except(product_id, k, None).await?;
        self.products.call(product_id, hold()).await?;
        Ok(())
    }

    /// What `order_id` holds of `product_id` is free again (a no-op where
    /// it holds nothing). Units freed in a bucket stay there; the product
    /// learns the bucket's free count, so the public stock shows them.
    pub async fn release(&self, product_id: &str, order_id: &str) -> Result<(), ServiceError> {
        let release = ProductCommand::Release {
            order_id: order_id.to_owned(),
        };
        self.products.call(product_id, release).await?;
        let k = self.buckets_of(product_id).await?;
        if k > 1 {
            let release = BucketCommand::Release {
                order_id: order_id.to_owned(),
            };
            let i = bucket_of(order_id, k);
            let after = self
                .buckets
                .call(&bucket_id(product_id, i), release)
                .await?;
            self.heard(product_id, i, &after).await?;
        }
        Ok(())
    }

    /// What `order_id` holds of `product_id` is sold.
    pub async fn consume(&self, product_id: &str, order_id: &str) -> Result<(), ServiceError> {
        let consume = ProductCommand::Consume {
            order_id: order_id.to_owned(),
        };
        self.products.call(product_id, consume).await?;
        let k = self.buckets_of(product_id).await?;
        if k > 1 {
            let consume = BucketCommand::Consume {
                order_id: order_id.to_owned(),
            };
            let bucket = bucket_id(product_id, bucket_of(order_id, k));
            self.buckets.call(&bucket, consume).await?;
        }
        Ok(())
    }
}

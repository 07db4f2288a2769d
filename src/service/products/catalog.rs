//! Catalog use cases: shops, products, courses, and search over the
//! `products` / `courses` read tables with cursor pagination.

use crate::actors::shop::ShopEntity;
use crate::actors::Registry;
use crate::service::found;
use crate::store::Store;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

use crate::actors::course::{CourseCommand, CourseEntity, COURSES_BY_TRAINER, COURSES_TABLE};
use crate::actors::product::{ProductCommand, ProductEntity, PRODUCTS_TABLE};
use crate::actors::shop::{ShopCommand, SHOPS_BY_OWNER, SHOPS_TABLE};
use crate::actors::Entity;
use crate::domain::catalog::{
    Course, CourseInput, CourseKind, CoursePatch, Product, ProductFilter, ProductInput,
    ProductPatch, Shop, ShopInput, ShopPatch,
};
use crate::domain::{Caller, DomainError};
use crate::service::{new_id, ServiceError};
use crate::store::codec;

pub const MAX_PAGE: usize = 100;

/// Whether `viewer` sees what an admin hid of `owner`'s: the owner and
/// admins do; to anyone else it does not exist.
fn sees_hidden(viewer: Option<&Caller>, owner: &str) -> bool {
    viewer.is_some_and(|c| c.may_modify(owner))
}
/// Rows a single listing request may examine; a sparse filter returns a
/// short page with a cursor rather than scanning without end.
const SCAN_BUDGET: usize = 5_000;
const SCAN_CHUNK: usize = 256;

/// One page of a listing; pass `next_cursor` back as `cursor` for the next.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// Decodes a list cursor. Any string of the document's pattern (base64url
/// of a valid length) is taken: the page starts after the key it names,
/// whatever it is; only other strings are refused.
pub fn decode_cursor(cursor: &str) -> Result<String, DomainError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT
        .decode(cursor)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| DomainError::invalid("cursor", "cursor is not one this server issued"))
}

/// One page of the rows of `table` under `prefix`, each decoded as a `T`
/// written at `version`, after the key the cursor names.
pub async fn scan_page<T: DeserializeOwned>(
    store: &dyn Store,
    table: &str,
    prefix: &str,
    version: u16,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<T>, ServiceError> {
    let after = cursor.map(decode_cursor).transpose()?;
    let rows = store.scan(table, prefix, after.as_deref(), limit).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|(k, _)| encode_cursor(k)))
        .flatten();
    let mut items = Vec::with_capacity(rows.len());
    for (_, v) in rows {
        items.push(codec::decode::<T>(version, &v)?);
    }
    Ok(Page { items, next_cursor })
}

pub fn check_limit(limit: Option<usize>) -> Result<usize, DomainError> {
    match limit.unwrap_or(20) {
        0 => Err(DomainError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        )),
        n if n > MAX_PAGE => Err(DomainError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        )),
        n => Ok(n),
    }
}

/// Shops, products and courses: what merchants and trainers publish.
#[derive(Clone)]
pub struct Catalog {
    pub(in crate::service) shops: Registry<ShopEntity>,
    pub(in crate::service) products: Registry<ProductEntity>,
    pub(in crate::service) courses: Registry<CourseEntity>,
    pub(in crate::service) stock: crate::service::commerce::stock::Stock,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) categories: crate::service::products::categories::Categories,
}

impl Catalog {
    pub async fn create_shop(
        &self,
        caller: Caller,
        input: ShopInput,
    ) -> Result<Shop, ServiceError> {
        Ok(self
            .shops
            .call(&new_id(), ShopCommand::Create { caller, input })
            .await?)
    }

    pub async fn get_shop(&self, id: &str) -> Result<Shop, ServiceError> {
        found(&self.shops, id, "shop").await?;
        Ok(self.shops.call(id, ShopCommand::Get).await?)
    }

    /// Shop `id` as `viewer` may read it: one an admin hid is 404 to
    /// anyone but its merchant and admins, and so is why it was hidden.
    pub async fn shop_for(&self, viewer: Option<&Caller>, id: &str) -> Result<Shop, ServiceError> {
        let shop = self.get_shop(id).await?;
        match shop.hidden.is_none() || sees_hidden(viewer, &shop.owner_id) {
            true => Ok(shop),
            false => Err(DomainError::NotFound("shop").into()),
        }
    }

    /// Product `id` as `viewer` may read it: one an admin hid (or whose
    /// shop they hid) is 404 to anyone but its merchant and admins.
    pub async fn product_for(
        &self,
        viewer: Option<&Caller>,
        id: &str,
    ) -> Result<Product, ServiceError> {
        let p = self.get_product(id).await?;
        match p.hidden.is_none() || sees_hidden(viewer, &p.owner_id) {
            true => Ok(p),
            false => Err(DomainError::NotFound("product").into()),
        }
    }

    /// Shops in id order (oldest first), with a name filter
    /// (case-insensitive substring).
    pub async fn list_shops(
        &self,
        text: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Shop>, ServiceError> {
        let text = text.map(str::to_lowercase);
        self.list::<ShopEntity, Shop>(SHOPS_TABLE, cursor, limit, |s| {
            s.hidden.is_none()
                && text
                    .as_deref()
                    .is_none_or(|t| s.name.to_lowercase().contains(t))
        })
        .await
    }

    /// A merchant's shops, in id order.
    pub async fn shops_of(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Shop>, ServiceError> {
        scan_page(
            self.store.as_ref(),
            SHOPS_BY_OWNER,
            &format!("{owner}|"),
            ShopEntity::VERSION,
            cursor,
            limit,
        )
        .await
    }

    /// A trainer's courses, in id order (oldest first).
    pub async fn courses_of(
        &self,
        trainer: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Course>, ServiceError> {
        scan_page(
            self.store.as_ref(),
            COURSES_BY_TRAINER,
            &format!("{trainer}|"),
            CourseEntity::VERSION,
            cursor,
            limit,
        )
        .await
    }

    pub async fn update_shop(
        &self,
        caller: Caller,
        id: &str,
        patch: ShopPatch,
    ) -> Result<Shop, ServiceError> {
        found(&self.shops, id, "shop").await?;
        Ok(self
            .shops
            .call(id, ShopCommand::Update { caller, patch })
            .await?)
    }

    pub async fn create_product(
        &self,
        caller: Caller,
        shop_id: &str,
        mut input: ProductInput,
    ) -> Result<Product, ServiceError> {
        let shop = self.get_shop(shop_id).await?;
        if let Some(id) = &input.category_id {
            input.category = self.categories.slug_of(id).await?;
        }
        let created = self
            .products
            .call(
                &new_id(),
                ProductCommand::Create {
                    caller,
                    shop,
                    input,
                },
            )
            .await?;
        self.stock.note(&created.product);
        Ok(created.product)
    }

    /// The product, unless it does not exist or was deleted (404).
    pub async fn get_product(&self, id: &str) -> Result<Product, ServiceError> {
        let p = self.product_record(id).await?;
        match p.deleted_at {
            None => Ok(p),
            Some(_) => Err(DomainError::NotFound("product").into()),
        }
    }

    /// The product's record, also after it was deleted (what a cart still
    /// holding it shows; its checkout is refused as for an inactive one).
    pub async fn product_record(&self, id: &str) -> Result<Product, ServiceError> {
        found(&self.products, id, "product").await?;
        Ok(self.products.call(id, ProductCommand::Get).await?.product)
    }

    pub async fn update_product(
        &self,
        caller: Caller,
        id: &str,
        mut patch: ProductPatch,
    ) -> Result<Product, ServiceError> {
        found(&self.products, id, "product").await?;
        if let Some(category) = &patch.category_id {
            patch.category = Some(self.categories.slug_of(category).await?);
        }
        let updated = self
            .products
            .call(id, ProductCommand::Update { caller, patch })
            .await?
            .product;
        // A split product's buckets give back their free units, so a new
        // stock or availability holds for all of it.
        self.stock.drain(updated).await
    }

    /// Products matching `filter`; with `category_id`, only those of that
    /// category or one below it.
    pub async fn list_products(
        &self,
        filter: &ProductFilter,
        category_id: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Product>, ServiceError> {
        crate::domain::catalog::check_price_bounds(filter.min_price, filter.max_price)?;
        let mut filter = filter.clone();
        if let Some(id) = category_id {
            filter.categories = Some(self.categories.subtree_slugs(id).await?);
        }
        self.list::<ProductEntity, Product>(PRODUCTS_TABLE, cursor, limit, |p| filter.matches(p))
            .await
    }

    pub async fn create_course(
        &self,
        caller: Caller,
        input: CourseInput,
    ) -> Result<Course, ServiceError> {
        Ok(self
            .courses
            .call(&new_id(), CourseCommand::Create { caller, input })
            .await?)
    }

    /// The public course: its timetable, without the sessions' exercises
    /// (those are for the enrolled: `GET /courses/{id}/sessions`).
    pub async fn get_course(&self, id: &str) -> Result<Course, ServiceError> {
        found(&self.courses, id, "course").await?;
        Ok(public_course(
            self.courses.call(id, CourseCommand::Get).await?,
        ))
    }

    pub async fn update_course(
        &self,
        caller: Caller,
        id: &str,
        patch: CoursePatch,
    ) -> Result<Course, ServiceError> {
        found(&self.courses, id, "course").await?;
        Ok(self
            .courses
            .call(id, CourseCommand::Update { caller, patch })
            .await?)
    }

    pub async fn list_courses(
        &self,
        kind: Option<CourseKind>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Course>, ServiceError> {
        let mut page = self
            .list::<CourseEntity, Course>(COURSES_TABLE, cursor, limit, |c| {
                kind.is_none_or(|k| c.kind == k)
            })
            .await?;
        page.items = page.items.into_iter().map(public_course).collect();
        Ok(page)
    }

    /// Walks a read table in key (creation) order from `cursor`, keeping rows
    /// that pass `keep`, within `SCAN_BUDGET` rows.
    async fn list<E: Entity, T: DeserializeOwned>(
        &self,
        table: &str,
        cursor: Option<&str>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, ServiceError> {
        let mut after = cursor.map(decode_cursor).transpose()?;
        let mut items = Vec::new();
        let mut scanned = 0;
        loop {
            let rows = self
                .store
                .scan(table, "", after.as_deref(), SCAN_CHUNK)
                .await?;
            let exhausted = rows.len() < SCAN_CHUNK;
            for (key, value) in rows {
                scanned += 1;
                let row: T = codec::decode(E::VERSION, &value)?;
                if keep(&row) {
                    items.push(row);
                }
                let full = items.len() >= limit || scanned >= SCAN_BUDGET;
                after = Some(key);
                if full {
                    return Ok(Page {
                        items,
                        next_cursor: after.as_deref().map(encode_cursor),
                    });
                }
            }
            if exhausted {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
        }
    }
}

/// A course as anyone may see it: sessions without their exercises.
fn public_course(mut c: Course) -> Course {
    for s in &mut c.sessions {
        s.exercises.clear();
    }
    c
}

//! The catalog: shops, products and courses, and the rules of their input.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_currency, check_point, check_text, DomainError, GeoPoint};

pub const MAX_PRICE: u64 = 1_000_000_000_000;
pub const MAX_STOCK: u64 = 1_000_000_000;
pub const MAX_WEIGHT_GRAMS: u64 = 1_000_000;
/// Most stock buckets a product's stock is split over.
pub const MAX_STOCK_BUCKETS: u32 = 64;
pub const MAX_CAPACITY: u32 = 1_000_000;
pub const MAX_COURSE_SESSIONS: usize = 500;
/// A product's attributes: at most this many names, each with at most
/// `MAX_ATTRIBUTE_VALUES` values.
pub const MAX_ATTRIBUTES: usize = 20;
pub const MAX_ATTRIBUTE_VALUES: usize = 10;

/// Attribute name → its values (e.g. `material: [cotton]`), in name order.
pub type Attributes = std::collections::BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Shop {
    pub id: crate::domain::ids::ShopId,
    pub owner_id: crate::domain::ids::UserId,
    pub name: String,
    pub location: GeoPoint,
    pub address: String,
    /// Set while an admin hides the shop (moderation): it is not listed,
    /// searched or sold from.
    #[serde(default)]
    pub hidden: Option<Moderation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why and since when an admin hides a shop or product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Moderation {
    pub reason: String,
    pub at: DateTime<Utc>,
    /// Hidden because its shop is (lifted with the shop's).
    #[serde(default)]
    pub by_shop: bool,
    /// Hidden because its owner's seller rights ended (made another role,
    /// or suspended): lifted when they return, unless an admin hid it for
    /// a reason of their own since.
    #[serde(default)]
    pub by_owner: bool,
}

impl Moderation {
    /// Whether a shop's hiding changes from `current` to `next`. Hiding a
    /// visible shop does; an admin's own hiding replaces one for the
    /// owner's ended rights (so their return does not lift it); lifting
    /// does, unless `only_by_owner` lifts only a hiding for the owner's
    /// rights. Anything else keeps the first reason.
    pub fn changes(
        current: Option<&Moderation>,
        next: Option<&Moderation>,
        only_by_owner: bool,
    ) -> bool {
        match (current, next) {
            (None, Some(_)) => true,
            (Some(c), Some(n)) => c.by_owner && !n.by_owner,
            (Some(c), None) => !only_by_owner || c.by_owner,
            (None, None) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopInput {
    pub name: String,
    pub location: GeoPoint,
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopPatch {
    pub name: Option<String>,
    pub location: Option<GeoPoint>,
    pub address: Option<String>,
}

pub fn check_shop(input: &ShopInput) -> Result<ShopInput, DomainError> {
    Ok(ShopInput {
        name: check_text("name", &input.name, 120)?,
        location: check_point("location", input.location)?,
        address: check_text("address", &input.address, 300)?,
    })
}

pub fn patch_shop(shop: &Shop, patch: &ShopPatch) -> Result<ShopInput, DomainError> {
    check_shop(&ShopInput {
        name: patch.name.clone().unwrap_or_else(|| shop.name.clone()),
        location: patch.location.unwrap_or(shop.location),
        address: patch
            .address
            .clone()
            .unwrap_or_else(|| shop.address.clone()),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub id: crate::domain::ids::ProductId,
    pub shop_id: crate::domain::ids::ShopId,
    pub owner_id: crate::domain::ids::UserId,
    pub name: String,
    pub category: String,
    /// Price in minor units of `currency`.
    pub price: u64,
    pub currency: String,
    pub stock: u64,
    pub weight_grams: u64,
    /// Buckets the stock is split over, each deciding holds on its own
    /// (1: not split). Fixed once a bucket has been stocked.
    #[serde(default = "one_bucket")]
    pub stock_buckets: u32,
    /// Available units at or below this are low: the merchant is alerted
    /// once per crossing (none: no alert).
    #[serde(default)]
    pub low_stock_threshold: Option<u64>,
    /// The category of the tree it is in (its `category` is that
    /// category's slug); none for a free-text category.
    #[serde(default)]
    pub category_id: Option<String>,
    /// Set while an admin hides it (moderation; its merchant cannot lift it).
    #[serde(default)]
    pub hidden: Option<Moderation>,
    pub active: bool,
    /// Its images, the primary one first.
    #[serde(default)]
    pub media: Vec<crate::domain::media::MediaRef>,
    /// Set when its merchant deleted it, from then on it reads 404: what
    /// the API shows is always null. (Always encoded: the inter-node
    /// channel's MessagePack is positional, so no field may be skipped.)
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A sale price, for a while or until removed (none: not on sale).
    #[serde(default)]
    pub sale: Option<Sale>,
    /// What it is, as its merchant wrote it and as a page shows it.
    #[serde(default)]
    pub description: Option<crate::domain::description::Description>,
    #[serde(default)]
    pub brand: Option<String>,
    /// Searchable and faceted (`/search?attribute=material:cotton`).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, Vec<String>>,
}

/// A product's sale price: below its price, from `starts_at` (none: at
/// once) until `ends_at` (none: until removed), half-open — at `ends_at`
/// the list price is back. Carts and checkouts charge it while it runs;
/// lines show the list price beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    /// Minor units, at least 1 and below the product's price.
    pub price: u64,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl Sale {
    pub fn runs_at(&self, now: DateTime<Utc>) -> bool {
        self.starts_at.is_none_or(|s| s <= now) && self.ends_at.is_none_or(|e| now < e)
    }
}

fn check_sale(sale: &Sale, price: u64) -> Result<(), DomainError> {
    if sale.price == 0 || sale.price >= price {
        return Err(DomainError::invalid(
            "sale",
            "a sale price is at least 1 and below the product's price",
        ));
    }
    if let (Some(s), Some(e)) = (sale.starts_at, sale.ends_at) {
        if e <= s {
            return Err(DomainError::invalid("sale", "a sale ends after it starts"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    /// Free text (1 to 60 characters), or, with `category_id`, ignored:
    /// the category's slug is used.
    #[serde(default)]
    pub category: String,
    /// A category of the tree (`/categories`).
    #[serde(default)]
    pub category_id: Option<String>,
    pub price: u64,
    pub currency: String,
    pub stock: u64,
    pub weight_grams: u64,
    /// Split the stock over this many buckets, each its own actor, for a
    /// product expected to sell hundreds a second (default 1: not split).
    #[serde(default = "one_bucket")]
    #[schema(minimum = 1, maximum = 64, default = 1)]
    pub stock_buckets: u32,
    /// Alert the merchant when available units fall to this (at most
    /// 1,000,000,000).
    #[serde(default)]
    #[schema(maximum = 1_000_000_000)]
    pub low_stock_threshold: Option<u64>,
    #[serde(default)]
    pub sale: Option<Sale>,
    /// In the Markdown subset docs/commerce.md describes (at most 10,000
    /// characters); rendered to sanitized HTML as `description.html`.
    #[serde(default)]
    #[schema(max_length = 10_000)]
    pub description: Option<String>,
    /// At most 60 characters.
    #[serde(default)]
    #[schema(max_length = 60)]
    pub brand: Option<String>,
    /// At most 20 names (1–40 characters, no `:` or `,`; kept lower-case),
    /// each with 1 to 10 values (1–60 characters, no `,`).
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, Vec<String>>,
}

fn one_bucket() -> u32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    /// Free text: the product leaves its tree category.
    pub category: Option<String>,
    /// A category of the tree: `category` becomes its slug.
    pub category_id: Option<String>,
    pub price: Option<u64>,
    pub currency: Option<String>,
    pub stock: Option<u64>,
    pub weight_grams: Option<u64>,
    /// Only while no bucket has been stocked yet (409 `stock_buckets_fixed`).
    #[schema(minimum = 1, maximum = 64)]
    pub stock_buckets: Option<u32>,
    pub active: Option<bool>,
    /// A number sets the low-stock threshold; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, maximum = 1_000_000_000)]
    pub low_stock_threshold: Option<Option<u64>>,
    /// A sale sets (replaces) the sale price; `null` ends it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Sale>)]
    pub sale: Option<Option<Sale>>,
    /// Replaces the description; `""` removes it.
    #[schema(max_length = 10_000)]
    pub description: Option<String>,
    /// A name sets the brand; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 60)]
    pub brand: Option<Option<String>>,
    /// Replaces every attribute (`{}` removes them all).
    pub attributes: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// A field that is present, `null` included (`Some(None)`); absent is
/// `None` (`#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub fn check_product(input: &ProductInput) -> Result<ProductInput, DomainError> {
    if input.price > MAX_PRICE {
        return Err(DomainError::invalid(
            "price",
            format!("price must be at most {MAX_PRICE}"),
        ));
    }
    if input.stock > MAX_STOCK {
        return Err(DomainError::invalid(
            "stock",
            format!("stock must be at most {MAX_STOCK}"),
        ));
    }
    if !(1..=MAX_STOCK_BUCKETS).contains(&input.stock_buckets) {
        return Err(DomainError::invalid(
            "stock_buckets",
            format!("stock_buckets must be between 1 and {MAX_STOCK_BUCKETS}"),
        ));
    }
    if input.low_stock_threshold.is_some_and(|t| t > MAX_STOCK) {
        return Err(DomainError::invalid(
            "low_stock_threshold",
            format!("low_stock_threshold must be at most {MAX_STOCK}"),
        ));
    }
    if input.weight_grams > MAX_WEIGHT_GRAMS {
        return Err(DomainError::invalid(
            "weight_grams",
            format!("weight_grams must be at most {MAX_WEIGHT_GRAMS}"),
        ));
    }
    if let Some(sale) = &input.sale {
        check_sale(sale, input.price)?;
    }
    // Checked here, rendered when the product records it.
    let description = match &input.description {
        Some(d) => crate::domain::description::render(d)?.map(|d| d.markdown),
        None => None,
    };
    Ok(ProductInput {
        name: check_text("name", &input.name, 200)?,
        category: check_text("category", &input.category, 60)?.to_lowercase(),
        category_id: input.category_id.clone(),
        price: input.price,
        currency: check_currency(&input.currency)?,
        stock: input.stock,
        weight_grams: input.weight_grams,
        stock_buckets: input.stock_buckets,
        low_stock_threshold: input.low_stock_threshold,
        sale: input.sale,
        description,
        brand: match &input.brand {
            Some(b) if !b.trim().is_empty() => Some(check_text("brand", b, 60)?),
            _ => None,
        },
        attributes: check_attributes(&input.attributes)?,
    })
}

/// Names trimmed and lower-cased, values trimmed and without repeats (in
/// the order given); a name without values is refused.
pub fn check_attributes(attrs: &Attributes) -> Result<Attributes, DomainError> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(DomainError::invalid(
            "attributes",
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    let mut out = Attributes::new();
    for (name, values) in attrs {
        let key = check_text("attributes", name, 40)?.to_lowercase();
        if key.contains([':', ',']) {
            return Err(DomainError::invalid(
                "attributes",
                format!("attribute name {key:?} must not contain ':' or ','"),
            ));
        }
        if values.is_empty() || values.len() > MAX_ATTRIBUTE_VALUES {
            return Err(DomainError::invalid(
                "attributes",
                format!("attribute {key:?} needs 1 to {MAX_ATTRIBUTE_VALUES} values"),
            ));
        }
        let mut kept: Vec<String> = Vec::with_capacity(values.len());
        for v in values {
            let v = check_text("attributes", v, 60)?;
            if v.contains(',') {
                return Err(DomainError::invalid(
                    "attributes",
                    format!("attribute value {v:?} must not contain ','"),
                ));
            }
            if !kept.iter().any(|k| k.eq_ignore_ascii_case(&v)) {
                kept.push(v);
            }
        }
        if out.insert(key.clone(), kept).is_some() {
            return Err(DomainError::invalid(
                "attributes",
                format!("attribute {key:?} is named twice"),
            ));
        }
    }
    Ok(out)
}

pub fn patch_product(p: &Product, patch: &ProductPatch) -> Result<ProductInput, DomainError> {
    check_product(&ProductInput {
        name: patch.name.clone().unwrap_or_else(|| p.name.clone()),
        category: patch.category.clone().unwrap_or_else(|| p.category.clone()),
        // A free-text category leaves the tree; a tree category replaces it.
        category_id: match (&patch.category_id, &patch.category) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(_)) => None,
            (None, None) => p.category_id.clone(),
        },
        price: patch.price.unwrap_or(p.price),
        currency: patch.currency.clone().unwrap_or_else(|| p.currency.clone()),
        stock: patch.stock.unwrap_or(p.stock),
        weight_grams: patch.weight_grams.unwrap_or(p.weight_grams),
        stock_buckets: patch.stock_buckets.unwrap_or(p.stock_buckets),
        low_stock_threshold: patch.low_stock_threshold.unwrap_or(p.low_stock_threshold),
        // A new price under a running sale keeps the sale only if it stays
        // below: otherwise the patch is refused (end the sale with it).
        sale: patch.sale.unwrap_or(p.sale),
        description: match &patch.description {
            Some(d) => Some(d.clone()),
            None => p.description.as_ref().map(|d| d.markdown.clone()),
        },
        brand: patch.brand.clone().unwrap_or_else(|| p.brand.clone()),
        attributes: patch
            .attributes
            .clone()
            .unwrap_or_else(|| p.attributes.clone()),
    })
}

/// Price bounds of a listing or search: each at most `MAX_PRICE` (a
/// minimum above the maximum simply matches nothing).
pub fn check_price_bounds(min: Option<u64>, max: Option<u64>) -> Result<(), DomainError> {
    for (field, v) in [("min_price", min), ("max_price", max)] {
        if v.is_some_and(|v| v > MAX_PRICE) {
            return Err(DomainError::invalid(
                field,
                format!("{field} must be at most {MAX_PRICE}"),
            ));
        }
    }
    Ok(())
}

/// Product search filters (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductFilter {
    pub category: Option<String>,
    /// Any of these categories (slugs): a tree category and its subtree.
    pub categories: Option<std::collections::HashSet<String>>,
    pub shop_id: Option<crate::domain::ids::ShopId>,
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    /// Case-insensitive substring of the name.
    pub text: Option<String>,
}

impl Product {
    /// Active and not hidden by an admin: listed, searched, sold.
    pub fn on_sale(&self) -> bool {
        self.active && self.hidden.is_none() && self.deleted_at.is_none()
    }

    /// What one unit costs at `now`: the sale price while a sale runs,
    /// else the price. Every cart line and checkout is priced by it.
    pub fn price_at(&self, now: DateTime<Utc>) -> u64 {
        match self.sale {
            Some(s) if s.runs_at(now) => s.price,
            _ => self.price,
        }
    }
}

impl ProductFilter {
    pub fn matches(&self, p: &Product) -> bool {
        p.on_sale()
            && self
                .category
                .as_ref()
                .is_none_or(|c| p.category.eq_ignore_ascii_case(c))
            && self
                .categories
                .as_ref()
                .is_none_or(|set| set.contains(&p.category))
            && self.shop_id.as_ref().is_none_or(|s| &p.shop_id == s)
            && self.min_price.is_none_or(|m| p.price >= m)
            && self.max_price.is_none_or(|m| p.price <= m)
            && self
                .text
                .as_ref()
                .is_none_or(|t| p.name.to_lowercase().contains(&t.to_lowercase()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CourseKind {
    Gym,
    Pilates,
    Yoga,
}

/// One exercise of a session (what enrolled users see).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    pub name: String,
    pub sets: Option<u32>,
    pub reps: Option<u32>,
    pub duration_sec: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CourseSession {
    /// Set when added through `POST /courses/{id}/sessions`.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub duration_min: u32,
    /// Only enrolled users (and the trainer) see them.
    #[serde(default)]
    pub exercises: Vec<Exercise>,
}

/// Most exercises per session.
pub const MAX_EXERCISES: usize = 50;

/// Checks one session of a course's schedule.
pub fn check_session(s: &CourseSession) -> Result<CourseSession, DomainError> {
    if s.duration_min == 0 || s.duration_min > 24 * 60 {
        return Err(DomainError::invalid(
            "duration_min",
            "a session lasts 1 to 1440 minutes",
        ));
    }
    if s.exercises.len() > MAX_EXERCISES {
        return Err(DomainError::invalid(
            "exercises",
            format!("at most {MAX_EXERCISES} exercises per session"),
        ));
    }
    let mut exercises = Vec::with_capacity(s.exercises.len());
    for e in &s.exercises {
        exercises.push(Exercise {
            name: check_text("exercises.name", &e.name, 100)?,
            ..e.clone()
        });
    }
    Ok(CourseSession {
        title: s
            .title
            .as_deref()
            .map(|t| check_text("title", t, 120))
            .transpose()?,
        exercises,
        ..s.clone()
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Course {
    pub id: String,
    pub trainer_id: crate::domain::ids::UserId,
    pub title: String,
    pub kind: CourseKind,
    pub capacity: u32,
    /// Price in minor units; 0 is a free course.
    pub price: u64,
    pub currency: String,
    pub is_free: bool,
    pub sessions: Vec<CourseSession>,
    /// Its images, the primary one first.
    #[serde(default)]
    pub media: Vec<crate::domain::media::MediaRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What it teaches and for whom, as its trainer wrote it and as a page
    /// shows it (the Markdown subset of product descriptions).
    #[serde(default)]
    pub description: Option<crate::domain::description::Description>,
    /// Its parts in order.
    #[serde(default)]
    pub syllabus: Vec<SyllabusItem>,
}

/// Most parts a syllabus lists.
pub const MAX_SYLLABUS: usize = 50;

/// One part of a course's syllabus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyllabusItem {
    /// 1 to 120 characters.
    #[schema(max_length = 120)]
    pub title: String,
    /// How long it takes, if said (1 to 1440).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseInput {
    pub title: String,
    pub kind: CourseKind,
    pub capacity: u32,
    pub price: u64,
    pub currency: String,
    #[serde(default)]
    pub sessions: Vec<CourseSession>,
    /// In the Markdown subset of product descriptions (at most 10,000
    /// characters).
    #[serde(default)]
    #[schema(max_length = 10_000)]
    pub description: Option<String>,
    /// At most 50 parts.
    #[serde(default)]
    pub syllabus: Vec<SyllabusItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoursePatch {
    pub title: Option<String>,
    pub kind: Option<CourseKind>,
    pub capacity: Option<u32>,
    pub price: Option<u64>,
    pub currency: Option<String>,
    pub sessions: Option<Vec<CourseSession>>,
    /// Replaces the description; `""` removes it.
    #[schema(max_length = 10_000)]
    pub description: Option<String>,
    /// Replaces the syllabus (`[]` empties it).
    pub syllabus: Option<Vec<SyllabusItem>>,
}

pub fn check_course(input: &CourseInput) -> Result<CourseInput, DomainError> {
    if input.capacity == 0 || input.capacity > MAX_CAPACITY {
        return Err(DomainError::invalid(
            "capacity",
            format!("capacity must be between 1 and {MAX_CAPACITY}"),
        ));
    }
    if input.price > MAX_PRICE {
        return Err(DomainError::invalid(
            "price",
            format!("price must be at most {MAX_PRICE}"),
        ));
    }
    if input.sessions.len() > MAX_COURSE_SESSIONS {
        return Err(DomainError::invalid(
            "sessions",
            format!("a course has at most {MAX_COURSE_SESSIONS} sessions"),
        ));
    }
    let checked: Result<Vec<_>, _> = input.sessions.iter().map(check_session).collect();
    let checked = checked?;
    if let Some(s) = checked
        .iter()
        .find(|s| s.duration_min == 0 || s.duration_min > 24 * 60)
    {
        return Err(DomainError::invalid(
            "sessions",
            format!(
                "session at {} must last 1 to 1440 minutes",
                s.starts_at.to_rfc3339()
            ),
        ));
    }
    let mut sessions = checked;
    sessions.sort_by_key(|s| s.starts_at);
    if input.syllabus.len() > MAX_SYLLABUS {
        return Err(DomainError::invalid(
            "syllabus",
            format!("a syllabus has at most {MAX_SYLLABUS} parts"),
        ));
    }
    let syllabus = input
        .syllabus
        .iter()
        .map(|item| {
            if item.minutes.is_some_and(|m| m == 0 || m > 24 * 60) {
                return Err(DomainError::invalid(
                    "syllabus",
                    "a part's minutes must be 1 to 1440",
                ));
            }
            Ok(SyllabusItem {
                title: check_text("syllabus", &item.title, 120)?,
                minutes: item.minutes,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(CourseInput {
        title: check_text("title", &input.title, 200)?,
        kind: input.kind,
        capacity: input.capacity,
        price: input.price,
        currency: check_currency(&input.currency)?,
        sessions,
        description: match &input.description {
            Some(d) => crate::domain::description::render(d)?.map(|d| d.markdown),
            None => None,
        },
        syllabus,
    })
}

pub fn patch_course(c: &Course, patch: &CoursePatch) -> Result<CourseInput, DomainError> {
    check_course(&CourseInput {
        title: patch.title.clone().unwrap_or_else(|| c.title.clone()),
        kind: patch.kind.unwrap_or(c.kind),
        capacity: patch.capacity.unwrap_or(c.capacity),
        price: patch.price.unwrap_or(c.price),
        currency: patch.currency.clone().unwrap_or_else(|| c.currency.clone()),
        sessions: patch.sessions.clone().unwrap_or_else(|| c.sessions.clone()),
        description: match &patch.description {
            Some(d) => Some(d.clone()),
            None => c.description.as_ref().map(|d| d.markdown.clone()),
        },
        syllabus: patch.syllabus.clone().unwrap_or_else(|| c.syllabus.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(price: u64, cat: &str, name: &str, active: bool) -> Product {
        let now = Utc::now();
        Product {
            id: "p".into(),
            shop_id: "s1".into(),
            owner_id: "o".into(),
            name: name.into(),
            category: cat.into(),
            price,
            currency: "VND".into(),
            stock: 1,
            weight_grams: 100,
            stock_buckets: 1,
            low_stock_threshold: None,
            category_id: None,
            hidden: None,
            active,
            media: Vec::new(),
            deleted_at: None,
            created_at: now,
            updated_at: now,
            sale: None,
            description: None,
            brand: None,
            attributes: Attributes::new(),
        }
    }

    #[test]
    fn product_filters() {
        let p = product(500, "yoga", "Yoga Mat Pro", true);
        let f = |f: ProductFilter| f.matches(&p);
        assert!(f(ProductFilter::default()));
        assert!(f(ProductFilter {
            category: Some("YOGA".into()),
            ..Default::default()
        }));
        assert!(!f(ProductFilter {
            category: Some("gym".into()),
            ..Default::default()
        }));
        assert!(f(ProductFilter {
            min_price: Some(500),
            max_price: Some(500),
            ..Default::default()
        }));
        assert!(!f(ProductFilter {
            min_price: Some(501),
            ..Default::default()
        }));
        assert!(!f(ProductFilter {
            max_price: Some(499),
            ..Default::default()
        }));
        assert!(f(ProductFilter {
            text: Some("mat".into()),
            ..Default::default()
        }));
        assert!(!f(ProductFilter {
            text: Some("ball".into()),
            ..Default::default()
        }));
        assert!(!f(ProductFilter {
            shop_id: Some("s2".into()),
            ..Default::default()
        }));
        assert!(
            !product(1, "x", "y", false).active
                || !ProductFilter::default().matches(&product(1, "x", "y", false))
        );
    }

    #[test]
    fn attributes_are_tidied_and_bounded() {
        let attrs = |pairs: &[(&str, &[&str])]| -> Attributes {
            pairs
                .iter()
                .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect()
        };
        assert_eq!(
            check_attributes(&attrs(&[(" Material ", &[" cotton", "Cotton", "linen"])])).unwrap(),
            attrs(&[("material", &["cotton", "linen"])])
        );
        for bad in [
            attrs(&[("material", &[])]),
            attrs(&[("size:eu", &["40"])]),
            attrs(&[("fit", &["slim, regular"])]),
            attrs(&[("", &["x"])]),
            attrs(&[("Color", &["red"]), ("color", &["blue"])]),
            attrs(&[("colour", &["x"; MAX_ATTRIBUTE_VALUES + 1])]),
            (0..=MAX_ATTRIBUTES)
                .map(|i| (format!("a{i}"), vec!["x".to_string()]))
                .collect(),
        ] {
            let e = check_attributes(&bad).unwrap_err();
            assert!(
                matches!(&e, DomainError::Invalid { field, .. } if *field == "attributes"),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn product_input_rules() {
        let ok = ProductInput {
            name: " Mat ".into(),
            category: "Yoga".into(),
            price: 100,
            currency: "vnd".into(),
            stock: 5,
            weight_grams: 800,
            stock_buckets: 1,
            low_stock_threshold: None,
            category_id: None,
            sale: None,
            description: None,
            brand: None,
            attributes: Attributes::new(),
        };
        let checked = check_product(&ok).unwrap();
        assert_eq!(
            (
                checked.name.as_str(),
                checked.category.as_str(),
                checked.currency.as_str()
            ),
            ("Mat", "yoga", "VND")
        );
        for bad in [
            ProductInput {
                price: MAX_PRICE + 1,
                ..ok.clone()
            },
            ProductInput {
                stock: MAX_STOCK + 1,
                ..ok.clone()
            },
            ProductInput {
                weight_grams: MAX_WEIGHT_GRAMS + 1,
                ..ok.clone()
            },
            ProductInput {
                stock_buckets: 0,
                ..ok.clone()
            },
            ProductInput {
                stock_buckets: MAX_STOCK_BUCKETS + 1,
                ..ok.clone()
            },
            ProductInput {
                currency: "ZZZ".into(),
                ..ok.clone()
            },
            ProductInput {
                name: "".into(),
                ..ok.clone()
            },
        ] {
            assert!(check_product(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_sale_price_is_below_the_price_and_runs_in_its_half_open_window() {
        let at = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let (start, end) = (at("2030-01-01T00:00:00Z"), at("2030-01-02T00:00:00Z"));
        let sale = |price| Sale {
            price,
            starts_at: Some(start),
            ends_at: Some(end),
        };
        let input = |sale| ProductInput {
            name: "Mat".into(),
            category: "yoga".into(),
            price: 100,
            currency: "VND".into(),
            stock: 1,
            weight_grams: 1,
            stock_buckets: 1,
            low_stock_threshold: None,
            category_id: None,
            sale: Some(sale),
            description: None,
            brand: None,
            attributes: Attributes::new(),
        };
        assert!(check_product(&input(sale(99))).is_ok());
        for bad in [
            sale(100),
            sale(0),
            Sale {
                ends_at: Some(start),
                ..sale(50)
            },
        ] {
            assert!(check_product(&input(bad)).is_err(), "{bad:?}");
        }
        let p = Product {
            sale: Some(sale(60)),
            ..product(100, "yoga", "Mat", true)
        };
        let second = chrono::Duration::seconds(1);
        assert_eq!(p.price_at(start - second), 100, "before it starts");
        assert_eq!(p.price_at(start), 60, "from its start");
        assert_eq!(p.price_at(end - second), 60);
        assert_eq!(p.price_at(end), 100, "its end is the list price again");
        let open = Product {
            sale: Some(Sale {
                price: 60,
                starts_at: None,
                ends_at: None,
            }),
            ..p.clone()
        };
        assert_eq!(open.price_at(end), 60, "no end: until removed");
    }

    #[test]
    fn course_input_rules() {
        let at = "2030-01-01T10:00:00Z".parse().unwrap();
        let later = "2030-01-02T10:00:00Z".parse().unwrap();
        let ok = CourseInput {
            title: "Morning Yoga".into(),
            kind: CourseKind::Yoga,
            capacity: 20,
            price: 0,
            currency: "USD".into(),
            sessions: vec![
                CourseSession {
                    id: None,
                    title: None,
                    starts_at: later,
                    duration_min: 60,
                    exercises: vec![],
                },
                CourseSession {
                    id: None,
                    title: None,
                    starts_at: at,
                    duration_min: 45,
                    exercises: vec![],
                },
            ],
            description: Some("**Wake up** gently.".into()),
            syllabus: vec![SyllabusItem {
                title: " Breathing ".into(),
                minutes: Some(10),
            }],
        };
        let checked = check_course(&ok).unwrap();
        assert_eq!(checked.syllabus[0].title, "Breathing");
        assert_eq!(
            checked.sessions[0].starts_at, at,
            "sessions are sorted by start"
        );
        let part = |title: &str, minutes| SyllabusItem {
            title: title.into(),
            minutes,
        };
        for bad in [
            CourseInput {
                syllabus: vec![part("Warm-up", Some(0))],
                ..ok.clone()
            },
            CourseInput {
                syllabus: vec![part(" ", None)],
                ..ok.clone()
            },
            CourseInput {
                syllabus: vec![part("x", None); MAX_SYLLABUS + 1],
                ..ok.clone()
            },
            CourseInput {
                description: Some("x".repeat(10_001)),
                ..ok.clone()
            },
            CourseInput {
                capacity: 0,
                ..ok.clone()
            },
            CourseInput {
                capacity: MAX_CAPACITY + 1,
                ..ok.clone()
            },
            CourseInput {
                sessions: vec![CourseSession {
                    id: None,
                    title: None,
                    starts_at: at,
                    duration_min: 0,
                    exercises: vec![],
                }],
                ..ok.clone()
            },
            CourseInput {
                title: " ".into(),
                ..ok.clone()
            },
        ] {
            assert!(check_course(&bad).is_err(), "{bad:?}");
        }
    }
}

//! `/search` and `/search/suggest`: thin handlers over `service::products::search`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::AppError;
use super::extract::{Json, Query};
use super::state::AppState;
use crate::domain::{DomainError, GeoPoint};
use crate::search::{Facets, Hit, Kind, Params, Sort};
use crate::service::products::catalog::{check_limit, decode_cursor, encode_cursor};

/// Longest query text taken.
pub const MAX_Q: usize = 200;
/// Deepest a search pages (offset + limit).
pub const MAX_DEPTH: usize = 1_000;
pub const MAX_RADIUS_KM: f64 = 1_000.0;
pub const DEFAULT_RADIUS_KM: f64 = 10.0;
pub const MAX_SUGGESTIONS: usize = 20;
/// Most attribute values one search filters by.
pub const MAX_ATTRIBUTE_FILTERS: usize = 10;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to find (all must match; typos of 1–2 letters and missing
    /// Vietnamese tones are forgiven; the last word may be a prefix).
    pub q: Option<String>,
    /// `product`, `shop` or `course` (default: all).
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub kind: Option<Kind>,
    pub category: Option<String>,
    /// A category of the tree: what is in it or in one below it.
    pub category_id: Option<String>,
    /// Products of this brand, as the `brands` facet names it.
    pub brand: Option<String>,
    /// Products with each of these attribute values: `name:value`, several
    /// separated by commas (at most 10), as the `attributes` facet names
    /// them (e.g. `material:cotton,size:M`).
    pub attribute: Option<String>,
    /// Minimum price in minor units (what has a price: products, courses).
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    /// Minimum average rating, 0–5.
    pub min_rating: Option<f64>,
    /// `lat,lng`: only what is within `radius_km` of it (products by their
    /// shop's place, shops); distances are given.
    pub near: Option<String>,
    /// With `near`: 0 < radius ≤ 1000, default 10.
    pub radius_km: Option<f64>,
    #[param(inline)]
    pub sort: Option<Sort>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<Hit>,
    /// Matches in all (not only this page), at most what the filters allow.
    pub total: u64,
    pub facets: Facets,
    pub next_cursor: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    DomainError::invalid(field, message).into()
}

/// `name:value[,name:value…]` as the index holds them (names lower-case).
fn parse_attributes(s: Option<&str>) -> Result<Vec<String>, AppError> {
    let Some(s) = s else { return Ok(Vec::new()) };
    let bad = || {
        invalid(
            "attribute",
            format!(
                "attribute must be name:value, at most {MAX_ATTRIBUTE_FILTERS} separated by commas"
            ),
        )
    };
    let pairs: Vec<String> = s
        .split(',')
        .map(|pair| match pair.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok(format!("{}:{}", k.trim().to_lowercase(), v.trim()))
            }
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    if pairs.len() > MAX_ATTRIBUTE_FILTERS {
        return Err(bad());
    }
    Ok(pairs)
}

fn check_q(q: Option<String>) -> Result<String, AppError> {
    let q = q.unwrap_or_default();
    if q.chars().count() > MAX_Q {
        return Err(invalid(
            "q",
            format!("q must be at most {MAX_Q} characters"),
        ));
    }
    Ok(q)
}

/// `lat,lng` within the globe.
fn parse_near(s: &str) -> Result<GeoPoint, AppError> {
    let bad = || {
        invalid(
            "near",
            "near must be 'lat,lng' (degrees, lat -90..90, lng -180..180)",
        )
    };
    let (lat, lng) = s.split_once(',').ok_or_else(bad)?;
    let at = GeoPoint {
        lat: lat.trim().parse().map_err(|_| bad())?,
        lng: lng.trim().parse().map_err(|_| bad())?,
    };
    crate::domain::check_point("near", at).map_err(|_| bad())
}

fn check_radius(radius_km: Option<f64>) -> Result<f64, AppError> {
    let radius = radius_km.unwrap_or(DEFAULT_RADIUS_KM);
    match radius > 0.0 && radius <= MAX_RADIUS_KM {
        true => Ok(radius),
        false => Err(invalid(
            "radius_km",
            format!("radius_km must be above 0 and at most {MAX_RADIUS_KM}"),
        )),
    }
}

/// The cursor of the page after `offset + limit`, if there is one.
fn next_cursor(offset: usize, limit: usize, r: &crate::search::Results) -> Option<String> {
    let next = offset + r.hits.len();
    (r.hits.len() == limit && (next as u64) < r.total && next < MAX_DEPTH)
        .then(|| encode_cursor(&format!("o:{next}")))
}

/// A search's offset, from its cursor (what does not name one starts at
/// the beginning, as other lists take any cursor of their pattern).
fn offset_of(cursor: Option<&str>) -> Result<usize, AppError> {
    Ok(match cursor {
        Some(c) => decode_cursor(c)?
            .strip_prefix("o:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        None => 0,
    })
}

/// Products, shops and courses by words, filters and place, with facets.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", params(SearchQuery),
    responses((status = 200, body = SearchPage)))]
pub async fn search(
    State(s): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let text = check_q(q.q)?;
    // The radius is checked even without `near`, as the document says.
    let radius = check_radius(q.radius_km)?;
    let near = match q.near.as_deref() {
        Some(n) => Some((parse_near(n)?, radius)),
        None => None,
    };
    let sort = q.sort.unwrap_or_default();
    if sort == Sort::Distance && near.is_none() {
        return Err(invalid("sort", "sort=distance needs near=lat,lng"));
    }
    if let Some(r) = q.min_rating {
        if !(0.0..=5.0).contains(&r) {
            return Err(invalid("min_rating", "min_rating must be between 0 and 5"));
        }
    }
    crate::domain::catalog::check_price_bounds(q.min_price, q.max_price)?;
    let attributes = parse_attributes(q.attribute.as_deref())?;
    let offset = offset_of(q.cursor.as_deref())?;
    if offset >= MAX_DEPTH {
        return Ok(Json(SearchPage {
            items: vec![],
            total: 0,
            facets: Facets::default(),
            next_cursor: None,
        }));
    }
    let limit = limit.min(MAX_DEPTH - offset);
    let params = Params {
        q: text,
        kind: q.kind,
        category: q.category.map(|c| c.trim().to_lowercase()),
        categories: match &q.category_id {
            Some(id) => Some(
                s.services
                    .categories
                    .subtree_slugs(id)
                    .await?
                    .into_iter()
                    .collect(),
            ),
            None => None,
        },
        sells: None,
        shop: None,
        brand: q
            .brand
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty()),
        attributes,
        min_price: q.min_price,
        max_price: q.max_price,
        min_rating: q.min_rating,
        near,
        sort,
        offset,
        limit,
    };
    let r = s.services.search.search(params).await?;
    Ok(Json(SearchPage {
        next_cursor: next_cursor(offset, limit, &r),
        items: r.hits,
        total: r.total,
        facets: r.facets,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SuggestQuery {
    /// What has been typed so far.
    pub q: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    pub kind: Option<Kind>,
    /// 1 to 100, default 8; at most 20 are answered.
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestions {
    pub suggestions: Vec<Hit>,
}

/// Names matching what has been typed (its last word as a prefix), most
/// rated first.
#[utoipa::path(get, path = "/api/v1/search/suggest", tag = "search", params(SuggestQuery),
    responses((status = 200, body = Suggestions)))]
pub async fn suggest(
    State(s): State<AppState>,
    Query(q): Query<SuggestQuery>,
) -> Result<Json<Suggestions>, AppError> {
    let limit = check_limit(Some(q.limit.unwrap_or(8)))?.min(MAX_SUGGESTIONS);
    let text = check_q(q.q)?;
    Ok(Json(Suggestions {
        suggestions: s.services.search.suggest(text, q.kind, limit).await?,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NearbyQuery {
    pub lat: f64,
    pub lng: f64,
    /// 0 < radius ≤ 1000, default 10.
    pub radius_km: Option<f64>,
    /// Only shops selling something of this category.
    pub category: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NearbyPage {
    /// Nearest first, each with `distance_km`.
    pub items: Vec<Hit>,
    pub total: u64,
    pub next_cursor: Option<String>,
}

/// Shops within `radius_km` of a point, nearest first (from the search
/// index's place fields, not a scan).
#[utoipa::path(get, path = "/api/v1/shops/nearby", tag = "search", params(NearbyQuery),
    responses((status = 200, body = NearbyPage)))]
pub async fn nearby_shops(
    State(s): State<AppState>,
    Query(q): Query<NearbyQuery>,
) -> Result<Json<NearbyPage>, AppError> {
    let limit = check_limit(q.limit)?;
    let at = crate::domain::check_point(
        "lat",
        GeoPoint {
            lat: q.lat,
            lng: q.lng,
        },
    )
    .map_err(|_| invalid("lat", "lat must be -90..90 and lng -180..180"))?;
    let radius = check_radius(q.radius_km)?;
    let offset = offset_of(q.cursor.as_deref())?.min(MAX_DEPTH);
    let limit = limit.min(MAX_DEPTH - offset);
    let params = Params {
        kind: Some(Kind::Shop),
        sells: q.category.map(|c| c.trim().to_lowercase()),
        near: Some((at, radius)),
        sort: Sort::Distance,
        offset,
        limit,
        ..Params::default()
    };
    let r = s.services.search.search(params).await?;
    Ok(Json(NearbyPage {
        next_cursor: next_cursor(offset, limit, &r),
        items: r.hits,
        total: r.total,
    }))
}

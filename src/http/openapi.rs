//! What the OpenAPI document adds to the per-handler annotations: the
//! answers the edge itself can give any operation, so the document lists
//! every status the server can send (with the error schema), not only the
//! ones a handler names.
//!
//! - every `/api/v1` operation: 408 (`request_timeout`: the body or the
//!   answer took longer than `request_timeout_secs`), 429
//!   (`too_many_requests`: an entity's mailbox, the hash queue or a
//!   throttle is full; with `Retry-After`), 503 (`unavailable`/`timeout`:
//!   the store or an entity did not answer in time; with `Retry-After`);
//! - secured operations: 401 (missing, invalid, expired or ended token),
//!   and 403 where the requirement names roles (`roles`);
//! - operations with a body: 400 (`invalid_json`), 413, 415, 422
//!   (`invalid_body`, `validation_failed`);
//! - operations with query parameters: 400 (`invalid_query`);
//! - operations on a resource by id: 404 (no such id).

use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{Content, Object, Ref, RefOr, Response, Type};
use utoipa::Modify;

pub struct EdgeStatuses;

fn error(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut r = Response::new(description);
    r.content.insert(
        "application/json".into(),
        RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
    );
    if retry_after {
        let mut h = Header::new(Object::with_type(Type::Integer));
        h.description = Some("seconds to wait before trying again".into());
        r.headers.insert("Retry-After".into(), RefOr::T(h));
    }
    RefOr::T(r)
}

fn add(op: &mut Operation, status: &str, description: &str, retry_after: bool) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error(description, retry_after));
}

fn complete(path: &str, op: &mut Operation, global_security: bool) {
    add(
        op,
        "408",
        "request_timeout: the request body or the answer took too long",
        false,
    );
    if !path.starts_with("/api/v1/") {
        return;
    }
    add(
        op,
        "429",
        "too_many_requests: overloaded or throttled; retry after Retry-After",
        true,
    );
    add(
        op,
        "503",
        "unavailable or timeout: the engine could not answer now; retry after Retry-After",
        true,
    );
    let secured = op
        .security
        .as_ref()
        .map(|s| !s.is_empty())
        .unwrap_or(global_security);
    if secured {
        add(
            op,
            "401",
            "unauthorized: missing, invalid, expired or ended token",
            false,
        );
    }
    // Roles named in the requirement are checked at the edge (`roles`).
    let roles = serde_json::to_value(&op.security).unwrap_or_default();
    let needs_role = roles
        .as_array()
        .into_iter()
        .flatten()
        .any(|req| req["bearer"].as_array().is_some_and(|r| !r.is_empty()));
    if needs_role {
        add(
            op,
            "403",
            "forbidden: the operation requires a role the caller lacks (its security requirement names the roles; admins always pass)",
            false,
        );
    }
    if op.request_body.is_some() {
        add(op, "400", "invalid_json: the body is not JSON", false);
        add(op, "413", "payload_too_large", false);
        add(
            op,
            "415",
            "unsupported_media_type: send Content-Type: application/json",
            false,
        );
        add(op, "422", "invalid_body or validation_failed", false);
    }
    let has = |op: &Operation, place: ParameterIn| {
        op.parameters
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|p| match p {
                RefOr::T(p) => p.parameter_in == place,
                RefOr::Ref(_) => false,
            })
    };
    if has(op, ParameterIn::Query) {
        add(op, "400", "invalid_query", false);
        add(
            op,
            "422",
            "validation_failed: a query value breaks a rule",
            false,
        );
    }
    if has(op, ParameterIn::Header) {
        add(op, "400", "invalid_header", false);
    }
    if has(op, ParameterIn::Path) {
        add(op, "404", "not_found", false);
    }
}

impl Modify for EdgeStatuses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let global_security = openapi.security.as_ref().is_some_and(|s| !s.is_empty());
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                complete(path, op, global_security);
            }
        }
    }
}

/// Free text the server takes (names, titles, labels): at least one
/// visible character, no control, bidirectional-override or zero-width
/// characters (`domain::check_text`). The server also takes U+200C/U+200D
/// between two non-ASCII characters (emoji sequences); this pattern, kept
/// simple, leaves them out.
/// A description: any text but control characters other than line
/// breaks and tabs (`domain::description::render`).
const DESCRIPTION: &str = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$";
const TEXT: &str = r"^[^\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\s\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff][^\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$";

fn text(max: usize) -> serde_json::Value {
    serde_json::json!({"minLength": 1, "maxLength": max, "pattern": TEXT})
}

/// `TEXT` where line breaks are allowed too (review texts and replies).
fn paragraphs() -> String {
    TEXT.replace(r"\u0000-\u001f", r"\u0000-\u0009\u000b\u000c\u000e-\u001f")
}

/// Review content: 1–5 stars, text that may be empty, image paths on this
/// host (`domain::review::check_draft`).
fn review_rules(schema: &'static str) -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use crate::domain::review::{MAX_IMAGES, MAX_IMAGE_PATH, MAX_REVIEW_TEXT};
    let no_controls = paragraphs().replacen(r"[^\s", "[^", 1);
    vec![
        (
            schema,
            "stars",
            serde_json::json!({"minimum": 1, "maximum": 5}),
        ),
        (
            schema,
            "text",
            serde_json::json!({"maxLength": MAX_REVIEW_TEXT, "pattern": format!("^$|{no_controls}")}),
        ),
        (
            schema,
            "images",
            serde_json::json!({"maxItems": MAX_IMAGES, "items": {
                "type": "string", "maxLength": MAX_IMAGE_PATH,
                "pattern": r"^/([!-.0-\[\]-~][!-\[\]-~]*)?$"
            }}),
        ),
    ]
}

/// The constraints the server enforces on request fields, stated in the
/// document (each is checked where the field is validated; the numbers
/// are the same constants).
fn constraints(enabled_providers: &[&str]) -> Vec<(&'static str, &'static str, serde_json::Value)> {
    use crate::domain::catalog::{MAX_CAPACITY, MAX_PRICE, MAX_STOCK, MAX_WEIGHT_GRAMS};
    use crate::domain::user::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
    use serde_json::json;
    let email = json!({"format": "email", "maxLength": 254});
    let password =
        json!({"minLength": MIN_PASSWORD_CHARS, "maxLength": MAX_PASSWORD_CHARS, "pattern": r"\S"});
    let lat = json!({"minimum": -90, "maximum": 90});
    let lng = json!({"minimum": -180, "maximum": 180});
    let price = json!({"minimum": 0, "maximum": MAX_PRICE});
    let currency =
        json!({"pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code (case-insensitive)"});
    let code = json!({"pattern": r"^\s*[A-Za-z0-9_-]{3,32}\s*$"});
    let providers = json!({"enum": enabled_providers});
    let description = json!({"pattern": DESCRIPTION});
    vec![
        ("RegisterRequest", "email", email.clone()),
        ("RegisterRequest", "password", password.clone()),
        ("RegisterRequest", "name", text(100)),
        ("ForgotPasswordRequest", "email", email.clone()),
        ("ResetPasswordRequest", "email", email),
        ("ResetPasswordRequest", "new_password", password.clone()),
        ("ChangePasswordRequest", "new_password", password),
        (
            "ChangePasswordRequest",
            "current_password",
            json!({"minLength": 1, "maxLength": MAX_PASSWORD_CHARS}),
        ),
        (
            "ResetPasswordRequest",
            "otp",
            json!({"pattern": r"^\s*[0-9]{6}\s*$"}),
        ),
        ("ProfileUpdate", "name", text(100)),
        (
            "ProfileUpdate",
            "phone",
            json!({"pattern": r"^(\s*|\s*\+?[0-9 -]{6,20}\s*)$"}),
        ),
        ("AddressInput", "label", text(50)),
        ("AddressInput", "line1", text(200)),
        ("AddressInput", "city", text(100)),
        ("AddressInput", "lat", lat.clone()),
        ("AddressInput", "lng", lng.clone()),
        ("GeoPoint", "lat", lat.clone()),
        ("GeoPoint", "lng", lng.clone()),
        ("Fix", "lat", lat),
        ("Fix", "lng", lng),
        ("Fix", "heading", json!({"minimum": 0, "maximum": 360})),
        ("Fix", "speed", json!({"minimum": 0})),
        ("ShopInput", "name", text(120)),
        ("ShopInput", "address", text(300)),
        ("ShopPatch", "name", text(120)),
        ("ShopPatch", "address", text(300)),
        ("ProductInput", "name", text(200)),
        ("ProductInput", "category", text(60)),
        ("ProductInput", "price", price.clone()),
        ("ProductInput", "currency", currency.clone()),
        ("ProductInput", "stock", json!({"maximum": MAX_STOCK})),
        (
            "ProductInput",
            "weight_grams",
            json!({"maximum": MAX_WEIGHT_GRAMS}),
        ),
        ("ProductPatch", "name", text(200)),
        ("ProductPatch", "category", text(60)),
        ("ProductPatch", "price", price.clone()),
        ("ProductPatch", "currency", currency.clone()),
        ("ProductPatch", "stock", json!({"maximum": MAX_STOCK})),
        (
            "ProductPatch",
            "weight_grams",
            json!({"maximum": MAX_WEIGHT_GRAMS}),
        ),
        ("CourseInput", "title", text(200)),
        (
            "CourseInput",
            "capacity",
            json!({"minimum": 1, "maximum": MAX_CAPACITY}),
        ),
        ("CourseInput", "price", price.clone()),
        ("CourseInput", "currency", currency.clone()),
        ("CoursePatch", "title", text(200)),
        (
            "CoursePatch",
            "capacity",
            json!({"minimum": 1, "maximum": MAX_CAPACITY}),
        ),
        ("CoursePatch", "price", price),
        ("CoursePatch", "currency", currency),
        (
            "CourseSession",
            "duration_min",
            json!({"minimum": 1, "maximum": 1440}),
        ),
        ("CourseSession", "title", text(120)),
        ("SyllabusItem", "title", text(120)),
        ("CourseInput", "description", description.clone()),
        ("CoursePatch", "description", description.clone()),
        ("ProductInput", "description", description.clone()),
        ("ProductPatch", "description", description),
        (
            "CourseInput",
            "syllabus",
            json!({"maxItems": crate::domain::catalog::MAX_SYLLABUS}),
        ),
        (
            "CoursePatch",
            "syllabus",
            json!({"maxItems": crate::domain::catalog::MAX_SYLLABUS}),
        ),
        ("Exercise", "name", text(100)),
        (
            "AddItem",
            "quantity",
            json!({"minimum": 1, "maximum": crate::domain::cart::MAX_QUANTITY}),
        ),
        (
            "SetQuantity",
            "quantity",
            json!({"maximum": crate::domain::cart::MAX_QUANTITY}),
        ),
        ("ApplyCoupon", "code", code.clone()),
        ("CouponInput", "code", code),
        ("CheckoutRequest", "payment_method", providers.clone()),
        ("ClaimRequest", "payment_method", providers),
        ("ClaimRequest", "quantity", json!({"minimum": 1})),
        ("FlashSaleInput", "stock", json!({"minimum": 1})),
        ("FlashSaleInput", "per_user_limit", json!({"minimum": 1})),
        (
            "FlashSaleInput",
            "price",
            json!({"minimum": 1, "maximum": MAX_PRICE}),
        ),
        (
            "CouponInput",
            "value",
            json!({"minimum": 1, "maximum": MAX_PRICE}),
        ),
        ("CouponInput", "min_spend", json!({"maximum": MAX_PRICE})),
        (
            "CouponInput",
            "per_user_limit",
            json!({"minimum": 1, "maximum": crate::domain::coupon::MAX_GLOBAL_LIMIT}),
        ),
        (
            "CouponInput",
            "global_limit",
            json!({"minimum": 1, "maximum": crate::domain::coupon::MAX_GLOBAL_LIMIT}),
        ),
        (
            "ShippingCalcRequest",
            "weight_grams",
            json!({"maximum": MAX_WEIGHT_GRAMS}),
        ),
        ("BroadcastRequest", "title", text(120)),
        ("BroadcastRequest", "body", text(2000)),
        ("Reason", "reason", text(500)),
        (
            "ReplyInput",
            "text",
            serde_json::json!({"minLength": 1, "maxLength": crate::domain::review::MAX_REPLY_TEXT, "pattern": paragraphs()}),
        ),
        ("ReportInput", "reason", text(crate::domain::review::MAX_REPORT_REASON)),
        ("ModerationInput", "note", text(crate::domain::review::MAX_MODERATION_NOTE)),
    ]
    .into_iter()
    .chain(review_rules("ReviewInput"))
    .chain(review_rules("DeliveryReviewInput"))
    .chain(review_rules("ReviewEdit"))
    .collect()
}

/// Writes the server's constraints into the document's request schemas.
pub fn constrain(
    doc: utoipa::openapi::OpenApi,
    enabled_providers: &[&str],
) -> utoipa::openapi::OpenApi {
    let mut v = serde_json::to_value(&doc).expect("the document serializes");
    // Parameters every operation shares: list limits and idempotency keys.
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let search = path.starts_with("/api/v1/search");
            let geo = search || path == "/api/v1/shops/nearby";
            for op in item.values_mut() {
                let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
                    continue;
                };
                for param in params {
                    let rules = match (param["in"].as_str(), param["name"].as_str()) {
                        (Some("query"), Some("q")) if search => serde_json::json!({
                            "type": "string", "maxLength": crate::http::search::MAX_Q
                        }),
                        (Some("query"), Some("near")) if search => serde_json::json!({
                            "type": "string",
                            "pattern": r"^-?(90(\.0+)?|[1-8]?[0-9](\.[0-9]+)?),-?(180(\.0+)?|(1[0-7][0-9]|[1-9]?[0-9])(\.[0-9]+)?)$",
                            "description": "lat,lng in degrees"
                        }),
                        (Some("query"), Some("lat")) if geo => serde_json::json!({
                            "type": "number", "minimum": -90, "maximum": 90
                        }),
                        (Some("query"), Some("lng")) if geo => serde_json::json!({
                            "type": "number", "minimum": -180, "maximum": 180
                        }),
                        (Some("query"), Some("radius_km")) if geo => serde_json::json!({
                            "type": "number", "exclusiveMinimum": 0, "maximum": crate::http::search::MAX_RADIUS_KM
                        }),
                        (Some("query"), Some("min_rating")) if search => serde_json::json!({
                            "type": "number", "minimum": 0, "maximum": 5
                        }),
                        (Some("query"), Some("limit")) => serde_json::json!({
                            "type": "integer", "minimum": 1, "maximum": crate::service::products::catalog::MAX_PAGE
                        }),
                        (Some("query"), Some("cursor")) => serde_json::json!({
                            "type": "string",
                            "pattern": "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$",
                            "description": "next_cursor of the previous page"
                        }),
                        (Some("query"), Some("min_price" | "max_price")) => serde_json::json!({
                            "type": "integer", "minimum": 0, "maximum": crate::domain::catalog::MAX_PRICE
                        }),
                        (Some("header"), Some("Idempotency-Key")) => serde_json::json!({
                            "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"
                        }),
                        _ => continue,
                    };
                    param["schema"] = rules;
                }
            }
        }
    }
    for (schema, prop, rules) in constraints(enabled_providers) {
        let Some(p) = v
            .pointer_mut(&format!("/components/schemas/{schema}/properties/{prop}"))
            .and_then(|p| p.as_object_mut())
        else {
            panic!("the OpenAPI document has no {schema}.{prop}");
        };
        // `Option<T>` fields are `oneOf [T, null]` or `type: [t, "null"]`:
        // the rules go on the non-null part.
        let target = match p.get_mut("oneOf").and_then(|o| o.as_array_mut()) {
            Some(alts) => alts
                .iter_mut()
                .find(|a| a.get("type") != Some(&serde_json::json!("null")))
                .and_then(|a| a.as_object_mut())
                .expect("a non-null alternative"),
            None => p,
        };
        for (k, rule) in rules.as_object().expect("rules are an object") {
            target.insert(k.clone(), rule.clone());
        }
    }
    serde_json::from_value(v).expect("the constrained document deserializes")
}

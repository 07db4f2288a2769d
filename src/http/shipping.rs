//! `/shipping`: shippers going online, answering offers, reporting
//! positions, and the tracking view. Thin handlers over
//! `service::delivery::shipping`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{AppError, ErrorBody};
use super::extract::{Auth, Json, Path};
use super::state::AppState;
use crate::domain::order::{Order, Step};
use crate::domain::shipping::Fix;
use crate::domain::GeoPoint;
use crate::service::commerce::cart::ShippingQuote;
use crate::service::delivery::shipping::{LocationOutcome, ShipperView, Tracking};

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Offline,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipperStatusRequest {
    pub status: Availability,
    /// Where the shipper is now (optional; positions normally stream over
    /// the WebSocket).
    pub location: Option<Fix>,
}

/// Go online (to be offered deliveries) or offline (shippers).
#[utoipa::path(put, path = "/api/v1/shipping/shippers/me/status", tag = "shipping", security(("bearer" = [])),
    request_body = ShipperStatusRequest,
    responses((status = 200, body = ShipperView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "delivery_in_progress")))]
pub async fn set_status(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<ShipperStatusRequest>,
) -> Result<Json<ShipperView>, AppError> {
    let online = matches!(r.status, Availability::Online);
    let view = s
        .services
        .shipping
        .set_shipper_online(&auth.0.caller(), online, r.location)
        .await?;
    Ok(Json(view))
}

/// Your shipper state: online, the offer waiting for you, the order you
/// deliver, your newest position.
#[utoipa::path(get, path = "/api/v1/shipping/shippers/me", tag = "shipping", security(("bearer" = [])),
    responses((status = 200, body = ShipperView), (status = 403, body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, auth: Auth) -> Result<Json<ShipperView>, AppError> {
    Ok(Json(
        s.services.shipping.shipper_me(&auth.0.caller()).await?,
    ))
}

/// Accept the delivery offer for this order (the offered shipper).
#[utoipa::path(post, path = "/api/v1/shipping/{order_id}/accept", tag = "shipping", security(("bearer" = [])),
    params(("order_id" = String, Path)),
    responses((status = 200, body = Order), (status = 403, body = ErrorBody, description = "shippers only"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "offer_expired")))]
pub async fn accept(
    State(s): State<AppState>,
    auth: Auth,
    Path(order_id): Path<String>,
) -> Result<Json<Order>, AppError> {
    Ok(Json(
        s.services
            .shipping
            .accept_offer(&auth.0.caller(), &order_id)
            .await?,
    ))
}

/// Decline the delivery offer; the order is offered to the next shipper.
#[utoipa::path(post, path = "/api/v1/shipping/{order_id}/decline", tag = "shipping", security(("bearer" = [])),
    params(("order_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody, description = "shippers only"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decline(
    State(s): State<AppState>,
    auth: Auth,
    Path(order_id): Path<String>,
) -> Result<StatusCode, AppError> {
    s.services
        .shipping
        .decline_offer(&auth.0.caller(), &order_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A position of the shipper delivering this order (the same as a
/// WebSocket `location` frame). Out-of-order and stale fixes are answered
/// with `accepted: false` and change nothing.
#[utoipa::path(post, path = "/api/v1/shipping/{order_id}/location", tag = "shipping", security(("bearer" = [])),
    params(("order_id" = String, Path)), request_body = Fix,
    responses((status = 200, body = LocationOutcome), (status = 403, body = ErrorBody, description = "shippers only"), (status = 409, body = ErrorBody, description = "not_delivering"), (status = 422, body = ErrorBody)))]
pub async fn location(
    State(s): State<AppState>,
    auth: Auth,
    Path(order_id): Path<String>,
    Json(fix): Json<Fix>,
) -> Result<Json<LocationOutcome>, AppError> {
    Ok(Json(
        s.services
            .shipping
            .report_order_location(&auth.0.caller(), &order_id, fix)
            .await?,
    ))
}

/// The delivery's path so far and the shipper's current position (the
/// order's customer, the shop's merchant, the shipper, admins).
#[utoipa::path(get, path = "/api/v1/shipping/{order_id}/tracking", tag = "shipping", security(("bearer" = [])),
    params(("order_id" = String, Path)),
    responses((status = 200, body = Tracking), (status = 404, body = ErrorBody)))]
pub async fn tracking(
    State(s): State<AppState>,
    auth: Auth,
    Path(order_id): Path<String>,
) -> Result<Json<Tracking>, AppError> {
    Ok(Json(
        s.services
            .shipping
            .tracking(&auth.0.caller(), &order_id)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShippingStatus {
    ReadyForPickup,
    PickedUp,
    Delivering,
    Delivered,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingStatusRequest {
    pub status: ShippingStatus,
    /// Only with `delivered`, by the carrying shipper away from the
    /// address (farther than `geofence_radius_m` by their newest fix):
    /// why (up to 300 characters). The order's timeline records it.
    #[schema(max_length = 300)]
    pub override_reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingCalcRequest {
    pub shop_id: crate::domain::ids::ShopId,
    /// The destination; or give `address_id` of one of your addresses.
    pub to: Option<GeoPoint>,
    pub address_id: Option<String>,
    pub weight_grams: u64,
}

/// Delivery progress: `ready_for_pickup` (the shop's merchant), then
/// `picked_up`, `delivering`, `delivered` (the assigned shipper; the
/// merchant only while no shipper has accepted the order, delivering it
/// themselves; admins). The shipper marks `delivered` from within
/// `geofence_radius_m` of the address by their newest fix, or gives
/// `override_reason`.
#[utoipa::path(put, path = "/api/v1/shipping/{order_id}/status", tag = "orders", security(("bearer" = ["merchant", "shipper"])), params(("order_id" = String, Path)),
    request_body = ShippingStatusRequest, responses((status = 200, body = Order),
        (status = 403, body = ErrorBody, description = "not a party allowed this step (a merchant once a shipper carries the order)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`illegal_transition`; `not_at_address`: the shipper is away from the address and gave no `override_reason`"),
        (status = 422, body = ErrorBody)))]
pub async fn shipping_status(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(r): Json<ShippingStatusRequest>,
) -> Result<Json<Order>, AppError> {
    let st = match r.status {
        ShippingStatus::ReadyForPickup => Step::ReadyForPickup,
        ShippingStatus::PickedUp => Step::PickUp,
        ShippingStatus::Delivering => Step::StartDelivery,
        ShippingStatus::Delivered => Step::Deliver,
    };
    Ok(Json(
        s.services
            .shipping
            .delivery_step(&auth.0.caller(), &id, st, r.override_reason)
            .await?,
    ))
}

/// The shipping fee from a shop to a point (or one of your addresses).
#[utoipa::path(post, path = "/api/v1/shipping/calculate", tag = "orders", security(("bearer" = [])), request_body = ShippingCalcRequest,
    responses((status = 200, body = ShippingQuote), (status = 404, body = ErrorBody, description = "no such shop, or no such address of yours"), (status = 409, body = ErrorBody, description = "out_of_delivery_area, no_address"), (status = 422, body = ErrorBody)))]
pub async fn shipping_calculate(
    State(s): State<AppState>,
    auth: Auth,
    Json(r): Json<ShippingCalcRequest>,
) -> Result<Json<ShippingQuote>, AppError> {
    let quote = s
        .services
        .carts
        .shipping_quote(
            &auth.0.id,
            &r.shop_id,
            r.to,
            r.address_id.as_deref(),
            r.weight_grams,
        )
        .await?;
    Ok(Json(quote))
}

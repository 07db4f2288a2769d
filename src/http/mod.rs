//! The HTTP edge (axum). Handlers authenticate, validate, call one use case
//! (`service`), and map the answer; no business rule lives here.
//!
//! - `state`: `AppState`, what every handler can reach.
//! - `error`: the error shape every failure uses.
//! - `extract`: JSON/Query/Path with that shape, and the bearer-token `Auth`.
//! - `auth`, `catalog`, `commerce`, `burst`, `shipping`, `ops`, `web`: the
//!   handlers (each documented for OpenAPI).
//! - `roles`: who may call an operation, read from its OpenAPI security
//!   requirement and checked before any handler runs.
//! - `client`: how a client of a Surge server is built (idle pool below
//!   the server's keep-alive, one retry of a request safe to repeat).
//! - `server`: the hyper accept loop (header-read timeout, connection
//!   bound, graceful shutdown); `keepalive`: its keep-alive idle deadline
//!   apart from the header one.

pub mod account;
pub mod admin;
pub mod auth;
pub mod behavior;
pub mod cart;
pub mod catalog;
pub mod categories;
pub mod client;
pub mod coupons;
pub mod error;
pub mod extract;
pub mod inventory;
pub mod keepalive;
pub mod media;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod queues;
pub mod reviews;
pub mod roles;
pub mod search;
pub mod server;
pub mod shipping;
pub mod shop_console;
pub mod state;
pub mod vouchers;
pub mod web;
pub mod ws;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Surge", description = "Actor-based real-time commerce engine. Errors are always {\"error\": {\"code\", \"message\", \"id\"}}. Money is an integer in minor units plus an ISO 4217 currency code."),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "users"), (name = "catalog"), (name = "inventory"), (name = "media"), (name = "cart"), (name = "orders"), (name = "payments"), (name = "shipping"), (name = "burst"), (name = "notifications"), (name = "reviews"), (name = "search"), (name = "discovery"), (name = "admin"), (name = "ops"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the `metrics_token` setting"))
                    .build(),
            ),
        );
    }
}

/// What a multipart form adds to the image it carries (boundaries, part
/// headers, a few small parts).
const UPLOAD_FORM_OVERHEAD: usize = 64 * 1024;

/// The metrics listener's router (`metrics_addr`): `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(ops::metrics_listener))
        .fallback(ops::not_found)
        .with_state(state)
}

/// The full router: API, OpenAPI document, Swagger UI, ops endpoints.
pub fn router(state: AppState, body_limit: usize, request_timeout: std::time::Duration) -> Router {
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::get_profile, auth::update_profile))
        .routes(routes!(auth::list_addresses, auth::add_address))
        .routes(routes!(auth::update_address, auth::delete_address))
        .routes(routes!(catalog::create_shop, catalog::list_shops))
        .routes(routes!(catalog::my_shops))
        .routes(routes!(search::nearby_shops))
        .routes(routes!(catalog::get_shop, catalog::update_shop))
        .routes(routes!(catalog::create_product))
        .routes(routes!(
            catalog::get_product,
            catalog::update_product,
            catalog::delete_product
        ))
        .routes(routes!(catalog::list_products))
        .routes(routes!(
            categories::list_categories,
            categories::create_category
        ))
        .routes(routes!(
            categories::get_category,
            categories::update_category,
            categories::delete_category
        ))
        .routes(routes!(inventory::product_inventory))
        .routes(routes!(inventory::adjust_inventory))
        .routes(routes!(inventory::shop_inventory))
        .routes(routes!(inventory::low_stock))
        .routes(routes!(inventory::export_inventory))
        .routes(routes!(catalog::create_course, catalog::list_courses))
        .routes(routes!(catalog::get_course, catalog::update_course))
        .routes(routes!(cart::get_cart))
        .routes(routes!(cart::add_item))
        .routes(routes!(cart::set_item, cart::remove_item))
        .routes(routes!(cart::clear_cart))
        .routes(routes!(cart::calculate_total))
        .routes(routes!(cart::apply_coupon))
        .routes(routes!(cart::remove_coupon))
        .routes(routes!(cart::save_cart))
        .routes(routes!(cart::saved_carts))
        .routes(routes!(cart::restore_cart))
        .routes(routes!(coupons::create_coupon, coupons::list_coupons))
        .routes(routes!(
            coupons::get_coupon,
            coupons::edit_coupon,
            coupons::delete_coupon
        ))
        .routes(routes!(coupons::pause_coupon))
        .routes(routes!(coupons::resume_coupon))
        .routes(routes!(coupons::coupon_usage))
        .routes(routes!(vouchers::create_platform_voucher))
        .routes(routes!(vouchers::list_vouchers))
        .routes(routes!(vouchers::collect_voucher))
        .routes(routes!(vouchers::my_vouchers))
        .routes(routes!(vouchers::cart_vouchers, vouchers::apply_voucher))
        .routes(routes!(vouchers::remove_voucher))
        .routes(routes!(orders::checkout, orders::list_orders))
        .routes(routes!(orders::get_order))
        .routes(routes!(orders::get_checkout))
        .routes(routes!(orders::pay_checkout))
        .routes(routes!(orders::buy_again))
        .routes(routes!(orders::order_timeline))
        .routes(routes!(orders::cancel_order))
        .routes(routes!(orders::confirm_order))
        .routes(routes!(orders::return_order))
        .routes(routes!(orders::receive_return))
        .routes(routes!(orders::refuse_return))
        .routes(routes!(shipping::shipping_status))
        .routes(routes!(shipping::shipping_calculate))
        .routes(routes!(queues::create_flash_sale, queues::list_flash_sales))
        .routes(routes!(queues::get_flash_sale))
        .routes(routes!(queues::claim_flash_sale, queues::sale_claims))
        .routes(routes!(queues::cancel_sale_claim))
        .routes(routes!(queues::enroll, queues::course_enrollments))
        .routes(routes!(queues::cancel_enrollment))
        .routes(routes!(queues::course_seats))
        .routes(routes!(queues::my_enrollments))
        .routes(routes!(queues::add_session, queues::sessions))
        .routes(routes!(shipping::set_status))
        .routes(routes!(shipping::me))
        .routes(routes!(shipping::accept))
        .routes(routes!(shipping::decline))
        .routes(routes!(shipping::location))
        .routes(routes!(shipping::tracking))
        .routes(routes!(shop_console::shop_orders))
        .routes(routes!(shop_console::confirm_orders))
        .routes(routes!(shop_console::export_orders))
        .routes(routes!(shop_console::shop_revenue))
        .routes(routes!(shop_console::product_sales))
        .routes(routes!(catalog::my_courses))
        .routes(routes!(queues::my_flash_sales))
        .routes(routes!(payments::webhook))
        .routes(routes!(payments::payment_history))
        .routes(routes!(payments::get_payment))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::read_notification))
        .routes(routes!(notifications::mark_all_read))
        .routes(routes!(notifications::unread_count))
        .routes(routes!(notifications::broadcast))
        .routes(routes!(auth::forgot_password))
        .routes(routes!(auth::reset_password))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::get_preferences, auth::set_preferences))
        .routes(routes!(auth::end_sessions))
        .routes(routes!(account::export))
        .routes(routes!(account::erase))
        .routes(routes!(reviews::review_product, reviews::product_reviews))
        .routes(routes!(reviews::product_rating))
        .routes(routes!(reviews::review_shop, reviews::shop_reviews))
        .routes(routes!(reviews::shop_rating))
        .routes(routes!(reviews::review_delivery, reviews::delivery_review))
        .routes(routes!(reviews::shipper_rating))
        .routes(routes!(reviews::order_reviews))
        .routes(routes!(reviews::get_review, reviews::edit_review))
        .routes(routes!(reviews::reply_review))
        .routes(routes!(reviews::report_review))
        .routes(routes!(reviews::pending_reviews))
        .routes(routes!(reviews::approve_review))
        .routes(routes!(reviews::reject_review))
        .routes(routes!(search::search))
        .routes(routes!(search::suggest))
        .routes(routes!(behavior::view))
        .routes(routes!(behavior::recently_viewed))
        .routes(routes!(behavior::trending))
        .routes(routes!(behavior::trending_categories))
        .routes(routes!(behavior::also_bought))
        .routes(routes!(behavior::similar))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::backup))
        .routes(routes!(admin::get_user))
        .routes(routes!(admin::suspend_user))
        .routes(routes!(admin::reactivate_user))
        .routes(routes!(admin::set_user_role))
        .routes(routes!(admin::platform_stats))
        .routes(routes!(admin::hide_product, admin::unhide_product))
        .routes(routes!(admin::hide_shop, admin::unhide_shop))
        .routes(routes!(media::arrange_product_media))
        .routes(routes!(media::remove_product_media))
        .routes(routes!(media::arrange_course_media))
        .routes(routes!(media::remove_course_media))
        .routes(routes!(media::remove_review_photo))
        .routes(routes!(media::get_media))
        // Uploads may be larger than other bodies.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(media::upload_product_media))
                .routes(routes!(media::upload_course_media))
                .routes(routes!(media::upload_review_photo))
                .routes(routes!(media::upload_return_photo))
                .layer(DefaultBodyLimit::max(
                    state.services.media.max_bytes() + UPLOAD_FORM_OVERHEAD,
                )),
        )
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .split_for_parts();
    openapi::EdgeStatuses.modify(&mut doc);
    let doc = openapi::constrain(doc, &state.services.providers.names());
    let roles = std::sync::Arc::new(roles::Roles::from_doc(&doc));
    api.route("/api/v1/ws", axum::routing::get(crate::http::ws::handler))
        .route(
            "/api/v1/notifications/live",
            axum::routing::get(crate::http::ws::notifications_live),
        )
        .route(
            "/api/v1/orders/{id}/live-updates",
            axum::routing::get(crate::http::ws::order_live),
        )
        .route(
            "/api/v1/shipping/{id}/live-tracking",
            axum::routing::get(crate::http::ws::order_live),
        )
        .route(
            "/payments/sandbox/{reference}/{key}",
            axum::routing::get(payments::sandbox_page),
        )
        .route(
            "/payments/sandbox/{reference}/{key}/pay",
            axum::routing::post(payments::sandbox_pay),
        )
        .route(
            "/payments/sandbox/{reference}/{key}/fail",
            axum::routing::post(payments::sandbox_fail),
        )
        .route("/", axum::routing::get(web::index))
        .route("/app.js", axum::routing::get(web::app_js))
        .route("/style.css", axum::routing::get(web::style))
        .route("/demo.json", axum::routing::get(web::demo))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), roles),
            roles::guard,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        // A request's body and answer get `request_timeout` in all (a body
        // trickled in byte by byte included); then 408 and the connection
        // closes.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::map_response(ops::timed_out))
        .layer(axum::middleware::from_fn(ops::request_context))
        .with_state(state)
}

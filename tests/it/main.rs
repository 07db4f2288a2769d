//! Integration tests: one binary, one module per area. Each test starts its
//! own app through `helpers::spawn_app()` (port 0, its own temp data dir).

/// The auth, commerce and burst flows end to end over HTTP, as tests named
/// `auth_flows`, `commerce_flows` and `burst_flows`, on the apps `$app`
/// starts: an `async fn(impl FnOnce(&mut Settings)) -> TestApp` of the
/// backend's module (`scylla_app`, `postgres_app`).
macro_rules! flows_on {
    ($app:ident) => {
        #[tokio::test]
        async fn auth_flows() {
            crate::auth::refresh_rotates_and_reuse_ends_the_session_on($app(|_| {}).await).await;
            crate::auth::fifty_concurrent_registrations_of_one_email_create_one_account_on(
                $app(|_| {}).await,
            )
            .await;
        }

        #[tokio::test]
        async fn commerce_flows() {
            crate::commerce::the_happy_path_from_cart_to_escrow_release_on(
                $app(|s| {
                    crate::commerce::fast(s);
                    s.return_window_secs = 1;
                    s.tax_rate_bps = 1_000;
                })
                .await,
            )
            .await;
            crate::commerce::no_overselling_and_no_coupon_overuse_under_concurrency_on(
                $app(crate::commerce::fast).await,
            )
            .await;
        }

        #[tokio::test]
        async fn burst_flows() {
            crate::burst::one_user_racing_twenty_claims_never_exceeds_the_limit_on(
                $app(crate::burst::fast).await,
            )
            .await;
            crate::burst::cancelling_promotes_the_waitlist_in_order_and_notifies_on(
                $app(crate::burst::fast).await,
            )
            .await;
            crate::burst::a_flash_sale_turns_claims_into_orders_and_unpaid_ones_go_to_the_waitlist_on(
                $app(|s| {
                    crate::burst::fast(s);
                    s.payment_timeout_secs = 1;
                })
                .await,
            )
            .await;
        }
    };
}

mod actors;
mod auth;
pub(crate) mod burst;
mod catalog;
mod cluster;
mod commerce;
mod conformance;
mod hardening;
mod helpers;
mod http_edge;
mod journal;
pub(crate) mod lifecycle;
mod mail;
mod payos;
mod postgres;
mod scylla;
mod shipping;
mod split;
mod stock;
mod web;
mod ws;

//! Integration tests: one binary, one module per area. Each test starts its
//! own app through `helpers::spawn_app()` (port 0, its own temp data dir).

/// The store conformance suite (`conformance.rs`) as one test per function,
/// each on a store `$open` makes: an expression giving a future of
/// `(guard, Arc<store>)`, the guard kept alive until the store is closed.
macro_rules! conformance_on {
    ($open:expr) => {
        conformance_on!(
            $open;
            conflicting_appends_are_rejected_whole,
            concurrent_racers_on_one_stream_never_interleave,
            snapshots_and_read_tables,
            rows_outside_streams,
            scans_page_through_an_owner_in_order,
            pipelined_appends_commit_in_order,
        );
    };
    ($open:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (_guard, store) = $open.await;
            crate::conformance::$name(store.clone()).await;
            store.close().await;
        }
    )*};
}

/// The auth, commerce, payment, voucher, review, behaviour and burst flows
/// end to end over HTTP, as tests named `auth_flows`, `commerce_flows`,
/// `payment_flows`, `voucher_flows`, `review_flows`,
/// `behavior_flows` and `burst_flows`, on the apps `$app`
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
            crate::commerce::a_coupon_is_listed_edited_paused_resumed_reported_and_deleted_by_its_merchant_only_on(
                $app(crate::commerce::fast).await,
            )
            .await;
        }

        #[tokio::test]
        async fn payment_flows() {
            crate::checkout_payment::a_two_shop_checkout_is_paid_once_split_into_two_escrows_and_refunded_by_order_on(
                $app(crate::commerce::fast).await,
            )
            .await;
            crate::checkout_payment::a_declined_or_abandoned_payment_is_paid_again_from_a_fresh_link_on(
                $app(crate::commerce::fast).await,
            )
            .await;
        }

        #[tokio::test]
        async fn voucher_flows() {
            crate::vouchers::a_platform_vouchers_use_comes_back_only_when_every_order_of_its_checkout_is_cancelled_on(
                $app(crate::vouchers::with_admin).await,
            )
            .await;
            crate::vouchers::two_hundred_shoppers_race_for_fifty_units_and_a_twenty_use_voucher_on(
                $app(crate::vouchers::with_admin).await,
            )
            .await;
        }

        #[tokio::test]
        async fn review_flows() {
            crate::reviews::only_a_delivered_orders_customer_reviews_once_per_line_and_the_merchant_replies_once_on(
                $app(crate::reviews::with_admin).await,
            )
            .await;
        }

        #[tokio::test]
        async fn behavior_flows() {
            crate::behavior::bought_together_comes_from_checkouts_and_similar_from_the_index_on(
                $app(|s| {
                    crate::commerce::fast(s);
                    s.search_refresh_ms = 50;
                    s.behavior_flush_ms = 50;
                })
                .await,
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

mod account;
mod actors;
mod auth;
pub(crate) mod behavior;
pub(crate) mod burst;
mod catalog;
pub(crate) mod checkout_payment;
mod cluster;
mod commerce;
mod conformance;
mod console;
mod faults;
mod hardening;
mod helpers;
mod http_edge;
mod inventory;
mod journal;
mod layers;
pub(crate) mod lifecycle;
mod mail;
pub(crate) mod media;
mod nodes;
mod operations;
mod payos;
mod postgres;
mod returns;
pub(crate) mod reviews;
mod scylla;
mod search;
mod shipping;
mod split;
mod stock;
pub(crate) mod vouchers;
mod web;
mod ws;

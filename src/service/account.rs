//! Account self-service: everything Surge holds about a user as one JSON
//! document (`GET /users/me/export`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ServiceError;
use crate::actors::queue::Claim;
use crate::actors::user::{User, UserExport};
use crate::actors::Registry;
use crate::domain::catalog::{Course, Shop};
use crate::domain::order::Order;
use crate::domain::review::Review;
use crate::domain::Caller;
use crate::store::Store;

/// Orders an export holds at most (the newest).
pub const MAX_EXPORT_ORDERS: usize = 10_000;

/// `GET /users/me/export`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountExport {
    pub exported_at: DateTime<Utc>,
    /// The account, addresses, notifications, mail preferences, sign-ins.
    #[serde(flatten)]
    pub user: UserExport,
    /// Orders placed, newest first (at most 10,000: `orders_truncated`).
    pub orders: Vec<Order>,
    pub orders_truncated: bool,
    /// Flash-sale claims and course enrollments.
    pub claims: Vec<Claim>,
    /// Reviews written.
    pub reviews: Vec<Review>,
    /// Products viewed lately.
    pub recently_viewed: Vec<super::behavior::Viewed>,
    pub cart: super::cart::CartView,
    pub saved_carts: Vec<crate::actors::cart::SavedCart>,
    /// Shops and courses run (merchants, trainers).
    pub shops: Vec<Shop>,
    pub courses: Vec<Course>,
}

#[derive(Clone)]
pub struct SelfService {
    pub(super) users: Registry<User>,
    pub(super) orders: super::orders::Orders,
    pub(super) reviews: super::reviews::Reviews,
    pub(super) carts: super::cart::Carts,
    pub(super) catalog: super::catalog::Catalog,
    pub(super) behavior: Arc<super::behavior::Behavior>,
    pub(super) store: Arc<dyn Store>,
}

impl SelfService {
    /// Everything Surge holds about the caller.
    pub async fn export(&self, caller: &Caller) -> Result<AccountExport, ServiceError> {
        let id = caller.user_id.as_str();
        let user = self.users.export(id).await?;
        let (orders, orders_truncated) = self.orders_of(id).await?;
        let mut reviews = Vec::new();
        for o in orders.iter().filter(|o| o.delivered_at.is_some()) {
            reviews.extend(
                self.reviews
                    .of_order(caller, &o.id)
                    .await?
                    .into_iter()
                    .filter(|r| r.author_id == caller.user_id),
            );
        }
        let shops = self
            .all(|c| async move { self.catalog.shops_of(id, c.as_deref(), 100).await })
            .await?;
        let courses = self
            .all(|c| async move { self.catalog.courses_of(id, c.as_deref(), 100).await })
            .await?;
        Ok(AccountExport {
            exported_at: Utc::now(),
            user,
            orders,
            orders_truncated,
            claims: super::queues::claims_of(self.store.as_ref(), id).await?,
            reviews,
            recently_viewed: self.behavior.recently_viewed(id, 50).await?,
            cart: self.carts.get_cart(id).await?,
            saved_carts: self.carts.saved_carts(id).await?,
            shops,
            courses,
        })
    }

    /// The user's orders, newest first, at most `MAX_EXPORT_ORDERS`.
    async fn orders_of(&self, id: &str) -> Result<(Vec<Order>, bool), ServiceError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.orders.my_orders(id, cursor.as_deref(), 100).await?;
            out.extend(page.items);
            if out.len() >= MAX_EXPORT_ORDERS {
                out.truncate(MAX_EXPORT_ORDERS);
                return Ok((out, page.next_cursor.is_some()));
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok((out, false)),
            }
        }
    }

    /// Every page of a listing (bounded by the listing itself: a user's
    /// shops or courses).
    async fn all<T, F, Fut>(&self, page: F) -> Result<Vec<T>, ServiceError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<super::catalog::Page<T>, ServiceError>>,
    {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let p = page(cursor.take()).await?;
            out.extend(p.items);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }
}

//! Account self-service: everything Surge holds about a user as one JSON
//! document (`GET /users/me/export`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::queue::Claim;
use crate::actors::queue::CLAIMS_BY_USER;
use crate::actors::user::{User, UserExport};
use crate::actors::Registry;
use crate::domain::catalog::{Course, Shop};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::review::ReviewView;
use crate::domain::Caller;
use crate::domain::{DomainError, Role};
use crate::service::ServiceError;
use crate::store::Store;
use crate::store::{walk_rows, IndexOp};

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
    pub reviews: Vec<ReviewView>,
    /// Products viewed lately.
    pub recently_viewed: Vec<crate::service::products::behavior::Viewed>,
    pub cart: crate::service::commerce::cart::CartView,
    pub saved_carts: Vec<crate::actors::cart::SavedCart>,
    /// Shops and courses run (merchants, trainers).
    pub shops: Vec<Shop>,
    pub courses: Vec<Course>,
}

#[derive(Clone)]
pub struct SelfService {
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) emails: Registry<crate::actors::email::EmailClaim>,
    pub(in crate::service) queues: Registry<crate::actors::queue::QueueEntity>,
    pub(in crate::service) orders: crate::service::commerce::orders::Orders,
    pub(in crate::service) reviews: crate::service::products::reviews::Reviews,
    pub(in crate::service) carts: crate::service::commerce::cart::Carts,
    pub(in crate::service) catalog: crate::service::products::catalog::Catalog,
    pub(in crate::service) behavior: Arc<crate::service::products::behavior::Behavior>,
    pub(in crate::service) store: Arc<dyn Store>,
    /// Where the photos of the user's reviews are.
    pub(in crate::service) media: crate::media::MediaStore,
    /// A shipper's delivery under way keeps their account.
    pub(in crate::service) shippers: Registry<crate::actors::shipper::ShipperEntity>,
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
                    .filter(|r| r.author_id.as_ref() == Some(&caller.user_id)),
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
            claims: crate::service::queue::queues::claims_of(self.store.as_ref(), id).await?,
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
            let page = self
                .orders
                .my_orders(id, Default::default(), cursor.as_deref(), 100)
                .await?;
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

    /// Every order of the user (an erasure must reach them all).
    async fn every_order_of(&self, id: &str) -> Result<Vec<Order>, ServiceError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .orders
                .my_orders(id, Default::default(), cursor.as_deref(), 100)
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Every page of a listing (bounded by the listing itself: a user's
    /// shops or courses).
    async fn all<T, F, Fut>(&self, page: F) -> Result<Vec<T>, ServiceError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<
            Output = Result<crate::service::products::catalog::Page<T>, ServiceError>,
        >,
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

    /// `DELETE /users/me`: the caller's account is erased (see the
    /// erasure policy in docs/commerce.md). Refused with nothing changed
    /// for an admin, a merchant who runs shops, or someone with an order
    /// under way.
    /// Every step can be repeated, so an interrupted erasure is finished
    /// by asking again (until the account itself is erased, the last step
    /// but one).
    pub async fn erase(
        &self,
        auth: &crate::service::account::auth::Auth,
        user: &crate::service::AuthUser,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<(), ServiceError> {
        let caller = user.caller();
        let id = caller.user_id.as_str();
        if caller.role == Role::Admin {
            return Err(DomainError::conflict(
                "admin_account",
                "an admin account cannot be erased: have another admin change its role first",
            )
            .into());
        }
        auth.check_own_password(user, password, client).await?;
        if !self.catalog.shops_of(id, None, 1).await?.items.is_empty() {
            return Err(DomainError::conflict(
                "owns_shops",
                "an account that runs shops cannot be erased while it does",
            )
            .into());
        }
        if caller.role == Role::Shipper
            && crate::service::found(&self.shippers, id, "shipper")
                .await
                .is_ok()
        {
            let shipper = self
                .shippers
                .call(id, crate::actors::shipper::ShipperCommand::Get)
                .await?;
            if let Some(order) = shipper.active_order {
                return Err(DomainError::conflict(
                    "deliveries_in_progress",
                    format!("you are delivering order {order}: finish the delivery first"),
                )
                .into());
            }
        }
        let orders = self.every_order_of(id).await?;
        if orders.iter().any(under_way) {
            return Err(DomainError::conflict(
                "orders_in_progress",
                "wait until every order is delivered, cancelled or returned",
            )
            .into());
        }
        // Orders keep what accounting needs; the address's personal part
        // goes, and so do the delivery tracks, the photos of the user's
        // reviews of them and the name those reviews show.
        for o in &orders {
            self.orders.erase_customer(&o.id).await?;
            self.delete_rows(crate::store::tables::TRACK_POINTS, &format!("{}|", o.id))
                .await?;
            if o.delivered_at.is_some() {
                for r in self.reviews.of_order(&caller, &o.id).await? {
                    if r.author_id.as_ref() == Some(&caller.user_id) {
                        self.media.purge(&r.id).await?;
                        self.reviews.erase_author(&r.id).await?;
                    }
                }
            }
        }
        // Claims keep no delivery address.
        let mut queues: Vec<String> = Vec::new();
        walk_rows(
            self.store.as_ref(),
            CLAIMS_BY_USER,
            &format!("{id}|"),
            None,
            500,
            |k, _| {
                // `{user}|{queue}|{claim}`
                queues.extend(k.split('|').nth(1).map(str::to_owned));
                Ok::<_, ServiceError>(true)
            },
        )
        .await?;
        queues.sort();
        queues.dedup();
        for q in queues {
            self.erase_claimant(&q, id).await?;
        }
        self.behavior.forget(id).await;
        self.delete_rows(crate::store::tables::RECENTLY_VIEWED, &format!("{id}|"))
            .await?;
        self.carts.clear_cart(id).await?;
        let email = self.users.erase(id).await?;
        self.emails
            .call(
                &email,
                crate::actors::email::EmailCommand::Release {
                    user_id: caller.user_id.clone(),
                },
            )
            .await?;
        self.forget_mail(&email).await
    }

    async fn erase_claimant(&self, queue: &str, user: &str) -> Result<(), ServiceError> {
        use crate::actors::queue::{part_id, QueueCommand};
        let erase = || QueueCommand::EraseClaimant {
            user_id: user.into(),
        };
        self.queues.call(queue, erase()).await?;
        let config = self.queues.status(queue).await?.config;
        if config.is_split() {
            for i in 0..config.parts {
                self.queues.call(&part_id(queue, i), erase()).await?;
            }
        }
        Ok(())
    }

    /// Deletes every row of `table` under `prefix`.
    async fn delete_rows(&self, table: &'static str, prefix: &str) -> Result<(), ServiceError> {
        let mut keys = Vec::new();
        walk_rows(self.store.as_ref(), table, prefix, None, 500, |k, _| {
            keys.push(k);
            Ok::<_, ServiceError>(true)
        })
        .await?;
        self.delete(table, keys).await
    }

    /// Mail to `email` not sent yet (or given up on) is deleted.
    async fn forget_mail(&self, email: &str) -> Result<(), ServiceError> {
        use crate::store::tables::{OUTBOX, OUTBOX_DEAD};
        for table in [OUTBOX, OUTBOX_DEAD] {
            let (mut keys, mut seen) = (Vec::new(), 0);
            walk_rows(self.store.as_ref(), table, "", None, 500, |k, v| {
                let to_them = crate::store::codec::decode::<crate::mail::OutMail>(1, &v)
                    .is_ok_and(|m| m.to == email);
                if to_them {
                    keys.push(k);
                }
                seen += 1;
                // At most 100,000 queued mails are looked through.
                Ok::<_, ServiceError>(seen < 100_000)
            })
            .await?;
            self.delete(table, keys).await?;
        }
        Ok(())
    }

    /// Deletes `keys` of `table`, 500 to a write.
    async fn delete(&self, table: &'static str, keys: Vec<String>) -> Result<(), ServiceError> {
        for chunk in keys.chunks(500) {
            let ops = chunk
                .iter()
                .map(|key| IndexOp::Delete {
                    table,
                    key: key.clone(),
                })
                .collect();
            self.store.write_rows(ops).await?;
        }
        Ok(())
    }
}

/// An order still moving: its address is needed until it ends.
fn under_way(o: &Order) -> bool {
    !matches!(
        o.status,
        OrderStatus::Delivered
            | OrderStatus::Cancelled
            | OrderStatus::Returned
            | OrderStatus::Refunded
    )
}

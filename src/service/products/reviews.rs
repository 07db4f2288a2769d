//! Reviews and ratings: writing a review of a delivered order (its
//! products, its shop, its shipper), editing, the merchant's reply,
//! reports, moderation and the listings; each change is then counted in
//! its subject's rating summary (`ratings::Tally`).

use std::sync::Arc;

use crate::actors::review::{
    subject_key_of, ReviewCommand, ReviewEntity, REVIEWS_BY_SUBJECT, REVIEWS_PENDING,
};
use crate::actors::user::User;
use crate::actors::{Entity, Registry};
use crate::domain::order::Order;
use crate::domain::review::{
    check_draft, check_note, check_reason, check_reply, display_name, legacy_review_id, subject_of,
    DeliveryReviewInput, ModerationInput, RatingSummary, ReplyInput, ReportInput, Review,
    ReviewEdit, ReviewKind, ReviewPolicy, ReviewRecord, ReviewStatus, ReviewView,
};
use crate::domain::{Caller, DomainError, Role};
use crate::service::commerce::orders::Orders;
use crate::service::products::catalog::{scan_page, Catalog, Page};
use crate::service::products::ratings::rating_of;
use crate::service::products::ratings::Tally;
use crate::service::{found, ServiceError};
use crate::store::Store;

/// The review use cases.
#[derive(Clone)]
pub struct Reviews {
    pub(in crate::service) reviews: Registry<ReviewEntity>,
    pub(in crate::service) tally: Tally,
    pub(in crate::service) orders: Orders,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) users: Registry<User>,
    pub(in crate::service) store: Arc<dyn Store>,
    pub(in crate::service) policy: ReviewPolicy,
    pub(in crate::service) throttles: Arc<crate::auth::Throttles>,
}

impl Reviews {
    /// Settles at once; the timer row retries what fails here.
    async fn settled(&self, rec: ReviewRecord) -> ReviewRecord {
        if rec.unsettled() {
            if let Err(e) = self.tally.settle(&rec.review.id).await {
                tracing::warn!(review = %rec.review.id, error = %e, "rating not updated yet; the scheduler retries");
            }
        }
        rec
    }

    /// The subject of a listing or summary exists and `viewer` may see it
    /// (404 otherwise: a product or shop an admin hid is there only for its
    /// merchant and admins, and so are its reviews).
    async fn subject_visible(
        &self,
        viewer: Option<&Caller>,
        kind: ReviewKind,
        id: &str,
    ) -> Result<(), ServiceError> {
        match kind {
            ReviewKind::Product => self.catalog.product_for(viewer, id).await.map(drop),
            ReviewKind::Shop => self.catalog.shop_for(viewer, id).await.map(drop),
            ReviewKind::Shipper => found(&self.users, id, "shipper").await,
        }
    }

    /// A review by the customer of a delivered order: of one of its
    /// products, of its shop, or (`subject_id` `None`) of its shipper.
    pub async fn write(
        &self,
        caller: &Caller,
        kind: ReviewKind,
        subject_id: Option<&str>,
        order_id: &str,
        input: DeliveryReviewInput,
    ) -> Result<ReviewView, ServiceError> {
        let draft = check_draft(&input)?;
        if let Some(id) = subject_id {
            self.subject_visible(Some(caller), kind, id).await?;
        }
        let order = match (subject_id, self.orders.get_order(caller, order_id).await) {
            // The order is named in the body, beside the path's product or
            // shop: not one of yours is a bad field, not a missing path.
            (Some(_), Err(ServiceError::Domain(DomainError::NotFound(_)))) => {
                return Err(DomainError::invalid("order_id", "no such order of yours").into())
            }
            (_, order) => order?,
        };
        let subject_id = match subject_id {
            Some(id) => id.to_owned(),
            None => shipper_of(&order)?.to_owned(),
        };
        let subject = subject_of(&order, caller, kind, &subject_id)?;
        // Read before the order records anything, so a failure here leaves
        // nothing behind.
        let author_name = display_name(&self.users.account(&caller.user_id).await?.name);
        // A random id, recorded by the order, which keeps the first one it
        // is given for each subject: so a second review of one line is the
        // same entity (and refused) on every node. A review written before
        // ids were random keeps its id.
        let legacy = legacy_review_id(&order.id, kind, &subject_id);
        let proposed = if self.reviews.exists(&legacy).await? {
            legacy
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let id = self
            .orders
            .orders
            .attach_review(
                &order.id,
                caller,
                subject_key_of(kind, &subject_id),
                proposed,
            )
            .await?;
        let create = ReviewCommand::Create {
            caller: caller.clone(),
            author_name,
            subject,
            draft,
            policy: self.policy,
        };
        let rec = self.reviews.call(&id, create).await?;
        Ok(self.settled(rec).await.view_for(Some(caller)))
    }

    async fn record(&self, id: &str) -> Result<ReviewRecord, ServiceError> {
        found(&self.reviews, id, "review").await?;
        Ok(self.reviews.call(id, ReviewCommand::Get).await?)
    }

    /// A review `caller` may see (404 otherwise, so hidden ones are not
    /// probed).
    async fn visible(
        &self,
        caller: Option<&Caller>,
        id: &str,
    ) -> Result<ReviewRecord, ServiceError> {
        let rec = self.record(id).await?;
        if !rec.review.visible_to(caller, &rec.merchant_id) {
            return Err(DomainError::NotFound("review").into());
        }
        if rec.review.kind != ReviewKind::Shipper {
            self.subject_visible(caller, rec.review.kind, &rec.review.subject_id)
                .await
                .map_err(|_| ServiceError::from(DomainError::NotFound("review")))?;
        }
        Ok(rec)
    }

    pub async fn get(&self, caller: Option<&Caller>, id: &str) -> Result<ReviewView, ServiceError> {
        Ok(self.visible(caller, id).await?.view_for(caller))
    }

    /// The author erased their account: the review shows `Deleted user`.
    pub async fn erase_author(&self, id: &str) -> Result<(), ServiceError> {
        self.reviews.call(id, ReviewCommand::EraseAuthor).await?;
        Ok(())
    }

    pub async fn edit(
        &self,
        caller: &Caller,
        id: &str,
        edit: ReviewEdit,
    ) -> Result<ReviewView, ServiceError> {
        self.visible(Some(caller), id).await?;
        let cmd = ReviewCommand::Edit {
            caller: caller.clone(),
            edit,
            policy: self.policy,
        };
        let rec = self.reviews.call(id, cmd).await?;
        Ok(self.settled(rec).await.view_for(Some(caller)))
    }

    pub async fn reply(
        &self,
        caller: &Caller,
        id: &str,
        input: ReplyInput,
    ) -> Result<ReviewView, ServiceError> {
        let text = check_reply(&input)?;
        self.visible(Some(caller), id).await?;
        let cmd = ReviewCommand::Reply {
            caller: caller.clone(),
            text,
        };
        Ok(self.reviews.call(id, cmd).await?.view_for(Some(caller)))
    }

    pub async fn report(
        &self,
        caller: &Caller,
        id: &str,
        input: ReportInput,
    ) -> Result<ReviewView, ServiceError> {
        let reason = check_reason(&input)?;
        self.visible(Some(caller), id).await?;
        self.throttles
            .report(&caller.user_id)
            .map_err(ServiceError::Throttled)?;
        let cmd = ReviewCommand::Report {
            caller: caller.clone(),
            reason,
            policy: self.policy,
        };
        let rec = self.reviews.call(id, cmd).await?;
        Ok(self.settled(rec).await.view_for(Some(caller)))
    }

    pub async fn moderate(
        &self,
        caller: &Caller,
        id: &str,
        to: ReviewStatus,
        input: ModerationInput,
    ) -> Result<ReviewView, ServiceError> {
        let note = check_note(&input)?;
        ensure_admin(caller)?;
        self.record(id).await?;
        let cmd = ReviewCommand::Moderate {
            caller: caller.clone(),
            to,
            note,
        };
        let rec = self.reviews.call(id, cmd).await?;
        Ok(self.settled(rec).await.view_for(Some(caller)))
    }

    /// A product's, shop's or shipper's approved reviews, newest first.
    pub async fn list(
        &self,
        viewer: Option<&Caller>,
        kind: ReviewKind,
        subject_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ReviewView>, ServiceError> {
        self.subject_visible(viewer, kind, subject_id).await?;
        let prefix = format!("{}|", subject_key_of(kind, subject_id));
        let page: Page<Review> = scan_page(
            self.store.as_ref(),
            REVIEWS_BY_SUBJECT,
            &prefix,
            ReviewEntity::VERSION,
            cursor,
            limit,
        )
        .await?;
        // A public listing: names, not ids, whoever looks.
        Ok(Page {
            items: page.items.into_iter().map(Review::public).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Reviews waiting for moderation, oldest first (admins).
    pub async fn pending(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ReviewView>, ServiceError> {
        ensure_admin(caller)?;
        let page: Page<Review> = scan_page(
            self.store.as_ref(),
            REVIEWS_PENDING,
            "",
            ReviewEntity::VERSION,
            cursor,
            limit,
        )
        .await?;
        Ok(Page {
            items: page.items.into_iter().map(|r| r.view(true)).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// The rating summary of a product or shop (public), or of a shipper
    /// (the shipper, merchants and admins).
    pub async fn summary(
        &self,
        caller: Option<&Caller>,
        kind: ReviewKind,
        subject_id: &str,
    ) -> Result<RatingSummary, ServiceError> {
        if kind == ReviewKind::Shipper {
            let allowed = caller.is_some_and(|c| {
                matches!(c.role, Role::Admin | Role::Merchant) || c.user_id == subject_id
            });
            if !allowed {
                return Err(DomainError::Forbidden(
                    "a shipper's rating is shown to merchants, admins and the shipper".into(),
                )
                .into());
            }
        }
        self.subject_visible(caller, kind, subject_id).await?;
        rating_of(self.store.as_ref(), kind, subject_id).await
    }

    /// The reviews written for one order that `caller` may see: its
    /// products', its shop's and its shipper's.
    pub async fn of_order(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<Vec<ReviewView>, ServiceError> {
        let order = self.orders.get_order(caller, order_id).await?;
        let mut out = Vec::new();
        for (_, id) in self.ids_of(caller, &order).await? {
            if self.reviews.exists(&id).await? {
                let rec = self.reviews.call(&id, ReviewCommand::Get).await?;
                if rec.review.visible_to(Some(caller), &rec.merchant_id) {
                    out.push(rec.view_for(Some(caller)));
                }
            }
        }
        Ok(out)
    }

    /// The review of an order's delivery (its shipper), if written.
    pub async fn of_delivery(
        &self,
        caller: &Caller,
        order_id: &str,
    ) -> Result<ReviewView, ServiceError> {
        let order = self.orders.get_order(caller, order_id).await?;
        let shipper = subject_key_of(ReviewKind::Shipper, shipper_of(&order)?);
        let id = self
            .ids_of(caller, &order)
            .await?
            .into_iter()
            .find_map(|(subject, id)| (subject == shipper).then_some(id))
            .ok_or(DomainError::NotFound("review"))?;
        self.get(Some(caller), &id).await
    }

    /// The id of the review of each subject of `order` (its products, its
    /// shop, its shipper), written or not: the one the order records, else
    /// the one a review written before ids were random had.
    async fn ids_of(
        &self,
        caller: &Caller,
        order: &Order,
    ) -> Result<Vec<(String, String)>, ServiceError> {
        let mut subjects: Vec<(ReviewKind, String)> = order
            .lines
            .iter()
            .map(|l| (ReviewKind::Product, l.product_id.to_string()))
            .collect();
        subjects.dedup();
        subjects.push((ReviewKind::Shop, order.shop_id.to_string()));
        if let Some(s) = &order.delivery.shipper_id {
            subjects.push((ReviewKind::Shipper, s.to_string()));
        }
        let recorded = self.orders.orders.reviews(&order.id, caller).await?;
        Ok(subjects
            .into_iter()
            .map(|(kind, subject)| {
                let key = subject_key_of(kind, &subject);
                let id = recorded.iter().find(|r| r.subject == key).map_or_else(
                    || legacy_review_id(&order.id, kind, &subject),
                    |r| r.review_id.clone(),
                );
                (key, id)
            })
            .collect())
    }
}

fn ensure_admin(caller: &Caller) -> Result<(), ServiceError> {
    match caller.role {
        Role::Admin => Ok(()),
        _ => Err(DomainError::Forbidden("only admins moderate reviews".into()).into()),
    }
}

fn shipper_of(order: &Order) -> Result<&str, DomainError> {
    order
        .delivery
        .shipper_id
        .as_deref()
        .ok_or_else(|| DomainError::conflict("no_shipper", "no shipper carried this order"))
}

//! Images of products, courses and reviews: an upload is checked by its
//! owner's rules first (no decoding for someone who may not add it), then
//! converted and stored, then listed on its record in the record's own
//! entity (which re-checks). A failure after storing deletes what was
//! stored; a crash between the two leaves objects under the owner's prefix
//! that the owner's deletion removes.

use std::sync::Arc;

use bytes::Bytes;

use crate::actors::course::CourseCommand;
use crate::actors::product::ProductCommand;
use crate::domain::catalog::{Course, Product};
use crate::domain::media::{MediaChange, MediaRef, MAX_MEDIA};
use crate::domain::review::{ReviewEdit, ReviewView, MAX_IMAGES};
use crate::domain::{Caller, DomainError};
use crate::media::{MediaError, MediaStore, Size};
use crate::service::products::catalog::Catalog;
use crate::service::products::reviews::Reviews;
use crate::service::{found, ServiceError};

#[derive(Clone)]
pub struct Media {
    pub(in crate::service) store: MediaStore,
    pub(in crate::service) catalog: Catalog,
    pub(in crate::service) reviews: Reviews,
    /// A return's photos are its order's.
    pub(in crate::service) orders: crate::actors::Registry<crate::actors::order::OrderEntity>,
    pub(in crate::service) throttles: Arc<crate::auth::Throttles>,
}

/// A record whose images can change, by its id.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Product(&'a str),
    Course(&'a str),
}

impl Owner<'_> {
    fn what(self) -> &'static str {
        match self {
            Owner::Product(_) => "product",
            Owner::Course(_) => "course",
        }
    }
}

impl Media {
    /// The largest image upload accepted.
    pub fn max_bytes(&self) -> usize {
        self.store.limits.max_bytes
    }

    /// Converts and stores `bytes` as an image of `owner`, and lists it
    /// with `attach`; deletes what was stored when the listing was refused
    /// (not when its outcome is unknown, a timeout: it may be listed).
    /// Each account's uploads are throttled before any decoding.
    async fn upload<T, F, Fut>(
        &self,
        caller: &Caller,
        owner: &str,
        bytes: Bytes,
        attach: F,
    ) -> Result<T, ServiceError>
    where
        F: FnOnce(MediaRef) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        self.throttles
            .upload(&caller.user_id)
            .map_err(ServiceError::Throttled)?;
        let processed = self.store.process(bytes).await?;
        let id = MediaStore::new_id(owner);
        self.store.put(&id, &processed).await?;
        let media = MediaRef::new(
            id.clone(),
            processed.content_type,
            processed.width,
            processed.height,
        );
        match attach(media).await {
            Ok(t) => Ok(t),
            Err(e @ ServiceError::Domain(_)) => {
                if let Err(d) = self.store.delete(&id).await {
                    tracing::warn!(%id, error = %d, "an image not listed stays stored");
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn change(
        &self,
        caller: &Caller,
        owner: Owner<'_>,
        change: MediaChange,
    ) -> Result<Vec<MediaRef>, ServiceError> {
        let caller = caller.clone();
        Ok(match owner {
            Owner::Product(id) => {
                let cmd = ProductCommand::Media { caller, change };
                self.catalog.products.call(id, cmd).await?.product.media
            }
            Owner::Course(id) => {
                let cmd = CourseCommand::Media { caller, change };
                self.catalog.courses.call(id, cmd).await?.media
            }
        })
    }

    /// Checks that `caller` may add an image to a record owned by
    /// `owner_id` that has `count` already.
    fn may_add(
        caller: &Caller,
        owner_id: &str,
        what: &str,
        count: usize,
    ) -> Result<(), ServiceError> {
        caller.ensure_owner(owner_id, what)?;
        if count >= MAX_MEDIA {
            return Err(DomainError::conflict(
                "media_limit",
                format!("at most {MAX_MEDIA} images; remove one first"),
            )
            .into());
        }
        Ok(())
    }

    /// Adds an image to a product or course (its owner).
    pub async fn add(
        &self,
        caller: &Caller,
        owner: Owner<'_>,
        bytes: Bytes,
    ) -> Result<MediaRef, ServiceError> {
        let (id, owner_id, count) = match owner {
            Owner::Product(id) => {
                let p = self.catalog.get_product(id).await?;
                (id, p.owner_id.to_string(), p.media.len())
            }
            Owner::Course(id) => {
                let c = self.catalog.get_course(id).await?;
                (id, c.trainer_id.to_string(), c.media.len())
            }
        };
        Self::may_add(caller, &owner_id, owner.what(), count)?;
        self.upload(caller, id, bytes, |m| async move {
            self.change(caller, owner, MediaChange::Add(m.clone()))
                .await?;
            Ok(m)
        })
        .await
    }

    pub async fn arrange_product(
        &self,
        caller: &Caller,
        id: &str,
        order: Vec<String>,
    ) -> Result<Product, ServiceError> {
        self.catalog.get_product(id).await?;
        self.change(caller, Owner::Product(id), MediaChange::Arrange(order))
            .await?;
        self.catalog.get_product(id).await
    }

    pub async fn arrange_course(
        &self,
        caller: &Caller,
        id: &str,
        order: Vec<String>,
    ) -> Result<Course, ServiceError> {
        self.catalog.get_course(id).await?;
        self.change(caller, Owner::Course(id), MediaChange::Arrange(order))
            .await?;
        self.catalog.get_course(id).await
    }

    /// Takes an image off its product or course and deletes it.
    pub async fn remove(
        &self,
        caller: &Caller,
        owner: Owner<'_>,
        media_id: &str,
    ) -> Result<(), ServiceError> {
        match owner {
            Owner::Product(id) => drop(self.catalog.get_product(id).await?),
            Owner::Course(id) => drop(self.catalog.get_course(id).await?),
        }
        let change = MediaChange::Remove(media_id.to_owned());
        self.change(caller, owner, change).await?;
        Ok(self.store.delete(media_id).await?)
    }

    /// Deletes a product (its merchant) and then its images. Asking again
    /// finishes an interrupted deletion.
    pub async fn delete_product(&self, caller: &Caller, id: &str) -> Result<(), ServiceError> {
        found(&self.catalog.products, id, "product").await?;
        let cmd = ProductCommand::Delete {
            caller: caller.clone(),
        };
        self.catalog.products.call(id, cmd).await?;
        Ok(self.store.purge(id).await?)
    }

    /// The caller's own review (its author only: admins do not edit
    /// reviews).
    async fn own_review(&self, caller: &Caller, id: &str) -> Result<ReviewView, ServiceError> {
        let r = self.reviews.get(Some(caller), id).await?;
        if r.author_id.as_ref() != Some(&caller.user_id) {
            return Err(DomainError::Forbidden(
                "only its author adds or removes a review's photos".into(),
            )
            .into());
        }
        Ok(r)
    }

    /// Adds a photo to the caller's own review (while it may be edited;
    /// at most `MAX_IMAGES`).
    pub async fn add_to_review(
        &self,
        caller: &Caller,
        id: &str,
        bytes: Bytes,
    ) -> Result<ReviewView, ServiceError> {
        let r = self.own_review(caller, id).await?;
        // The review's own rule, checked again when the photo is listed;
        // first here, so nothing is decoded for a review that is closed.
        if chrono::Utc::now() > r.editable_until {
            return Err(DomainError::conflict(
                "edit_window_closed",
                "this review can no longer be edited",
            )
            .into());
        }
        if r.images.len() >= MAX_IMAGES {
            return Err(DomainError::conflict(
                "media_limit",
                format!("at most {MAX_IMAGES} images; remove one first"),
            )
            .into());
        }
        self.upload(caller, id, bytes, |m| async move {
            let mut images = r.images;
            images.push(m.url);
            let edit = ReviewEdit {
                stars: None,
                text: None,
                images: Some(images),
            };
            self.reviews.edit(caller, id, edit).await
        })
        .await
    }

    /// A photo of the goods for a return of order `id` by its customer
    /// (before the return is asked, at most 6): seen only by the order's
    /// customer, its merchant and admins; the return request carries the
    /// photos uploaded.
    pub async fn add_return_photo(
        &self,
        caller: &Caller,
        id: &str,
        bytes: Bytes,
    ) -> Result<crate::domain::order::Order, ServiceError> {
        found(&self.orders, id, "order").await?;
        // The order's own rule first, so nothing is decoded in vain.
        let o = self.orders.get_for(id, caller).await?;
        crate::domain::order::returns::may_add_photo(&o, caller, chrono::Utc::now())?;
        self.upload(caller, id, bytes, |m| async move {
            Ok(self.orders.add_return_photo(id, caller, m.url).await?)
        })
        .await
    }

    /// Takes a photo uploaded to the review off it and deletes it.
    pub async fn remove_from_review(
        &self,
        caller: &Caller,
        id: &str,
        media_id: &str,
    ) -> Result<ReviewView, ServiceError> {
        let r = self.own_review(caller, id).await?;
        let url = MediaRef::new(media_id.to_owned(), "", 0, 0).url;
        if !media_id.starts_with(&format!("{id}.")) || !r.images.contains(&url) {
            return Err(DomainError::NotFound("media").into());
        }
        let edit = ReviewEdit {
            stars: None,
            text: None,
            images: Some(r.images.into_iter().filter(|i| *i != url).collect()),
        };
        let review = self.reviews.edit(caller, id, edit).await?;
        self.store.delete(media_id).await?;
        Ok(review)
    }

    /// A stored size of an image; 404 for none.
    /// Whether `viewer` may fetch image `id` (`{owner}.{uuid}`): a
    /// product's images are 404 while an admin hides it, and a review's
    /// while the review is not visible to them, as the product or review
    /// itself is. Answers whether anyone may see it (only then may shared
    /// caches keep it).
    pub async fn readable(&self, viewer: Option<&Caller>, id: &str) -> Result<bool, ServiceError> {
        let not_found = |e: ServiceError| match e {
            ServiceError::Domain(DomainError::NotFound(_)) => DomainError::NotFound("media").into(),
            e => e,
        };
        let Some((owner, _)) = id.rsplit_once('.') else {
            return Ok(true);
        };
        if found(&self.catalog.products, owner, "product")
            .await
            .is_ok()
        {
            let p = self
                .catalog
                .product_for(viewer, owner)
                .await
                .map_err(not_found)?;
            return Ok(p.hidden.is_none());
        }
        if found(&self.orders, owner, "order").await.is_ok() {
            // A return's photo: its order's parties only, never cached
            // for others.
            let viewer = viewer.ok_or(DomainError::NotFound("media"))?;
            self.orders
                .get_for(owner, viewer)
                .await
                .map_err(|e| not_found(e.into()))?;
            return Ok(false);
        }
        if found(&self.reviews.reviews, owner, "review").await.is_ok() {
            self.reviews.get(viewer, owner).await.map_err(not_found)?;
            return Ok(viewer.is_none() || self.reviews.get(None, owner).await.is_ok());
        }
        Ok(true)
    }

    pub async fn get(&self, id: &str, size: Size) -> Result<Bytes, ServiceError> {
        self.store
            .get(id, size)
            .await?
            .ok_or_else(|| DomainError::NotFound("media").into())
    }
}

impl From<MediaError> for ServiceError {
    fn from(e: MediaError) -> Self {
        ServiceError::Media(e)
    }
}

//! The images of a product, a course or a review: an ordered list whose
//! first entry is the primary image. The images themselves are objects in
//! the media store (`crate::media`); records keep what a page needs to show
//! them without fetching them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

/// Images one product or course may have.
pub const MAX_MEDIA: usize = 10;
/// Photos one review may have.
pub const MAX_REVIEW_PHOTOS: usize = 4;

/// One stored image, as records list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MediaRef {
    pub id: String,
    /// The display size (at most 1600 px on its longer side).
    pub url: String,
    /// The thumbnail (at most 320 px on its longer side).
    pub thumbnail_url: String,
    /// `image/jpeg`, or `image/png` for an image with transparency.
    pub content_type: String,
    /// Of the display size.
    pub width: u32,
    pub height: u32,
}

impl MediaRef {
    pub fn new(id: String, content_type: &str, width: u32, height: u32) -> MediaRef {
        MediaRef {
            url: format!("/api/v1/media/{id}"),
            thumbnail_url: format!("/api/v1/media/{id}?size=thumbnail"),
            id,
            content_type: content_type.to_owned(),
            width,
            height,
        }
    }
}

/// A change to a list of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MediaChange {
    /// Appended (the first image of a list is its primary one).
    Add(MediaRef),
    /// The list in this order of ids: every image once.
    Arrange(Vec<String>),
    Remove(String),
}

/// The new order of a product's or course's images: the first is primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaOrder {
    /// Every image id of the record, each once.
    #[schema(max_items = 10)]
    pub order: Vec<String>,
}

/// `list` with `change` made; at most `max` images (409 `media_limit`).
pub fn change(
    list: &[MediaRef],
    change: &MediaChange,
    max: usize,
) -> Result<Vec<MediaRef>, DomainError> {
    match change {
        MediaChange::Add(m) => {
            if list.iter().any(|x| x.id == m.id) {
                return Ok(list.to_vec());
            }
            if list.len() >= max {
                return Err(DomainError::conflict(
                    "media_limit",
                    format!("at most {max} images; remove one first"),
                ));
            }
            let mut out = list.to_vec();
            out.push(m.clone());
            Ok(out)
        }
        MediaChange::Arrange(order) => {
            let mut sorted: Vec<&str> = order.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            let mut have: Vec<&str> = list.iter().map(|m| m.id.as_str()).collect();
            have.sort_unstable();
            if sorted != have {
                return Err(DomainError::invalid(
                    "order",
                    "must name every image of the record exactly once",
                ));
            }
            Ok(order
                .iter()
                .filter_map(|id| list.iter().find(|m| &m.id == id).cloned())
                .collect())
        }
        MediaChange::Remove(id) => {
            if !list.iter().any(|m| &m.id == id) {
                return Err(DomainError::NotFound("media"));
            }
            Ok(list.iter().filter(|m| &m.id != id).cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str) -> MediaRef {
        MediaRef::new(id.into(), "image/jpeg", 10, 10)
    }

    #[test]
    fn add_arrange_remove() {
        let l = change(&[], &MediaChange::Add(img("a")), 2).unwrap();
        let l = change(&l, &MediaChange::Add(img("b")), 2).unwrap();
        assert_eq!(change(&l, &MediaChange::Add(img("b")), 2).unwrap(), l);
        let full = change(&l, &MediaChange::Add(img("c")), 2).unwrap_err();
        assert!(matches!(full, DomainError::Conflict { code, .. } if code == "media_limit"));
        let l = change(&l, &MediaChange::Arrange(vec!["b".into(), "a".into()]), 2).unwrap();
        assert_eq!(l[0].id, "b");
        for bad in [
            vec!["b".to_string()],
            vec!["b".into(), "b".into()],
            vec!["b".into(), "x".into()],
        ] {
            assert!(change(&l, &MediaChange::Arrange(bad), 2).is_err());
        }
        let l = change(&l, &MediaChange::Remove("b".into()), 2).unwrap();
        assert_eq!(l, vec![img("a")]);
        assert!(change(&l, &MediaChange::Remove("b".into()), 2).is_err());
    }
}

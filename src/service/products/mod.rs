//! The catalog: products and shops, categories, search, images, moderation, reviews and ratings, behaviour.

pub mod behavior;
pub mod catalog;
pub mod categories;
pub mod media;
pub mod moderation;
pub mod ratings;
pub mod reviews;
pub mod search;

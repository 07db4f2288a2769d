//! Accounts: sign-up and sessions, profiles, the admin's console, a user's own data, notifications.

pub mod accounts;
pub mod auth;
pub mod notifications;
pub mod profiles;
pub mod self_service;

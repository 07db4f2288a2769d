//! Delivery: the live shippers, dispatch, tracking.

pub mod dispatch;
pub mod shipping;
pub mod tracker;

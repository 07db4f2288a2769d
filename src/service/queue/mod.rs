//! Bursts: enrollment queues for flash sales and courses, split queues, the orders of won claims, course sessions.

pub mod course_sessions;
pub mod flash_sales;
pub mod parts;
pub mod queues;
pub mod work;

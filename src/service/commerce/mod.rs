//! Buying: carts and their quotes, checkout and its payment, orders and their follow-up, coupons and vouchers, stock, inventory, shop reports.

pub mod cart;
pub mod cart_quote;
pub mod cart_vouchers;
pub mod checkout;
pub mod checkout_payment;
pub mod coupons;
pub mod fulfilment;
pub mod inventory;
pub mod orders;
pub mod payments;
pub mod shop_reports;
pub mod stock;

//! Journal records and snapshots read back from disk (or a database): for
//! every entity, its events and its state decode or are refused, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::actors::cart::CartEntity;
use surge::actors::coupon::CouponEntity;
use surge::actors::course::CourseEntity;
use surge::actors::email::EmailClaim;
use surge::actors::order::OrderEntity;
use surge::actors::product::ProductEntity;
use surge::actors::queue::QueueEntity;
use surge::actors::sandbox_payment::SandboxPaymentEntity;
use surge::actors::shipper::ShipperEntity;
use surge::actors::shop::ShopEntity;
use surge::actors::stock_bucket::StockBucketEntity;
use surge::actors::user::User;
use surge::actors::Entity;
use surge::store::codec::decode;

fn both<E: Entity>(bytes: &[u8]) {
    let _ = decode::<E::Event>(E::VERSION, bytes);
    let _ = decode::<E::State>(E::VERSION, bytes);
}

fuzz_target!(|data: &[u8]| {
    both::<User>(data);
    both::<EmailClaim>(data);
    both::<ShopEntity>(data);
    both::<ProductEntity>(data);
    both::<StockBucketEntity>(data);
    both::<CourseEntity>(data);
    both::<CartEntity>(data);
    both::<CouponEntity>(data);
    both::<OrderEntity>(data);
    both::<ShipperEntity>(data);
    both::<QueueEntity>(data);
    both::<SandboxPaymentEntity>(data);
});

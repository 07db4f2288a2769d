//! An uploaded image: converted into sizes within their bounds, or refused
//! with a reason — never a panic, and never an allocation beyond what the
//! pixels it is allowed to claim need (libFuzzer's -rss_limit_mb catches
//! one that claims more than it may).
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::media::{process, MediaLimits, DISPLAY_SIDE};

fuzz_target!(|data: &[u8]| {
    let limits = MediaLimits {
        max_bytes: 1 << 20,
        max_pixels: 4_000_000,
    };
    if let Ok(p) = process(data, limits) {
        assert!(p.width <= DISPLAY_SIDE && p.height <= DISPLAY_SIDE);
        assert!(p.width > 0 && p.height > 0);
        assert!(!p.display.is_empty() && !p.thumbnail.is_empty());
    }
});

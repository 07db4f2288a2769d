//! A `surge.toml` config file: accepted (and then valid) or refused with a
//! message, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use surge::config::Settings;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Settings::from_toml(text);
    }
});

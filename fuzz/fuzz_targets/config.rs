//! The config loader (SPEC §3) on arbitrary text: never a panic, and an
//! error for anything it does not accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = rp_devops::config::Config::parse(text, Path::new("/etc/rp-devops.yml")) {
        // Errors are reported through the whole chain; formatting must not panic.
        let _ = format!("{e:#}");
    }
});

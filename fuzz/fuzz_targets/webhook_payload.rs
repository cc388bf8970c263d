//! The webhook's payload handling (SPEC §10): the body parsed and
//! interpreted as the route does, and the signature check with fuzzed
//! headers. No panic; an event is only ever one of the handled actions.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rp_devops::serve::webhook::{decode_signing_key, interpret_payload, verify_signature};

fuzz_target!(|data: &[u8]| {
    // First line: `id timestamp signature...` headers; the rest: the body.
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    if let Ok(Some(event)) = interpret_payload(body) {
        assert!(
            matches!(
                event.action.as_str(),
                "open" | "reopen" | "update" | "merge"
            ),
            "{:?}",
            event.action
        );
        assert!(event.check_versions || event.transition);
    }
    let head = String::from_utf8_lossy(head);
    let mut words = head.splitn(3, ' ');
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(value) = words.next().and_then(|w| HeaderValue::from_str(w).ok()) {
            headers.insert(name, value);
        }
    }
    let key = decode_signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
    let _ = verify_signature(&key, &headers, body, 1_700_000_000);
    let _ = decode_signing_key(&head);
});

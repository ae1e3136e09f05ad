//! The body of a signed ISV webhook, after its signature matched.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fulfillment_ingress::fuzzing::webhook_body(data));

//! The Standard Webhooks signature verifier against the signer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fulfillment_ingress::fuzzing::signature(data));

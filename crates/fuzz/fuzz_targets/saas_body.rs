//! The SaaS Fulfillment API v2 request bodies: activate, change plan or quantity, and operation
//! updates, each parser on the same input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fulfillment_ingress::fuzzing::saas_bodies(data));

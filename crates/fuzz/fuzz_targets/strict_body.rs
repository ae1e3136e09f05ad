//! Any request body, read as every JSON contract reads it: parsing never panics, refuses only
//! with a 4xx problem+json, and accepts only UTF-8 JSON with an object wherever the contract
//! has one and no key twice in any object.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fulfillment_ingress::fuzzing::strict_bodies(data));

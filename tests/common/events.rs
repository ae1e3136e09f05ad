//! Log events built directly (not through the HTTP API), for tests of the stores and of the
//! billing contract that need a log or a folded subscription without running the service.
//! The builders live in `fulfillment_core::fixtures`, shared with the crates' own tests.

#[allow(unused_imports)] // not every test binary builds all of them
pub use fulfillment_core::fixtures::{envelope, purchase, purchase_of};

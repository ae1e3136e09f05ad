//! Replays every input the fuzz targets saved (`crates/fuzz/regressions/<target>/`, crashes
//! found by `scripts/fuzz.sh`) and their seeds (`crates/fuzz/seeds/<target>/`) through the same
//! entry points the targets call, so a fixed crash stays fixed without a fuzzer installed. Those
//! are behind the `fuzzing` feature, which the crate's dev-dependency on itself turns on for its
//! tests, so a plain `cargo test` runs this.

use fulfillment_ingress::fuzzing;
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            found.push((path, bytes));
        }
    }
    assert!(!found.is_empty(), "no seeds for {target}");
    found
}

fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{} fails again", path.display());
    }
}

#[test]
fn webhook_body_inputs() {
    replay("webhook_body", fuzzing::webhook_body);
}

#[test]
fn saas_body_inputs() {
    replay("saas_body", fuzzing::saas_bodies);
}

#[test]
fn strict_body_inputs() {
    replay("strict_body", fuzzing::strict_bodies);
}

#[test]
fn signature_inputs() {
    replay("signature", fuzzing::signature);
}

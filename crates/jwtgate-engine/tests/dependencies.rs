//! What an embedder compiles: the engine's normal dependencies, direct and
//! transitive, as `cargo tree` resolves them from the workspace's lock file.
//! None of the service's runtime, network, command-line, configuration or
//! key-generation crates may be among them: verifying a token needs none, and
//! each would be compiled (and audited) by everyone who embeds the engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Crates the service uses that must never reach the engine.
const SERVICE_ONLY: [&str; 15] = [
    "tokio",
    "tokio-uring",
    "io-uring",
    "socket2",
    "signal-hook",
    "ureq",
    "rustls",
    "clap",
    "toml",
    "serde",
    "rsa",
    "httparse",
    "crossbeam-channel",
    "hdrhistogram",
    "arc-swap",
];

/// Every crate name in the engine's normal dependency tree.
fn engine_dependencies() -> BTreeSet<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--manifest-path"])
        .arg(&manifest)
        .args(["-p", "jwtgate-engine", "-e", "normal", "--prefix", "none"])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Lines read `name vX.Y.Z [(path)] [(*)]`.
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_engine_depends_on_no_service_crate() {
    let dependencies = engine_dependencies();
    // The tree was read: the engine and its crypto backend are in it.
    assert!(
        dependencies.contains("jwtgate-engine") && dependencies.contains("aws-lc-rs"),
        "unexpected cargo tree output: {dependencies:?}"
    );
    let found: Vec<&str> = SERVICE_ONLY
        .into_iter()
        .filter(|name| dependencies.contains(*name))
        .collect();
    assert!(
        found.is_empty(),
        "the engine depends on {found:?}; its whole tree: {dependencies:?}"
    );
}

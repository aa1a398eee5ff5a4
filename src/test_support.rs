//! What the unit tests of several modules share: configurations written
//! around the bundled demo keys, their policies, and scratch folders. Test
//! code only (compiled under `cfg(test)`), so that no library module reaches
//! into another module's tests for a helper.
//!
//! Neighbours: [`crate::config`] parses what these helpers write;
//! [`crate::demo`] holds the keys.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::policy::Policy;

/// `text` with `@JWKS@` replaced by the demo key set inline (`jwks = '''…'''`),
/// on one line, so that positions after it are easy to state.
pub(crate) fn with_demo_keys(text: &str) -> String {
    let jwks = crate::demo::DEMO_JWKS.replace('\n', "");
    text.replace("@JWKS@", &format!("jwks = '''{jwks}'''"))
}

/// The policy of `text`, a configuration whose `@JWKS@` stands for the demo keys.
pub(crate) fn policy_with_demo_keys(text: &str) -> Arc<Policy> {
    let loaded =
        crate::config::parse(&with_demo_keys(text), std::path::Path::new("jwtgate.toml")).unwrap();
    Arc::new(loaded.policy)
}

/// A new, empty folder for one test (`label` names the test family).
pub(crate) fn scratch_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "jwtgate-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

//! The build's identity for `jwtgate --version`: the git commit it was built
//! from, when it was built from a checkout ("unknown" otherwise, as from a
//! source archive).
#![allow(clippy::print_stdout)] // cargo reads its instructions from stdout

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|hash| !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=JWTGATE_GIT_COMMIT={commit}");
    // Built again when HEAD moves: a commit changes the branch's ref file,
    // a checkout changes HEAD itself.
    let git = Path::new(".git");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/packed-refs");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=.git/{reference}");
    }
}

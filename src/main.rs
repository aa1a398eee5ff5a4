//! The `jwtgate` command line.

fn main() {}

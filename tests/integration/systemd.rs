//! `deploy/systemd/jwtgate.service`: systemd accepts the unit as written
//! (`systemd-analyze verify`, with the binary under test in `ExecStart`), its
//! command line is one `serve` accepts, its stop timeout covers the drain;
//! and the `Type=notify` protocol: `READY=1` once jwtgate listens,
//! `STOPPING=1` when the drain begins.
//!
//! systemd-analyze comes with Debian's `systemd` package (installed by
//! `.ci/run`, never started). A machine without it fails the unit test with a
//! message saying so, unless `JWTGATE_SKIP_E2E=1` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::TempDir;
use common::server::Server;

fn unit() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/jwtgate.service"),
    )
    .unwrap()
}

/// The value of `key=` in the unit (the last one, as systemd reads it).
fn setting<'u>(unit: &'u str, key: &str) -> &'u str {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
}

#[test]
fn the_unit_verifies_and_its_command_line_is_one_serve_accepts() {
    let unit = unit();
    assert_eq!(setting(&unit, "Type"), "notify");
    assert_eq!(setting(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(setting(&unit, "CapabilityBoundingSet"), "");
    assert_eq!(setting(&unit, "DynamicUser"), "yes");
    assert_eq!(setting(&unit, "NoNewPrivileges"), "yes");
    // The drain (delay 0 + timeout 10 s by default) fits before SIGKILL.
    let stop = setting(&unit, "TimeoutStopSec");
    let stop: u64 = stop.strip_suffix('s').unwrap().parse().unwrap();
    assert!(stop > 10 + 5, "TimeoutStopSec={stop}s");
    // LimitNOFILE holds the default max_connections of a few shards.
    let files: u64 = setting(&unit, "LimitNOFILE").parse().unwrap();
    assert!(files >= 4 * 10_000 + 128, "LimitNOFILE={files}");

    let exec = setting(&unit, "ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[..2], ["/usr/local/bin/jwtgate", "serve"]);
    // The same arguments with the example configuration: `serve --help`
    // knows each flag, and `check-config` accepts the file they name.
    let help = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(help.contains(&format!("{flag} ")), "serve has no {flag}");
    }
    assert_eq!(args[2..], ["--config", "/etc/jwtgate/jwtgate.toml"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/jwtgate.toml");
    let checked = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .arg("check-config")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let Some(analyze) = common::required_tool("systemd", "systemd-analyze", "systemd") else {
        return;
    };
    let dir = TempDir::new("systemd");
    let local = unit.replace("/usr/local/bin/jwtgate", env!("CARGO_BIN_EXE_jwtgate"));
    let path = dir.write("jwtgate.service", local);
    // --man=no: the manual pages it names are installed by `jwtgate man --out`.
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
/// Under systemd (`Type=notify`): `READY=1` once it listens, `STOPPING=1`
/// when the drain begins, to the socket `$NOTIFY_SOCKET` names.
#[test]
fn the_service_manager_hears_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("notify");
    let path = dir.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let keys = common::data_path("rsa2048-a.spki.pem")
        .to_str()
        .unwrap()
        .to_owned();
    let mut server = Server::start_with_env(
        &["--jwks", &keys],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut buffer = [0u8; 512];
    let received = socket.recv(&mut buffer).unwrap();
    let ready = String::from_utf8_lossy(&buffer[..received]).into_owned();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=serving on {}", server.addr())),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("MAINPID={}", server.pid())),
        "{ready}"
    );
    server.sigterm();
    let received = socket.recv(&mut buffer).unwrap();
    assert_eq!(&buffer[..received], b"STOPPING=1\nSTATUS=draining");
    assert_eq!(server.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

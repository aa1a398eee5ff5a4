//! A second `jwtgate serve` on ports a first one holds: refused at start, the
//! address named, unless it is started as a handover on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::server::{Conn, Server, request_bytes, run_jwtgate_bounded};

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn keys() -> String {
    common::data_path("rsa2048-a.spki.pem")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A request without a token: any running jwtgate answers it 401.
fn answered_401(server_addr: std::net::SocketAddr) {
    let mut conn = Conn::open(server_addr);
    let response = conn.request(&request_bytes("GET", "/orders", &[], b""));
    assert_eq!(response.status, 401, "{}", response.head_text());
}

#[test]
fn a_second_instance_on_held_ports_exits_2_naming_the_address() {
    let keys = keys();
    for shards in ["1", "2"] {
        let first = Server::start(&[
            "--jwks",
            &keys,
            "--shards",
            shards,
            "--grpc-listen",
            "127.0.0.1:0",
            "--verify-listen",
            "127.0.0.1:0",
        ]);
        let held = [
            ("--listen", first.addr()),
            ("--admin-listen", first.admin_addr()),
            ("--grpc-listen", first.grpc_addr().unwrap()),
            ("--verify-listen", first.verify_addr().unwrap()),
        ];
        for (flag, addr) in held {
            let addr_text = addr.to_string();
            let mut args = vec!["serve", "--jwks", &keys, "--shards", shards];
            for (other, _) in held {
                if other != flag {
                    args.extend_from_slice(&[other, "127.0.0.1:0"]);
                }
            }
            args.extend_from_slice(&[flag, &addr_text]);
            let out = run_jwtgate_bounded(&args, START_TIMEOUT);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{flag} {addr}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "cannot listen on {addr}: another process already listens there"
                )),
                "{flag} {addr} with {shards} shard(s): {stderr}"
            );
            let advice = if flag == "--admin-listen" {
                "an admin port is never shared"
            } else {
                "start with --handover"
            };
            assert!(stderr.contains(advice), "{flag}: {stderr}");
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains("listening on"),
                "{flag}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        // The first one was never disturbed.
        answered_401(first.addr());
    }
}

#[test]
fn a_wildcard_listener_holds_the_port_for_loopback_too() {
    let keys = keys();
    let first = Server::start_without_listen_flags(&[
        "--jwks",
        &keys,
        "--listen",
        "0.0.0.0:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let loopback = format!("127.0.0.1:{}", first.addr().port());
    let out = run_jwtgate_bounded(
        &[
            "serve",
            "--jwks",
            &keys,
            "--listen",
            &loopback,
            "--admin-listen",
            "127.0.0.1:0",
        ],
        START_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {loopback}")),
        "{stderr}"
    );
}

#[test]
fn a_handover_joins_the_ports_and_serves_on_after_the_first_one_exits() {
    let keys = keys();
    let mut first = Server::start(&["--jwks", &keys, "--shards", "2"]);
    let data = first.addr().to_string();
    let mut second = Server::start_without_listen_flags(&[
        "--jwks",
        &keys,
        "--shards",
        "2",
        "--listen",
        &data,
        "--admin-listen",
        "127.0.0.1:0",
        "--handover",
    ]);
    assert_eq!(second.addr(), first.addr());
    answered_401(first.addr());
    first.sigterm();
    let status = first.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", first.stderr_text());
    // Every connection now reaches the second one.
    for _ in 0..20 {
        answered_401(second.addr());
    }
    second.sigterm();
    assert_eq!(second.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

/// Two faces of one server on one port are refused before anything binds,
/// with or without `--handover` (which joins another process, never itself).
#[test]
fn two_faces_of_one_server_never_share_a_port() {
    let keys = keys();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    for extra in [&[][..], &["--handover"][..]] {
        let mut args = vec![
            "serve",
            "--jwks",
            &keys,
            "--listen",
            &port,
            "--grpc-listen",
            &port,
            "--admin-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let out = run_jwtgate_bounded(&args, START_TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("server.grpc_listen: is on the port of server.listen"),
            "{extra:?}: {stderr}"
        );
    }
}

//! systemd's readiness protocol (`sd_notify`, written out: one datagram of
//! `KEY=value` lines to the Unix socket named by `$NOTIFY_SOCKET`), so that a
//! `Type=notify` unit counts jwtgate as started once it listens and holds its
//! keys, not when the process starts, and sees the drain begin.
//!
//! Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing. A
//! failed send is not an error of the service: systemd then times the start
//! out, which says more than a warning here would.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (`READY=1`, `STOPPING=1`, ...) to the service manager, if
/// one asked for it.
pub(crate) fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        send(&socket.to_string_lossy(), state);
    }
}

/// Sends `state` to the socket `$NOTIFY_SOCKET` names: `@name` is an
/// abstract socket, anything else a path.
fn send(socket: &str, state: &str) {
    let address = match socket.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(socket),
    };
    if let (Ok(sender), Ok(address)) = (UnixDatagram::unbound(), address) {
        let _ = sender.send_to_addr(state.as_bytes(), &address);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_state_reaches_a_path_or_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("jwtgate-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1\nSTATUS=listening");
        let mut buffer = [0u8; 64];
        let received = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..received], b"READY=1\nSTATUS=listening");

        let name = format!("jwtgate-notify-test-{}", std::process::id());
        let abstract_receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send(&format!("@{name}"), "STOPPING=1");
        let received = abstract_receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..received], b"STOPPING=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

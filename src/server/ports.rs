//! Binding the listening sockets so that a port is shared only on purpose.
//!
//! The shards of one face each bind the port with `SO_REUSEPORT`, and the
//! kernel spreads connections over them. The kernel lets any process of the
//! same user join that group, so a second `jwtgate serve` on the same
//! addresses would start without a word and take turns answering with the
//! first, each with its own configuration. Before a group binds, a probe
//! binds the address without `SO_REUSEPORT`: it fails while anything
//! listens there (a wildcard address included), and the start fails with the
//! address named. Two jwtgates starting at the same moment could both pass
//! the probe before either binds; an abstract Unix socket named after the
//! address, held from the probe until the group is bound, serialises them.
//!
//! Joining a running jwtgate's ports is a handover ([`Sharing::Handover`],
//! `serve --handover`), for a binary upgrade without a refused connection:
//! the new process joins, then the old one is sent SIGTERM and drains.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};

use super::ServeError;

/// Whether a port may already be held by another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// The port must be free: anything already listening there is an error.
    #[default]
    Exclusive,
    /// Join a running jwtgate's listeners on purpose (`serve --handover`).
    Handover,
}

/// Binds `count` sockets to `addr` with `SO_REUSEPORT` (the first one picks
/// the port when `addr` has port 0, the others join it), after making sure,
/// unless handing over, that no other process listens there.
pub(super) fn bind_group(
    addr: SocketAddr,
    count: usize,
    sharing: Sharing,
) -> Result<Vec<TcpListener>, ServeError> {
    let failed = |source| ServeError::Bind { addr, source };
    // Port 0 asks the kernel for a port nobody holds.
    let _claim = if sharing == Sharing::Exclusive && addr.port() != 0 {
        let claim = claim(addr).map_err(failed)?;
        probe(addr).map_err(failed)?;
        Some(claim)
    } else {
        None
    };
    let mut bound = Vec::with_capacity(count);
    let mut addr_now = addr;
    for _ in 0..count {
        let listener = bind_one(addr_now, true).map_err(failed)?;
        addr_now = listener.local_addr().map_err(failed)?;
        bound.push(listener);
    }
    Ok(bound)
}

/// Binds one socket to `addr` for a listener no other socket joins (the
/// admin port): without `SO_REUSEPORT`, so the kernel itself refuses an
/// address in use, a handover included (the old process keeps its admin
/// port until it exits).
pub(super) fn bind_single(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    bind_one(addr, false).map_err(|source| ServeError::Bind {
        addr,
        source: if source.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(io::ErrorKind::AddrInUse, ADMIN_HELD)
        } else {
            source
        },
    })
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // Restarts bind through the previous process's TIME_WAIT connections.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Fails with [`held`] when anything listens on `addr` (or on its port at
/// a wildcard address): a bind without `SO_REUSEPORT` conflicts with every
/// listening socket there, whoever holds it.
fn probe(addr: SocketAddr) -> io::Result<()> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(in_use)
}

/// Holds the start-up claim on `addr`'s port among jwtgates: an abstract
/// Unix socket (no file; released when the process ends, however it ends).
/// Named after the port alone, so that `0.0.0.0:P` and `127.0.0.1:P`, which
/// overlap, are serialised too. Another jwtgate holds a claim only while it
/// probes and binds, so a held one is waited for, briefly.
fn claim(addr: SocketAddr) -> io::Result<UnixListener> {
    let name = format!("jwtgate/listen/tcp/{}", addr.port());
    let unix = UnixAddr::from_abstract_name(name.as_bytes())?;
    let deadline = std::time::Instant::now() + CLAIM_WAIT;
    loop {
        match UnixListener::bind_addr(&unix) {
            Err(error)
                if error.kind() == io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                // Polled: the holder gives no signal when it lets go.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, CLAIM_HELD));
            }
            result => return result,
        }
    }
}

/// How long a claim another jwtgate holds is waited for.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

const CLAIM_HELD: &str = "another process has held jwtgate's start-up claim on this port \
     (the abstract socket jwtgate/listen/tcp/PORT) for 2 s; a jwtgate holds it \
     only while it binds";

/// An address in use, in words that say what to do about it.
fn in_use(error: io::Error) -> io::Error {
    if error.kind() == io::ErrorKind::AddrInUse {
        io::Error::new(io::ErrorKind::AddrInUse, HELD)
    } else {
        error
    }
}

const HELD: &str = "another process already listens there (a second jwtgate would silently \
     take turns answering with the first); stop it, choose another address, or \
     start with --handover to take over a running jwtgate's ports on purpose";

const ADMIN_HELD: &str = "another process already listens there (an admin port is never \
     shared, not even by a handover: give each jwtgate its own --admin-listen)";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A group on a port the kernel picked, and that port's address.
    fn bound_group(count: usize) -> (Vec<TcpListener>, SocketAddr) {
        let group = bind_group(loopback(0), count, Sharing::Exclusive).unwrap();
        let addr = group[0].local_addr().unwrap();
        (group, addr)
    }

    #[test]
    fn a_port_held_by_anyone_is_refused_with_a_reason() {
        let (_first, addr) = bound_group(2);
        let error = bind_group(addr, 2, Sharing::Exclusive)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("cannot listen on {addr}: another process")),
            "{error}"
        );
        assert!(error.contains("--handover"), "{error}");
        assert!(bind_single(addr).is_err());
        // A plain listener of another program (no SO_REUSEPORT) too.
        let other = TcpListener::bind(loopback(0)).unwrap();
        let taken = other.local_addr().unwrap();
        assert!(bind_group(taken, 1, Sharing::Exclusive).is_err());
        let error = bind_single(taken).unwrap_err().to_string();
        assert!(error.contains("an admin port is never shared"), "{error}");
    }

    #[test]
    fn a_wildcard_listener_holds_the_port_of_every_address() {
        let wildcard =
            bind_group(SocketAddr::from(([0, 0, 0, 0], 0)), 1, Sharing::Exclusive).unwrap();
        let port = wildcard[0].local_addr().unwrap().port();
        assert!(bind_group(loopback(port), 1, Sharing::Exclusive).is_err());
    }

    #[test]
    fn a_handover_joins_and_the_port_is_free_again_once_all_close() {
        let (first, addr) = bound_group(2);
        let joined = bind_group(addr, 2, Sharing::Handover).unwrap();
        assert_eq!(joined[0].local_addr().unwrap(), addr);
        drop(first);
        drop(joined);
        assert_eq!(bind_group(addr, 2, Sharing::Exclusive).unwrap().len(), 2);
    }

    #[test]
    fn the_claim_is_held_until_dropped() {
        let (_group, addr) = bound_group(1);
        let held = claim(addr).unwrap();
        let error = claim(addr).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        assert!(error.to_string().contains("start-up claim"), "{error}");
        // Any address of the port: the wildcard overlaps them all.
        assert!(claim(SocketAddr::from(([0, 0, 0, 0], addr.port()))).is_err());
        drop(held);
        claim(addr).unwrap();
    }
}

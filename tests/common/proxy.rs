//! A proxy under test (Caddy, HAProxy) started on a free loopback port from a
//! configuration the test writes, ready once the port accepts a connection,
//! killed when dropped. Neighbours: `upstream.rs` is the origin behind it,
//! `nginx.rs` starts nginx (which has a master process and a pid file of its
//! own).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

const START: Duration = Duration::from_secs(30);

pub struct Proxy {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Proxy {
    /// `launch(port, dir)` writes the proxy's configuration for `port` into
    /// `dir` and returns the command that runs it. Tried on fresh ports a
    /// few times (a port found free may be taken before the proxy binds it);
    /// panics with the proxy's stderr when none starts.
    pub fn start(name: &str, mut launch: impl FnMut(u16, &TempDir) -> Command) -> Proxy {
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = TempDir::new(name);
            let mut child = launch(port, &dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start {name}: {e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + START;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                    }
                    failures.push(format!("{name} exited ({status}): {stderr}"));
                    break;
                }
                if TcpStream::connect(addr).is_ok() {
                    return Proxy {
                        child,
                        addr,
                        _dir: dir,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!("no connection within {START:?}"));
                    break;
                }
                // Polled: the proxy cannot say when it listens; the connect decides.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{name} did not start:\n{}", failures.join("\n"));
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

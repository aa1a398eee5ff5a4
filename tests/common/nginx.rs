//! A real nginx for the end-to-end tests (`e2e_nginx.rs`, `e2e_origin.rs`):
//! found on the machine, started in a temp prefix with the test's `server`
//! blocks on fresh loopback ports, ready when it answers, stopped on drop.
//!
//! nginx is the Debian package (`/usr/sbin/nginx`, or `nginx` on the PATH). A
//! machine without it fails the tests with a message saying so, unless
//! `JWTGATE_SKIP_E2E=1` is set (then they print a note and pass).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TempDir;
use super::server::IO_TIMEOUT;

/// How long nginx may take to answer its readiness probe.
const NGINX_START: Duration = Duration::from_secs(30);
/// Attempts at starting nginx on fresh ports.
const NGINX_ATTEMPTS: usize = 5;

/// The block every probed server must hold: readiness is its `204`.
pub const READY_LOCATION: &str = "location = /_ready {\n            return 204;\n        }";

/// The nginx binary, or `None` when `test` is to be skipped; panics when
/// nginx is missing and skipping was not asked for.
#[allow(clippy::print_stderr)]
pub fn nginx_binary(test: &str) -> Option<PathBuf> {
    let skip = std::env::var("JWTGATE_SKIP_E2E").is_ok_and(|v| v == "1");
    let candidates = std::iter::once(PathBuf::from("/usr/sbin/nginx")).chain(
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("nginx"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    for candidate in candidates {
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if skip {
        eprintln!("{test}: nginx not found; skipped because JWTGATE_SKIP_E2E=1");
        return None;
    }
    panic!(
        "{test}: nginx not found (looked for /usr/sbin/nginx and nginx on PATH). \
         Install it (Debian: apt-get install nginx-light or nginx) or set JWTGATE_SKIP_E2E=1 \
         to skip the end-to-end tests."
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `count` distinct free ports. nginx cannot listen on an ephemeral port and
/// report it, so ports are found by binding 127.0.0.1:0 and dropping the
/// listeners; another process may take one in between, hence the retries of
/// [`Nginx::start`].
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A running nginx (master and one worker) in its own temp prefix.
pub struct Nginx {
    child: Child,
    ports: Vec<u16>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Dropped after the process is gone (fields drop after `Drop::drop`).
    _dir: TempDir,
}

impl Nginx {
    /// Starts nginx with `servers(ports)` inside its `http` block, on `count`
    /// fresh ports; ready once every port in `probed` (indexes into the
    /// ports) answers `GET /_ready` with nginx's own `204`
    /// ([`READY_LOCATION`]).
    pub fn start(
        binary: &Path,
        count: usize,
        probed: &[usize],
        servers: impl Fn(&[u16]) -> String,
    ) -> Nginx {
        Nginx::start_with(binary, count, probed, |ports, root| {
            wrapped(root, &servers(ports))
        })
    }

    /// Starts nginx on a whole configuration file, `conf(ports)`, with the
    /// temp prefix as its `-p`, so that the file's relative paths land there.
    /// Ready as [`Nginx::start`].
    pub fn start_file(
        binary: &Path,
        count: usize,
        probed: &[usize],
        conf: impl Fn(&[u16]) -> String,
    ) -> Nginx {
        Nginx::start_with(binary, count, probed, |ports, _| conf(ports))
    }

    fn start_with(
        binary: &Path,
        count: usize,
        probed: &[usize],
        conf: impl Fn(&[u16], &str) -> String,
    ) -> Nginx {
        let mut failures = Vec::new();
        for attempt in 1..=NGINX_ATTEMPTS {
            let ports = free_ports(count);
            match Nginx::try_start(binary, ports.clone(), probed, &conf) {
                Ok(nginx) => return nginx,
                Err(why) => failures.push(format!("attempt {attempt} (ports {ports:?}): {why}")),
            }
        }
        panic!("nginx did not start:\n{}", failures.join("\n"));
    }

    fn try_start(
        binary: &Path,
        ports: Vec<u16>,
        probed: &[usize],
        conf: &dyn Fn(&[u16], &str) -> String,
    ) -> Result<Nginx, String> {
        let dir = TempDir::new("e2e-nginx");
        let root = dir.root().display().to_string();
        let conf = conf(&ports, &root);
        let conf_path = dir.write("nginx.conf", conf);
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.root())
            .arg("-c")
            .arg(&conf_path)
            // In the foreground, whatever the file says: the test owns the process.
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut chunk = [0_u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let mut nginx = Nginx {
            child,
            ports,
            stderr,
            _dir: dir,
        };
        for &index in probed {
            nginx.wait_ready(nginx.addr(index))?;
        }
        Ok(nginx)
    }

    /// The address of port number `index`.
    pub fn addr(&self, index: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[index]))
    }

    /// Ready when `GET /_ready` on `addr` is answered `204` by nginx itself
    /// (a `Server: nginx` header: not some other process that took the port).
    /// Fails early when nginx exits (a port taken in between, typically).
    fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + NGINX_START;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr thread catch the last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!("nginx exited ({status}): {}", self.stderr_text()));
            }
            if let Ok(mut stream) = TcpStream::connect(addr) {
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                stream
                    .write_all(b"GET /_ready HTTP/1.1\r\nHost: ready\r\nConnection: close\r\n\r\n")
                    .map_err(|e| format!("probe write: {e}"))?;
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
                if text.starts_with("http/1.1 204") && text.contains("\r\nserver: nginx") {
                    return Ok(());
                }
                return Err(format!("the port answered, but not as our nginx: {text:?}"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer within {NGINX_START:?}; stderr: {}",
                    self.stderr_text()
                ));
            }
            // Poll interval of the readiness probe (nginx cannot say when it
            // listens); the probe's answer, not the time, decides.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What nginx wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

/// A configuration around the test's `servers`, its files under `root`.
fn wrapped(root: &str, servers: &str) -> String {
    let user = if running_as_root() {
        // The workers would otherwise drop to `nobody`; keeping root keeps
        // the temp prefix writable for them.
        "user root;\n"
    } else {
        ""
    };
    format!(
        r#"{user}master_process on;
worker_processes 1;
error_log stderr;
pid {root}/nginx.pid;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{servers}
}}
"#
    )
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers and exit; a SIGKILL to
        // the master alone would leave the worker orphaned on the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

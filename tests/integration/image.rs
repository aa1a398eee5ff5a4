//! The container image (`scripts/build-image.sh`, `deploy/container/`):
//! the Dockerfile's last stage is the Containerfile the script builds; the
//! image podman builds holds the binary, its libraries, a CA bundle and a
//! non-root user, and nothing else (no shell); and jwtgate runs from the
//! image's own filesystem, as the image's user: the demo, and the image's
//! command with a policy whose keys come from a JWKS over HTTPS, found by
//! host name and trusted through the image's CA bundle.
//!
//! Containers cannot be started on the machines this runs on (the runtime is
//! refused `setrlimit`), so the image's filesystem is exported
//! (`podman create` + `podman export`) and run under `chroot --userspec`,
//! which needs root. podman comes from Debian's package, installed by
//! `.ci/run`; a machine without it, or a run as another user, fails the test
//! with a message saying so, unless `JWTGATE_SKIP_E2E=1` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TempDir;
use common::https::{Ca, HttpsServer, Reply};
use common::server::{Conn, Server};

const UID: &str = "65532";

fn read(relative: &str) -> String {
    std::fs::read_to_string(common::repo_path(relative)).unwrap()
}

/// The lines from `FROM scratch` on.
fn last_stage(file: &str) -> Vec<String> {
    let lines: Vec<String> = file.lines().map(str::to_owned).collect();
    let from = lines
        .iter()
        .rposition(|line| line == "FROM scratch")
        .expect("a FROM scratch stage");
    lines[from..].to_vec()
}

#[test]
fn the_dockerfile_ends_with_the_image_build_image_sh_builds() {
    let dockerfile = read("deploy/container/Dockerfile");
    let containerfile = read("deploy/container/Containerfile");
    // The build stage assembles the root filesystem with the script, and the
    // last stage copies exactly that directory.
    assert!(
        dockerfile.contains(
            "scripts/build-image.sh --binary target/release/jwtgate --rootfs-only /image/rootfs"
        ),
        "the Dockerfile's build stage must assemble /image/rootfs with scripts/build-image.sh"
    );
    let from_dockerfile: Vec<String> = last_stage(&dockerfile)
        .into_iter()
        .map(|line| {
            if line == "COPY --from=build /image/rootfs/ /" {
                "COPY rootfs/ /".to_owned()
            } else {
                line
            }
        })
        .collect();
    assert_eq!(
        from_dockerfile,
        last_stage(&containerfile),
        "deploy/container/Dockerfile's last stage and deploy/container/Containerfile differ"
    );
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn is_root() -> bool {
    let output = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// A built image, its filesystem exported into `root`; the image and the
/// container are removed when dropped.
struct Image {
    podman: PathBuf,
    tag: String,
    config: serde_json::Value,
    dir: TempDir,
}

impl Image {
    fn build(podman: PathBuf) -> Image {
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "localhost/jwtgate-test:{}-{}",
            std::process::id(),
            BUILT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new(common::repo_path("scripts/build-image.sh"))
            .args(["--engine", "podman", "--tag", &tag, "--binary"])
            .arg(env!("CARGO_BIN_EXE_jwtgate")));
        let mut image = Image {
            podman,
            tag,
            config: serde_json::Value::Null,
            dir: TempDir::new("image"),
        };
        let inspected = run(Command::new(&image.podman).args([
            "image",
            "inspect",
            "--format",
            "{{json .Config}}",
            &image.tag,
        ]));
        image.config = serde_json::from_slice(&inspected.stdout).unwrap();

        let created = run(Command::new(&image.podman).args(["create", &image.tag]));
        let container = String::from_utf8(created.stdout).unwrap().trim().to_owned();
        let tar = image.dir.path("image.tar");
        let exported = Command::new(&image.podman)
            .args(["export", "--output"])
            .arg(&tar)
            .arg(&container)
            .output();
        let _ = Command::new(&image.podman)
            .args(["rm", &container])
            .output();
        let exported = exported.unwrap();
        assert!(exported.status.success(), "podman export: {exported:?}");
        std::fs::create_dir(image.root()).unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(image.root())
            .arg("-xf")
            .arg(&tar));
        std::fs::remove_file(tar).unwrap();
        image
    }

    fn root(&self) -> PathBuf {
        self.dir.path("rootfs")
    }

    fn strings(&self, field: &str) -> Vec<String> {
        self.config[field]
            .as_array()
            .unwrap_or_else(|| panic!("image config {field}: {}", self.config))
            .iter()
            .map(|value| value.as_str().unwrap().to_owned())
            .collect()
    }

    /// `chroot --userspec=USER ROOT ENTRYPOINT`: the image's program as the
    /// image's user, seeing only the image's files.
    fn entrypoint(&self) -> Command {
        let user = self.config["User"].as_str().unwrap();
        let mut command = Command::new("chroot");
        command
            .arg(format!("--userspec={user}"))
            .arg(self.root())
            .args(self.strings("Entrypoint"));
        command
    }

    /// Every regular file and symbolic link, relative to the root.
    fn files(&self) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, into: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    walk(root, &entry.path(), into);
                } else {
                    let path = entry.path();
                    into.insert(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut files = BTreeSet::new();
        walk(&self.root(), &self.root(), &mut files);
        files
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new(&self.podman)
            .args(["rmi", "--force", &self.tag])
            .output();
    }
}

/// A token for the demo key set, signed by the demo's private key.
fn demo_token(sub: &str) -> String {
    let minted = run(Command::new(env!("CARGO_BIN_EXE_jwtgate")).args([
        "mint",
        "--key",
        &common::repo_path("examples/keys/demo-rs256.pk8.pem")
            .display()
            .to_string(),
        "--alg",
        "RS256",
        "--kid",
        "demo-rs256",
        "--iss",
        "https://demo.jwtgate.invalid/",
        "--aud",
        "demo-api",
        "--sub",
        sub,
        "--threads",
        "1",
    ]));
    String::from_utf8(minted.stdout).unwrap().trim().to_owned()
}

/// The identity a check request got: 200 with `x-jwt-sub`, or the status.
fn check(server: &Server, token: &str) -> Result<String, u16> {
    let mut conn = Conn::open(server.addr());
    conn.send(
        format!("GET / HTTP/1.1\r\nhost: api\r\nauthorization: Bearer {token}\r\n\r\n").as_bytes(),
    );
    let response = conn.try_read_response().unwrap_or_else(|e| {
        panic!(
            "no answer from the image's jwtgate ({}): {e}\nits stderr: {}",
            server.ready_line(),
            server.stderr_text()
        )
    });
    match response.status {
        200 => Ok(response.header("x-jwt-sub").unwrap_or_default().to_owned()),
        status => Err(status),
    }
}

/// The valid token is allowed with its subject; the same token with one
/// signature character changed is refused.
fn assert_checks(server: &Server) {
    let token = demo_token("alice");
    assert_eq!(check(server, &token), Ok("alice".to_owned()));
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        check(server, std::str::from_utf8(&forged).unwrap()),
        Err(401)
    );
}

fn podman(test: &str) -> Option<PathBuf> {
    let podman = common::required_tool(test, "podman", "podman")?;
    if is_root() {
        return Some(podman);
    }
    assert!(
        std::env::var("JWTGATE_SKIP_E2E").is_ok_and(|v| v == "1"),
        "{test}: running the image's filesystem under chroot needs root; \
         run as root or set JWTGATE_SKIP_E2E=1 to skip this test."
    );
    eprintln!("{test}: not root; skipped because JWTGATE_SKIP_E2E=1");
    None
}

#[test]
fn the_image_holds_the_binary_its_libraries_and_a_user_and_runs_from_its_own_files() {
    let Some(podman) = podman("image") else {
        return;
    };
    let image = Image::build(podman);

    assert_eq!(image.config["User"], format!("{UID}:{UID}"));
    assert_eq!(image.strings("Entrypoint"), ["/usr/local/bin/jwtgate"]);
    let exposed = image.config["ExposedPorts"].as_object().unwrap();
    assert_eq!(
        exposed.keys().collect::<Vec<_>>(),
        ["8080/tcp", "9191/tcp", "9901/tcp"],
        "the ports the command listens on"
    );
    let command = image.strings("Cmd");
    for (flag, value) in [
        ("--config", "/etc/jwtgate/jwtgate.toml"),
        ("--listen", "0.0.0.0:8080"),
        ("--admin-listen", "0.0.0.0:9901"),
    ] {
        let at = command.iter().position(|arg| arg == flag).unwrap();
        assert_eq!(command[at + 1], value, "{flag} in the image's command");
    }

    // Exactly: the binary, the dynamic loader and libraries, the CA bundle,
    // and the user's files. No shell, no other program.
    let files = image.files();
    let (libraries, others): (Vec<&String>, Vec<&String>) = files
        .iter()
        .partition(|file| file.starts_with("lib/") || file.starts_with("lib64/"));
    assert_eq!(
        others,
        [
            "etc/group",
            "etc/nsswitch.conf",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            "usr/local/bin/jwtgate",
        ]
    );
    assert!(
        libraries.iter().any(|lib| lib.contains("libc.so")),
        "{libraries:?}"
    );
    assert!(
        libraries.iter().all(|lib| lib.contains(".so")),
        "{libraries:?}"
    );
    let passwd = std::fs::read_to_string(image.root().join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(&format!("jwtgate:x:{UID}:{UID}:")),
        "{passwd}"
    );

    // The demo, as the image's user with the image's files only.
    let demo = Server::start_command(
        image.entrypoint(),
        &[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    assert_checks(&demo);
    drop(demo);

    // The image's own command, its policy mounted at /etc/jwtgate/jwtgate.toml
    // and its keys fetched over HTTPS from a server whose CA the bundle in the
    // image holds (an organisation's CA added to a derived image).
    let ca = Ca::new("image");
    let mut jwks = HttpsServer::start(&ca);
    jwks.set(
        "/jwks",
        Reply::json(std::fs::read(common::repo_path("examples/keys/demo.jwks.json")).unwrap()),
    );
    let bundle = image.root().join("etc/ssl/certs/ca-certificates.crt");
    let mut certificates = std::fs::read_to_string(&bundle).unwrap();
    certificates.push_str(ca.pem());
    std::fs::write(&bundle, certificates).unwrap();
    // The JWKS by host name, resolved the way the image resolves one: its
    // nsswitch.conf and libraries, and the /etc/hosts a container runtime
    // mounts.
    std::fs::write(image.root().join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(
        image.root().join("etc/jwtgate/jwtgate.toml"),
        format!(
            r#"default_action = "deny"

[[rule]]
name = "api"
paths = ["/**"]
token_configs = ["demo"]

[[token_config]]
name = "demo"
jwks_url = "https://localhost:{port}/jwks"
ca_file = "/etc/ssl/certs/ca-certificates.crt"
algorithms = ["RS256"]
issuer = "https://demo.jwtgate.invalid/"
audiences = ["demo-api"]
"#,
            port = jwks.addr().port()
        ),
    )
    .unwrap();
    let args: Vec<String> = command
        .iter()
        .map(|arg| match arg.as_str() {
            "0.0.0.0:8080" | "0.0.0.0:9901" => "127.0.0.1:0".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let served = Server::start_command(image.entrypoint(), &args);
    assert!(jwks.hits("/jwks") >= 1);
    assert_checks(&served);
    drop(served);
    jwks.down();
}

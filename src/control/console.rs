//! The command line's report: one line per event, on stderr, and the
//! readiness line on stdout, which tests and scripts parse.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a console prints

use std::io::Write as _;
use std::path::Path;

use super::{Report, Stop, Trigger};
use crate::UnixTime;
use crate::config::{ReloadError, Reloaded};
use crate::diagnostics::{Level, line};
use crate::server::Server;

/// Writes what the control plane reports as `jwtgate serve` does.
#[derive(Debug, Default)]
pub struct Console {
    /// After the readiness line, print the demo's ready-to-paste curl lines.
    pub demo: bool,
}

impl Report for Console {
    fn file_warning(&mut self, file: &Path, warning: &str) {
        line(
            Level::Warning,
            &format!("jwtgate: {}: {warning}", file.display()),
        );
    }

    fn warning(&mut self, warning: &str) {
        line(Level::Warning, &format!("jwtgate: warning: {warning}"));
    }

    fn ready(&mut self, server: &Server) {
        let admin = server
            .admin_addr()
            .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
        let grpc = server
            .grpc_addr()
            .map(|addr| format!(", grpc on {addr}"))
            .unwrap_or_default();
        let verify = server
            .verify_addr()
            .map(|addr| format!(", verify on {addr}"))
            .unwrap_or_default();
        // A stdout that is closed (a pipe whose reader has gone) loses these
        // lines; it never stops the server, as `println!` would.
        let mut stdout = std::io::stdout().lock();
        // One line, parsed by tests and scripts: the admin address stays last.
        let _ = writeln!(
            stdout,
            "jwtgate serve: listening on {} (shards {}, io {}){grpc}{verify}, admin on {admin}",
            server.local_addr(),
            server.shard_count(),
            server.io()
        );
        if self.demo {
            match crate::demo::curl_lines(server.local_addr(), UnixTime::now()) {
                Ok(lines) => {
                    let _ = writeln!(stdout, "{lines}");
                }
                Err(error) => line(
                    Level::Warning,
                    &format!("jwtgate: warning: no demo lines: {error}"),
                ),
            }
        }
        let _ = stdout.flush();
    }

    fn reloaded(&mut self, file: &Path, trigger: Trigger, result: &Result<Reloaded, ReloadError>) {
        let why = trigger.describe();
        match result {
            Ok(reloaded) => {
                for warning in &reloaded.warnings {
                    self.file_warning(file, warning);
                }
                line(
                    Level::Info,
                    &format!(
                        "jwtgate: reloaded {} ({why}): {} token configurations, {} rules",
                        file.display(),
                        reloaded.token_configs,
                        reloaded.rules
                    ),
                );
                for change in &reloaded.key_changes {
                    line(Level::Info, &format!("jwtgate: {change}"));
                }
                if reloaded.revocation_changed {
                    self.warning(
                        "[revocation] changed; the running store and its settings stay until restart",
                    );
                }
                if !reloaded.server_changed.is_empty() {
                    self.warning(&format!(
                        "[server] settings changed: {}; they take effect on restart",
                        reloaded.server_changed.join(", ")
                    ));
                }
            }
            Err(error) => line(
                Level::Warning,
                &format!(
                    "jwtgate: reload failed ({why}), keeping the running configuration: {error}"
                ),
            ),
        }
    }

    fn summary(&mut self, summary: &str) {
        line(Level::Info, summary);
    }

    fn stopping(&mut self, stop: Stop) {
        line(
            Level::Info,
            &format!("jwtgate serve: {}, draining", stop.name()),
        );
    }

    fn stopped_during_startup(&mut self) {
        line(
            Level::Info,
            "jwtgate serve: stopped during start-up, before any key set arrived",
        );
    }

    fn stopped(&mut self, summary: &str) {
        line(Level::Info, summary);
        line(Level::Info, "jwtgate serve: stopped");
    }
}

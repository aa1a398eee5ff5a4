//! The control plane: runs the service from a [`Launch`] description and
//! returns how it stopped. It owns start-up (loading the configuration,
//! merging the settings layers, waiting for fetched key sets), the signals
//! (blocking on signal-hook in a thread of their own, so a signal is acted on
//! at once), the reloader, the periodic summary, and the orderly shutdown.
//! What it has to say goes to a [`Report`] ([`Console`] writes the command
//! line's lines), so that start-up, reload and shutdown can be driven and
//! observed in-process, by a test or an embedder, through a [`Controller`].
//!
//! Neighbours: [`crate::config`] loads files and builds the reloader,
//! [`crate::settings`] merges and checks the settings, `crate::jwks`
//! fetches keys, [`crate::server`] serves.

mod console;
mod notify;
mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::Verifier;
use crate::authz::Clock;
use crate::config::{ConfigError, Loaded, ReloadError, Reloaded, Reloader, Stamp};
use crate::jwks::KeySink;
use crate::jwks::Manager;
use crate::revocation::RevocationManager;
use crate::revocation::RevocationSink;
use crate::server::{ServeError, ServeOptions, Server};
use crate::settings::{Refused, Runtime, ServerLayer};
use crate::snapshot::{Publisher, Snapshot};

/// Named by [`LaunchError::MissingKeys`] and [`VerifierError::MissingKeys`].
pub use crate::jwks::StartupError;
pub use console::Console;

/// Where the policy comes from.
#[derive(Debug)]
pub enum PolicySource {
    /// A configuration file: token configurations, rules and a `[server]`
    /// table, reloaded when it or a key file changes and on SIGHUP.
    File(PathBuf),
    /// One verifier for every request (`serve --jwks`, `serve --demo`).
    Single(Box<Verifier>),
}

/// What to run: the policy, the server settings the caller gives on top of
/// the file's `[server]` table, and how signals are handled.
#[derive(Debug)]
pub struct Launch {
    /// The policy.
    pub policy: PolicySource,
    /// Server settings that override the file's (the command line's flags).
    pub settings: ServerLayer,
    /// The clock and the benchmark switch.
    pub runtime: Runtime,
    /// Take over SIGTERM, SIGINT (stop) and SIGHUP (reopen the access log,
    /// reload). An embedder that handles signals itself sets this to false
    /// and uses a [`Controller`]. After [`run`] returns, these signals stay
    /// caught and are ignored (signal-hook cannot put the default action
    /// back), so a process that goes on after serving should leave this off.
    pub handle_signals: bool,
    commands: Sender<Command>,
    inbox: Receiver<Command>,
}

impl Launch {
    /// A launch of `policy` with `settings` over the file's, handling signals.
    pub fn new(policy: PolicySource, settings: ServerLayer, runtime: Runtime) -> Launch {
        let (commands, inbox) = crossbeam_channel::unbounded();
        Launch {
            policy,
            settings,
            runtime,
            handle_signals: true,
            commands,
            inbox,
        }
    }

    /// A handle that stops or reloads the service this launch runs.
    pub fn controller(&self) -> Controller {
        Controller(self.commands.clone())
    }
}

/// Stops or reloads a running service from another thread.
#[derive(Debug, Clone)]
pub struct Controller(Sender<Command>);

impl Controller {
    /// Drains and stops the service, as SIGTERM does.
    pub fn stop(&self) {
        // The service may have stopped already; then there is nothing to do.
        let _ = self.0.send(Command::Stop(Stop::Asked));
    }

    /// Reopens the access log and reloads the configuration, as SIGHUP does.
    pub fn hang_up(&self) {
        let _ = self.0.send(Command::HangUp);
    }
}

/// What the control loop is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Stop(Stop),
    HangUp,
}

/// Why the service stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM.
    Terminate,
    /// SIGINT.
    Interrupt,
    /// [`Controller::stop`].
    Asked,
}

impl Stop {
    /// The name the command line prints.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Terminate => "SIGTERM",
            Stop::Interrupt => "SIGINT",
            Stop::Asked => "stop asked",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Served, then drained on this request.
    Drained(Stop),
    /// Asked to stop while waiting for key sets, before serving.
    DuringStartup(Stop),
}

/// What made a reload happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP or [`Controller::hang_up`].
    HangUp,
    /// The file or a key file changed.
    FileChanged,
}

impl Trigger {
    /// The words the command line prints.
    pub fn describe(self) -> &'static str {
        match self {
            Trigger::HangUp => "SIGHUP",
            Trigger::FileChanged => "file changed",
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The configuration file does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The settings, once merged, contradict each other.
    #[error(transparent)]
    Settings(#[from] Refused),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The key manager's thread could not start.
    #[error("cannot start the key manager: {0}")]
    KeyManager(std::io::Error),
    /// The revocation store could not be read at start-up.
    #[error("{0}")]
    Revocations(String),
    /// Key sets that must be there at start-up did not arrive.
    #[error("{}", join_lines(.0))]
    MissingKeys(Vec<StartupError>),
    /// The server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

fn join_lines(errors: &[StartupError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    // The command line prefixes the first line; the rest get theirs here.
    lines.join("\njwtgate: ")
}

/// What the control plane tells its operator. Every method has the
/// command line's wording in [`Console`].
pub trait Report {
    /// Keys skipped in `file` (or another load-time warning about it).
    fn file_warning(&mut self, file: &Path, warning: &str);
    /// A warning about how the service runs.
    fn warning(&mut self, warning: &str);
    /// The service is up: its listeners are bound and serving.
    fn ready(&mut self, server: &Server);
    /// A reload was tried.
    fn reloaded(&mut self, file: &Path, trigger: Trigger, result: &Result<Reloaded, ReloadError>);
    /// A periodic summary line.
    fn summary(&mut self, line: &str);
    /// A stop was asked for; the service drains.
    fn stopping(&mut self, stop: Stop);
    /// Stopped during start-up, before serving.
    fn stopped_during_startup(&mut self);
    /// Stopped after draining; `summary` covers the whole run.
    fn stopped(&mut self, summary: &str);
}

/// How often the configuration file and its key files are looked at.
const FILE_POLL: Duration = Duration::from_millis(200);

/// Without summaries, counts are still collected this often, so that shards
/// let go of what they counted under replaced configurations.
const COLLECT_EVERY: Duration = Duration::from_secs(60);

/// What the reloader needs of the configuration file loaded at start-up.
struct FromFile {
    path: PathBuf,
    stamp: Stamp,
    server: ServerLayer,
    key_files: Vec<PathBuf>,
}

/// Reads `path`, reporting its warnings; the stamp is taken first, so that a
/// write during the load is seen as a change by the reloader.
fn load_file(path: &Path, report: &mut dyn Report) -> Result<(Stamp, Loaded), ConfigError> {
    let stamp = Stamp::of(path);
    let loaded = crate::config::load(path)?;
    for warning in &loaded.warnings {
        report.file_warning(path, warning);
    }
    Ok((stamp, loaded))
}

/// Runs the service until it is asked to stop; returns how it stopped.
pub fn run(launch: Launch, report: &mut dyn Report) -> Result<Stopped, LaunchError> {
    // Registered before any thread starts, so a signal during start-up is not lost.
    let signals = if launch.handle_signals {
        Some(signals::forward(launch.commands.clone()).map_err(LaunchError::Signals)?)
    } else {
        None
    };
    let result = serve(launch, report);
    if let Some(signals) = signals {
        signals.close();
    }
    result
}

fn serve(launch: Launch, report: &mut dyn Report) -> Result<Stopped, LaunchError> {
    let Launch {
        policy,
        settings,
        runtime,
        inbox,
        ..
    } = launch;
    let (snapshot, file) = match policy {
        PolicySource::File(path) => {
            let (stamp, loaded) = load_file(&path, report)?;
            let Loaded {
                policy,
                keys,
                server,
                key_files,
                revocation,
                ..
            } = loaded;
            let file = FromFile {
                path,
                stamp,
                server,
                key_files,
            };
            (Snapshot::new(policy, keys), Some((file, revocation)))
        }
        PolicySource::Single(verifier) => (Snapshot::single(*verifier), None),
    };
    let (file, revocation) = match file {
        Some((file, revocation)) => (Some(file), revocation),
        None => (None, None),
    };
    let layers = match &file {
        Some(file) => settings.over(file.server.clone()),
        None => settings,
    };
    let options = layers.resolve(runtime)?;
    let publisher = Arc::new(Publisher::new(snapshot));
    // With a configuration file the manager runs even without fetched keys
    // yet, so that a reload can add some.
    let keys = match &file {
        Some(_) => Some(start_manager(&publisher).map_err(LaunchError::KeyManager)?),
        None => None,
    };
    if let Some(manager) = &keys {
        // A stop during the wait ends it: SIGTERM must not take startup_timeout.
        let mut asked = None;
        let waited = manager.wait_for_keys(|| {
            asked = asked.or_else(|| stop_in(&inbox));
            asked.is_some()
        });
        let Some(missing) = waited else {
            manager.stop();
            report.stopped_during_startup();
            return Ok(Stopped::DuringStartup(asked.unwrap_or(Stop::Asked)));
        };
        if !missing.is_empty() {
            manager.stop();
            return Err(LaunchError::MissingKeys(missing));
        }
        for (name, keys) in publisher.current().configs() {
            if !keys.available() {
                report.warning(&format!(
                    "token_config {name:?} starts without keys (allow_start_without_keys): not ready, its tokens get keys_unavailable"
                ));
            }
        }
    }
    // Read before the listeners open, so that no request is ever decided
    // without the revocations; kept (and followed) until the service stops.
    let _revocations = match revocation.clone() {
        Some(settings) => {
            let sink: Arc<dyn RevocationSink> = Arc::clone(&publisher) as Arc<dyn RevocationSink>;
            // A stop during the first read ends it, as during the key wait.
            let mut asked = None;
            let pinned_now = match options.authz.clock {
                Clock::System => None,
                Clock::Fixed(now) => Some(now),
            };
            let started = RevocationManager::start(settings, sink, pinned_now, &mut || {
                asked = asked.or_else(|| stop_in(&inbox));
                asked.is_some()
            });
            match started {
                Ok(manager) => Some(manager),
                Err(error) => {
                    if let Some(manager) = &keys {
                        manager.stop();
                    }
                    if let Some(stop) = asked {
                        report.stopped_during_startup();
                        return Ok(Stopped::DuringStartup(stop));
                    }
                    return Err(LaunchError::Revocations(error));
                }
            }
        }
        None => None,
    };
    let server = match Server::start(Arc::clone(publisher.shared()), &options) {
        Ok(server) => server,
        Err(error) => {
            if let Some(manager) = &keys {
                manager.stop();
            }
            return Err(error.into());
        }
    };
    // Watching starts before readiness is announced, so that a change made
    // as soon as the server is up is never missed.
    let mut reloader = file.map(|file| {
        let reloader = Reloader::new(
            &file.path,
            file.stamp,
            file.server,
            file.key_files,
            Arc::clone(&publisher),
        )
        .with_key_manager(keys.clone())
        .with_revocation(revocation.clone());
        (file.path, reloader)
    });
    if let Some(reason) = server.uring_fallback() {
        report.warning(&format!(
            "io_uring is unavailable ({reason}); serving with epoll"
        ));
    }
    if options.authz.danger_skip_verification {
        report.warning("--danger-no-verify: every request is allowed unverified");
    }
    report.ready(&server);
    notify::notify(&format!(
        "READY=1\nSTATUS=serving on {}\nMAINPID={}",
        server.local_addr(),
        std::process::id()
    ));
    let stop = control_loop(&server, &options, &inbox, reloader.as_mut(), report);
    notify::notify("STOPPING=1\nSTATUS=draining");
    report.stopping(stop);
    let summary = server.shutdown();
    if let Some(manager) = &keys {
        manager.stop();
    }
    report.stopped(&summary);
    Ok(Stopped::Drained(stop))
}

/// Serves commands, file changes and summaries until a stop.
fn control_loop(
    server: &Server,
    options: &ServeOptions,
    inbox: &Receiver<Command>,
    mut reloader: Option<&mut (PathBuf, Reloader)>,
    report: &mut dyn Report,
) -> Stop {
    let summaries = options.summary_interval.is_some();
    let collect = crossbeam_channel::tick(options.summary_interval.unwrap_or(COLLECT_EVERY));
    let file_poll = match reloader {
        Some(_) => crossbeam_channel::tick(FILE_POLL),
        None => crossbeam_channel::never(),
    };
    loop {
        crossbeam_channel::select! {
            recv(inbox) -> command => match command {
                Ok(Command::Stop(stop)) => return stop,
                Ok(Command::HangUp) => {
                    // Also the signal logrotate sends after moving the log away.
                    server.reopen_access_log();
                    match reloader.as_deref_mut() {
                        Some((path, reloader)) => {
                            let result = reloader.reload();
                            reloaded(server, path, Trigger::HangUp, &result, report);
                        }
                        None => report.warning("SIGHUP: nothing to reload without --config"),
                    }
                }
                // The launch holds a sender for as long as it runs.
                Err(_) => return Stop::Asked,
            },
            recv(file_poll) -> _ => {
                if let Some((path, reloader)) = reloader.as_deref_mut()
                    && let Some(result) = reloader.poll()
                {
                    reloaded(server, path, Trigger::FileChanged, &result, report);
                }
            },
            recv(collect) -> _ => {
                if summaries {
                    report.summary(&server.summary());
                } else {
                    server.collect();
                }
            },
        }
    }
}

fn reloaded(
    server: &Server,
    path: &Path,
    trigger: Trigger,
    result: &Result<Reloaded, ReloadError>,
    report: &mut dyn Report,
) {
    match result {
        Ok(_) => server.status().reloaded(),
        Err(_) => server.status().reload_failed(),
    }
    report.reloaded(path, trigger, result);
}

/// The first stop waiting in `inbox`, if any (other commands are dropped:
/// during start-up there is nothing to reload yet).
fn stop_in(inbox: &Receiver<Command>) -> Option<Stop> {
    inbox.try_iter().find_map(|command| match command {
        Command::Stop(stop) => Some(stop),
        Command::HangUp => None,
    })
}

/// Why `verify --config` has no verifier for a token configuration.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The file does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key manager's thread could not start.
    #[error("cannot start the key manager: {0}")]
    KeyManager(std::io::Error),
    /// The configuration's keys could not be fetched.
    #[error(transparent)]
    MissingKeys(StartupError),
    /// Fetched, but no key set was usable.
    #[error("token_config {0:?}: no key set was fetched")]
    NoKeys(String),
    /// No configuration of that name.
    #[error("{file}: no token configuration is named {name:?} (defined: {defined})")]
    Unknown {
        /// The configuration file.
        file: String,
        /// The name asked for.
        name: String,
        /// The names it defines, comma-separated.
        defined: String,
    },
}

/// The verifier of token configuration `name` in the configuration `file`,
/// with its keys fetched once if it fetches them: the start-up of `serve`,
/// for one configuration and without serving.
pub fn verifier_for(
    file: &Path,
    name: &str,
    report: &mut dyn Report,
) -> Result<Arc<Verifier>, VerifierError> {
    let mut verifiers = verifiers_for(file, &[name.to_owned()], report)?;
    verifiers
        .pop()
        .map(|(_, verifier)| verifier)
        .ok_or_else(|| VerifierError::NoKeys(name.to_owned()))
}

/// The verifiers of the token configurations `names` of the configuration
/// `file`, in that order, each with its keys fetched once if it fetches them.
pub fn verifiers_for(
    file: &Path,
    names: &[String],
    report: &mut dyn Report,
) -> Result<Vec<(String, Arc<Verifier>)>, VerifierError> {
    let (_, loaded) = load_file(file, report)?;
    let defined: Vec<String> = loaded
        .policy
        .configs
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    let fetches = loaded.keys.iter().any(|keys| keys.remote().is_some());
    let publisher = Arc::new(Publisher::new(Snapshot::new(loaded.policy, loaded.keys)));
    if fetches {
        let manager = start_manager(&publisher).map_err(VerifierError::KeyManager)?;
        let missing = manager.wait_for_keys(|| false).unwrap_or_default();
        manager.stop();
        if let Some(error) = missing
            .into_iter()
            .find(|error| names.contains(&error.config))
        {
            return Err(VerifierError::MissingKeys(error));
        }
    }
    let snapshot = publisher.current();
    names
        .iter()
        .map(|name| {
            let (_, keys) = snapshot
                .configs()
                .find(|(own, _)| own == name)
                .ok_or_else(|| VerifierError::Unknown {
                    file: file.display().to_string(),
                    name: name.clone(),
                    defined: defined.join(", "),
                })?;
            if !keys.available() {
                return Err(VerifierError::NoKeys(name.clone()));
            }
            Ok((name.clone(), Arc::clone(keys.verifier())))
        })
        .collect()
}

/// The key manager over the remote sources of the snapshot `publisher` has
/// in force, putting what it fetches in force through it.
fn start_manager(publisher: &Arc<Publisher>) -> std::io::Result<Arc<Manager>> {
    let snapshot = publisher.current();
    let configs: Vec<(&str, &crate::jwks::TokenKeys)> = snapshot.configs().collect();
    let sink: Arc<dyn KeySink> = Arc::clone(publisher) as Arc<dyn KeySink>;
    Manager::start(sink, &configs)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use crossbeam_channel::{Sender, unbounded};

    use super::*;
    use crate::settings::AdminListen;

    #[derive(Debug)]
    enum Event {
        Ready(SocketAddr),
        Reloaded(Trigger, Result<usize, String>),
        // Read through `Debug` when an assertion about the events fails.
        Warning(#[allow(dead_code)] String),
        Stopping(Stop),
        StoppedDuringStartup,
        Stopped,
    }

    /// A report that hands every event to the test.
    struct Recorder(Sender<Event>);

    impl Report for Recorder {
        fn file_warning(&mut self, _: &Path, warning: &str) {
            let _ = self.0.send(Event::Warning(warning.to_owned()));
        }
        fn warning(&mut self, warning: &str) {
            let _ = self.0.send(Event::Warning(warning.to_owned()));
        }
        fn ready(&mut self, server: &Server) {
            let _ = self.0.send(Event::Ready(server.local_addr()));
        }
        fn reloaded(&mut self, _: &Path, trigger: Trigger, result: &Result<Reloaded, ReloadError>) {
            let result = match result {
                Ok(reloaded) => Ok(reloaded.rules),
                Err(error) => Err(error.to_string()),
            };
            let _ = self.0.send(Event::Reloaded(trigger, result));
        }
        fn summary(&mut self, _: &str) {}
        fn stopping(&mut self, stop: Stop) {
            let _ = self.0.send(Event::Stopping(stop));
        }
        fn stopped_during_startup(&mut self) {
            let _ = self.0.send(Event::StoppedDuringStartup);
        }
        fn stopped(&mut self, _: &str) {
            let _ = self.0.send(Event::Stopped);
        }
    }

    /// A folder of its own for one test's configuration file.
    fn config_file(text: &str) -> PathBuf {
        let path = crate::test_support::scratch_dir("control").join("jwtgate.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn policy_text(rules: usize) -> String {
        let mut text = crate::test_support::with_demo_keys(
            "default_action = \"deny\"\n[[token_config]]\nname = \"demo\"\n@JWKS@\n",
        );
        for rule in 0..rules {
            text.push_str(&format!(
                "[[rule]]\nname = \"r{rule}\"\npaths = [\"/r{rule}/**\"]\ntoken_configs = [\"demo\"]\n"
            ));
        }
        text
    }

    /// Loopback, one shard, no admin port: what every test here runs with.
    fn small() -> ServerLayer {
        ServerLayer {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_listen: Some(AdminListen::Off),
            shards: Some(1),
            ..ServerLayer::default()
        }
    }

    fn launch(path: &Path, settings: ServerLayer) -> Launch {
        let mut launch = Launch::new(
            PolicySource::File(path.to_owned()),
            settings,
            Runtime::default(),
        );
        launch.handle_signals = false;
        launch
    }

    fn next(events: &crossbeam_channel::Receiver<Event>) -> Event {
        events
            .recv_timeout(Duration::from_secs(60))
            .expect("the control plane reports within a minute")
    }

    fn status_of(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_owned()
    }

    #[test]
    fn serves_reloads_on_hang_up_keeps_a_broken_file_out_and_drains_on_stop() {
        let path = config_file(&policy_text(1));
        let launch = launch(&path, small());
        let controller = launch.controller();
        let (sender, events) = unbounded();
        let running = std::thread::spawn(move || run(launch, &mut Recorder(sender)));
        let Event::Ready(addr) = next(&events) else {
            panic!("not ready")
        };
        assert_eq!(status_of(addr, "/r0/x"), "HTTP/1.1 401 Unauthorized");
        // The default action denies what no rule covers.
        assert_eq!(status_of(addr, "/r1/x"), "HTTP/1.1 403 Forbidden");

        std::fs::write(&path, policy_text(2)).unwrap();
        controller.hang_up();
        match next(&events) {
            Event::Reloaded(Trigger::HangUp, Ok(2)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(status_of(addr, "/r1/x"), "HTTP/1.1 401 Unauthorized");

        std::fs::write(&path, "default_action = \"maybe\"\n").unwrap();
        controller.hang_up();
        match next(&events) {
            Event::Reloaded(Trigger::HangUp, Err(error)) => {
                assert!(error.contains("default_action"), "{error}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(status_of(addr, "/r1/x"), "HTTP/1.1 401 Unauthorized");

        controller.stop();
        assert!(matches!(next(&events), Event::Stopping(Stop::Asked)));
        assert!(matches!(next(&events), Event::Stopped));
        assert_eq!(
            running.join().unwrap().unwrap(),
            Stopped::Drained(Stop::Asked)
        );
    }

    #[test]
    fn a_stop_while_key_sets_are_awaited_ends_start_up_without_serving() {
        // Nothing listens on port 1: the fetch fails, and start-up would wait
        // its whole ten minutes for it.
        let path = config_file(
            "default_action = \"deny\"\n[[token_config]]\nname = \"remote\"\n\
             jwks_url = \"https://127.0.0.1:1/jwks.json\"\njwks_allowed_hosts = [\"127.0.0.1\"]\n\
             startup_timeout = \"10m\"\nalgorithms = [\"RS256\"]\nissuer = \"https://idp.test/\"\n",
        );
        let launch = launch(&path, small());
        let controller = launch.controller();
        controller.stop();
        let (sender, events) = unbounded();
        let stopped = run(launch, &mut Recorder(sender)).unwrap();
        assert_eq!(stopped, Stopped::DuringStartup(Stop::Asked));
        assert!(matches!(next(&events), Event::StoppedDuringStartup));
    }

    #[test]
    fn flags_that_contradict_the_file_are_refused_before_anything_starts() {
        let mut text = policy_text(1);
        text.insert_str(0, "[server]\nmax_request_line_bytes = 12288\n");
        // As a table header must come after top-level keys, move them first.
        let text = text.replacen(
            "[server]\nmax_request_line_bytes = 12288\ndefault_action = \"deny\"\n",
            "default_action = \"deny\"\n[server]\nmax_request_line_bytes = 12288\n",
            1,
        );
        let path = config_file(&text);
        let flags = ServerLayer {
            max_header_bytes: Some(10 * 1024),
            ..small()
        };
        let (sender, _events) = unbounded();
        let error = run(launch(&path, flags), &mut Recorder(sender)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "server.max_request_line_bytes: cannot exceed server.max_header_bytes"
        );
    }
}

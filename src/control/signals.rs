//! SIGTERM, SIGINT and SIGHUP as control commands: a thread blocks on
//! signal-hook's iterator and forwards each signal the moment it arrives.

use crossbeam_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::{Command, Stop};

/// Stops forwarding: the thread ends and its actions are removed; the
/// process then ignores these signals (signal-hook does not restore the
/// default action), which is what a shutdown wants.
#[derive(Debug)]
pub(super) struct Forwarding(Handle);

impl Forwarding {
    pub(super) fn close(self) {
        self.0.close();
    }
}

/// Registers the handlers (before any other thread starts, so a signal during
/// start-up is queued, not lost) and forwards signals to `commands`.
pub(super) fn forward(commands: Sender<Command>) -> std::io::Result<Forwarding> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("jwtgate-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                let command = match signal {
                    SIGHUP => Command::HangUp,
                    SIGINT => Command::Stop(Stop::Interrupt),
                    _ => Command::Stop(Stop::Terminate),
                };
                if commands.send(command).is_err() {
                    break;
                }
            }
        })?;
    Ok(Forwarding(handle))
}

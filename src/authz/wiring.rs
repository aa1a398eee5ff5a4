//! A line on stderr when a check request is refused for how it was sent
//! rather than for its token: a 400 `bad_request` or a 403 `untrusted_proxy`.
//! Behind nginx `auth_request` such a refusal reaches the client as nginx's
//! own 500 and the reason in jwtgate's body is discarded, so a proxy wired
//! without the headers its recipe sets (`X-Original-Method`, `X-Original-URI`)
//! would otherwise show nowhere but in a status code.
//!
//! At most one line per shard every [`EVERY`], with a count of the ones held
//! back, so that a client sending malformed requests on purpose cannot fill
//! the disk through it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::diagnostics::warn;
use crate::metrics::{Decision, Face};

/// The least time between two lines of one shard.
pub(super) const EVERY: Duration = Duration::from_secs(10);

/// One shard's notices: when the next may be written, and how many were
/// held back since the last.
#[derive(Debug, Default)]
pub(super) struct WiringNotices {
    next: Option<Instant>,
    held_back: u64,
    /// No lines at all (a tool deciding samples, not a service).
    silent: bool,
}

impl WiringNotices {
    /// Notices that never write (`check-config`'s sample decisions).
    pub(super) fn silent() -> WiringNotices {
        WiringNotices {
            silent: true,
            ..WiringNotices::default()
        }
    }

    /// Notes a decided check; writes a line when it was refused for how it
    /// was sent and the last line is [`EVERY`] old.
    pub(super) fn note(
        &mut self,
        shard: usize,
        face: Face,
        decision: Decision,
        reason: &'static str,
        peer: IpAddr,
    ) {
        if self.silent {
            return;
        }
        let status = match decision {
            Decision::BadRequest => 400,
            Decision::UntrustedProxy => 403,
            _ => return,
        };
        let now = Instant::now();
        if self.next.is_some_and(|next| now < next) {
            self.held_back += 1;
            return;
        }
        let held_back = std::mem::take(&mut self.held_back);
        let more = match held_back {
            0 => String::new(),
            n => format!(" ({n} more since the last such line)"),
        };
        warn(format_args!(
            "shard {shard} answered {status} {} to a check from {peer} on the {} face: {reason}{more}; \
             if every check gets this, the proxy in front does not send what its recipe in README.md does",
            decision.name(),
            face.name(),
        ));
        self.next = Some(now + EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_for_how_a_check_was_sent_count_and_the_rest_wait() {
        let mut notices = WiringNotices::default();
        let peer = IpAddr::from([127, 0, 0, 1]);
        notices.note(0, Face::Http, Decision::NoRule, "no rule", peer);
        assert_eq!(
            notices.next, None,
            "a policy decision is not a wiring mistake"
        );
        notices.note(0, Face::Http, Decision::BadRequest, "why", peer);
        assert!(notices.next.is_some());
        for _ in 0..3 {
            notices.note(0, Face::Http, Decision::UntrustedProxy, "why", peer);
        }
        assert_eq!(notices.held_back, 3);
    }
}

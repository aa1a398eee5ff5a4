//! `jwtgate check-config`: proves a configuration loads, shows it as jwtgate
//! will run it (defaults filled in, keys by kid and algorithm, never key
//! material), the rules in precedence order, and where sample requests go.

use std::fmt::Write as _;
use std::path::Path;

use crate::access_log::Destination;
use crate::config::Loaded;
use crate::http::OriginalRequest;
use crate::policy::{
    Action, DefaultAction, Forwarded, Mode, PathBuffers, Policy, Route, Rule, TokenSource,
};
use crate::server::{IoMode, ServeOptions};
use crate::{SubjectMatch, Validation};

fn source_text(source: &TokenSource) -> String {
    match source {
        TokenSource::Header {
            name,
            scheme: Some(scheme),
        } => format!("header {name} ({scheme} or raw)"),
        TokenSource::Header { name, scheme: None } => format!("header {name} (raw)"),
        TokenSource::Cookie { name } => format!("cookie {name}"),
        TokenSource::Query { name } => format!("query parameter {name}"),
    }
}

/// Every setting of a validation, one `name: value` per line.
fn validation_text(validation: &Validation) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "algorithms: {}", validation.algorithms());
    let _ = writeln!(
        text,
        "issuer: {}",
        validation.expected_issuer().unwrap_or("(any)")
    );
    let _ = writeln!(
        text,
        "audiences: {}",
        list(validation.expected_audiences().map(str::to_owned), "(any)")
    );
    let _ = writeln!(text, "leeway: {}s", validation.leeway_seconds());
    let _ = writeln!(
        text,
        "require: {}",
        list(
            validation.required_claims().iter().map(ToString::to_string),
            "(nothing)"
        )
    );
    if let Some(lifetime) = validation.max_lifetime_seconds() {
        let _ = writeln!(text, "max_lifetime: {lifetime}s");
    }
    if let Some(typ) = validation.expected_typ() {
        let _ = writeln!(text, "typ: {typ}");
    }
    match validation.expected_subject() {
        Some(SubjectMatch::Exact(subject)) => {
            let _ = writeln!(text, "subject: {subject}");
        }
        Some(SubjectMatch::Prefix(prefix)) => {
            let _ = writeln!(text, "subject_prefix: {prefix}");
        }
        None => {}
    }
    let _ = writeln!(text, "max_token_len: {}", validation.token_limit());
    text
}

fn list(items: impl IntoIterator<Item = String>, empty: &str) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

fn rule_text(policy: &Policy, rule: &Rule) -> String {
    let mut text = String::new();
    let names = rule
        .token_configs
        .iter()
        .filter_map(|&i| policy.configs.get(i))
        .map(|config| config.name.to_string());
    let _ = write!(
        text,
        "hosts {}; paths {}; methods {}; token_configs {} ({}); action {}",
        list(rule.hosts.iter().map(|h| h.text()), "any"),
        list(rule.paths.iter().map(|p| p.as_str().to_owned()), "any"),
        list(rule.methods.iter().map(ToString::to_string), "any"),
        list(names, "none"),
        match rule.mode {
            Mode::Any => "any one valid",
            Mode::All => "all valid",
        },
        match rule.action {
            Action::Block => "block",
            Action::Log => "log",
        },
    );
    if !rule.exclude.is_empty() {
        let excluded = rule.exclude.iter().map(|e| match &e.method {
            Some(method) => format!("{method} {}", e.path.as_str()),
            None => e.path.as_str().to_owned(),
        });
        let _ = write!(text, "; exclude {}", list(excluded, ""));
    }
    if rule.allow_missing {
        text.push_str("; a request without a token is allowed");
    }
    if !rule.require_claims.is_empty() {
        let required = rule.require_claims.iter().map(|r| match &r.test {
            crate::policy::ClaimTest::Contains(word) => format!("{} contains {word:?}", r.claim),
            crate::policy::ClaimTest::Equals(value) => format!("{} = {value:?}", r.claim),
        });
        let _ = write!(text, "; require {}", list(required, ""));
    }
    if !rule.forward_claims.is_empty() {
        let forwarded = rule
            .forward_claims
            .iter()
            .map(|f| format!("{} -> {}", f.claim, f.header));
        let _ = write!(text, "; forward {}", list(forwarded, ""));
    }
    if rule.bypass_cors_preflight {
        text.push_str("; CORS preflight passes");
    }
    if rule.strip_authorization {
        text.push_str("; gRPC face removes authorization");
    }
    text
}

/// Where a sample request (`"GET https://api.example.com/v1/users/7"` or
/// `"GET /path"`) goes.
fn route_text(policy: &Policy, request: &str) -> String {
    let (method, target) = request
        .trim()
        .split_once(' ')
        .unwrap_or(("GET", request.trim()));
    let target = target.trim();
    let (host, path) = match target.split_once("://") {
        Some((_, rest)) => match rest.find(['/', '?']) {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        },
        None => ("", target),
    };
    // `https://host?x` asks for `/?x`.
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let mut buffers = PathBuffers::default();
    let original = OriginalRequest {
        method: method.as_bytes(),
        host: host.as_bytes(),
        path: path.as_bytes(),
    };
    let position = |rule: &Rule| {
        policy
            .rules
            .iter()
            .position(|r| std::ptr::eq(r, rule))
            .map_or(0, |i| i + 1)
    };
    let routed = match policy.route_target(&original, None, false, &mut buffers) {
        Ok(routed) => routed,
        Err(error) => return format!("{method} {target} -> 400: {}", error.detail()),
    };
    let describe = |route: Route<'_>| match route {
        Route::Check(rule) => format!(
            "rule {} (#{}): token checked, {}",
            rule.name,
            position(rule),
            match rule.action {
                Action::Block => "denied unless valid",
                Action::Log => "allowed and logged",
            }
        ),
        Route::Excluded(rule) => format!(
            "rule {} (#{}): excluded endpoint, allowed without a token",
            rule.name,
            position(rule)
        ),
        Route::Preflight(rule) => format!(
            "rule {} (#{}): CORS preflight, allowed",
            rule.name,
            position(rule)
        ),
        Route::Default(DefaultAction::Allow) => "no rule: default_action allow".to_owned(),
        Route::Default(DefaultAction::Deny) => "no rule: default_action deny (403)".to_owned(),
    };
    let mut verdict = describe(routed.route);
    if let Some(also) = routed.also {
        let _ = write!(verdict, "; as spelled, also {}", describe(also));
    }
    let rewritten = if let (canonical, true) = buffers.read_as() {
        format!(" [path read as {}]", String::from_utf8_lossy(canonical))
    } else {
        String::new()
    };
    format!("{method} {target} -> {verdict}{rewritten}")
}

/// The report for `loaded` (from `file`), with `requests` routed.
pub fn report(loaded: &Loaded, file: &Path, options: &ServeOptions, requests: &[String]) -> String {
    let policy = &loaded.policy;
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", file.display());
    for warning in &loaded.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    let _ = writeln!(
        out,
        "\ndefault_action: {}",
        match policy.default_action {
            DefaultAction::Allow => "allow",
            DefaultAction::Deny => "deny",
        }
    );
    let _ = writeln!(
        out,
        "original request from: {}",
        match &policy.forwarded {
            Forwarded::XForwarded => "X-Forwarded-Method/-Host/-Uri (Traefik, Caddy)".to_owned(),
            Forwarded::XOriginal => "X-Original-Method/-URI and Host (nginx)".to_owned(),
            Forwarded::XOriginalUrl =>
                "X-Original-Method and X-Original-URL (Kubernetes ingress-nginx)".to_owned(),
            Forwarded::RequestLine { path_prefix } if path_prefix.is_empty() =>
                "the request line and Host (Envoy)".to_owned(),
            Forwarded::RequestLine { path_prefix } =>
                format!("the request line without {path_prefix} and Host (Envoy)"),
        }
    );
    if !policy.trusted_proxies.is_empty() {
        let _ = writeln!(
            out,
            "forwarded headers believed from: the {} blocks of trusted_proxies",
            policy.trusted_proxies.len()
        );
    }
    let _ = writeln!(out, "\n[server]");
    let _ = writeln!(out, "  listen: {}", options.listen);
    let _ = writeln!(
        out,
        "  admin_listen: {}",
        options
            .admin_listen
            .map_or("off".to_owned(), |a| a.to_string())
    );
    let _ = writeln!(
        out,
        "  verify_listen: {}",
        options
            .verify_listen
            .map_or("off".to_owned(), |a| a.to_string())
    );
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs_f64());
    match &options.grpc {
        None => {
            let _ = writeln!(out, "  grpc_listen: off");
        }
        Some(grpc) => {
            let _ = writeln!(
                out,
                "  grpc_listen: {} (Envoy ext_authz Authorization/Check and grpc.health.v1; \
                 messages up to {} B, {} streams per connection, keep-alive ping every {} \
                 answered within {}, idle connections closed after {})",
                grpc.listen,
                grpc.max_message_bytes,
                grpc.max_concurrent_streams,
                secs(grpc.keepalive_interval),
                secs(grpc.keepalive_timeout),
                secs(grpc.idle_timeout)
            );
        }
    }
    let _ = writeln!(
        out,
        "  shards: {}",
        if options.shards == 0 {
            "one per core".to_owned()
        } else {
            options.shards.to_string()
        }
    );
    let io = match options.io {
        IoMode::Uring => "uring",
        IoMode::Epoll => "epoll",
        IoMode::Auto => "auto (io_uring, else epoll)",
    };
    let _ = writeln!(out, "  io: {io}");
    let _ = writeln!(
        out,
        "  limits: head {} B, request line {} B, body {} B, {} connections per shard",
        options.limits.head.max_header_bytes,
        options.limits.head.max_request_line,
        options.authz.max_body,
        options.max_connections
    );
    let overload = match options.authz.max_queue_delay {
        Some(delay) => format!(
            "429 overloaded for tokens not cached once requests wait {}",
            secs(delay)
        ),
        None => "never shed (max_queue_delay 0)".to_owned(),
    };
    let _ = writeln!(out, "  overload: {overload}");
    let _ = writeln!(
        out,
        "  timeouts: header {}, idle {}, drain {} after a delay of {}",
        secs(options.limits.header_timeout),
        secs(options.limits.idle_timeout),
        secs(options.drain_timeout),
        secs(options.drain_delay)
    );
    let access_log = match &options.access_log {
        None => "off".to_owned(),
        Some(log) => {
            let destination = match &log.destination {
                Destination::Stdout => "stdout".to_owned(),
                Destination::Stderr => "stderr".to_owned(),
                Destination::File(path) => path.display().to_string(),
            };
            format!("{destination}, {:.4}% of requests", log.sample * 100.0).replace(".0000%", "%")
        }
    };
    let summary = options
        .summary_interval
        .filter(|every| !every.is_zero())
        .map_or("at shutdown".to_owned(), |every| {
            format!("every {} and at shutdown", secs(every))
        });
    let _ = writeln!(
        out,
        "  observability: metrics {}, access log {access_log}, stderr summary {summary}",
        if options.metrics { "on" } else { "off" }
    );
    let cache = options.authz.token_cache;
    if cache.entries == 0 {
        let _ = writeln!(out, "  token cache: off");
    } else {
        let _ = writeln!(
            out,
            "  token cache: {} verified tokens per shard (at most {} MiB), each used for at most {}",
            cache.slots(),
            format!(
                "{:.1}",
                cache.max_memory_bytes() as f64 / f64::from(1 << 20)
            )
            .replace(".0", ""),
            secs(cache.max_age)
        );
    }
    if let Some(revocation) = &loaded.revocation {
        let _ = writeln!(out, "\n[revocation]");
        let _ = writeln!(out, "  store: {}", revocation.store.describe());
        let _ = writeln!(
            out,
            "  when the store cannot be read: the last revocations read stay in force for {}, then on_unavailable = {:?} ({})",
            secs(revocation.max_stale),
            revocation.on_unavailable.name(),
            match revocation.on_unavailable {
                crate::revocation::OnUnavailable::Deny => "every token refused, not ready",
                crate::revocation::OnUnavailable::Allow => "the last revocations read go on",
            }
        );
        if matches!(revocation.store, crate::revocation::Store::Redis { .. }) {
            let _ = writeln!(
                out,
                "  followed through its change channel, read in full every {} and after every reconnection",
                secs(revocation.resync_interval)
            );
        }
    }
    for (config, keys) in policy.configs.iter().zip(&loaded.keys) {
        let _ = writeln!(out, "\ntoken_config {:?}", &*config.name);
        let _ = writeln!(
            out,
            "  sources: {}",
            list(config.sources.iter().map(source_text), "none")
        );
        for key in keys.verifier().keys().keys() {
            let _ = writeln!(out, "  key {}", key.describe());
        }
        if let Some(remote) = keys.remote() {
            let settings = remote.settings();
            let schedule = &settings.schedule;
            let _ = writeln!(
                out,
                "  keys fetched from {}{}: refresh {} (max-age within {}..{}), unknown kid refetch at most every {}, stale after {}, start-up wait {}{}",
                settings.location.describe(),
                settings
                    .fetch
                    .ca_file
                    .as_ref()
                    .map(|ca| format!(" trusting only {}", ca.display()))
                    .unwrap_or_default(),
                secs(schedule.refresh_interval),
                secs(schedule.min_refresh_interval),
                secs(schedule.max_refresh_interval),
                secs(schedule.min_refetch_interval),
                secs(schedule.max_stale),
                secs(settings.startup.timeout),
                if settings.startup.allow_without_keys {
                    " (then starts without them)"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                out,
                "  redirects and jwks_uri may lead to: {}",
                remote.destinations().describe()
            );
        }
        for line in validation_text(keys.verifier().validation()).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "\nrules, first match wins:");
    for (index, rule) in policy.rules.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}. {}: {}",
            index + 1,
            rule.name,
            rule_text(policy, rule)
        );
    }
    if policy.rules.is_empty() {
        let _ = writeln!(out, "  (none: every request gets default_action)");
    }
    if !requests.is_empty() {
        let _ = writeln!(out, "\nrequests:");
        for request in requests {
            let _ = writeln!(out, "  {}", route_text(policy, request));
        }
    }
    out
}

/// `check-config --fetch`: every remote key set fetched once, side by side,
/// the fetched keys put in `loaded` for the sample decisions that follow.
/// The report, and whether every fetch gave usable keys.
pub fn fetch_report(loaded: &mut Loaded) -> (String, bool) {
    let remotes: Vec<(usize, std::sync::Arc<crate::jwks::RemoteKeys>)> = loaded
        .keys
        .iter()
        .enumerate()
        .filter_map(|(index, keys)| Some((index, std::sync::Arc::clone(keys.remote()?))))
        .collect();
    let mut out = String::from("\nfetched key sets:\n");
    if remotes.is_empty() {
        out.push_str("  (none: every key set is local)\n");
        return (out, true);
    }
    let results: Vec<(usize, Result<crate::Verifier, String>)> = std::thread::scope(|scope| {
        let fetches: Vec<_> = remotes
            .iter()
            .map(|(index, remote)| {
                let checks = loaded.keys.get(*index).map(|keys| keys.verifier());
                scope.spawn(move || match checks {
                    Some(checks) => (*index, crate::jwks::fetch_once(remote, checks)),
                    None => (*index, Err("no such token configuration".to_owned())),
                })
            })
            .collect();
        fetches
            .into_iter()
            .map(|fetch| {
                fetch
                    .join()
                    .unwrap_or((usize::MAX, Err("the fetch thread failed".to_owned())))
            })
            .collect()
    });
    let mut all_fetched = true;
    for (index, result) in results {
        let name = loaded
            .policy
            .configs
            .get(index)
            .map_or("?", |config| &*config.name);
        let Some(remote) = loaded
            .keys
            .get(index)
            .and_then(|keys| keys.remote().cloned())
        else {
            all_fetched = false;
            continue;
        };
        match result {
            Ok(verifier) => {
                let keys = verifier.keys().keys();
                let _ = writeln!(
                    out,
                    "  token_config {name:?}: {} key{} from {}",
                    keys.len(),
                    if keys.len() == 1 { "" } else { "s" },
                    remote.settings().location.describe()
                );
                for key in keys {
                    let _ = writeln!(out, "    key {}", key.describe());
                }
                if let Some(slot) = loaded.keys.get_mut(index) {
                    *slot = crate::jwks::TokenKeys::new(
                        std::sync::Arc::new(verifier),
                        crate::jwks::KeySource::Fetched(remote),
                    );
                }
            }
            Err(reason) => {
                all_fetched = false;
                let _ = writeln!(out, "  token_config {name:?}: fetch failed: {reason}");
            }
        }
    }
    (out, all_fetched)
}

//! The policy: token configurations (one per identity provider or
//! environment), and rules that decide, per host, path and method, which of
//! them a request must satisfy and what happens when it does not.
//!
//! Everything here is compiled once when a configuration loads (patterns,
//! verifiers, header names) and read-only afterwards; routing a request
//! borrows its bytes and allocates nothing. Rules are tried in order and the
//! first match wins; a request that matches none gets the explicit default.
//!
//! Neighbours: [`crate::config`] builds a [`Policy`] from a file;
//! [`crate::authz`] routes each request with [`Policy::route_target`], verifies the
//! tokens and renders the answer.

pub(crate) mod claims;
pub(crate) mod host;
pub(crate) mod method;
pub(crate) mod path;
pub(crate) mod peers;
pub(crate) mod source;
pub(crate) mod unicode;

use crate::http::{ForwardedStyle, OriginalRequest};

pub(crate) use claims::{ClaimRequirement, ClaimTest, ForwardClaim};
pub(crate) use host::HostPattern;
pub(crate) use path::{PathError, PathPattern};
pub(crate) use peers::IpNet;
pub use source::{Found, TokenSource};

/// A named way to find a token. Its keys are not here: they change on their
/// own (a key set is fetched, rotated, goes stale), so the snapshot in force
/// holds them beside the policy ([`crate::snapshot::Snapshot::keys`]), one
/// per configuration, in this order.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The configuration's name, as rules refer to it.
    pub name: Box<str>,
    /// Where to look, in order; every source that holds a token is verified.
    pub sources: Box<[TokenSource]>,
}

impl TokenConfig {
    /// A configuration named `name` reading `sources`.
    pub fn new(name: &str, sources: Vec<TokenSource>) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            sources: sources.into_boxed_slice(),
        }
    }
}

/// How a rule combines its token configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Valid for at least one (the default).
    Any,
    /// Valid for every one (two identity providers on one request).
    All,
}

/// What a rule does with a request that fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deny it.
    Block,
    /// Allow it, and say what would have happened (`x-jwtgate-action: log`).
    Log,
}

/// What a request that matches no rule gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Allowed without a token.
    Allow,
    /// Denied (403 `no_matching_rule`).
    Deny,
}

/// An endpoint a rule leaves open: an optional method and a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `None` for any method.
    pub method: Option<Box<str>>,
    /// The path pattern.
    pub path: PathPattern,
}

impl Endpoint {
    fn matches(&self, method: &[u8], path: &[u8]) -> bool {
        self.method
            .as_deref()
            .is_none_or(|wanted| wanted.as_bytes() == method)
            && self.path.matches(path)
    }
}

/// One rule, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its position in [`Policy::rules`], fixed at load: a route carries its
    /// rule, so metrics count by this without searching.
    pub index: usize,
    /// Its name, for logs and `check-config`.
    pub name: Box<str>,
    /// Hosts it applies to (empty: any).
    pub hosts: Box<[HostPattern]>,
    /// Paths it applies to (empty: any).
    pub paths: Box<[PathPattern]>,
    /// Methods it applies to, upper case (empty: any).
    pub methods: Box<[Box<str>]>,
    /// Indexes into [`Policy::configs`], in the rule's order.
    pub token_configs: Box<[usize]>,
    /// Any or all of them.
    pub mode: Mode,
    /// Block or log.
    pub action: Action,
    /// Endpoints left open.
    pub exclude: Box<[Endpoint]>,
    /// Allow a request that carries no token at all (Envoy's `allow_missing`);
    /// a token that is present must still be valid.
    pub allow_missing: bool,
    /// Claims the token must hold (403 `insufficient_scope` otherwise).
    pub require_claims: Box<[ClaimRequirement]>,
    /// Claims sent upstream as headers.
    pub forward_claims: Box<[ForwardClaim]>,
    /// Let CORS preflight requests (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) through without a token.
    pub bypass_cors_preflight: bool,
    /// Have the proxy remove `authorization` before the origin (the gRPC
    /// face's `headers_to_remove`; an HTTP ext_authz answer cannot say it).
    pub strip_authorization: bool,
}

impl Rule {
    /// `host` is the request's host reduced by [`host::host_name`] once per
    /// request. A rule for `GET` applies to `HEAD` too: every common stack
    /// (Express, Go, Rails, Spring, Werkzeug) runs the GET handler for it.
    /// With `folded`, paths match by [`PathPattern::matches_folded`], else by
    /// [`PathPattern::matches`].
    fn applies(
        &self,
        request: &OriginalRequest<'_>,
        host: &[u8],
        path: &[u8],
        folded: Option<&path::Folded<'_>>,
    ) -> bool {
        let head = request.method.eq_ignore_ascii_case(b"HEAD");
        (self.hosts.is_empty() || self.hosts.iter().any(|pattern| pattern.matches_name(host)))
            && (self.methods.is_empty()
                || self.methods.iter().any(|method| {
                    method.as_bytes().eq_ignore_ascii_case(request.method)
                        || (head && &**method == "GET")
                }))
            && (self.paths.is_empty()
                || self.paths.iter().any(|pattern| match folded {
                    Some(folded) => pattern.matches_folded(folded),
                    None => pattern.matches(path),
                }))
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub enum Route<'p> {
    /// The rule applies: verify its token configurations.
    Check(&'p Rule),
    /// The rule applies, but this endpoint is excluded from it.
    Excluded(&'p Rule),
    /// A CORS preflight the rule lets through.
    Preflight(&'p Rule),
    /// No rule applies.
    Default(DefaultAction),
}

impl<'p> Route<'p> {
    /// The rule that applies, if any.
    pub fn rule(&self) -> Option<&'p Rule> {
        match *self {
            Route::Check(rule) | Route::Excluded(rule) | Route::Preflight(rule) => Some(rule),
            Route::Default(_) => None,
        }
    }

    /// Whether two routings of one request lead to the same place.
    fn same_as(&self, other: &Route<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && match (self.rule(), other.rule()) {
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                (None, None) => matches!(
                    (self, other),
                    (Route::Default(a), Route::Default(b)) if a == b
                ),
                _ => false,
            }
    }
}

/// Where a request goes, read every way an origin may read it.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'p> {
    /// The route of the path folded (`PathPattern::matches_folded`).
    pub route: Route<'p>,
    /// The route of the path as spelled, when folding made the path meet an
    /// earlier rule than this one: an origin that reads the spelling as it is
    /// routes it here, so the request must pass this route too (the stricter
    /// of the two readings applies).
    pub also: Option<Route<'p>>,
}

impl Routed<'_> {
    fn same_as(&self, other: &Routed<'_>) -> bool {
        self.route.same_as(&other.route)
            && match (&self.also, &other.also) {
                (Some(a), Some(b)) => a.same_as(b),
                (None, None) => true,
                _ => false,
            }
    }
}

/// Why a request has no single reading (answered 400 with [`Unreadable::detail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The path ([`path`]).
    Path(PathError),
    /// The host is not `host[:port]` ([`host::host_name`]).
    Host,
    /// Read with and without its `;` parameters, the path meets different rules.
    AmbiguousParameters,
    /// Method overrides ([`method`]) that disagree or are not a method.
    MethodOverride,
    /// The method a POST asks for in an override meets a different rule.
    AmbiguousMethod,
}

impl Unreadable {
    /// A human explanation for the 400 answer (it never quotes request bytes).
    pub const fn detail(self) -> &'static str {
        match self {
            Unreadable::Path(error) => error.detail(),
            Unreadable::Host => "the host is not a host name or address with an optional port",
            Unreadable::AmbiguousParameters => {
                "the path meets different rules with and without its ';' parameters"
            }
            Unreadable::MethodOverride => "the method overrides disagree or do not name a method",
            Unreadable::AmbiguousMethod => {
                "the method override meets a different rule than the method sent"
            }
        }
    }
}

impl From<PathError> for Unreadable {
    fn from(error: PathError) -> Unreadable {
        Unreadable::Path(error)
    }
}

/// The buffers [`Policy::route_target`] reads a path into, kept per shard so
/// that routing allocates nothing once they have grown to the longest path.
#[derive(Debug, Default)]
pub struct PathBuffers {
    /// The reading with path parameters stripped.
    stripped: Vec<u8>,
    /// The reading with `;` kept as a letter (filled only for paths with `;`).
    literal: Vec<u8>,
    /// Whether the last path read had to be changed to be canonical.
    rewritten: bool,
}

impl PathBuffers {
    /// Buffers ready for paths of up to `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> PathBuffers {
        PathBuffers {
            stripped: Vec::with_capacity(capacity),
            literal: Vec::with_capacity(capacity),
            rewritten: false,
        }
    }

    /// The canonical path the last [`Policy::route_target`] routed on, and
    /// whether it differs from the path as sent.
    pub fn read_as(&self) -> (&[u8], bool) {
        (&self.stripped, self.rewritten)
    }
}

/// Which headers carry the original request: an owned [`ForwardedStyle`].
// The variants are the header families' own names (`X-Forwarded-*`,
// `X-Original-*`), as the configuration's values spell them.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// `X-Forwarded-Method`/`-Host`/`-Uri` (Traefik, Caddy).
    XForwarded,
    /// `X-Original-Method`/`-URI` and `Host` (nginx).
    XOriginal,
    /// `X-Original-Method` and `X-Original-URL` (Kubernetes ingress-nginx).
    XOriginalUrl,
    /// The request line, with this prefix stripped (Envoy).
    RequestLine {
        /// Envoy's `path_prefix` (may be empty).
        path_prefix: Box<str>,
    },
}

impl Forwarded {
    /// The borrowed form the HTTP layer reads.
    pub fn style(&self) -> ForwardedStyle<'_> {
        match self {
            Forwarded::XForwarded => ForwardedStyle::XForwarded,
            Forwarded::XOriginal => ForwardedStyle::XOriginal,
            Forwarded::XOriginalUrl => ForwardedStyle::XOriginalUrl,
            Forwarded::RequestLine { path_prefix } => ForwardedStyle::RequestLine { path_prefix },
        }
    }
}

/// Token configurations, rules and the default, as loaded.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Token configurations, in file order.
    pub configs: Box<[TokenConfig]>,
    /// Rules, in precedence order.
    pub rules: Box<[Rule]>,
    /// For requests no rule matches.
    pub default_action: DefaultAction,
    /// Every header any rule forwards, so that each allowed answer can carry
    /// all of them (empty where not filled) and overwrite client copies.
    pub forwarded_headers: Box<[Box<str>]>,
    /// Where the original request is read from.
    pub forwarded: Forwarded,
    /// Peers whose forwarded headers are believed (empty: every peer).
    pub trusted_proxies: Box<[IpNet]>,
    /// Whether answering needs the original request ([`Policy::needs_original_request`]),
    /// worked out once by [`Policy::new`].
    needs_original: bool,
}

impl Policy {
    /// A policy of `configs` and `rules`; each rule's `index` is set to its
    /// position here.
    pub fn new(
        configs: Box<[TokenConfig]>,
        mut rules: Box<[Rule]>,
        default_action: DefaultAction,
        forwarded_headers: Box<[Box<str>]>,
        forwarded: Forwarded,
        trusted_proxies: Box<[IpNet]>,
    ) -> Policy {
        for (index, rule) in rules.iter_mut().enumerate() {
            rule.index = index;
        }
        // Some rule looks at host, path or method, or some source reads the
        // query string. The flags-only policy does not, so it does not
        // require forwarded headers.
        let needs_original = rules.iter().any(|rule| {
            !rule.hosts.is_empty()
                || !rule.paths.is_empty()
                || !rule.methods.is_empty()
                || !rule.exclude.is_empty()
                || rule.bypass_cors_preflight
        }) || configs.iter().any(|config| {
            config
                .sources
                .iter()
                .any(|source| matches!(source, TokenSource::Query { .. }))
        });
        Policy {
            configs,
            rules,
            default_action,
            forwarded_headers,
            forwarded,
            trusted_proxies,
            needs_original,
        }
    }

    /// Whether forwarded headers from `peer` may be believed.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted_proxies.is_empty() || self.trusted_proxies.iter().any(|net| net.contains(peer))
    }

    /// Whether answering needs the original request: some rule looks at
    /// host, path or method, or some source reads the query string.
    #[inline]
    pub fn needs_original_request(&self) -> bool {
        self.needs_original
    }

    /// The flags-only policy: one token configuration (the `Authorization`
    /// header, Bearer or raw) on every request; its keys go beside it in the
    /// snapshot ([`crate::snapshot::Snapshot::single`]).
    pub fn single() -> Policy {
        Policy::new(
            Box::new([TokenConfig::new(
                "default",
                vec![TokenSource::authorization_bearer()],
            )]),
            Box::new([Rule {
                index: 0,
                name: "all".into(),
                hosts: Box::new([]),
                paths: Box::new([]),
                methods: Box::new([]),
                token_configs: Box::new([0]),
                mode: Mode::Any,
                action: Action::Block,
                exclude: Box::new([]),
                allow_missing: false,
                require_claims: Box::new([]),
                forward_claims: Box::new([]),
                bypass_cors_preflight: false,
                strip_authorization: false,
            }]),
            DefaultAction::Deny,
            Box::new([]),
            Forwarded::RequestLine {
                path_prefix: "".into(),
            },
            Box::new([]),
        )
    }

    /// Routes a request by the one reading of it ([`path`], [`host`],
    /// [`method`]): the request gets 400 with the reason when its host or
    /// path has no single reading, or when its readings meet different rules:
    /// with and without `;` parameters, and with the method sent and the one
    /// a POST asks for in `method_override`. `preflight` says whether it is a
    /// CORS preflight.
    pub fn route_target(
        &self,
        request: &OriginalRequest<'_>,
        method_override: Option<&[u8]>,
        preflight: bool,
        buffers: &mut PathBuffers,
    ) -> Result<Routed<'_>, Unreadable> {
        let host = host::host_name(request.host).ok_or(Unreadable::Host)?;
        let stripped =
            path::canonicalize(request.path, path::Params::Strip, &mut buffers.stripped)?;
        buffers.rewritten = stripped.rewritten;
        let route = self.route(
            request,
            host,
            &buffers.stripped,
            stripped.rewritten,
            preflight,
        );
        if stripped.has_params {
            path::canonicalize(request.path, path::Params::Literal, &mut buffers.literal)?;
            if !route.same_as(&self.route(request, host, &buffers.literal, true, preflight)) {
                return Err(Unreadable::AmbiguousParameters);
            }
        }
        if let Some(method) = method_override {
            let overridden = OriginalRequest { method, ..*request };
            let same = route.same_as(&self.route(
                &overridden,
                host,
                &buffers.stripped,
                stripped.rewritten,
                preflight,
            )) && (!stripped.has_params
                || route.same_as(&self.route(
                    &overridden,
                    host,
                    &buffers.literal,
                    true,
                    preflight,
                )));
            if !same {
                return Err(Unreadable::AmbiguousMethod);
            }
        }
        Ok(route)
    }

    /// Routes a request to `rule`, which the proxy named for it (the gRPC
    /// face's `jwtgate_rule` context extension: Envoy has already routed the
    /// request). The rule's hosts, paths and methods are not consulted; its
    /// exclusions and preflight bypass are, read as [`Policy::route_target`]
    /// reads them: a path with no single reading, or whose readings (with
    /// and without `;` parameters, with the method sent and the one a POST
    /// asks for) differ on whether an exclusion applies, is unreadable.
    pub fn route_named<'p>(
        &'p self,
        rule: &'p Rule,
        request: &OriginalRequest<'_>,
        method_override: Option<&[u8]>,
        preflight: bool,
        buffers: &mut PathBuffers,
    ) -> Result<Routed<'p>, Unreadable> {
        host::host_name(request.host).ok_or(Unreadable::Host)?;
        let stripped =
            path::canonicalize(request.path, path::Params::Strip, &mut buffers.stripped)?;
        buffers.rewritten = stripped.rewritten;
        let exclusions_apply = !stripped.rewritten;
        let route = self.route_to(
            rule,
            request,
            &buffers.stripped,
            exclusions_apply,
            preflight,
        );
        if stripped.has_params {
            path::canonicalize(request.path, path::Params::Literal, &mut buffers.literal)?;
            // As in `route`: a reading with parameters never meets an exclusion.
            if !route.same_as(&self.route_to(rule, request, &buffers.literal, false, preflight)) {
                return Err(Unreadable::AmbiguousParameters);
            }
        }
        if let Some(method) = method_override {
            let overridden = OriginalRequest { method, ..*request };
            let path = &buffers.stripped;
            if !route.same_as(&self.route_to(rule, &overridden, path, exclusions_apply, preflight))
            {
                return Err(Unreadable::AmbiguousMethod);
            }
        }
        Ok(Routed { route, also: None })
    }

    /// The rule named `name`, if the policy has one.
    pub fn rule_named(&self, name: &[u8]) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name.as_bytes() == name)
    }

    /// Routes a request by one reading of its path: `path` is canonical,
    /// `rewritten` whether canonicalising changed it (see
    /// [`path::canonicalize`]), `preflight` whether it is a CORS preflight.
    ///
    /// Rules match the path folded ([`PathPattern::matches_folded`]), so that
    /// `/V1/Export/` meets the rule for `/v1/export`; but a fold must not let
    /// an earlier, laxer rule capture a spelling that an origin reading it as
    /// spelled routes to a later one (`/account/login/` under a rule for
    /// `/account/login` before one for `/account/**`): then the later rule is
    /// [`Routed::also`], and the request must pass both.
    /// `host` is the request's host read by [`host::host_name`].
    fn route(
        &self,
        request: &OriginalRequest<'_>,
        host: &[u8],
        path: &[u8],
        rewritten: bool,
        preflight: bool,
    ) -> Routed<'_> {
        let folded = path::Folded::new(path);
        let applies = |rule: &Rule, folded| rule.applies(request, host, path, folded);
        let default = Routed {
            route: Route::Default(self.default_action),
            also: None,
        };
        let Some(index) = self
            .rules
            .iter()
            .position(|rule| applies(rule, Some(&folded)))
        else {
            return default;
        };
        let (Some(rule), Some(later)) = (self.rules.get(index), self.rules.get(index + 1..)) else {
            return default;
        };
        let exclusions_apply = !rewritten;
        let route = |rule| self.route_to(rule, request, path, exclusions_apply, preflight);
        // Matching as spelled is matching folded, less some paths: the first
        // rule it meets is this one, a later one, or none (then only the
        // folded reading names a rule, and it applies).
        let also = if applies(rule, None) {
            None
        } else {
            later.iter().find(|rule| applies(rule, None)).map(route)
        };
        Routed {
            route: route(rule),
            also,
        }
    }

    /// The route to `rule`, which the request meets.
    fn route_to<'p>(
        &self,
        rule: &'p Rule,
        request: &OriginalRequest<'_>,
        path: &[u8],
        exclusions_apply: bool,
        preflight: bool,
    ) -> Route<'p> {
        if preflight && rule.bypass_cors_preflight {
            return Route::Preflight(rule);
        }
        // A path that needed rewriting never matches an exclusion: the origin
        // may read it differently, and exclusions let requests pass unchecked.
        if exclusions_apply
            && rule
                .exclude
                .iter()
                .any(|endpoint| endpoint.matches(request.method, path))
        {
            return Route::Excluded(rule);
        }
        Route::Check(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_rule_applies_with_its_exclusions_read_one_way() {
        let text = "default_action = \"deny\"\n[[token_config]]\nname = \"p\"\n@JWKS@\n[[rule]]\nname = \"admin\"\npaths = [\"/admin/**\"]\ntoken_configs = [\"p\"]\n[[rule]]\nname = \"api\"\npaths = [\"/api/**\"]\ntoken_configs = [\"p\"]\nexclude = [\"GET /api/health\"]\n";
        let policy = crate::test_support::policy_with_demo_keys(text);
        let api = policy.rule_named(b"api").unwrap();
        assert!(policy.rule_named(b"API").is_none() && policy.rule_named(b"").is_none());
        let mut buffers = PathBuffers::with_capacity(64);
        let mut route = |method: &'static str, path: &'static str, over: Option<&'static [u8]>| {
            let request = OriginalRequest {
                method: method.as_bytes(),
                host: b"api.example",
                path: path.as_bytes(),
            };
            policy
                .route_named(api, &request, over, false, &mut buffers)
                .map(|routed| match routed.route {
                    Route::Check(rule) => format!("check {}", rule.name),
                    Route::Excluded(rule) => format!("excluded {}", rule.name),
                    other => format!("{other:?}"),
                })
        };
        // The named rule applies wherever the path is: routing is the proxy's.
        assert_eq!(route("GET", "/admin/x", None), Ok("check api".to_owned()));
        assert_eq!(
            route("GET", "/api/health", None),
            Ok("excluded api".to_owned())
        );
        assert_eq!(
            route("POST", "/api/health", None),
            Ok("check api".to_owned())
        );
        // A rewritten path (dot segments, `;` parameters stripped) never
        // meets an exclusion; a method override that would is unreadable.
        assert_eq!(
            route("GET", "/api/./health", None),
            Ok("check api".to_owned())
        );
        assert_eq!(
            route("GET", "/api/health;v=1", None),
            Ok("check api".to_owned())
        );
        assert_eq!(
            route("POST", "/api/health", Some(b"GET")),
            Err(Unreadable::AmbiguousMethod)
        );
        assert_eq!(
            route("GET", "/api/x/%2e%2e/health", None),
            Ok("check api".to_owned())
        );
        let no_host = OriginalRequest {
            method: b"GET",
            host: b"",
            path: b"/api/x",
        };
        assert_eq!(
            policy
                .route_named(
                    api,
                    &no_host,
                    None,
                    false,
                    &mut PathBuffers::with_capacity(8)
                )
                .err(),
            Some(Unreadable::Host)
        );
    }

    #[test]
    fn a_rule_index_is_its_position() {
        let text = "default_action = \"deny\"\n[[token_config]]\nname = \"p\"\n@JWKS@\n[[rule]]\nname = \"a\"\ntoken_configs = [\"p\"]\n[[rule]]\nname = \"b\"\ntoken_configs = [\"p\"]\n[[rule]]\nname = \"c\"\ntoken_configs = [\"p\"]\n";
        let policy = crate::test_support::policy_with_demo_keys(text);
        for (index, rule) in policy.rules.iter().enumerate() {
            assert_eq!(rule.index, index);
        }
    }

    fn rule(
        name: &str,
        hosts: &[&str],
        paths: &[&str],
        methods: &[&str],
        exclude: &[(Option<&str>, &str)],
    ) -> Rule {
        Rule {
            index: 0,
            name: name.into(),
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            paths: paths
                .iter()
                .map(|p| PathPattern::parse(p).unwrap())
                .collect(),
            methods: methods.iter().map(|&m| m.into()).collect(),
            token_configs: Box::new([]),
            mode: Mode::Any,
            action: Action::Block,
            exclude: exclude
                .iter()
                .map(|(method, path)| Endpoint {
                    method: method.map(Into::into),
                    path: PathPattern::parse(path).unwrap(),
                })
                .collect(),
            allow_missing: false,
            require_claims: Box::new([]),
            forward_claims: Box::new([]),
            bypass_cors_preflight: true,
            strip_authorization: false,
        }
    }

    fn policy(default_action: DefaultAction) -> Policy {
        Policy::new(
            Box::new([]),
            Box::new([
                rule("admin", &["admin.example.com"], &[], &[], &[]),
                rule(
                    "api",
                    &["api.example.com", "*.api.example.com"],
                    &["/v1/**"],
                    &[],
                    &[
                        (Some("GET"), "/v1/health"),
                        (None, "/v1/public/**"),
                        (Some("POST"), "/users/{id}/login"),
                    ],
                ),
                rule("writes", &[], &["/v2/**"], &["POST", "PUT", "DELETE"], &[]),
            ]),
            default_action,
            Box::new([]),
            Forwarded::RequestLine {
                path_prefix: "".into(),
            },
            Box::new([]),
        )
    }

    fn route(policy: &Policy, method: &str, host: &str, target: &str) -> String {
        let request = OriginalRequest {
            method: method.as_bytes(),
            host: host.as_bytes(),
            path: target.as_bytes(),
        };
        let mut buffers = PathBuffers::default();
        let routed = policy.route_target(&request, None, method == "OPTIONS", &mut buffers);
        match routed.map(|routed| routed.route) {
            Ok(Route::Check(rule)) => format!("check {}", rule.name),
            Ok(Route::Excluded(rule)) => format!("excluded {}", rule.name),
            Ok(Route::Preflight(rule)) => format!("preflight {}", rule.name),
            Ok(Route::Default(DefaultAction::Allow)) => "default allow".into(),
            Ok(Route::Default(DefaultAction::Deny)) => "default deny".into(),
            Err(error) => format!("400 {error:?}"),
        }
    }

    #[test]
    fn routing_table() {
        let p = policy(DefaultAction::Deny);
        let cases = [
            ("GET", "admin.example.com", "/anything", "check admin"),
            ("GET", "api.example.com", "/v1/orders", "check api"),
            (
                "GET",
                "eu.api.example.com:443",
                "/v1/orders?x=1",
                "check api",
            ),
            ("GET", "api.example.com", "/v1/health", "excluded api"),
            ("HEAD", "api.example.com", "/v1/health", "check api"),
            (
                "GET",
                "api.example.com",
                "/v1/health?verbose",
                "excluded api",
            ),
            (
                "GET",
                "api.example.com",
                "/v1/public/docs/a",
                "excluded api",
            ),
            // Spellings that dodge an exclusion are checked instead.
            (
                "GET",
                "api.example.com",
                "/v1/public/../orders",
                "check api",
            ),
            (
                "GET",
                "api.example.com",
                "/v1/public/%2e%2e/orders",
                "check api",
            ),
            ("GET", "api.example.com", "/v1//health", "check api"),
            ("GET", "api.example.com", "/v1/%68ealth", "check api"),
            // ...and spellings that dodge a rule still meet it.
            ("GET", "api.example.com", "/v2/../v1/orders", "check api"),
            ("OPTIONS", "api.example.com", "/v1/orders", "preflight api"),
            ("GET", "api.example.com", "/v2/orders", "default deny"),
            ("POST", "other.example.com", "/v2/orders", "check writes"),
            ("GET", "other.example.com", "/v2/orders", "default deny"),
            ("POST", "api.example.com", "/v1/../v2/x", "check writes"),
            // One trailing slash meets the rule, never the exclusion.
            ("GET", "api.example.com", "/v1/health/", "check api"),
            ("GET", "api.example.com", "/V1/Health", "check api"),
            // Path parameters: both readings meet the same rule...
            ("GET", "api.example.com", "/v1/orders;v=2", "check api"),
            (
                "GET",
                "api.example.com",
                "/v1/public/..;/orders",
                "check api",
            ),
            // ...or the request has no single reading.
            (
                "GET",
                "api.example.com",
                "/v2/..;/v1/orders",
                "400 AmbiguousParameters",
            ),
            ("POST", "x.example.com", "/v2/x;v=1", "check writes"),
            (
                "POST",
                "x.example.com",
                "/v2;v=1/x",
                "400 AmbiguousParameters",
            ),
            (
                "POST",
                "x.example.com",
                "/v1/..;/v2/x",
                "400 AmbiguousParameters",
            ),
            (
                "GET",
                "api.example.com",
                "/v1/health#",
                "400 Path(Fragment)",
            ),
            (
                "GET",
                "api.example.com",
                "/v1%2Fhealth",
                "400 Path(EncodedSeparator)",
            ),
        ];
        for (method, host, target, expected) in cases {
            assert_eq!(
                route(&p, method, host, target),
                expected,
                "{method} {host}{target}"
            );
        }
        let open = policy(DefaultAction::Allow);
        assert_eq!(route(&open, "GET", "x", "/"), "default allow");
    }

    #[test]
    fn folds_overrides_head_and_hosts() {
        let p = Policy {
            rules: Box::new([
                rule("login", &[], &["/account/login"], &[], &[]),
                rule("account", &[], &["/account/**"], &[], &[]),
                rule("reports", &[], &["/reports/**"], &["GET"], &[]),
                rule("deletes", &[], &["/v1/**"], &["DELETE"], &[]),
                rule("v1", &[], &["/v1/**"], &[], &[]),
            ]),
            ..policy(DefaultAction::Allow)
        };
        let route_as = |method: &str, host: &str, target: &str, method_override: Option<&str>| {
            let request = OriginalRequest {
                method: method.as_bytes(),
                host: host.as_bytes(),
                path: target.as_bytes(),
            };
            let mut buffers = PathBuffers::default();
            match p.route_target(
                &request,
                method_override.map(str::as_bytes),
                false,
                &mut buffers,
            ) {
                Ok(routed) => {
                    let name = |route: Route<'_>| {
                        route
                            .rule()
                            .map_or("default".to_owned(), |r| r.name.to_string())
                    };
                    match routed.also {
                        Some(also) => format!("{} and {}", name(routed.route), name(also)),
                        None => name(routed.route),
                    }
                }
                Err(error) => format!("400 {error:?}"),
            }
        };
        let cases = [
            ("GET", "h", "/account/login", None, "login"),
            // Folded, the slash meets the earlier, laxer rule; as spelled, the
            // later one: both apply.
            ("GET", "h", "/account/login/", None, "login and account"),
            ("GET", "h", "/account/login.json", None, "login and account"),
            ("GET", "h", "/account/settings/", None, "account"),
            // No rule as spelled: the folded reading's rule applies.
            ("GET", "h", "/Account/Login", None, "login"),
            ("GET", "h", "/ACCOUNT/x", None, "account"),
            ("GET", "h", "/reports.csv", None, "reports"),
            // HEAD runs the GET handler.
            ("HEAD", "h", "/reports/q3", None, "reports"),
            ("head", "h", "/reports/q3", None, "reports"),
            ("POST", "h", "/reports/q3", None, "default"),
            ("DELETE", "h", "/v1/orders/7", None, "deletes"),
            ("POST", "h", "/v1/orders/7", None, "v1"),
            (
                "POST",
                "h",
                "/v1/orders/7",
                Some("DELETE"),
                "400 AmbiguousMethod",
            ),
            ("POST", "h", "/v1/orders/7", Some("PATCH"), "v1"),
            (
                "POST",
                "h",
                "/v1/orders;x/7",
                Some("DELETE"),
                "400 AmbiguousMethod",
            ),
            ("GET", "api.example.com:443", "/v1/x", None, "v1"),
            ("GET", "api.example.com:x:y", "/v1/x", None, "400 Host"),
            ("GET", "user@api.example.com", "/v1/x", None, "400 Host"),
        ];
        for (method, host, target, method_override, expected) in cases {
            assert_eq!(
                route_as(method, host, target, method_override),
                expected,
                "{method} {host}{target} {method_override:?}"
            );
        }
    }
}

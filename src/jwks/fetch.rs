//! Fetching key sets and OIDC discovery documents over HTTPS: ureq on rustls
//! with the ring provider, Mozilla's roots or a configured CA file, bounded
//! in time (connect and whole-request timeouts) and in size. Redirects are
//! followed here, not by ureq, so that each hop is checked against the
//! source's [`Destinations`] before it is sent (see `hosts`). Only the
//! control side calls this, never a shard: a fetch blocks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::Location;
use super::hosts::{AllowedHost, Destinations, Origin, Refusal, UrlError, resolve};
use jwtgate_engine::internals::json::Tape;

/// Redirects followed for one document, at most (a chain from an old URL
/// through a CDN is two or three; a loop ends here).
pub(crate) const MAX_REDIRECTS: u32 = 3;

/// How a token configuration's keys are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Trust only the CAs in this PEM file instead of Mozilla's roots.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` (never for production: anyone on the path can swap the keys).
    pub allow_http: bool,
    /// Bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Bound on a whole request, redirects and body included.
    pub timeout: Duration,
    /// Longest accepted response body.
    pub max_bytes: u64,
    /// Hosts that redirects and a discovered `jwks_uri` may lead to besides
    /// the configured one (`jwks_allowed_hosts`; empty: none).
    pub allowed_hosts: Vec<AllowedHost>,
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            ca_file: None,
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Why a fetch failed. The text is for logs and metrics; it names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The CA file could not be read or holds no certificate.
    #[error("ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with a status other than 200.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body is longer than the configured limit.
    #[error("{url}: the response is longer than {limit} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Connection, TLS, timeout or protocol failure.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The discovery document is unusable (not JSON, wrong issuer, no `jwks_uri`).
    #[error("discovery {url}: {reason}")]
    Discovery {
        /// The document's URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured URL (or the issuer, for discovery) cannot be fetched
    /// from. The configuration is checked for this when it loads.
    #[error("{location}: {reason}")]
    Location {
        /// The `jwks_url` or issuer.
        location: String,
        /// What is wrong with it.
        reason: UrlError,
    },
    /// A redirect, or a discovered `jwks_uri`, leads where this source may
    /// not fetch from: not sent.
    #[error("{}{url}: {hop} {target} refused: {reason}", .hop.context())]
    Refused {
        /// The URL asked (the discovery document's, for a `jwks_uri`).
        url: String,
        /// What led there.
        hop: Hop,
        /// Where it led.
        target: String,
        /// Why it may not go there.
        reason: Refusal,
    },
}

impl FetchError {
    /// Whether the fetch was refused for where it led (rather than failed on
    /// the way): an answer of the server, not an outage to ride out.
    pub fn is_refusal(&self) -> bool {
        matches!(self, FetchError::Refused { .. })
    }
}

/// What named a URL that was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// A `Location` header.
    Redirect,
    /// A discovery document's `jwks_uri`.
    JwksUri,
    /// The URL asked for itself: a `jwks_uri` found before, when a reload
    /// has changed the allowed hosts since.
    Request,
}

impl Hop {
    /// What the log line starts with, as [`FetchError::Discovery`] does.
    const fn context(self) -> &'static str {
        match self {
            Hop::Redirect | Hop::Request => "",
            Hop::JwksUri => "discovery ",
        }
    }
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hop::Redirect => "redirect to",
            Hop::JwksUri => "jwks_uri",
            Hop::Request => "request to",
        })
    }
}

/// A fetched document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The body.
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the server sent one (`no-store` and
    /// `no-cache` count as zero).
    pub max_age: Option<Duration>,
}

/// An HTTPS client for one token configuration's key source.
#[derive(Debug)]
pub(crate) struct Fetcher {
    agent: ureq::Agent,
    settings: FetchSettings,
    /// Where requests may go: checked before each one, redirects included.
    destinations: Destinations,
}

fn ca_roots(path: &Path) -> Result<RootCerts, FetchError> {
    let failure = |reason: String| FetchError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| failure(e.to_string()))?;
    let mut certificates: Vec<Certificate<'static>> = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(error) => return Err(failure(error.to_string())),
        }
    }
    if certificates.is_empty() {
        return Err(failure("no PEM certificate in it".to_owned()));
    }
    Ok(RootCerts::Specific(Arc::new(certificates)))
}

impl Fetcher {
    /// A client with these settings for the source at `location` (reads
    /// the CA file now).
    pub(crate) fn new(
        settings: &FetchSettings,
        location: &Location,
    ) -> Result<Fetcher, FetchError> {
        let configured = match location {
            Location::Url(url) => url,
            Location::Discovery { issuer } => issuer,
        };
        let home = Origin::of_url(configured).map_err(|reason| FetchError::Location {
            location: configured.clone(),
            reason,
        })?;
        let roots = match &settings.ca_file {
            Some(path) => ca_roots(path)?,
            None => RootCerts::WebPki,
        };
        let tls = TlsConfig::builder()
            .root_certs(roots)
            // ring, whatever process-wide default another crate may install.
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            // Not from HTTPS_PROXY and friends: where keys come from is
            // decided by the configuration file alone.
            .proxy(None)
            .https_only(!settings.allow_http)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.timeout))
            // Followed in `get`, each hop checked against the destinations.
            .max_redirects(0)
            .max_idle_connections(0)
            .user_agent(concat!("jwtgate/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Fetcher {
            agent: ureq::Agent::new_with_config(config),
            settings: settings.clone(),
            destinations: Destinations::new(home, &settings.allowed_hosts),
        })
    }

    /// Where this client's requests may go.
    pub(crate) fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    /// GETs `url` and returns its body and freshness, following up to
    /// [`MAX_REDIRECTS`] redirects that stay within the destinations; the
    /// whole chain and the body share one `timeout`.
    pub(crate) fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let failed = |reason: String| FetchError::Transport {
            url: url.to_owned(),
            reason,
        };
        let refused = |hop: Hop, target: &Uri, reason: Refusal| FetchError::Refused {
            url: url.to_owned(),
            hop,
            target: target.to_string(),
            reason,
        };
        let mut target: Uri = url
            .parse()
            .map_err(|error| failed(format!("not a URL: {error}")))?;
        self.destinations
            .check(&target)
            .map_err(|reason| refused(Hop::Request, &target, reason))?;
        let started = Instant::now();
        let mut redirects = 0;
        let mut response = loop {
            // One budget for the chain: each request gets what is left.
            let left = self.settings.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(failed(format!(
                    "timed out after {:?}, following redirects",
                    self.settings.timeout
                )));
            }
            let response = self
                .agent
                .get(target.clone())
                .config()
                .timeout_global(Some(left))
                .build()
                .header("accept", "application/json")
                .call()
                .map_err(|error| self.failure(url, error))?;
            let status = response.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                break response;
            }
            if redirects == MAX_REDIRECTS {
                return Err(failed(format!("more than {MAX_REDIRECTS} redirects")));
            }
            redirects += 1;
            let location =
                response
                    .headers()
                    .get("location")
                    .ok_or_else(|| FetchError::Status {
                        url: url.to_owned(),
                        status,
                    })?;
            let next = location
                .to_str()
                .ok()
                .and_then(|location| resolve(&target, location))
                .ok_or_else(|| {
                    failed(format!(
                        "HTTP {status} with a Location that is not a URL: {:?}",
                        String::from_utf8_lossy(location.as_bytes())
                    ))
                })?;
            self.destinations
                .check(&next)
                .map_err(|reason| refused(Hop::Redirect, &next, reason))?;
            target = next;
        };
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let headers = response.headers();
        // RFC 9111 §4.2.3: what a cache in between already used of max-age.
        let age = headers
            .get("age")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        let max_age = headers
            .get_all("cache-control")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(max_age)
            .min()
            .map(|fresh| fresh.saturating_sub(age));
        let body = response
            .body_mut()
            .with_config()
            .limit(self.settings.max_bytes)
            .read_to_vec()
            .map_err(|error| self.failure(url, error))?;
        Ok(Fetched { body, max_age })
    }

    /// A ureq error while fetching `url`, as a fetch error.
    fn failure(&self, url: &str, error: ureq::Error) -> FetchError {
        match error {
            ureq::Error::StatusCode(status) => FetchError::Status {
                url: url.to_owned(),
                status,
            },
            ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge {
                url: url.to_owned(),
                limit: self.settings.max_bytes,
            },
            other => FetchError::Transport {
                url: url.to_owned(),
                reason: other.to_string(),
            },
        }
    }

    /// OIDC discovery: fetches `<issuer>/.well-known/openid-configuration`,
    /// requires its `issuer` to equal `issuer` exactly (OpenID Connect
    /// Discovery 1.0 §4.3) and returns its `jwks_uri`.
    pub(crate) fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let fetched = self.get(&url)?;
        let failure = |reason: &str| FetchError::Discovery {
            url: url.clone(),
            reason: reason.to_owned(),
        };
        let mut tape = Tape::new();
        let document = tape
            .parse(&fetched.body, 32)
            .map_err(|_| failure("not a JSON document"))?;
        let document = document
            .as_object()
            .ok_or_else(|| failure("not a JSON object"))?;
        let text = |name: &str| {
            document
                .get(name)
                .and_then(|value| value.as_str())
                .map(|value| value.to_cow().into_owned())
        };
        let named = text("issuer").ok_or_else(|| failure("no issuer"))?;
        if named != issuer {
            return Err(failure(&format!(
                "names issuer {named:?}, not the configured {issuer:?}"
            )));
        }
        let jwks_uri = text("jwks_uri").ok_or_else(|| failure("no jwks_uri"))?;
        if !self.settings.allow_http && !jwks_uri.starts_with("https://") {
            return Err(failure("jwks_uri is not https"));
        }
        let parsed: Uri = jwks_uri
            .parse()
            .map_err(|_| failure("jwks_uri is not a URL"))?;
        // Checked here as well as by `get`, so the refusal names discovery.
        self.destinations
            .check(&parsed)
            .map_err(|reason| FetchError::Refused {
                url: url.clone(),
                hop: Hop::JwksUri,
                target: jwks_uri.clone(),
                reason,
            })?;
        Ok(jwks_uri)
    }
}

/// The freshness a `Cache-Control` value gives: `max-age=N` seconds;
/// `no-store` or `no-cache` count as zero (refresh at the lower bound).
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            found = seconds
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_gives_the_max_age() {
        for (header, age) in [
            ("max-age=300", Some(300)),
            ("public, max-age=86400, must-revalidate", Some(86_400)),
            ("Max-Age=\"60\"", Some(60)),
            ("no-cache", Some(0)),
            ("max-age=600, no-store", Some(0)),
            ("public", None),
            ("max-age=-1", None),
            ("max-age=soon", None),
        ] {
            assert_eq!(max_age(header), age.map(Duration::from_secs), "{header}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = crate::test_support::scratch_dir("ca");
        let path = dir.join("empty.pem");
        std::fs::write(&path, "nothing here\n").unwrap();
        let settings = FetchSettings {
            ca_file: Some(path.clone()),
            ..FetchSettings::default()
        };
        let location = Location::Url("https://idp.example/keys".into());
        let error = Fetcher::new(&settings, &location).unwrap_err();
        assert!(
            matches!(&error, FetchError::CaFile { reason, .. } if reason.contains("no PEM")),
            "{error}"
        );
        let missing = FetchSettings {
            ca_file: Some(dir.join("missing.pem")),
            ..FetchSettings::default()
        };
        assert!(matches!(
            Fetcher::new(&missing, &location).unwrap_err(),
            FetchError::CaFile { .. }
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

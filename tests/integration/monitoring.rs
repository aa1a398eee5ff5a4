//! `deploy/monitoring/`: the Prometheus alerting rules pass their `promtool
//! test rules` cases, every expression of the Grafana dashboard parses, and
//! every metric either names is one a running jwtgate exports (a live scrape
//! of a server with a fetched key set, an access log and the gRPC face, so
//! that every family is there).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use common::https::{Ca, HttpsServer, Reply};
use common::server::{Conn, Server, request_bytes};

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(monitoring_dir().join(name)).unwrap()
}

/// Runs `promtool ARGS` in `dir`; panics with its output unless it succeeds.
fn promtool_ok(promtool: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The dashboard's PromQL expressions, as Grafana sends them once its
/// variables are filled in.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: serde_json::Value = serde_json::from_str(&read("grafana-dashboard.json"))
        .unwrap_or_else(|e| panic!("grafana-dashboard.json is not JSON: {e}"));
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let filled = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*");
            exprs.push((panel["title"].as_str().unwrap().to_owned(), filled));
        }
    }
    assert!(exprs.len() >= 16, "{exprs:?}");
    exprs
}

#[test]
fn the_alerting_rules_pass_their_cases_and_the_dashboard_parses() {
    let Some(promtool) = common::promtool("monitoring") else {
        return;
    };
    let dir = monitoring_dir();
    let checked = promtool_ok(&promtool, &dir, &["check", "rules", "jwtgate-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    let tested = promtool_ok(
        &promtool,
        &dir,
        &["test", "rules", "jwtgate-alerts.test.yml"],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");

    // promtool parses every dashboard expression as a recording rule's.
    let scratch = TempDir::new("monitoring");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, (_, expr)) in dashboard_exprs().iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        let quoted = serde_json::to_string(expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:expr_{index}\n        expr: {quoted}\n"
        ));
    }
    scratch.write("dashboard-rules.yml", &rules);
    promtool_ok(
        &promtool,
        scratch.root(),
        &["check", "rules", "dashboard-rules.yml"],
    );
}

/// `jwtgate_...` names in `text`, a histogram's `_bucket`, `_sum` and
/// `_count` read as the histogram.
fn metric_names(text: &str, histograms: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("jwtgate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| histograms.contains(*base))
            })
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_dashboard_and_alerts_read_is_exported() {
    let dir = TempDir::new("monitoring-scrape");
    let ca = Ca::new("monitoring");
    dir.write("ca.pem", ca.pem());
    let https = HttpsServer::start(&ca);
    https.set(
        "/jwks.json",
        Reply::json(format!(r#"{{"keys":[{}]}}"#, common::rsa_jwk("k1"))),
    );
    let config = format!(
        r#"default_action = "deny"

[server]
access_log = "{log}"

[[token_config]]
name = "users"
jwks_url = "{url}"
ca_file = "ca.pem"
issuer = "https://idp.test/"
algorithms = ["RS256"]

[[rule]]
name = "api"
paths = ["/**"]
token_configs = ["users"]
"#,
        log = dir.path("access.log").display(),
        url = https.url("/jwks.json"),
    );
    let path = dir.write("jwtgate.toml", config);
    let server = Server::start(&[
        "--config",
        path.to_str().unwrap(),
        "--grpc-listen",
        "127.0.0.1:0",
    ]);
    let mut conn = Conn::open(server.addr());
    let answer = conn.request(&request_bytes("GET", "/orders", &[], b""));
    assert_eq!(answer.status, 401, "{}", answer.head_text());
    let mut admin = Conn::open(server.admin_addr());
    let scrape = admin.request(&request_bytes("GET", "/metrics", &[], b""));
    assert_eq!(scrape.status, 200);
    let text = scrape.body_text();
    let mut families = BTreeSet::new();
    let mut histograms = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_owned());
            if kind == "histogram" {
                histograms.insert(name.to_owned());
            }
        }
    }
    let mut read = metric_names(&read("jwtgate-alerts.yml"), &histograms);
    for (_, expr) in dashboard_exprs() {
        read.extend(metric_names(&expr, &histograms));
    }
    assert!(read.len() >= 15, "{read:?}");
    let missing: Vec<&String> = read.difference(&families).collect();
    assert!(
        missing.is_empty(),
        "read by the dashboard or the alerts but not exported: {missing:?}\n{text}"
    );
}

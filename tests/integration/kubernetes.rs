//! The Kubernetes manifests: the kustomize base `deploy/kubernetes` and the
//! overlays `examples/ingress-nginx` and `examples/envoy-gateway`, rendered
//! with `kubectl kustomize` and, independently, by reading the files the way
//! kustomize does (the two renderings must agree), then checked against the
//! binary:
//!
//! - the policy each one deploys passes `check-config`, and `serve` with the
//!   Deployment's own arguments (its `$(JWTGATE_SHARDS)` from the CPU limit,
//!   the policy at its mount path, with the identity provider's URL swapped
//!   for a local key file) starts, answers the probes at the paths and port
//!   the probes name and refuses a request without a token;
//! - the Services' target ports, the probes' port and the ServiceMonitor's
//!   endpoint are ports jwtgate listens on; the grace period covers the
//!   preStop sleep, the drain delay, the close spread and the drain timeout;
//!   the memory limit covers what the measured 10.1 KB per connection and the
//!   token cache's bound cost at `--max-connections`; the security context is
//!   the restricted standard's, as the image's user;
//! - the ingress-nginx annotations and the Envoy Gateway SecurityPolicy name
//!   the Service, its port and headers jwtgate answers.
//!
//! kubectl is on the machines this runs on (not from Debian, whose 1.20
//! kustomize predates directories in `resources`); a machine without it
//! checks the hand rendering alone and says so on stderr.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr
)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_norway::Value;

use common::TempDir;
use common::server::{Conn, Server};

/// Measured RSS per open connection (README, "Memory per connection":
/// `scripts/bench-connections.sh`, 10,097 to 10,102 bytes).
const BYTES_PER_CONNECTION: u64 = 10_102;
/// The process without connections or cached tokens (12.1 MiB measured in the
/// soak), with room for key sets and the access log's buffers.
const BASE_BYTES: u64 = 32 << 20;

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value:?}"))
}

fn number(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("not a number: {other:?}"),
    }
}

/// What `kubectl kustomize DIR` renders, read without kubectl: the
/// resources (files, and directories rendered the same way), the
/// `configMapGenerator` (its `replace` behaviour too) and the namespace,
/// without the name hash kustomize adds to generated ConfigMaps.
fn render_by_hand(dir: &Path) -> Vec<Value> {
    let kustomization: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    let mut objects = Vec::new();
    let components = kustomization["components"]
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for resource in kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .chain(components)
    {
        let path = dir.join(text(resource));
        if path.is_dir() {
            objects.extend(render_by_hand(&path));
        } else {
            objects.extend(yaml_documents(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    for generator in kustomization["configMapGenerator"]
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let mut data = serde_norway::Mapping::new();
        for file in generator["files"].as_sequence().unwrap() {
            let name = text(file);
            data.insert(
                Value::from(name),
                Value::from(std::fs::read_to_string(dir.join(name)).unwrap()),
            );
        }
        let name = text(&generator["name"]);
        if generator["behavior"].as_str() == Some("replace") {
            let existing = objects
                .iter_mut()
                .find(|object| object["kind"] == "ConfigMap" && object["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{}: no ConfigMap {name} to replace", dir.display()));
            existing["data"] = Value::Mapping(data);
            continue;
        }
        let mut metadata = serde_norway::Mapping::new();
        metadata.insert("name".into(), name.into());
        let mut map = serde_norway::Mapping::new();
        map.insert("apiVersion".into(), "v1".into());
        map.insert("kind".into(), "ConfigMap".into());
        map.insert("metadata".into(), Value::Mapping(metadata));
        map.insert("data".into(), Value::Mapping(data));
        objects.push(Value::Mapping(map));
    }
    if let Some(namespace) = kustomization["namespace"].as_str() {
        for object in &mut objects {
            if object["kind"] != "Namespace" {
                object["metadata"]["namespace"] = Value::from(namespace);
            }
        }
    }
    if let Some(images) = kustomization["images"].as_sequence() {
        for object in &mut objects {
            let Some(containers) = at_mut(object, &["spec", "template", "spec", "containers"])
                .and_then(Value::as_sequence_mut)
            else {
                continue;
            };
            for container in containers {
                for image in images {
                    if container["image"] == image["name"] {
                        container["image"] = Value::from(format!(
                            "{}:{}",
                            text(&image["newName"]),
                            text(&image["newTag"])
                        ));
                    }
                }
            }
        }
    }
    objects
}

/// The value at `path`, if there is one (indexing a `&mut Value` would add
/// what is missing).
fn at_mut<'v>(value: &'v mut Value, path: &[&str]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(value, |value, key| value.get_mut(*key))
}

/// The generated ConfigMap's name without kustomize's content hash.
fn without_hash(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, hash))
            if hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            base
        }
        _ => name,
    }
}

/// Sorted by kind, namespace and name, generated names without their hash,
/// so that the two renderings compare.
fn normalised(mut objects: Vec<Value>) -> Vec<Value> {
    for object in &mut objects {
        if object["kind"] == "ConfigMap" {
            let name = without_hash(text(&object["metadata"]["name"])).to_owned();
            object["metadata"]["name"] = Value::from(name);
        }
        if let Some(volumes) = at_mut(object, &["spec", "template", "spec", "volumes"])
            .and_then(Value::as_sequence_mut)
        {
            for volume in volumes {
                if let Some(name) = volume["configMap"]["name"].as_str() {
                    let name = without_hash(name).to_owned();
                    volume["configMap"]["name"] = Value::from(name);
                }
            }
        }
    }
    let key = |object: &Value| {
        (
            object["kind"].as_str().unwrap_or_default().to_owned(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    objects.sort_by_key(key);
    objects
}

/// The rendering of `dir`: kubectl's where it is installed (checked against
/// the hand rendering), the hand rendering otherwise.
fn render(dir: &str) -> Vec<Value> {
    let path = common::repo_path(dir);
    let by_hand = normalised(render_by_hand(&path));
    let Some(kubectl) = common::on_path("kubectl") else {
        eprintln!("kubernetes: kubectl not found; {dir} checked from its files alone");
        return by_hand;
    };
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = yaml_documents(std::str::from_utf8(&output.stdout).unwrap());
    let by_kubectl = normalised(rendered.clone());
    assert_eq!(
        by_kubectl.len(),
        by_hand.len(),
        "{dir}: kubectl kustomize and the hand rendering give different objects"
    );
    for (kubectl, hand) in by_kubectl.iter().zip(&by_hand) {
        assert!(
            kubectl == hand,
            "{dir}: kubectl kustomize renders\n{}\nand the hand rendering\n{}",
            serde_norway::to_string(kubectl).unwrap(),
            serde_norway::to_string(hand).unwrap()
        );
    }
    rendered
}

fn find<'o>(objects: &'o [Value], kind: &str, name: &str) -> &'o Value {
    objects
        .iter()
        .find(|object| {
            object["kind"] == kind && without_hash(text(&object["metadata"]["name"])) == name
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|arg| arg == name)
        .map(|at| args[at + 1].as_str())
}

/// `"192Mi"`, `"1Gi"`, `"500M"` in bytes.
fn quantity_bytes(quantity: &str) -> u64 {
    for (suffix, unit) in [
        ("Ki", 1_u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ] {
        if let Some(digits) = quantity.strip_suffix(suffix) {
            return digits.parse::<u64>().unwrap() * unit;
        }
    }
    quantity.parse().unwrap()
}

/// `"2"`, `"1500m"` as whole CPUs, rounded up (what a `resourceFieldRef` with
/// divisor 1 gives).
fn quantity_cpus(quantity: &str) -> u64 {
    match quantity.strip_suffix('m') {
        Some(milli) => milli.parse::<u64>().unwrap().div_ceil(1000),
        None => quantity.parse().unwrap(),
    }
}

/// A token of the policy's issuer and first audience, valid for ten minutes
/// from now, signed with the key that stands in for the identity provider's.
fn idp_token(policy: &str) -> String {
    let quoted = |key: &str| {
        policy
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split('"').nth(1))
            .unwrap_or_else(|| panic!("no {key} in the policy"))
            .to_owned()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    common::mint(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &format!(
            r#"{{"iss":"{}","aud":"{}","sub":"alice","iat":{now},"exp":{}}}"#,
            quoted("issuer = "),
            quoted("audiences = "),
            now + 600
        ),
        &common::signing_key("rsa2048-a", jwtgate::Algorithm::Rs256),
        jwtgate::Algorithm::Rs256,
    )
}

fn jwtgate(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "jwtgate {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Everything the base's Deployment, Services and policies promise, for one
/// rendering; returns the rendered objects for the overlay's own checks.
fn check_deployment(dir: &str) -> Vec<Value> {
    let objects = render(dir);
    let deployment = find(&objects, "Deployment", "jwtgate");
    let pod = &deployment["spec"]["template"]["spec"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let mut args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|arg| text(arg).to_owned())
        .collect();
    assert_eq!(args[0], "serve");

    // --shards from the CPU limit, through the downward API.
    let limits = &container["resources"]["limits"];
    let cpus = quantity_cpus(&match &limits["cpu"] {
        Value::String(s) => s.clone(),
        other => number(other).to_string(),
    });
    let shards_env = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|env| env["name"] == "JWTGATE_SHARDS")
        .expect("env JWTGATE_SHARDS");
    assert_eq!(
        shards_env["valueFrom"]["resourceFieldRef"]["resource"],
        "limits.cpu"
    );
    assert_eq!(
        number(&shards_env["valueFrom"]["resourceFieldRef"]["divisor"]),
        1
    );
    assert_eq!(flag(&args, "--shards"), Some("$(JWTGATE_SHARDS)"));
    assert_eq!(
        container["resources"]["requests"], container["resources"]["limits"],
        "requests equal limits: the Guaranteed class, whole cores for the shards"
    );

    // The ports the container declares are the ones jwtgate listens on.
    let named_port = |name: &str| -> u64 {
        let port = container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|port| port["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}"));
        number(&port["containerPort"])
    };
    let listen = flag(&args, "--listen").unwrap().to_owned();
    let admin = flag(&args, "--admin-listen").unwrap().to_owned();
    let grpc = flag(&args, "--grpc-listen").unwrap().to_owned();
    assert_eq!(named_port("http"), port_of(&listen));
    assert_eq!(named_port("admin"), port_of(&admin));
    assert_eq!(named_port("grpc"), port_of(&grpc));
    for address in [&listen, &admin, &grpc] {
        assert!(
            address.starts_with("0.0.0.0:"),
            "{address}: a pod's port must be reachable from other pods"
        );
    }
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // Services reach the container's ports; the ServiceMonitor scrapes the
    // admin Service.
    for service in objects.iter().filter(|object| object["kind"] == "Service") {
        let selector = service["spec"]["selector"].as_mapping().unwrap();
        for (key, value) in selector {
            assert_eq!(&pod_labels[key], value, "Service selector {key:?}");
        }
        for port in service["spec"]["ports"].as_sequence().unwrap() {
            let target = text(&port["targetPort"]);
            assert_eq!(
                number(&port["port"]),
                named_port(target),
                "Service {} port {target}",
                text(&service["metadata"]["name"])
            );
        }
    }
    // The ServiceMonitor is a component (the Prometheus Operator's CRD
    // must exist for it): checked where an overlay adds it.
    if let Some(monitor) = objects
        .iter()
        .find(|object| object["kind"] == "ServiceMonitor")
    {
        let admin_service = find(&objects, "Service", "jwtgate-admin");
        assert_eq!(
            monitor["metadata"]["namespace"],
            admin_service["metadata"]["namespace"]
        );
        for (key, value) in monitor["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .unwrap()
        {
            assert_eq!(&admin_service["metadata"]["labels"][key], value);
        }
        let endpoint = &monitor["spec"]["endpoints"][0];
        assert_eq!(endpoint["port"], "admin");
        assert_eq!(endpoint["path"], "/metrics");
    }

    // The drain fits the grace period.
    let pre_stop = number(&container["lifecycle"]["preStop"]["sleep"]["seconds"]);
    let numeric = |name: &str, default: u64| {
        flag(&args, name).map_or(default, |value| value.parse::<u64>().unwrap())
    };
    let drain_delay = numeric("--drain-delay", 0);
    let close_spread = numeric("--drain-close-spread", 1);
    let drain_timeout = numeric("--drain-timeout", 10);
    let grace = number(&pod["terminationGracePeriodSeconds"]);
    assert!(
        grace >= pre_stop + drain_delay + close_spread + drain_timeout + 5,
        "terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain delay {drain_delay} \
         + close spread {close_spread} + drain timeout {drain_timeout} + 5"
    );

    // The restricted Pod Security Standard, as the image's user.
    let image_user = std::fs::read_to_string(common::repo_path("deploy/container/Containerfile"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    assert_eq!(number(&pod_security["runAsUser"]), image_user);
    assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        find(&objects, "Namespace", "jwtgate")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);

    // The autoscaler owns the pod count (a `replicas` here would reset it at
    // every apply); disruptions take one pod at a time, leaving one serving.
    assert!(
        deployment["spec"]["replicas"].is_null(),
        "the Deployment must leave replicas to the HorizontalPodAutoscaler"
    );
    let budget = find(&objects, "PodDisruptionBudget", "jwtgate");
    let autoscaler = find(&objects, "HorizontalPodAutoscaler", "jwtgate");
    let min_replicas = number(&autoscaler["spec"]["minReplicas"]);
    assert!(min_replicas >= 2, "minReplicas {min_replicas}");
    assert_eq!(number(&budget["spec"]["maxUnavailable"]), 1);
    assert!(budget["spec"]["minAvailable"].is_null());
    assert_eq!(autoscaler["spec"]["scaleTargetRef"]["name"], "jwtgate");
    assert_eq!(autoscaler["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );

    // The policy, at the path the arguments name.
    let config_path = flag(&args, "--config").unwrap().to_owned();
    let (mount_dir, file_name) = config_path.rsplit_once('/').unwrap();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|mount| mount["mountPath"] == mount_dir)
        .expect("a volume mounted where --config points");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|volume| volume["name"] == mount["name"])
        .unwrap();
    let config_map = find(
        &objects,
        "ConfigMap",
        without_hash(text(&volume["configMap"]["name"])),
    );
    let policy = text(&config_map["data"][file_name]).to_owned();
    let dir_files = TempDir::new("kubernetes");
    let policy_path = dir_files.write("jwtgate.toml", &policy);
    let report = jwtgate(&["check-config", policy_path.to_str().unwrap()]);

    // Memory: the connections --max-connections admits and the token cache's
    // bound, per shard, within the limit.
    let max_connections = numeric("--max-connections", 10_000);
    let cache_mib: u64 = report
        .lines()
        .find(|line| line.trim_start().starts_with("token cache:"))
        .and_then(|line| line.split("(at most ").nth(1)?.split(" MiB)").next())
        .expect("check-config reports the token cache's bound")
        .parse()
        .unwrap();
    let needed = BASE_BYTES + cpus * (max_connections * BYTES_PER_CONNECTION + (cache_mib << 20));
    let limit = quantity_bytes(text(&limits["memory"]));
    assert!(
        limit >= needed,
        "memory limit {limit} B < {needed} B: {cpus} shards of {max_connections} connections \
         at {BYTES_PER_CONNECTION} B and a {cache_mib} MiB token cache, plus {BASE_BYTES} B"
    );

    // serve, with the Deployment's own arguments, starts, answers its probes
    // and enforces the policy. The identity provider's URL becomes a local
    // key file (nothing is fetched here) and the proxies' network this
    // loopback; every other line of the policy is as deployed.
    let runnable: String = policy
        .lines()
        .map(|line| {
            if line.starts_with("jwks_url = ") {
                format!(
                    "public_key_file = \"{}\"",
                    common::data_path("rsa2048-a.spki.pem").display()
                )
            } else if line.starts_with("trusted_proxies = ") {
                "trusted_proxies = [\"127.0.0.1\"]".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let runnable_path = dir_files.write("runnable.toml", runnable);
    for arg in &mut args {
        if arg == "$(JWTGATE_SHARDS)" {
            *arg = cpus.to_string();
        } else if *arg == config_path {
            *arg = runnable_path.display().to_string();
        } else if arg.starts_with("0.0.0.0:") {
            *arg = "127.0.0.1:0".to_owned();
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start_command(Command::new(env!("CARGO_BIN_EXE_jwtgate")), &args);
    assert_eq!(server.shards() as u64, cpus);
    assert!(server.grpc_addr().is_some());
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = text(&container[probe]["httpGet"]["path"]);
        let response = Conn::open(server.admin_addr())
            .request(format!("GET {path} HTTP/1.1\r\nhost: pod\r\n\r\n").as_bytes());
        assert_eq!(
            response.status,
            200,
            "{probe} {path}: {}",
            response.body_text()
        );
    }
    // The check a proxy sends for GET https://api.example.com/v1/orders,
    // as the policy's forwarded style reads it.
    let x_original_url = policy.contains("forwarded = \"x-original-url\"");
    let check = |authorization: Option<&str>| {
        let mut head = if x_original_url {
            "GET / HTTP/1.1\r\nhost: jwtgate\r\nx-original-method: GET\r\n\
             x-original-url: https://api.example.com/v1/orders\r\n"
                .to_owned()
        } else {
            "GET /v1/orders HTTP/1.1\r\nhost: api.example.com\r\n".to_owned()
        };
        if let Some(authorization) = authorization {
            head.push_str(&format!("authorization: {authorization}\r\n"));
        }
        head.push_str("\r\n");
        Conn::open(server.addr()).request(head.as_bytes())
    };
    let missing = check(None);
    assert_eq!(missing.status, 401, "{dir}: {}", missing.head_text());
    assert_eq!(missing.header("x-jwtgate-outcome"), Some("missing"));
    let allowed = check(Some(&format!("Bearer {}", idp_token(&policy))));
    assert_eq!(allowed.status, 200, "{dir}: {}", allowed.head_text());
    assert_eq!(allowed.header("x-jwt-sub"), Some("alice"));
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    objects
}

#[test]
fn the_kustomize_base_is_a_deployment_jwtgate_runs_as_written() {
    check_deployment("deploy/kubernetes");
}

#[test]
fn the_servicemonitor_component_scrapes_the_admin_service() {
    let objects = check_deployment("tests/data/kustomize-servicemonitor");
    assert!(
        objects
            .iter()
            .any(|object| object["kind"] == "ServiceMonitor"),
        "the component adds a ServiceMonitor"
    );
}

#[test]
fn the_ingress_nginx_overlay_sends_every_request_of_the_api_through_jwtgate() {
    let objects = check_deployment("examples/ingress-nginx");
    let ingress = find(&objects, "Ingress", "api");
    let annotations = &ingress["metadata"]["annotations"];
    let auth_url = text(&annotations["nginx.ingress.kubernetes.io/auth-url"]);
    let service = find(&objects, "Service", "jwtgate");
    let http_port = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|port| port["name"] == "http")
        .unwrap();
    assert_eq!(
        auth_url,
        format!(
            "http://{}.{}.svc.cluster.local:{}/",
            text(&service["metadata"]["name"]),
            text(&service["metadata"]["namespace"]),
            number(&http_port["port"])
        )
    );
    // Every identity header jwtgate answers, so that each replaces (or, empty,
    // removes) what a client sent under its name.
    let copied: Vec<String> =
        text(&annotations["nginx.ingress.kubernetes.io/auth-response-headers"])
            .split(',')
            .map(|header| header.trim().to_ascii_lowercase())
            .collect();
    assert_eq!(copied, jwtgate::authz::IDENTITY_HEADERS);
    assert!(annotations["nginx.ingress.kubernetes.io/auth-snippet"].is_null());
    let policy =
        std::fs::read_to_string(common::repo_path("examples/ingress-nginx/jwtgate.toml")).unwrap();
    assert!(policy.contains("forwarded = \"x-original-url\""));
}

fn check_security_policy(policy: &Value, objects: &[Value], face: &str) {
    let ext_auth = &policy["spec"]["extAuth"];
    assert_eq!(ext_auth["failOpen"], false);
    let backend = &ext_auth[face]["backendRefs"][0];
    let service = find(objects, "Service", text(&backend["name"]));
    assert_eq!(service["metadata"]["namespace"], backend["namespace"]);
    let port_name = if face == "grpc" { "grpc" } else { "http" };
    let port = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|port| port["name"] == port_name)
        .unwrap();
    assert_eq!(port["port"], backend["port"], "{face} backend port");
    // The reference across namespaces is granted.
    let granted = objects.iter().any(|object| {
        object["kind"] == "ReferenceGrant"
            && object["metadata"]["namespace"] == backend["namespace"]
            && object["spec"]["from"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|from| {
                    from["kind"] == "SecurityPolicy"
                        && from["namespace"] == policy["metadata"]["namespace"]
                })
            && object["spec"]["to"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|to| to["kind"] == "Service" && to["name"] == backend["name"])
    });
    assert!(
        granted,
        "no ReferenceGrant lets the policy name {backend:?}"
    );
    if face == "http" {
        // No path: the check's path is the client's, as request-line reads it.
        assert!(ext_auth["http"]["path"].is_null());
        let copied: Vec<&str> = ext_auth["http"]["headersToBackend"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        assert_eq!(copied, jwtgate::authz::IDENTITY_HEADERS);
    }
}

#[test]
fn the_envoy_gateway_overlay_asks_jwtgate_over_grpc_or_http() {
    let objects = check_deployment("examples/envoy-gateway");
    let policy = find(&objects, "SecurityPolicy", "jwtgate");
    check_security_policy(policy, &objects, "grpc");
    let http: Value = serde_norway::from_str(
        &std::fs::read_to_string(common::repo_path(
            "examples/envoy-gateway/security-policy-http.yaml",
        ))
        .unwrap(),
    )
    .unwrap();
    check_security_policy(&http, &objects, "http");
    // The base's policy reads the request line as Envoy sends it, with no
    // prefix to take off.
    let report = jwtgate(&[
        "check-config",
        common::repo_path("deploy/kubernetes/jwtgate.toml")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        report
            .lines()
            .any(|line| line == "original request from: the request line and Host (Envoy)"),
        "{report}"
    );
}

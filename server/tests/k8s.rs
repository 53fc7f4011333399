//! The Kubernetes manifests (deploy/k8s/) cannot run here (no cluster);
//! scripts/test.d/40-k8s.sh renders and schema-checks them. This keeps
//! them consistent with the server itself: every variable they give it is
//! one of its flags' and parses as that flag, the container port is the
//! one it listens on, the probes ask a route that answers 200, and the
//! verdict Job's verify command line is one verify accepts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use testkit::{start, Backend};
use ticket_server::backend::BackendKind;
use ticket_server::config::Config;

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/k8s")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The generators' `- KEY=value` literals of a kustomization.
fn literals(kustomization: &str) -> BTreeMap<String, String> {
    kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ")?.split_once('='))
        .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the server sees in one overlay: the base's ConfigMap merged with
/// the overlay's ConfigMap and Secret literals.
fn overlay_env(overlay: &str) -> BTreeMap<String, String> {
    let mut env = literals(&read("base/kustomization.yaml"));
    env.extend(literals(&read(&format!(
        "overlays/{overlay}/kustomization.yaml"
    ))));
    env
}

/// The server's command line for these variables, each turned into the
/// flag that reads it; an error names a variable no flag reads.
fn flags_for(env: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let command = Config::command();
    let mut argv = vec!["ticket-server".to_string()];
    for (var, value) in env {
        // Read by tracing-subscriber, not by a flag.
        if var == "RUST_LOG" {
            continue;
        }
        let arg = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == var.as_str()))
            .ok_or_else(|| format!("the server has no flag for {var}"))?;
        argv.push(format!("--{}={value}", arg.get_long().unwrap()));
    }
    Ok(argv)
}

fn config_of(overlay: &str) -> Config {
    let env = overlay_env(overlay);
    let argv = flags_for(&env).unwrap_or_else(|e| panic!("overlay {overlay}: {e}"));
    Config::try_parse_from(&argv).unwrap_or_else(|e| panic!("overlay {overlay}: {argv:?}: {e}"))
}

#[test]
fn every_overlay_gives_the_server_only_variables_it_parses() {
    for overlay in ["byo", "in-cluster"] {
        let env = overlay_env(overlay);
        for endpoint in ["BACKEND", "REDIS_URL", "KAFKA_BROKERS", "LISTEN"] {
            assert!(env.contains_key(endpoint), "{overlay} sets {endpoint}");
        }
        let config = config_of(overlay);
        assert_eq!(config.backend, BackendKind::Real, "{overlay}");
    }
    // The Secret of the bring-your-own overlay is created by hand: the keys
    // its instructions name must be flags' variables too.
    let byo = read("overlays/byo/kustomization.yaml");
    let secret: Vec<&str> = byo
        .split("--from-literal=")
        .skip(1)
        .map(|s| s.split('=').next().unwrap())
        .collect();
    assert_eq!(secret, ["ADMIN_TOKEN", "TOKEN_SECRET", "POSTGRES_URL"]);
    let in_cluster = overlay_env("in-cluster");
    for key in secret {
        assert!(
            in_cluster.contains_key(key),
            "in-cluster's Secret has {key}"
        );
        let one = BTreeMap::from([(key.to_string(), "x".to_string())]);
        flags_for(&one).unwrap();
    }
    // The Deployment's own env entries.
    let deployment = read("base/deployment.yaml");
    let names: BTreeMap<String, String> = deployment
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(|n| (n.to_string(), "x".to_string()))
        .collect();
    assert!(names.contains_key("INSTANCE_ID"), "{names:?}");
    flags_for(&names).unwrap();
}

/// Negative controls: the checks above refuse a variable no flag reads and
/// a value the flag refuses.
#[test]
fn the_variable_check_refuses_unknown_names_and_bad_values() {
    let unknown = BTreeMap::from([("REDIS_HOST".to_string(), "redis".to_string())]);
    assert_eq!(
        flags_for(&unknown).unwrap_err(),
        "the server has no flag for REDIS_HOST"
    );
    let mut env = overlay_env("in-cluster");
    env.insert("HOLD_TTL".into(), "2 seconds".into());
    assert!(Config::try_parse_from(flags_for(&env).unwrap()).is_err());
}

#[test]
fn ports_match_what_the_server_listens_on() {
    let port = config_of("byo").listen.port();
    assert_eq!(config_of("in-cluster").listen.port(), port);
    let deployment = read("base/deployment.yaml");
    assert!(
        deployment.contains(&format!("containerPort: {port}\n")),
        "the container port is LISTEN's {port}"
    );
    let service = read("base/service.yaml");
    assert!(service.contains(&format!("port: {port}\n")), "{service}");
    assert!(service.contains("targetPort: http\n"), "{service}");
    assert!(
        deployment.contains("- name: http\n"),
        "the port is named http"
    );
    // The Jobs reach the server through the Service on that port.
    for job in ["jobs/load/loadgen.yaml", "jobs/verdict/verdict.yaml"] {
        assert!(
            read(job).contains(&format!("http://ticket-server:{port}")),
            "{job} targets the Service"
        );
    }
}

#[tokio::test]
async fn both_probes_ask_a_route_that_answers_200() {
    let deployment = read("base/deployment.yaml");
    let probes: Vec<&str> = ["readinessProbe:", "livenessProbe:"]
        .iter()
        .map(|p| {
            let at = deployment.find(p).unwrap_or_else(|| panic!("no {p}"));
            let after = &deployment[at..];
            let path = after.find("path: ").unwrap() + "path: ".len();
            after[path..].lines().next().unwrap()
        })
        .collect();
    assert_eq!(probes, ["/actuator/health", "/actuator/health"]);
    let server = start(&Backend::Memory, &[]).await;
    for path in probes {
        let got = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(got.status(), 200, "{path}");
    }
    // Negative control: a path that is not a route does not answer 200.
    let got = server.client.get(server.url("/actuator/healthz")).send();
    assert_eq!(got.await.unwrap().status(), 404);
    server.stop().await.unwrap();
}

#[test]
fn the_verdict_job_runs_a_verify_command_line_verify_accepts() {
    let job = read("jobs/verdict/verdict.yaml");
    let line = job
        .lines()
        .find_map(|l| l.trim().strip_prefix("exec verify "))
        .expect("the Job execs verify");
    let argv = |line: &str| -> Vec<String> {
        std::iter::once("verify")
            .chain(line.split_whitespace())
            .map(|a| a.replace("\"$hold_ms\"", "2000"))
            .collect()
    };
    let options = verify::Options::try_parse_from(argv(line)).unwrap();
    assert_eq!(options.target, ["http://ticket-server:8080"]);
    assert!(verify::Options::try_parse_from(argv(&format!("{line} --hold-ttl 2"))).is_err());
    // The hold TTL it is told comes from the server's own ConfigMap key.
    assert!(job.contains("key: HOLD_TTL"));
    assert!(Config::command()
        .get_arguments()
        .any(|a| a.get_env().is_some_and(|e| e == "HOLD_TTL")));
}

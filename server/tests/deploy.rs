//! docker-compose.yml cannot run here (no Docker engine), so this keeps it
//! consistent with what does run: the host ports of scripts/services.sh,
//! and environment variables the server actually reads.

use std::path::PathBuf;

fn read(path: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path),
    )
    .unwrap()
}

#[test]
fn compose_uses_the_local_scripts_ports() {
    let compose = read("docker-compose.yml");
    let services = read("scripts/services.sh");
    for (var, port) in [
        ("REDIS_PORT", "16379"),
        ("PG_PORT", "15432"),
        ("KAFKA_PORT", "19092"),
    ] {
        assert!(
            services.contains(&format!("{var}=${{{var}:-{port}}}")),
            "services.sh default {var}={port}"
        );
        assert!(
            compose.contains(&format!("127.0.0.1:{port}:")),
            "compose publishes {port}"
        );
    }
}

#[test]
fn compose_sets_only_variables_the_server_reads() {
    let compose = read("docker-compose.yml");
    let config = read("server/src/config.rs");
    let section = &compose[compose.find("  server:").unwrap()..compose.find("  lb:").unwrap()];
    let env = &section[section.find("environment:").unwrap()..section.find("deploy:").unwrap()];
    let vars: Vec<&str> = env
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| *k != "RUST_LOG")
        .collect();
    assert!(vars.len() >= 8, "{vars:?}");
    for var in vars {
        assert!(
            config.contains(&format!("env = \"{var}\"")),
            "the server has no flag for {var}"
        );
    }
    assert!(section.contains("cpus:"), "each replica has a CPU limit");
    assert!(
        compose.contains("KAFKA_PROCESS_ROLES: broker,controller"),
        "Kafka in KRaft mode"
    );
}

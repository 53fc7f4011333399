//! An instance under a CPU quota runs as many tokio workers as its quota
//! has whole CPUs; one without a quota sizes its runtime for the machine.
//! Each instance's log says how many workers its runtime has.

use std::path::Path;

use loadgen::cgroup::Controller;
use loadgen::instances::{workers_for, Backend, Fleet, ServerSpec};
use testkit::TempDir;

mod common;
use common::server_bin;

/// The worker count from the instance's "tokio runtime with N workers" line.
fn logged_workers(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("tokio runtime with"))
        .unwrap_or_else(|| panic!("no runtime line in {}:\n{text}", log.display()));
    let after = line.split("tokio runtime with ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}

async fn workers_of_one_instance(controller: &Controller, cores: f64, label: &str) -> usize {
    let dir = TempDir::new(&format!("fleet-workers-{label}"));
    let spec = ServerSpec {
        bin: server_bin(),
        backend: Backend::Memory,
        admin_token: "fleet-workers-admin".into(),
        token_secret: "fleet-workers-secret".into(),
        namespace: format!("fleet-workers-{label}"),
        log_dir: dir.to_path_buf(),
    };
    let fleet = Fleet::start(&spec, 1, controller, cores, label)
        .await
        .unwrap();
    // The line is written before the instance announces its address, which
    // Fleet::start waited for.
    let workers = logged_workers(&dir.join(format!("{label}-instance-0.log")));
    fleet.stop().await;
    workers
}

#[test]
fn workers_for_rounds_the_quota_up_to_whole_cpus() {
    assert_eq!(workers_for(0.11), 1);
    assert_eq!(workers_for(1.0), 1);
    assert_eq!(workers_for(1.5), 2);
}

#[tokio::test]
async fn a_quota_sets_the_instances_workers_and_no_quota_leaves_the_machines() {
    let controller = Controller::detect().expect("a CPU controller (run as root)");
    assert_eq!(workers_of_one_instance(&controller, 0.2, "quota").await, 1);
    let machine = std::thread::available_parallelism().unwrap().get();
    // Without a quota the runtime's default holds: one worker per CPU. On
    // a machine of more than one CPU this differs from the quota'd count,
    // so the first assertion is not the default passing by itself.
    assert_eq!(
        workers_of_one_instance(&Controller::none(), 0.2, "none").await,
        machine
    );
}

//! The Kubernetes load Job (deploy/k8s/jobs/load/) runs `loadgen run`
//! with a command line no cluster runs here: it must be one loadgen
//! accepts, aimed at the server's Service, writing where the verdict Job
//! merges from.

use std::path::PathBuf;

use clap::Parser;
use loadgen::run::RunArgs;

#[derive(Parser)]
struct RunCli {
    #[command(flatten)]
    args: RunArgs,
}

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The words after `exec loadgen run` in the Job's folded shell command,
/// with the pod's completion index as the Job controller sets it.
fn job_argv(job: &str) -> Vec<String> {
    let start = job
        .find("exec loadgen run")
        .expect("the Job execs loadgen run");
    let command: Vec<&str> = job[start..]
        .lines()
        .take_while(|l| !l.trim().ends_with(':'))
        .collect();
    std::iter::once("loadgen")
        .chain(command.join(" ").split_whitespace().skip(3))
        .map(|w| w.replace("\"/results/load/$JOB_COMPLETION_INDEX\"", "/results/load/0"))
        .collect()
}

#[test]
fn the_load_job_runs_a_command_line_loadgen_accepts() {
    let job = read("deploy/k8s/jobs/load/loadgen.yaml");
    let mut argv = job_argv(&job);
    // The Job gives the admin token as ADMIN_TOKEN, from the Secret.
    assert!(job.contains("name: ADMIN_TOKEN"));
    argv.push("--admin-token=from-the-secret".into());
    let cli = RunCli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert_eq!(cli.args.hosts, ["http://ticket-server:8080"]);
    assert!(cli.args.rate.is_some(), "the open model");
    assert_eq!(cli.args.out, PathBuf::from("/results/load/0"));
    // The verdict Job merges exactly these logs.
    let verdict = read("deploy/k8s/jobs/verdict/verdict.yaml");
    assert!(verdict.contains("loadgen merge --out /results/merged /results/load/*/latency.hlog"));
    // One index until loadgen can run a share of a run.
    assert!(job.contains("completionMode: Indexed\n  completions: 1\n"));
    // Negative control: a flag loadgen does not have is refused.
    argv.push("--no-such-flag=1".into());
    assert!(RunCli::try_parse_from(&argv).is_err());
}

//! The Kubernetes load Job (deploy/k8s/jobs/load/) runs `loadgen run`
//! with a command line no cluster runs here: it must be one loadgen
//! accepts, with each pod of the Indexed Job running its own shard of one
//! run, aimed at the server's Service, writing where the verdict Job
//! merges from.

use std::path::PathBuf;
use std::process::Command;

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

/// The Job's folded `sh -c` command, from `exec loadgen run` to the end
/// of the folded block.
fn job_command(job: &str) -> String {
    let start = job
        .find("exec loadgen run")
        .expect("the Job execs loadgen run");
    let lines: Vec<&str> = job[start..]
        .lines()
        .take_while(|l| !l.trim().ends_with(':'))
        .map(str::trim)
        .collect();
    lines.join(" ")
}

/// The argv the pod's shell gives loadgen, expanded by a real `sh` with
/// the variables the Job controller and the pod's env set.
fn pod_argv(command: &str, env: &[(&str, &str)]) -> Vec<String> {
    let printing = command.replacen("exec loadgen run", "printf '%s\\n' loadgen", 1);
    let out = Command::new("sh")
        .args(["-c", &printing])
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// `key: N` of the Job spec.
fn spec_number(job: &str, key: &str) -> u32 {
    let line = job
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("the Job sets {key}"));
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

fn try_parse(argv: &[String]) -> Result<RunCli, clap::Error> {
    // The Job gives the admin token as ADMIN_TOKEN, from the Secret.
    let mut argv = argv.to_vec();
    argv.push("--admin-token=from-the-secret".into());
    RunCli::try_parse_from(&argv)
}

fn parse(argv: &[String]) -> RunCli {
    try_parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

#[test]
fn each_pod_of_the_load_job_runs_its_own_shard_of_one_run() {
    let job = read("deploy/k8s/jobs/load/loadgen.yaml");
    assert!(job.contains("completionMode: Indexed"));
    assert!(job.contains("name: ADMIN_TOKEN"));
    let completions = spec_number(&job, "completions");
    assert_eq!(
        spec_number(&job, "parallelism"),
        completions,
        "every shard runs at once"
    );
    assert!(completions > 1, "the Job is sharded");
    let command = job_command(&job);

    let mut run_ids = Vec::new();
    for index in 0..completions {
        let index_text = index.to_string();
        let argv = pod_argv(
            &command,
            &[
                ("JOB_COMPLETION_INDEX", &index_text),
                ("RUN_UID", "0f9c5b2e"),
                ("START_AT", "1795289400"),
            ],
        );
        let cli = parse(&argv);
        let shard = cli.args.shard.expect("each pod runs a shard");
        assert_eq!((shard.index, shard.count), (index, completions));
        assert!(cli.args.start_at.is_some(), "the shards begin together");
        assert_eq!(cli.args.hosts, ["http://ticket-server:8080"]);
        assert!(cli.args.rate.is_some(), "the open model");
        assert_eq!(
            cli.args.out,
            PathBuf::from(format!("/results/load/{index}"))
        );
        run_ids.push(cli.args.run_id.expect("one run id for every pod"));
    }
    run_ids.dedup();
    assert_eq!(run_ids, ["k8s-0f9c5b2e"], "one run, named after the Job");

    // Without the optional ConfigMap each pod starts when it is ready.
    let argv = pod_argv(&command, &[("JOB_COMPLETION_INDEX", "0"), ("RUN_UID", "u")]);
    assert!(parse(&argv).args.start_at.is_none());

    // The verdict Job merges exactly these logs (merge refuses a missing
    // or foreign shard: loadgen/tests/shards.rs).
    let verdict = read("deploy/k8s/jobs/verdict/verdict.yaml");
    assert!(verdict.contains("loadgen merge --out /results/merged /results/load/*/latency.hlog"));

    // Negative controls: a flag loadgen does not have is refused, and so
    // is an index the shard count does not have.
    let mut argv = pod_argv(&command, &[("JOB_COMPLETION_INDEX", "0"), ("RUN_UID", "u")]);
    argv.push("--no-such-flag=1".into());
    assert!(try_parse(&argv).is_err());
    let beyond = completions.to_string();
    let argv = pod_argv(
        &command,
        &[("JOB_COMPLETION_INDEX", &beyond), ("RUN_UID", "u")],
    );
    let refused = try_parse(&argv).err().expect("an index beyond the count");
    assert!(refused.to_string().contains("--shard"), "{refused}");
}

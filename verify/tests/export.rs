//! The export for an established checker: the races as Jepsen counter
//! histories and the queue as a set history, in EDN as elle-cli reads
//! them. elle-cli itself cannot be fetched here (it is a Clojure jar from
//! GitHub/Clojars), so this checks the export's shape and applies the
//! counter and set checkers' rules to it, as Jepsen states them.

mod common;

use common::{embedded, options};
use testkit::TempDir;
use verify::{run_against, CheckName};

/// One EDN operation map of the export: `(type, f, value, process)`.
fn parse(line: &str) -> (String, String, String, u64) {
    let body = line
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a map: {line}"));
    let field = |key: &str| -> String {
        let start = body
            .find(&format!("{key} "))
            .unwrap_or_else(|| panic!("{key} missing in {line}"))
            + key.len()
            + 1;
        let rest = &body[start..];
        let end = if rest.starts_with("#{") {
            rest.find('}').unwrap() + 1
        } else {
            rest.find(", :").unwrap_or(rest.len())
        };
        rest[..end].to_owned()
    };
    (
        field(":type"),
        field(":f"),
        field(":value"),
        field(":process").parse().unwrap(),
    )
}

async fn exported(
    args: &[&str],
    dir: &TempDir,
) -> Vec<(String, Vec<(String, String, String, u64)>)> {
    let (server, target) = embedded(args).await;
    let mut opts = options(&[CheckName::Oversell, CheckName::Fifo]);
    opts.no_variants = true;
    let outcome = run_against(&target, &opts).await.unwrap();
    server.stop().await.unwrap();
    let history = dir.join("history.jsonl");
    outcome.history.write_jsonl(&history).unwrap();
    let files = verify::export::export_file(&history, &dir.join("edn")).unwrap();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, text.lines().map(parse).collect())
        })
        .collect()
}

/// Jepsen's counter checker: the read lies between the acknowledged adds
/// and those plus the unknown ones.
fn counter_valid(ops: &[(String, String, String, u64)]) -> bool {
    let sum = |kinds: &[&str]| -> i64 {
        ops.iter()
            .filter(|(t, f, _, _)| f == ":add" && kinds.contains(&t.as_str()))
            .map(|(_, _, v, _)| v.parse::<i64>().unwrap())
            .sum()
    };
    let (lower, upper) = (sum(&[":ok"]), sum(&[":ok", ":info"]));
    let read = ops
        .iter()
        .find(|(t, f, _, _)| t == ":ok" && f == ":read")
        .map(|(_, _, v, _)| v.parse::<i64>().unwrap())
        .expect("a read");
    (lower..=upper).contains(&read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_export_as_counter_histories_and_the_queue_as_a_set() {
    let dir = TempDir::new("verify-export");
    let files = exported(&[], &dir).await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["race-1-0.edn", "queue.edn"]);

    let race = &files[0].1;
    // Every invoke is followed by one completion of the same process.
    let invokes = race.iter().filter(|o| o.0 == ":invoke").count();
    assert_eq!(invokes * 2, race.len(), "{race:?}");
    let oks = race
        .iter()
        .filter(|o| o.0 == ":ok" && o.1 == ":add")
        .count();
    let fails = race
        .iter()
        .filter(|o| o.0 == ":fail" && o.1 == ":add")
        .count();
    assert_eq!((oks, fails), (100, 100));
    assert!(counter_valid(race), "the safe server's history is valid");
    // An extra acknowledged sale makes the same history invalid: the
    // counter rule can fail.
    let mut edited = race.clone();
    let i = edited.iter().position(|o| o.0 == ":fail").unwrap();
    edited[i].0 = ":ok".into();
    assert!(!counter_valid(&edited));

    // The queue: every accepted enter added, the admitted read back.
    let queue = &files[1].1;
    let added: Vec<&str> = queue
        .iter()
        .filter(|o| o.0 == ":ok" && o.1 == ":add")
        .map(|o| o.2.as_str())
        .collect();
    assert_eq!(added.len(), 40);
    let read = &queue
        .iter()
        .find(|o| o.1 == ":read" && o.0 == ":ok")
        .unwrap()
        .2;
    let members: Vec<&str> = read
        .trim_start_matches("#{")
        .trim_end_matches('}')
        .split(' ')
        .collect();
    // Set checker: nothing lost, nothing unexpected.
    let mut a = added.clone();
    let mut m = members.clone();
    a.sort_unstable();
    m.sort_unstable();
    assert_eq!(a, m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_selling_servers_export_shows_more_sales_than_stock() {
    let dir = TempDir::new("verify-export-unsafe");
    let files = exported(&["--unsafe-race"], &dir).await;
    let race = &files[0].1;
    let oks = race
        .iter()
        .filter(|o| o.0 == ":ok" && o.1 == ":add")
        .count();
    // The counter itself agrees with the server's count (it sold what it
    // said); the over-sale shows as acknowledged adds beyond the stock.
    assert!(oks > 100, "{oks}");
    assert!(counter_valid(race));
}

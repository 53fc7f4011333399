//! What the target implements decides what runs: against a flash-sale-only
//! server (no concert seat map) the default run passes with check 6 not
//! applicable in every output, and naming check 6 is an error (exit 2).

mod common;

use common::{embedded, flash_sale_only, verify_bin};
use testkit::TempDir;

/// Runs the binary on a blocking thread (the target lives on this runtime).
async fn verify(args: Vec<String>, out: &TempDir) -> (i32, String) {
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        verify_bin(&args, &out)
    })
    .await
    .unwrap()
}

fn args(base: &str, token: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["--target", base, "--admin-token", token, "--poll"];
    a.extend(extra);
    a.into_iter().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_only_server_passes_with_the_seat_map_not_applicable() {
    let (server, target) = embedded(&[]).await;
    let proxy = flash_sale_only(target.base.clone()).await;
    let out = TempDir::new("verify-flash-sale-only");
    let (code, text) = verify(args(&proxy, &target.admin_token, &["--no-variants"]), &out).await;
    server.stop().await.unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("PASS oversell: "), "{text}");

    // The human summary: one line for check 6, with the reason.
    let line = text
        .lines()
        .find(|l| l.contains("seatmap"))
        .unwrap_or_else(|| panic!("no seatmap line in {text}"));
    assert!(line.trim_start().starts_with("N/A"), "{line}");
    assert!(
        line.contains("not applicable: the target has no concert seat map: POST /api/v1/admin/concerts answered 404"),
        "{line}"
    );
    // The others ran and passed.
    for check in ["oversell", "fifo", "display", "tokens"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("PASS {check}"))),
            "{check} did not pass: {text}"
        );
    }

    // verdict.json: status "not applicable" with the reason.
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["pass"], true, "{verdict}");
    let checks = verdict["checks"].as_array().unwrap();
    let seatmap: Vec<_> = checks.iter().filter(|c| c["check"] == "seatmap").collect();
    assert_eq!(seatmap.len(), 1, "{verdict}");
    assert_eq!(seatmap[0]["status"], "not applicable");
    assert_eq!(seatmap[0]["pass"], false, "not applicable is not a pass");
    assert!(
        seatmap[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("answered 404"),
        "{verdict}"
    );
    assert!(
        checks
            .iter()
            .filter(|c| c["check"] != "seatmap")
            .all(|c| c["status"] == "pass"),
        "{verdict}"
    );

    // JUnit: check 6 skipped with the reason, nothing failed.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let suite = junit
        .split("<testsuite ")
        .find(|s| s.starts_with("name=\"seatmap\""))
        .unwrap_or_else(|| panic!("no seatmap suite in {junit}"));
    // quick-junit counts skipped cases as `disabled`.
    assert!(suite.contains("disabled=\"1\""), "{suite}");
    assert!(
        suite.contains("<skipped message=\"not applicable: the target has no concert seat map"),
        "{suite}"
    );
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_the_seat_map_on_a_server_without_one_exits_2_with_the_reason() {
    let (server, target) = embedded(&[]).await;
    let proxy = flash_sale_only(target.base.clone()).await;
    for checks in ["seatmap", "oversell,seatmap"] {
        let out = TempDir::new("verify-flash-sale-only-seatmap");
        let (code, text) = verify(
            args(&proxy, &target.admin_token, &["--checks", checks]),
            &out,
        )
        .await;
        assert_eq!(code, 2, "--checks {checks}: {text}");
        assert!(
            text.contains("--checks seatmap cannot run on this target: the target has no concert seat map: POST /api/v1/admin/concerts answered 404"),
            "{text}"
        );
        assert!(!out.join("verdict.json").exists(), "no verdict: {text}");
    }
    // The same flags against the server itself (with its seat map) run
    // check 6, so the refusal above is the proxy's missing routes.
    let out = TempDir::new("verify-seatmap-present");
    let (code, text) = verify(
        args(
            &target.base,
            &target.admin_token,
            &["--checks", "seatmap", "--seat-users", "40", "--seats", "20"],
        ),
        &out,
    )
    .await;
    server.stop().await.unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("PASS seatmap: "), "{text}");
}

//! The `verify` binary as CI runs it: headline, files, exit status 0 / 1 / 2.

mod common;

use common::{purchases, verify_bin as verify};

use testkit::{start, Backend, TempDir};

#[test]
fn alone_it_passes_against_the_in_process_reference_server() {
    let out = TempDir::new("verify-bin-default");
    let (code, text) = verify(&[], &out);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("PASS oversell: 100 ok / 100 sold-out / 0 unresolved\n"),
        "{text}"
    );
    for file in ["verdict.json", "junit.xml", "history.jsonl"] {
        assert!(
            out.join(file).metadata().unwrap().len() > 0,
            "{file} written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_unsafe_server_it_fails_with_a_witness_and_exit_1() {
    let server = start(&Backend::Memory, &["--unsafe-race"]).await;
    let out = TempDir::new("verify-bin-unsafe");
    let (base, token) = (server.base.clone(), server.admin_token.clone());
    let (code, text) = tokio::task::spawn_blocking({
        let out = out.to_path_buf();
        move || {
            verify(
                &[
                    "--target",
                    &base,
                    "--admin-token",
                    &token,
                    "--checks",
                    "oversell",
                ],
                &out,
            )
        }
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(text.starts_with("FAIL oversell: "), "{text}");
    // The failure is the over-sale itself: more buyers succeeded than the
    // items allow, and the event says more were sold than it had.
    let headline = text.lines().next().unwrap();
    let (n, possible) = purchases(headline);
    assert!(n > possible, "{text}");
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("verdict.json")).unwrap()).unwrap();
    let decisive = verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pass"] == false)
        .unwrap();
    let d = &decisive["details"];
    let sold = d["event"]["sold"].as_u64().unwrap();
    let stock = d["stock"].as_u64().unwrap();
    assert!(sold > stock, "sold {sold} of {stock}: {d}");
    assert!(text.contains("witness: "), "{text}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
}

#[test]
fn an_unreachable_target_exits_2_with_a_clear_message() {
    let out = TempDir::new("verify-bin-unreachable");
    let (code, text) = verify(
        &["--target", "http://127.0.0.1:1", "--admin-token", "T"],
        &out,
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("the run could not be carried out: target unreachable"),
        "{text}"
    );
}

#[test]
fn a_missing_admin_token_exits_2() {
    let out = TempDir::new("verify-bin-no-token");
    let (code, text) = verify(&["--target", "http://127.0.0.1:1"], &out);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--admin-token"), "{text}");
}

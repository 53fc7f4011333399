//! Judged thresholds as people and CI read them: the printed lines and
//! `junit.xml`.

use std::fmt::Write as _;
use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::Judged;

/// Lines for the human summary: a verdict per threshold.
pub fn human(judged: &[Judged]) -> String {
    let mut out = String::new();
    if judged.is_empty() {
        return out;
    }
    let failed = judged.iter().filter(|j| !j.pass).count();
    let _ = writeln!(
        out,
        "thresholds: {} passed, {failed} failed",
        judged.len() - failed
    );
    for j in judged {
        let word = if j.pass { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "  {word} {:<32} {}", j.expression, j.detail);
    }
    out
}

/// `junit.xml`: one test case per threshold, a failure for each missed one.
pub fn write_junit(judged: &[Judged], suite: &str, path: &Path) -> anyhow::Result<()> {
    let mut report = Report::new("loadgen");
    let mut s = TestSuite::new(suite);
    for j in judged {
        let status = if j.pass {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("threshold '{}' failed: {}", j.expression, j.detail));
            status
        };
        let mut case = TestCase::new(j.expression.clone(), status);
        case.set_classname(format!("loadgen.{suite}"));
        case.set_system_out(j.detail.clone());
        s.add_test_case(case);
    }
    report.add_test_suite(s);
    std::fs::write(path, report.to_string()?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

//! The verdict: a one-line headline, per check pass/fail with a minimal
//! witness, and the files CI and people read: `verdict.json`, `junit.xml`
//! and `history.jsonl`.

use std::fmt::Write as _;
use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use serde_json::Value;

use crate::history::History;

/// What became of one check: it passed, it failed, or the target cannot
/// run it (it lacks what the check needs, e.g. the seat map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "pass")]
    Pass,
    #[serde(rename = "fail")]
    Fail,
    #[serde(rename = "not applicable")]
    NotApplicable,
}

impl Status {
    pub fn of(pass: bool) -> Self {
        if pass {
            Status::Pass
        } else {
            Status::Fail
        }
    }

    /// How the human summary shows it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotApplicable => "N/A ",
        }
    }
}

/// The judgement of one check on one run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Which check: oversell, stores, fifo, display, tokens, seatmap.
    pub check: &'static str,
    /// What exactly was judged, e.g. `200 buyers / 100 items x1 (run 1)`.
    pub name: String,
    /// Pass, fail or not applicable; `Verdict::new` keeps it in step with
    /// `pass` for the checks that ran.
    pub status: Status,
    /// True only when the check ran and passed.
    pub pass: bool,
    /// One line: the numbers that decided.
    pub summary: String,
    /// On failure, the smallest evidence: ids, operations, times.
    pub witness: Vec<String>,
    /// Everything measured, for machines.
    pub details: Value,
}

impl CheckReport {
    /// A check the target cannot run, and why (its summary).
    pub fn not_applicable(check: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        CheckReport {
            check,
            name: "not applicable".into(),
            status: Status::NotApplicable,
            pass: false,
            summary: format!("not applicable: {reason}"),
            witness: Vec::new(),
            details: serde_json::json!({ "reason": reason }),
        }
    }

    pub fn applies(&self) -> bool {
        self.status != Status::NotApplicable
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub pass: bool,
    pub headline: String,
    pub target: String,
    pub duration_ms: u64,
    pub history_ops: usize,
    pub checks: Vec<CheckReport>,
}

impl Verdict {
    /// The verdict on `checks`: it passes when every check that applies
    /// passed and at least one did (checks the target cannot run neither
    /// pass nor fail it).
    pub fn new(
        target: String,
        mut checks: Vec<CheckReport>,
        duration_ms: u64,
        history_ops: usize,
    ) -> Self {
        for c in checks.iter_mut().filter(|c| c.applies()) {
            c.status = Status::of(c.pass);
        }
        let ran: Vec<&CheckReport> = checks.iter().filter(|c| c.applies()).collect();
        let pass = !ran.is_empty() && ran.iter().all(|c| c.pass);
        let decisive = ran
            .iter()
            .find(|c| !c.pass)
            .or_else(|| ran.iter().find(|c| c.check == "oversell"))
            .or_else(|| ran.first());
        let headline = match decisive {
            Some(c) => format!(
                "{} {}: {}",
                if pass { "PASS" } else { "FAIL" },
                c.check,
                c.summary
            ),
            None => "FAIL no check ran (none applies to the target)".to_owned(),
        };
        Verdict {
            pass,
            headline,
            target,
            duration_ms,
            history_ops,
            checks,
        }
    }

    /// 0 when every check passed, 1 when one failed. (2, "the run could not
    /// be carried out", is the binary's answer to a `RunError`.)
    pub fn exit_code(&self) -> i32 {
        if self.pass {
            0
        } else {
            1
        }
    }

    /// The summary a person reads at the end of a run.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.headline);
        let _ = writeln!(
            out,
            "target: {}  ({} ms, {} operations)",
            self.target, self.duration_ms, self.history_ops
        );
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  {} {:<8} {:<38} {}",
                c.status.label(),
                c.check,
                c.name,
                c.summary
            );
            if !c.pass {
                for w in &c.witness {
                    let _ = writeln!(out, "         witness: {w}");
                }
            }
        }
        out
    }

    pub fn junit(&self) -> String {
        let mut report = Report::new("verify");
        let mut suites: Vec<TestSuite> = Vec::new();
        for c in &self.checks {
            let idx = match suites.iter().position(|s| s.name.as_str() == c.check) {
                Some(i) => i,
                None => {
                    suites.push(TestSuite::new(c.check));
                    suites.len() - 1
                }
            };
            let status = if c.status == Status::NotApplicable {
                let mut status = TestCaseStatus::skipped();
                status.set_message(c.summary.clone());
                status
            } else if c.pass {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(c.summary.clone());
                status.set_description(c.witness.join("\n"));
                status
            };
            let mut case = TestCase::new(c.name.clone(), status);
            case.set_classname(format!("verify.{}", c.check));
            case.set_system_out(c.summary.clone());
            suites[idx].add_test_case(case);
        }
        report.add_test_suites(suites);
        report.to_string().unwrap_or_default()
    }

    /// Writes `verdict.json`, `junit.xml` and `history.jsonl` into `dir`.
    pub fn write(&self, dir: &Path, history: &History) -> std::io::Result<()> {
        self.write_judgement(dir)?;
        history.write_jsonl(&dir.join("history.jsonl"))
    }

    /// Writes `verdict.json` and `junit.xml` into `dir`.
    pub fn write_judgement(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("verdict.json"),
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(dir.join("junit.xml"), self.junit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(check: &'static str, pass: bool, summary: &str) -> CheckReport {
        CheckReport {
            check,
            name: "n".into(),
            status: Status::of(pass),
            pass,
            summary: summary.into(),
            witness: if pass {
                vec![]
            } else {
                vec!["r1 & r2 <sold twice>".into()]
            },
            details: Value::Null,
        }
    }

    #[test]
    fn the_headline_names_the_first_failure_or_the_race() {
        let ok = Verdict::new(
            "t".into(),
            vec![
                report("tokens", true, "5 refused"),
                report("oversell", true, "100 ok / 100 sold-out / 0 unresolved"),
            ],
            1,
            1,
        );
        assert_eq!(
            ok.headline,
            "PASS oversell: 100 ok / 100 sold-out / 0 unresolved"
        );
        assert_eq!(ok.exit_code(), 0);
        let bad = Verdict::new(
            "t".into(),
            vec![
                report("oversell", true, "fine"),
                report("fifo", false, "3 inversions"),
            ],
            1,
            1,
        );
        assert_eq!(bad.headline, "FAIL fifo: 3 inversions");
        assert_eq!(bad.exit_code(), 1);
        assert!(
            !Verdict::new("t".into(), vec![], 1, 1).pass,
            "no check is no pass"
        );
    }

    #[test]
    fn a_check_that_does_not_apply_neither_passes_nor_fails_the_verdict() {
        let na = CheckReport::not_applicable("seatmap", "no seat map");
        let v = Verdict::new(
            "t".into(),
            vec![report("oversell", true, "fine"), na.clone()],
            1,
            1,
        );
        assert!(v.pass);
        assert_eq!(v.headline, "PASS oversell: fine");
        assert_eq!(v.checks[1].status, Status::NotApplicable);
        assert!(v.human().contains("N/A  seatmap"), "{}", v.human());
        let none = Verdict::new("t".into(), vec![na], 1, 1);
        assert!(!none.pass, "nothing that ran is no pass");
        assert_eq!(none.exit_code(), 1);
        let failed = Verdict::new(
            "t".into(),
            vec![
                report("oversell", false, "bad"),
                CheckReport::not_applicable("seatmap", "x"),
            ],
            1,
            1,
        );
        assert_eq!(failed.checks[0].status, Status::Fail);
        assert!(!failed.pass);
    }

    #[test]
    fn junit_carries_failures_and_escapes_witnesses() {
        let v = Verdict::new("t".into(), vec![report("oversell", false, "137 ok")], 1, 1);
        let xml = v.junit();
        assert!(xml.contains("<failure"), "{xml}");
        assert!(xml.contains("137 ok"), "{xml}");
        assert!(xml.contains("&lt;sold twice&gt;"), "{xml}");
        // The whole witness is there with its `&` escaped, and nowhere raw.
        assert!(xml.contains("r1 &amp; r2 &lt;sold twice&gt;"), "{xml}");
        assert!(!xml.contains("r1 & r2"), "{xml}");
        assert!(!xml.contains("<sold twice>"), "{xml}");
        assert!(
            xml.contains("tests=\"1\"") && xml.contains("failures=\"1\""),
            "{xml}"
        );
    }
}

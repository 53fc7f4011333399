//! Check 5, token rules: no token, a forged one, a malformed one, a waiting
//! one, a used one and another event's are each refused with the contract's
//! status, and none changes the stock.

use serde_json::json;

use crate::scenarios::tokens::TokensRun;
use crate::verdict::{CheckReport, Status};

pub fn judge(run: &TokensRun) -> CheckReport {
    let mut witness = run.problems.clone();
    let mut rows = Vec::new();
    for c in &run.cases {
        let status_ok =
            c.reply.status() == Some(c.expected_status) && c.reply.code() == Some(c.expected_code);
        let stock_ok = c.remaining_before.is_some() && c.remaining_before == c.remaining_after;
        if !status_ok {
            witness.push(format!(
                "{}: answered {}, expected {} {}",
                c.name,
                c.reply.short(),
                c.expected_status,
                c.expected_code
            ));
        }
        if !stock_ok {
            witness.push(format!(
                "{}: remaining {:?} before, {:?} after",
                c.name, c.remaining_before, c.remaining_after
            ));
        }
        rows.push(json!({
            "case": c.name,
            "expected": format!("{} {}", c.expected_status, c.expected_code),
            "got": c.reply.short(),
            "remainingBefore": c.remaining_before,
            "remainingAfter": c.remaining_after,
            "pass": status_ok && stock_ok,
        }));
    }
    let refused = rows.iter().filter(|r| r["pass"] == true).count();
    let pass = witness.is_empty();
    let mut summary = format!(
        "{refused} of {} bad tokens refused with the contract's status, stock unchanged",
        rows.len()
    );
    if let Some(w) = witness.first() {
        summary.push_str(&format!(" — {w}"));
    }
    CheckReport {
        check: "tokens",
        name: format!("{} cases", rows.len()),
        status: Status::of(pass),
        pass,
        summary,
        witness,
        details: json!({"eventId": run.event_id, "cases": rows}),
    }
}

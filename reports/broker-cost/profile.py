#!/usr/bin/env python3
"""Groups a `perf record` profile of the broker (run.sh with PERF=1) by
where the CPU goes: SQLite parsing and planning statements, SQLite
executing them, the kernel, the C allocator, and the rest of tansu.

    reports/broker-cost/profile.py /tmp/broker-cost/p4_l1_r1.perf.data
"""
import re
import subprocess
import sys

# Symbol substrings of SQLite's compiler (tokenizer, parser, name
# resolution, query planner, code generator); checked after EXECUTE.
PLAN = ["Parser", "yy_", "wherePath", "whereLoop", "resolve", "sqlite3Select",
        "Expr", "sqlite3Where", "Prepare", "sqlite3Code", "lookupName",
        "exprAnalyze", "sqlite3Locate", "whereShortCut", "Token", "Walk",
        "whereClause", "flatten", "multiSelect", "Window", "selectExpander",
        "sqlite3VdbeAdd", "sqlite3VdbeChange", "sqlite3VdbeMake",
        "sqlite3VdbeResolve", "sqlite3FindTable", "findElementWithHash",
        "sqlite3StrICmp", "sqlite3SrcList", "keywordCode", "sqlite3Dequote",
        "sqlite3Affinity", "codeEqualityTerm", "sqlite3Index", "sqlite3Init",
        "resizeResolveLabel"]
# Symbol substrings of SQLite's virtual machine and B-tree.
EXECUTE = ["VdbeExec", "btree", "Btree", "Cell", "pcache", "Serial", "Pager",
           "Cursor", "balance", "sqlite3VdbeRecord", "vdbeRecord",
           "sqlite3VdbeMem", "sqlite3MemCompare", "Step", "vdbeSorter",
           "sqlite3VdbeHalt", "sqlite3VdbeReset", "sqlite3VdbeDelete",
           "sqlite3VdbeClear", "fkLookupParent"]


def group(dso, symbol):
    if dso.startswith("[kernel"):
        return "kernel (scheduling, wake-ups, syscalls)"
    if "libc" in dso:
        return "C allocator and memcpy (libc)"
    if "tansu" not in dso:
        return "other libraries"
    if any(s in symbol for s in EXECUTE):
        return "SQLite executing statements"
    if any(s in symbol for s in PLAN):
        return "SQLite parsing and planning statements"
    if symbol.startswith("sqlite3"):
        return "SQLite, other"
    return "tansu's own code (protocol, tokio, tracing)"


def main(path):
    report = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,symbol",
         "--stdio", "-g", "none"],
        capture_output=True, text=True, check=True).stdout
    totals = {}
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(\S+)", line)
        if m:
            key = group(m.group(2), m.group(3))
            totals[key] = totals.get(key, 0.0) + float(m.group(1))
    for key, share in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{share:5.1f}%  {key}")


if __name__ == "__main__":
    main(sys.argv[1])

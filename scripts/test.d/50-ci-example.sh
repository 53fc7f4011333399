#!/usr/bin/env bash
# The README's CI example (deploy/ci/github-actions.yml) stays usable: it
# is valid YAML of a GitHub Actions workflow with one job that builds,
# starts a server, runs verify and a thresholded load run and uploads the
# reports; every option it gives verify and loadgen exists, and its
# thresholds parse (a run against a closed port exits 1, "could not run",
# never 2, "bad options"). A copy with a misspelled option must be caught.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ticketbench/target}"

PY=python3
if ! python3 -c 'import yaml' 2>/dev/null; then
    VENV="$HOME/.cache/ticketbench/venv-ci-example"
    say "installing PyYAML into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    timeout 300 "$VENV/bin/pip" install --quiet pyyaml
    PY="$VENV/bin/python"
fi
say "building verify and loadgen (debug) for their --help"
timeout 900 cargo build --quiet --locked -p verify -p loadgen
BIN="$CARGO_TARGET_DIR/debug"

say "checking deploy/ci/github-actions.yml"
timeout 120 "$PY" - "$BIN" deploy/ci/github-actions.yml <<'PY'
import re, shlex, subprocess, sys, yaml

bin_dir, path = sys.argv[1], sys.argv[2]
helps = {
    "verify": subprocess.run([f"{bin_dir}/verify", "--help"], capture_output=True, text=True).stdout,
    "loadgen run": subprocess.run([f"{bin_dir}/loadgen", "run", "--help"], capture_output=True, text=True).stdout,
}

def commands(run):
    """The verify and loadgen command lines of a step's script."""
    text = run.replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        for i, w in enumerate(words):
            if w.endswith("/verify"):
                yield "verify", words[i + 1:]
            if w.endswith("/loadgen") and words[i + 1:i + 2] == ["run"]:
                yield "loadgen run", words[i + 2:]

def problems(doc):
    found = []
    # PyYAML reads the bare key `on` as True (YAML 1.1).
    if not ({"on", True} & set(doc)):
        found.append("no `on:` trigger")
    jobs = doc.get("jobs") or {}
    if len(jobs) != 1:
        return found + [f"expected one job, found {list(jobs)}"], []
    steps = next(iter(jobs.values())).get("steps") or []
    runs = [s.get("run", "") for s in steps]
    if not any("cargo build" in r for r in runs):
        found.append("no build step")
    if not any("ticket-server" in r and "&" in r for r in runs):
        found.append("no step starting a server")
    seen = {"verify": 0, "loadgen run": 0}
    thresholds = []
    for r in runs:
        for tool, args in commands(r):
            seen[tool] += 1
            for a in args:
                if a.startswith("--"):
                    flag = a.split("=")[0]
                    if not re.search(rf"(^|[\s,]){re.escape(flag)}([\s=,]|$)", helps[tool], re.M):
                        found.append(f"{tool}: no option {flag}")
            thresholds += [args[i + 1] for i, a in enumerate(args) if a == "--threshold"]
    if not seen["verify"]:
        found.append("verify is not run")
    if not seen["loadgen run"] or not thresholds:
        found.append("no thresholded load run")
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    if not upload or "always()" not in str(upload[0].get("if")) or "reports/" not in str(upload[0].get("with", {}).get("path")):
        found.append("the reports directory is not uploaded on every outcome")
    return found, thresholds

text = open(path).read()
doc = yaml.safe_load(text)
found, thresholds = problems(doc)
if found:
    sys.exit(f"{path}: " + "; ".join(found))
# The thresholds parse: with nothing listening, loadgen must fail the run
# (1), not refuse the options (2).
for t in thresholds:
    r = subprocess.run([f"{bin_dir}/loadgen", "run", "--host", "http://127.0.0.1:9", "--admin-token", "x",
                        "--duration", "1", "--out", "/tmp/ci-example-never", "--quiet", "--threshold", t],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 1:
        sys.exit(f"{path}: threshold {t!r}: exit {r.returncode}, expected 1: {r.stderr}")
# Negative controls: a misspelled option and a missing upload are caught.
bad = yaml.safe_load(text.replace("--threshold 'tps", "--treshold 'tps"))
bad_found, _ = problems(bad)
assert any("--treshold" in p for p in bad_found), bad_found
no_upload = yaml.safe_load(text.replace("actions/upload-artifact", "actions/download-artifact"))
missing, _ = problems(no_upload)
assert any("uploaded" in p for p in missing), missing
print(f"{path}: ok ({len(thresholds)} thresholds; the misspelled option and the missing upload are caught)")
PY

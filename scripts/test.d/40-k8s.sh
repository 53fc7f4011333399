#!/usr/bin/env bash
# The Kubernetes manifests (deploy/k8s/), without a cluster: renders every
# kustomization with `kubectl kustomize` and validates each object against
# the Kubernetes API schemas with kubernetes-validate (pinned, in a venv
# under ~/.cache/ticketbench; it ships the schemas, so nothing is fetched
# while validating), strictly (an unknown field is an error), for the
# oldest and the newest Kubernetes version it knows. A deliberately wrong
# manifest must be refused, or the suite fails. The manifests' ports,
# probes and variable names against the server's own flags are checked by
# server/tests/k8s.rs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$(dirname "$0")/../.."

VALIDATE_VERSION=1.37.0
K8S_VERSIONS="1.25 1.37"
KUSTOMIZATIONS="deploy/k8s/base deploy/k8s/overlays/byo deploy/k8s/overlays/in-cluster deploy/k8s/jobs/load deploy/k8s/jobs/verdict"
venv="$HOME/.cache/ticketbench/venv-kubernetes-validate"

if ! command -v kubectl >/dev/null; then
    apt_install "kubectl kustomize renders the manifests" kubectl
fi
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$VALIDATE_VERSION"; then
    say "installing kubernetes-validate $VALIDATE_VERSION into $venv"
    python3 -m venv "$venv"
    timeout 600 "$venv/bin/pip" install --quiet "kubernetes-validate==$VALIDATE_VERSION"
fi

rendered=$(mktemp -d)
on_exit "rm -rf '$rendered'"

# Each object must pass; the count guards against a render that silently
# produced nothing.
for k in $KUSTOMIZATIONS; do
    file="$rendered/$(echo "$k" | tr / _).yaml"
    timeout 60 kubectl kustomize "$k" >"$file" || die "kubectl kustomize $k failed"
    objects=$(grep -c '^kind:' "$file" || true)
    [ "$objects" -gt 0 ] || die "$k rendered no object"
    for v in $K8S_VERSIONS; do
        timeout 120 "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$file" ||
            die "$k: $objects objects, not valid for Kubernetes $v (above)"
    done
    say "$k: $objects objects valid for Kubernetes $K8S_VERSIONS"
done

# Negative controls: the validator must refuse a misspelt field and a wrong
# type in a Deployment like ours.
control() {
    local what=$1 from=$2 to=$3 file="$rendered/control.yaml"
    kubectl kustomize deploy/k8s/overlays/byo | sed "s|$from|$to|" >"$file"
    grep -q "$to" "$file" || die "negative control '$what' did not apply"
    if "$venv/bin/kubernetes-validate" --strict --quiet -k 1.37 "$file" >/dev/null 2>&1; then
        die "negative control: kubernetes-validate accepted $what"
    fi
    say "negative control refused: $what"
}
control "a misspelt field (readinesProbe)" "readinessProbe:" "readinesProbe:"
control "a string replica count" "replicas: 2" "replicas: two"

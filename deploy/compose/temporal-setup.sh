#!/bin/sh
# One-shot job of docker-compose.yml (temporalio/admin-tools image, or anywhere the `temporal`
# CLI is on PATH): the namespace and the search attributes that make rollouts findable.
# Idempotent: what exists is left as it is. Env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default
# "default"), TEMPORAL_CLI (default: temporal on PATH).
set -eu
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
TEMPORAL="${TEMPORAL_CLI:-temporal}"
# NAME=TYPE, as `temporal operator search-attribute create` spells the type. The same list as
# ROLLOUT_SEARCH_ATTRIBUTES in src/workflows/search-attributes.ts (test/compose/compose.test.ts
# holds the two together).
SEARCH_ATTRIBUTES="RolloutService=Keyword RolloutVersion=Int RolloutPhase=Keyword RolloutStrategy=Keyword RolloutCanaryPercent=Int RolloutOutcome=Keyword"
ATTEMPTS="${SETUP_ATTEMPTS:-60}"

# Runs a command until it succeeds, at most ATTEMPTS times, 2 s apart (the server answers before it
# is ready, and a namespace just created is known to every part of it only seconds later).
retry() {
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$ATTEMPTS" ]; then
      echo "gave up after $ATTEMPTS tries: $*" >&2
      return 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

has_attribute() {
  "$TEMPORAL" operator search-attribute list -n "$NAMESPACE" -o json | grep -q "\"$1\""
}

# Created, or there already (a try that failed after it took effect).
create_namespace() {
  "$TEMPORAL" operator namespace create -n "$NAMESPACE" || "$TEMPORAL" operator namespace describe -n "$NAMESPACE" >/dev/null
}

create_attribute() {
  "$TEMPORAL" operator search-attribute create -n "$NAMESPACE" --name "$1" --type "$2" || has_attribute "$1"
}

retry "$TEMPORAL" operator cluster health >/dev/null

if "$TEMPORAL" operator namespace describe -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  retry create_namespace
  echo "namespace $NAMESPACE created"
fi

existing="$(retry "$TEMPORAL" operator search-attribute list -n "$NAMESPACE" -o json)"
for pair in $SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if printf '%s' "$existing" | grep -q "\"$name\""; then
    echo "search attribute $name exists"
  else
    retry create_attribute "$name" "$type"
    echo "search attribute $name ($type) created"
  fi
done

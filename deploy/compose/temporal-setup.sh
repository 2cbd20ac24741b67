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

attempt=1
until "$TEMPORAL" operator cluster health >/dev/null 2>&1; do
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    echo "Temporal at ${TEMPORAL_ADDRESS:-localhost:7233} did not become healthy after $ATTEMPTS tries" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

if "$TEMPORAL" operator namespace describe -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  "$TEMPORAL" operator namespace create -n "$NAMESPACE"
  echo "namespace $NAMESPACE created"
fi

existing="$("$TEMPORAL" operator search-attribute list -n "$NAMESPACE" -o json)"
for pair in $SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if printf '%s' "$existing" | grep -q "\"$name\""; then
    echo "search attribute $name exists"
  else
    "$TEMPORAL" operator search-attribute create -n "$NAMESPACE" --name "$name" --type "$type"
    echo "search attribute $name ($type) created"
  fi
done

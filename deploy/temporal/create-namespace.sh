#!/bin/sh
# One-shot of docker-compose.yml's temporal-namespace service (temporalio/admin-tools image):
# waits for the frontend, then creates the engine's namespace with its retention (how long
# closed workflow histories stay readable) unless it exists. Safe to run again.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS: host:port of the Temporal frontend}"
NAMESPACE="${NAMESPACE:-default}"
RETENTION="${RETENTION:-400d}"

attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
    if [ "$attempt" -ge 60 ]; then
        echo "Temporal at $TEMPORAL_ADDRESS is not serving after 60 attempts" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
done

if temporal operator namespace describe -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    temporal operator namespace create -n "$NAMESPACE" --retention "$RETENTION" \
        --address "$TEMPORAL_ADDRESS"
    echo "namespace $NAMESPACE created (retention $RETENTION)"
fi

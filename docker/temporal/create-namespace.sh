#!/bin/sh
# One-shot (temporal-namespace service, temporalio/admin-tools image): registers the namespace
# the worker and the CLI use, once the server answers. The server's own health check only sees
# its port open, so this waits for the cluster to report SERVING first. Address: TEMPORAL_ADDRESS.
set -eu
namespace="${NAMESPACE:-default}"
attempt=1
until temporal operator cluster health >/dev/null 2>&1; do
  if [ "$attempt" -ge 60 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS is not serving after $attempt attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done
if temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
  echo "namespace $namespace exists"
else
  temporal operator namespace create --namespace "$namespace"
fi

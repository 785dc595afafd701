#!/bin/sh
# Health check of the worker container: healthy while this container's worker process polls its
# task queue. Temporal lists pollers as <pid>@<hostname> for up to five minutes after their last
# poll, so the identity must name the live process, not merely this host.
set -eu
pid=$(pgrep -o -f 'cli/main.ts worker') || exit 1
temporal task-queue describe \
  --address "$SMARTCITY_TEMPORAL_ADDRESS" \
  --namespace "${SMARTCITY_TEMPORAL_NAMESPACE:-default}" \
  --task-queue "${SMARTCITY_TASK_QUEUE:-smartcity}" \
  --output json | grep -q "\"identity\": \"$pid@$(hostname)\""

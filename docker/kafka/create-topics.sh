#!/bin/bash
# One-shot (kafka-init service, apache/kafka image): creates the event topics and the dead-letter
# topic, as `smartcity stack up` does for the local broker (the broker does not auto-create
# topics). 3 partitions, one replica: the defaults of SMARTCITY_KAFKA_PARTITIONS and
# SMARTCITY_KAFKA_REPLICATION_FACTOR. Existing topics are left as they are.
set -euo pipefail
bootstrap="${BOOTSTRAP_SERVER:?BOOTSTRAP_SERVER is not set}"
for topic in vehicle_data gps_data traffic_data weather_data emergency_data smartcity_dead_letter; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions 3 --replication-factor 1
done

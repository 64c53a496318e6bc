#!/bin/sh
# One-shot (temporal-setup service): register the service's custom search attributes.
# Idempotent: the CLI accepts attributes that already exist with the same type.
set -eu
: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"

echo "waiting for namespace ${TEMPORAL_NAMESPACE} at ${TEMPORAL_ADDRESS} ..."
tries=0
until temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 120 ]; then
        echo "namespace ${TEMPORAL_NAMESPACE} did not appear" >&2
        exit 1
    fi
    sleep 1
done

temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
    --namespace "$TEMPORAL_NAMESPACE" \
    --name DspEntityKey --type Keyword \
    --name DspEntityType --type Keyword \
    --name DspBatch --type Keyword \
    --name DspStatus --type Keyword
echo "search attributes registered in ${TEMPORAL_NAMESPACE}"

#!/usr/bin/env bash
# Sends one Standard Webhooks-signed webhook to a running fulfillment service.
#
#   scripts/send-webhook.sh <publisher-id> <whsec_secret> <json-body> [webhook-id]
#
# FULFILLMENT_URL overrides the base URL (default http://127.0.0.1:8080). The signature is
# base64(HMAC-SHA256(secret, "<webhook-id>.<timestamp>.<body>")), as the spec defines.
set -euo pipefail
publisher=${1:?publisher id}
secret=${2:?whsec_ secret}
body=${3:?json body}
id=${4:-msg_$(date +%s%N)}
url=${FULFILLMENT_URL:-http://127.0.0.1:8080}
ts=$(date +%s)
key_hex=$(printf '%s' "${secret#whsec_}" | base64 -d | od -An -vtx1 | tr -d ' \n')
signature=$(printf '%s' "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | base64)
curl -sS -X POST "$url/webhooks/publishers/$publisher" \
  -H "content-type: application/json" \
  -H "webhook-id: $id" \
  -H "webhook-timestamp: $ts" \
  -H "webhook-signature: v1,$signature" \
  --data-binary "$body"
echo

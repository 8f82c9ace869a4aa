#!/usr/bin/env bash
# The job of config/deployments/with-secrets.toml. It proves it has the token without printing it.
set -euo pipefail
source cronium.sh
if [ -z "${API_TOKEN:-}" ]; then
  echo "API_TOKEN is not set" >&2
  exit 1
fi
echo "would sync with ${API_URL} using a token of ${#API_TOKEN} characters"
fingerprint=$(printf '%s' "$API_TOKEN" | sha256sum | cut -c1-12)
cronium_output "{\"token_sha256_prefix\": \"${fingerprint}\", \"token_length\": ${#API_TOKEN}}"

#!/bin/sh
# Starts Alertmanager on alertmanager.yml beside this script, with its working directory
# (the image's data folder, /alertmanager) as its storage. Alertmanager reads no environment
# variables, so ALERT_WEBHOOK_URL becomes the file the receivers' webhooks read
# (`url_file: webhook-url`); empty, the webhooks are taken out and nothing is sent.
# Arguments are passed on to Alertmanager.
set -eu
config="$(dirname "$0")/alertmanager.yml"
if [ -n "${ALERT_WEBHOOK_URL:-}" ]; then
    printf '%s\n' "$ALERT_WEBHOOK_URL" > webhook-url
    cp "$config" alertmanager.yml
else
    rm -f webhook-url
    # Each webhook is two lines: `webhook_configs:` and its `- url_file:` entry.
    sed '/^ *webhook_configs:$/{N;d;}' "$config" > alertmanager.yml
fi
exec alertmanager --config.file=alertmanager.yml --storage.path=. "$@"

#!/bin/sh
# Demo provisioning script: busybox-compatible (the simulator's instances are busybox roots).
# The end-to-end test boots a new instance from the image and reads these files back.
set -eu

mkdir -p /etc/bakerd-demo
echo "${BUILT_BY:-unknown}" > /etc/bakerd-demo/built-by
echo "${GREETING:-}" > /etc/bakerd-demo/greeting
echo "demo-setup.sh ran as $(id -u)" > /etc/bakerd-demo/script-ran
echo "demo-setup.sh: wrote /etc/bakerd-demo (built by ${BUILT_BY:-unknown})"

#!/bin/sh
# Disables password logins for sshd; keys only. Idempotent.
set -eu
conf=/etc/ssh/sshd_config.d/50-bakerd-hardening.conf
mkdir -p "$(dirname "$conf")"
cat > "$conf" <<'CONF'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
CONF
sshd -t

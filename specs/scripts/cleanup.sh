#!/bin/sh
# Leaves no build traces in the image: package caches, logs, shell history, machine identity.
set -eu
apt-get -y -q autoremove --purge
apt-get -y -q clean
rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*
find /var/log -type f -exec truncate -s 0 {} +
rm -f /root/.bash_history
truncate -s 0 /etc/machine-id
cloud-init clean --logs || true

#!/usr/bin/env bash
# Installs what bakerd's simulator and test suite need on a fresh Debian machine (run as root).
#   openssh-server, busybox-static: the simulator's instances are chrooted sshd's over busybox roots
#   pkg-config, libsodium-dev: thrussh's libsodium binding links against the system library
#   python3-venv: the official Alibaba Cloud Python SDKs are installed into target/pyenv for tests
# Usage: scripts/install-deps.sh [--no-python]   (--no-python: skip the test-only Python SDKs)
set -euo pipefail
cd "$(dirname "$0")/.."
with_python=1
[ "${1:-}" = "--no-python" ] && with_python=0

need_apt=0
for bin in /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen /usr/bin/busybox /usr/bin/pkg-config /usr/bin/curl; do
  [ -x "$bin" ] || need_apt=1
done
dpkg -s libsodium-dev >/dev/null 2>&1 || need_apt=1
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends openssh-server openssh-client busybox-static \
    pkg-config libsodium-dev python3 python3-venv ca-certificates curl
fi

# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd && chmod 0755 /run/sshd

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

[ "$with_python" = 1 ] || exit 0
venv=target/pyenv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aliyunsdkcore, aliyunsdkecs, alibabacloud_ecs20140526' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    aliyun-python-sdk-core aliyun-python-sdk-ecs alibabacloud_ecs20140526
fi

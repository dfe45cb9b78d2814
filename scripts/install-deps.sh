#!/usr/bin/env bash
# Installs what bakerd's simulator and test suite need on a fresh Debian machine (run as root).
#   openssh-server, busybox-static: the simulator's instances are chrooted sshd's over busybox roots
#   pkg-config, libsodium-dev: thrussh's libsodium binding links against the system library
#   python3-venv: the official Alibaba Cloud Python SDKs are installed into target/pyenv for tests
#   packer (Debian's 1.6.6): tests/packer_alicloud.rs runs real Packer builds against the simulator
#   nodejs, npm: the official Alibaba Cloud Node SDKs are installed into target/node for tests
# Usage: scripts/install-deps.sh [--no-python]   (--no-python: skip the test-only SDKs and Packer)
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

test_apt=()
command -v packer >/dev/null 2>&1 || test_apt+=(packer)
command -v node >/dev/null 2>&1 || test_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || test_apt+=(npm)
if [ "${#test_apt[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${test_apt[@]}"
fi

# The official Node SDKs, pinned, in a project-local node_modules (tests set NODE_PATH to it).
node_dir=target/node
node_sdks=(@alicloud/pop-core@1.8.0 @alicloud/ecs20140526@7.11.6 @alicloud/openapi-client@0.4.15)
if ! NODE_PATH="$node_dir/node_modules" node -e 'for (const m of ["@alicloud/pop-core", "@alicloud/ecs20140526", "@alicloud/openapi-client"]) require(m)' 2>/dev/null; then
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"private": true}' > "$node_dir/package.json"
  (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error "${node_sdks[@]}")
fi
venv=target/pyenv
# `python -m pip`, not `bin/pip`: a copied venv's pip script still names the original's interpreter.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aliyunsdkcore, aliyunsdkecs, alibabacloud_ecs20140526, alibabacloud_vpc20160428' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    aliyun-python-sdk-core aliyun-python-sdk-ecs alibabacloud_ecs20140526 alibabacloud_vpc20160428
fi

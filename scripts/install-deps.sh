#!/usr/bin/env bash
# Installs every build and test dependency of Basalt on Debian 12. Idempotent.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ninja-build
  libevent-dev libssl-dev libldap-dev liblzo2-dev liblmdb-dev libxapian-dev
  libgmime-3.0-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libxxhash-dev
  slapd ldap-utils
  dovecot-imapd dovecot-pop3d dovecot-lmtpd
  python3 python3-pytest openssl curl isync fetchmail
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

# Tests start their own slapd and Dovecot on loopback; the system services are not wanted.
policy_created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  policy_created=1
fi
trap '[ $policy_created -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs the Debian 12 packages strata builds with, if any is missing.
set -euo pipefail

packages=(build-essential cmake pkg-config nlohmann-json3-dev libgtest-dev libgmock-dev
          libpcre2-dev libutf8proc-dev libcli11-dev libcpp-httplib-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "strata: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null

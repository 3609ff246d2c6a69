#!/usr/bin/env bash
# Debian packages Lamina uses for isolation. Without root it only says what is missing.
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "WARNING: missing ${missing[*]} (install with: sudo apt-get install ${missing[*]});" \
       "Lamina will fall back to plain processes without filesystem isolation." >&2
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "WARNING: no apt-get here; install ${missing[*]} by hand for sandboxing." >&2
fi

#!/usr/bin/env bash
# System packages the tests need: Debian's Chromium (the report is checked in a real headless browser), a
# CJK font (Chinese reports and plots) and PostgreSQL (several search workers on one study). Installs only what is missing; needs root and apt (as on CI).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -i "noto sans cjk" >/dev/null || need+=(fonts-noto-cjk fontconfig)
# A real PostgreSQL server for the many-workers search test (started by the test, on loopback).
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${need[*]}; install them (Debian: apt-get install ${need[*]}) or the browser" \
         "tests are skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "system-deps: installed ${need[*]}"

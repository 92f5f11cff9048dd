#!/usr/bin/env bash
# Installs the Debian packages the tests run as real peers (Prometheus, promtool, Alertmanager, net-snmp,
# blackbox/snmp exporters for the benchmarks, VictoriaMetrics for long-term metrics, docker-compose to validate the compose file, iproute2 for
# network namespaces, nftables for the lab's real drops, Chromium and Japanese fonts to render the HTML report, pango for
# WeasyPrint's PDF report and poppler-utils to turn its pages into PNG in the tests, Dovecot as the IMAP server the
# mail-reply poller reads). Installs only what is
# missing; needs root (or sudo).
set -euo pipefail

packages=(prometheus prometheus-alertmanager prometheus-blackbox-exporter prometheus-snmp-exporter
          snmpd snmp docker-compose iproute2 nftables dnsutils chromium fonts-noto-cjk victoria-metrics
          postgresql libpango-1.0-0 libpangoft2-1.0-0 poppler-utils dovecot-imapd
          softflowd nfdump pmacct)  # flow exporters and nfdump's collector: the flow collector's real peers
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "system-deps: not a Debian/Ubuntu machine; install these yourself: ${missing[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "system-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# The packaged services must not start on install (and on machines without systemd they cannot).
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

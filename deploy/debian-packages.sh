#!/bin/sh
# Installs the Debian packages a step needs when they are missing and we are root; otherwise says what
# to install. Steps: python (venv support), web (Node.js and npm, to install the dashboard's chart library),
# test (Mosquitto, Chromium and its driver for the dashboard tests, sqlite3), demo (Mosquitto if possible; the
# demo can fall back to an embedded broker).
set -eu
step=${1:-test}
missing=""

have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }

case "$step" in
  python)
    py=$(command -v python3.11 || command -v python3 || true)
    if [ -z "$py" ]; then missing="python3 python3-venv"
    elif ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="python3-venv"; fi ;;
  web)
    command -v node >/dev/null 2>&1 || missing="nodejs"
    command -v npm >/dev/null 2>&1 || missing="$missing npm" ;;
  test)
    have_mosquitto || missing="mosquitto"
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
    command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
    # The tamper tests edit a box's journal with the sqlite3 tool, as an intruder at the box would.
    command -v sqlite3 >/dev/null 2>&1 || missing="$missing sqlite3" ;;
  demo)
    have_mosquitto || missing="mosquitto" ;;
  *) echo "unknown step $step" >&2; exit 2 ;;
esac

[ -z "$missing" ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: $missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi

if [ "$step" = "demo" ]; then
  echo "mosquitto is not installed and we are not root: the demo uses the embedded broker" >&2
  exit 0
fi
echo "missing Debian packages: $missing (run: sudo apt-get install $missing)" >&2
exit 1

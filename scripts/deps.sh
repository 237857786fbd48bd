#!/bin/sh
# Installs the Debian packages uqlua needs, when any is missing, plus any
# extra packages named as arguments (make bench asks for wrk).
# Uses sudo when not root. Safe to run repeatedly: a no-op once installed.
set -e
PKGS="$* build-essential pkg-config liblua5.4-dev lua5.4 libcurl4-openssl-dev libssl-dev lua-cjson-dev \
uuid-dev libedit-dev libmicrohttpd-dev lua-busted lua-argparse lua-check curl man-db tmux"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2

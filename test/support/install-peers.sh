#!/usr/bin/env bash
# The real peers some tests talk to: redis-server (the verifier's shared cache), Postfix (private
# instances on 127.0.0.1, see postfix.ts) and OpenDKIM's miltertest (an independent milter client). Installs what is missing from Debian's packages; starts nothing.
# "No configuration" leaves /etc/postfix/main.cf absent, so the package's system instance never starts.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || missing+=(postfix)
command -v miltertest >/dev/null || missing+=(miltertest)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "The tests need ${missing[*]} (Debian: apt-get install ${missing[*]}), installed as root." >&2
  exit 1
fi
apt-get update -qq
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"

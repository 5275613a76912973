#!/usr/bin/env bash
# The real peers some tests talk to: redis-server (the verifier's shared cache), Postfix (private
# instances on 127.0.0.1, see postfix.ts), OpenDKIM's miltertest (an independent milter client) and
# Sendmail (a second MTA, see sendmail.ts). Installs what is missing from Debian's packages; starts nothing.
# "No configuration" leaves /etc/postfix/main.cf absent, so the package's system instance never starts.
# sendmail-bin conflicts with postfix (both are a mail-transport-agent): it is downloaded and unpacked into
# .peers/sendmail/ instead of installed; only its libraries (libwrap0) and m4 (to build its .cf) are.
set -euo pipefail
cd "$(dirname "$0")/../.."

SENDMAIL_ROOT=.peers/sendmail/root
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || missing+=(postfix)
command -v miltertest >/dev/null || missing+=(miltertest)
command -v m4 >/dev/null || missing+=(m4)
dpkg -s libwrap0 >/dev/null 2>&1 || missing+=(libwrap0)
sendmail=
[ -x "$SENDMAIL_ROOT/usr/libexec/sendmail/sendmail" ] || sendmail=sendmail
[ ${#missing[@]} -eq 0 ] && [ -z "$sendmail" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "The tests need ${missing[*]} $sendmail (Debian packages), installed as root." >&2
  exit 1
fi
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [ -n "$sendmail" ]; then
  debs=$(mktemp -d)
  chmod 755 "$debs" # apt downloads as _apt
  (cd "$debs" && apt-get download -qq sendmail-bin sendmail-cf sendmail-base)
  mkdir -p "$SENDMAIL_ROOT"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$SENDMAIL_ROOT"; done
  rm -rf "$debs"
fi

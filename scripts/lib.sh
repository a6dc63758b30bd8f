# Shared helpers of the project's scripts (sourced, not run).
# shellcheck shell=bash

TANSU_VERSION=0.6.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# port_open HOST PORT: is something listening?
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # HOST PORT SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do port_open "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

# The broker: tansu, pinned, installed from crates.io when missing (about 15 minutes on 2 cores).
ensure_tansu() {
  if command -v tansu >/dev/null && [ "$(tansu --version 2>/dev/null)" = "tansu $TANSU_VERSION" ]; then
    return 0
  fi
  say "installing the broker: tansu $TANSU_VERSION (cargo install; this takes a while once)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
}

# PostgreSQL and Redis: use the machine's; start them when installed but stopped.
ensure_postgres() {
  port_open 127.0.0.1 5432 && return 0
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    wait_port 127.0.0.1 5432 20 && return 0
  fi
  die "PostgreSQL is not running on 127.0.0.1:5432 and could not be started; install it (apt-get install postgresql) and allow trust auth for user postgres"
}

ensure_redis() {
  port_open 127.0.0.1 6379 && return 0
  if command -v redis-server >/dev/null; then
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/crm-redis.log
    wait_port 127.0.0.1 6379 10 && return 0
  fi
  die "Redis is not running on 127.0.0.1:6379 and could not be started; install it (apt-get install redis-server)"
}

# The local SMTP server (scripts/smtp-sink, on Debian's python3-aiosmtpd): installs the package
# when missing and starts the sink on 127.0.0.1:$1 writing to $2 (its pid in SMTP_SINK_PID),
# unless the port is taken.
ensure_smtp_sink() {
  local port="${1:-2525}" dir="${2:-$ROOT/.run/mail}"
  port_open 127.0.0.1 "$port" && return 0
  if ! /usr/bin/python3 -c "import aiosmtpd" 2>/dev/null; then
    say "installing the local SMTP server (python3-aiosmtpd)"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q python3-aiosmtpd >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q python3-aiosmtpd >/dev/null; }
    else sudo apt-get install -y -q python3-aiosmtpd >/dev/null; fi
  fi
  mkdir -p "$dir" "$ROOT/.run"
  say "starting the local SMTP server on 127.0.0.1:$port (mail in $dir)"
  nohup "$ROOT/scripts/smtp-sink" --port "$port" --dir "$dir" >"$ROOT/.run/smtp-sink.log" 2>&1 &
  SMTP_SINK_PID=$!
  wait_port 127.0.0.1 "$port" 15 || die "the SMTP server did not start; see .run/smtp-sink.log"
}

# librdkafka is built from source by rdkafka-sys: it needs a C toolchain, make and perl.
ensure_build_tools() {
  local missing=()
  for tool in cc make perl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing build tools: ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq build-essential perl
}

# The public client libraries the integration tests drive (tests/js: Segment's and RudderStack's
# Node libraries), installed from the npm registry at the versions of tests/js/package-lock.json;
# Node.js and npm from Debian's packages when missing.
ensure_node_clients() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing Node.js and npm"
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q nodejs npm >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null; }
    else sudo apt-get install -y -q nodejs npm >/dev/null; fi
  fi
  local dir="$ROOT/tests/js"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    say "installing the test clients (npm ci in tests/js)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tests/js failed"
    touch "$dir/node_modules"
  fi
}

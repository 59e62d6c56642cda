#!/usr/bin/env bash
# Makes sure the services the test suite needs are running: PostgreSQL and
# Redis on localhost (or at TEST_DATABASE_URL / TEST_REDIS_ADDR), and Chromium
# for the admin UI browser tests. Starts installed-but-stopped services; when
# something is not installed, prints the exact command to install it and fails.
set -euo pipefail

pg_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
redis_addr=${TEST_REDIS_ADDR:-127.0.0.1:6379}
missing=()

pg_up() { pg_isready -q -d "$pg_url" 2>/dev/null; }
redis_up() { redis-cli -h "${redis_addr%:*}" -p "${redis_addr##*:}" ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if [ -z "${TEST_DATABASE_URL:-}" ] && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    echo "test-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  fi
  pg_up || missing+=("PostgreSQL at $pg_url — install and start it: apt-get install -y postgresql && pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start (trust auth on 127.0.0.1, database 'test')")
fi

if ! redis_up; then
  if [ -z "${TEST_REDIS_ADDR:-}" ] && command -v redis-server >/dev/null; then
    echo "test-services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
  fi
  redis_up || missing+=("Redis at $redis_addr — install and start it: apt-get install -y redis-server && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no")
fi

if ! command -v "${CHROMIUM_PATH:-chromium}" >/dev/null; then
  missing+=("Chromium for the admin UI browser tests — install it: apt-get install -y chromium")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "test-services: the test suite needs:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 1
fi
echo "test-services: PostgreSQL, Redis and Chromium are ready"

#!/usr/bin/env bash
# Install Debian's PostgreSQL server package for the tests that need a real database (they start their
# own throwaway server in a temporary directory; nothing is configured system-wide). Without root, or
# where apt-get is missing, this says so and succeeds: those tests skip with a reason.
set -u
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_postgres: PostgreSQL missing and no root/apt-get: PostgreSQL tests will be skipped" >&2
    exit 0
fi
echo "installing postgresql (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
    || echo "install_postgres: apt-get install postgresql failed: PostgreSQL tests will be skipped" >&2
exit 0

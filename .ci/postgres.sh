#!/usr/bin/env bash
# CI: a real PostgreSQL server on loopback for the ERP tests (Debian). Installs the
# package when it is missing, starts the first cluster (creating one if there is
# none), creates the test role and database, and prints the URL the tests read from
# SYNCCTL_TEST_POSTGRES_URL. Everything else goes to stderr. Run as root; idempotent.
#   SYNCCTL_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
set -euo pipefail

ROLE=syncctl
PASSWORD=syncctl
DATABASE=syncctl_test

first_cluster() { pg_lsclusters --no-header | head -n 1; }

start_server() {
    if ! command -v pg_ctlcluster >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
    fi
    if [ -z "$(first_cluster)" ]; then
        pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main
    fi
    read -r version cluster port status _ < <(first_cluster)
    echo "listen_addresses = '127.0.0.1'" >"/etc/postgresql/$version/$cluster/conf.d/syncctl-ci.conf"  # loopback only
    if [ "$status" != online ]; then
        pg_ctlcluster "$version" "$cluster" start
    fi
    pg_isready -q -h 127.0.0.1 -p "$port" -t 30
}

# CREATEROLE: the grants test creates (and drops) a least-privilege role.
# synchronous_commit off: test data need not survive a crash, and commits stop waiting on the disk.
# ICU pt-BR, a Brazilian ERP's collation: its string order is not code point order
# ('SKU_C' < 'SKU-A' < 'sku-b'), so a test catches any ORDER BY that relies on it.
create_role_and_database() {
    runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 <<SQL
SELECT format('CREATE ROLE %I LOGIN CREATEROLE', '$ROLE')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') \gexec
ALTER ROLE $ROLE PASSWORD '$PASSWORD';
ALTER ROLE $ROLE SET synchronous_commit = off;
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE %L LOCALE %L',
              '$DATABASE', '$ROLE', 'pt-BR', 'C.UTF-8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DATABASE') \gexec
SQL
}

# Only the URL goes to stdout: the caller reads it to its end, and a server started
# with stdout open would hold that end off for as long as it runs.
start_server >&2
create_role_and_database >&2
echo "PostgreSQL $version/$cluster on 127.0.0.1:$port, database $DATABASE" >&2
echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$port/$DATABASE"

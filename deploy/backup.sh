#!/usr/bin/env bash
# A backup of duesflow on PostgreSQL: a consistent dump (pg_dump, one snapshot, while the service runs) and, apart
# from it, the data key without which the dump's ID numbers and phones cannot be read.
#
#   deploy/backup.sh DUMP_DIR KEY_DIR
#
# Environment (as for the service, e.g. from /etc/duesflow/env): DUESFLOW_DATABASE_URL, DUESFLOW_DATA_KEY and, during
# a key rotation, DUESFLOW_DATA_OLD_KEYS. Prints the paths it wrote. Keep DUMP_DIR and KEY_DIR on different media
# (and different hands): a dump without its key holds no readable personal data, which is the point.
set -euo pipefail

dump_dir=${1:?usage: backup.sh DUMP_DIR KEY_DIR}
key_dir=${2:?usage: backup.sh DUMP_DIR KEY_DIR}
: "${DUESFLOW_DATABASE_URL:?DUESFLOW_DATABASE_URL is not set}"
: "${DUESFLOW_DATA_KEY:?DUESFLOW_DATA_KEY is not set}"
database=${DUESFLOW_DATABASE_URL/postgresql+psycopg:/postgresql:}   # libpq does not know SQLAlchemy's driver
stamp=$(date -u +%Y%m%dT%H%M%SZ)
umask 077
mkdir -p "$dump_dir" "$key_dir"

dump="$dump_dir/duesflow-$stamp.dump"
pg_dump --format=custom --no-owner --no-privileges --file "$dump.partial" "$database"
pg_restore --list "$dump.partial" > /dev/null   # the archive is whole and readable
mv "$dump.partial" "$dump"
(cd "$dump_dir" && sha256sum "$(basename "$dump")" > "$(basename "$dump").sha256")

keys="$key_dir/data-keys-$stamp"
{
  echo "DUESFLOW_DATA_KEY=$DUESFLOW_DATA_KEY"
  echo "DUESFLOW_DATA_OLD_KEYS=${DUESFLOW_DATA_OLD_KEYS:-}"
} > "$keys"

echo "dump: $dump"
echo "keys: $keys"

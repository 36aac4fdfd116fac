#!/usr/bin/env bash
# Rehearses the PostgreSQL backup and restore procedure end to end: a database with the demo data, a dump and the
# data key saved apart by deploy/backup.sh, the database lost, deploy/restore.sh into a new one, and the proof that
# nothing was lost: the same rows in every table, verify-audit passing, every ID number and phone opening with the
# saved key, and none opening with another key.
#
#   deploy/rehearse-backup.sh
#
# REHEARSAL_PG (default postgresql+psycopg://postgres@127.0.0.1:5432) is a server where databases may be created;
# REHEARSAL_DB_PREFIX (default duesflow_rehearsal) names the two scratch databases, dropped afterwards.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
server=${REHEARSAL_PG:-postgresql+psycopg://postgres@127.0.0.1:5432}
prefix=${REHEARSAL_DB_PREFIX:-duesflow_rehearsal}
libpq=${server/postgresql+psycopg:/postgresql:}
source_db=${prefix}_source
restored_db=${prefix}_restored
work=$(mktemp -d)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
unset PROMETHEUS_MULTIPROC_DIR DUESFLOW_DATA_OLD_KEYS

admin() { psql "$libpq/postgres" -v ON_ERROR_STOP=1 -qc "$1"; }
cleanup() {
  admin "DROP DATABASE IF EXISTS $source_db WITH (FORCE)" || true
  admin "DROP DATABASE IF EXISTS $restored_db WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT
new_key() { python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'; }
fingerprint() {  # every table with its number of rows, and the payments by state
  psql "$libpq/$1" -v ON_ERROR_STOP=1 -Atc "
    SELECT string_agg(format('%s=%s', relname, n_live), ' ' ORDER BY relname) FROM (
      SELECT c.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', c.relname),
                                                             false, true, '')))[1]::text AS n_live
      FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
      WHERE c.relkind = 'r' AND s.nspname = 'public') t;
    SELECT string_agg(format('%s=%s', state, n), ' ' ORDER BY state)
      FROM (SELECT state, count(*) AS n FROM payments GROUP BY state) p;"
}

echo "== a service with data ($source_db)"
admin "DROP DATABASE IF EXISTS $source_db WITH (FORCE)"; admin "DROP DATABASE IF EXISTS $restored_db WITH (FORCE)"
admin "CREATE DATABASE $source_db"
export DUESFLOW_DATABASE_URL="$server/$source_db"
export DUESFLOW_DATA_KEY DUESFLOW_SECRET_KEY
DUESFLOW_DATA_KEY=$(new_key)
DUESFLOW_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')
(cd "$root" && flask --app duesflow init-db && flask --app duesflow demo > /dev/null)
before=$(fingerprint "$source_db")
echo "$before"

echo "== backup"
written=$("$here/backup.sh" "$work/dumps" "$work/keys")
echo "$written"
dump=$(sed -n 's/^dump: //p' <<< "$written")
keys=$(sed -n 's/^keys: //p' <<< "$written")

echo "== the database is lost; restore into $restored_db"
admin "DROP DATABASE $source_db WITH (FORCE)"
admin "CREATE DATABASE $restored_db"
export DUESFLOW_DATABASE_URL="$server/$restored_db"
saved_key=$DUESFLOW_DATA_KEY
DUESFLOW_DATA_KEY=$(new_key)   # restore.sh must take the key from the saved keys file, not from here
(cd "$root" && "$here/restore.sh" "$dump" "$keys")
after=$(fingerprint "$restored_db")
if [ "$before" != "$after" ]; then
  echo "restored database differs:" >&2; echo "before: $before" >&2; echo "after:  $after" >&2; exit 1
fi
echo "same rows in every table"

echo "== without the saved key nothing personal opens"
if (cd "$root" && DUESFLOW_DATA_KEY=$(new_key) python -c '
from sqlalchemy import select
from duesflow import create_app
from duesflow.extensions import db
from duesflow.models import Member
with create_app().app_context():
    [member.id_number for member in db.session.scalars(select(Member).where(Member.id_number_hash.is_not(None)))]
' > /dev/null 2>&1); then
  echo "personal data opened with a key that is not the saved one" >&2; exit 1
fi
[ "$saved_key" = "$(sed -n 's/^DUESFLOW_DATA_KEY=//p' "$keys")" ] || { echo "the saved key is not the service's" >&2; exit 1; }
echo "backup and restore rehearsed: dump $(du -h "$dump" | cut -f1), every table restored, audit trail verified"

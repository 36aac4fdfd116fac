#!/usr/bin/env bash
# Restore a duesflow dump made by deploy/backup.sh into an empty database, then prove it whole before the service
# is opened on it: the audit trail verifies and every ID number and phone opens with the saved data key.
#
#   deploy/restore.sh DUMP KEYS_FILE
#
# DUESFLOW_DATABASE_URL names the (new, empty) database to restore into. Stop the service first when restoring in
# place, and start it afterwards with the keys of KEYS_FILE in its environment.
set -euo pipefail

dump=${1:?usage: restore.sh DUMP KEYS_FILE}
keys=${2:?usage: restore.sh DUMP KEYS_FILE}
: "${DUESFLOW_DATABASE_URL:?DUESFLOW_DATABASE_URL is not set}"
database=${DUESFLOW_DATABASE_URL/postgresql+psycopg:/postgresql:}

if [ -f "$dump.sha256" ]; then
  (cd "$(dirname "$dump")" && sha256sum --check --quiet "$(basename "$dump").sha256")
fi
pg_restore --exit-on-error --no-owner --no-privileges --dbname "$database" "$dump"

set -a
# shellcheck source=/dev/null
. "$keys"
set +a
flask --app duesflow init-db        # a dump from an older release is brought to this release's schema
flask --app duesflow verify-audit
python - <<'PY'
from sqlalchemy import select

from duesflow import create_app
from duesflow.extensions import db
from duesflow.models import Member

app = create_app()
with app.app_context():
    members = db.session.scalars(select(Member)).all()
    opened = sum(1 for member in members for value in (member.id_number, member.phone) if value is not None)
    print(f"数据密钥可用：{len(members)} 名党员，{opened} 项身份证号码和电话已解密。")
PY

#!/usr/bin/env bash
# Rehearses a two-host deployment on one machine by following deploy/: one PostgreSQL database, two gunicorn
# "hosts" (deploy/gunicorn.conf.py, the environment of env.example) on two loopback ports, each with its own
# metrics directory, and nginx in front with the site of nginx/duesflow.conf (TLS with a throwaway certificate,
# X-Forwarded-For for DUESFLOW_TRUSTED_PROXIES=1), run as a non-daemon with its own prefix in a temporary
# directory. Then, as a user and as Prometheus would: log in through nginx (API and page), work through it,
# find /metrics refused through nginx and answered by each host, and every request of the run in the two hosts'
# metrics together, each host having served some.
#
#   deploy/rehearse.sh
#
# REHEARSAL_PG (default postgresql+psycopg://postgres@127.0.0.1:5432) is a server where a database may be
# created; REHEARSAL_DB_PREFIX (default duesflow_rehearsal) names it (<prefix>_hosts, dropped afterwards).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
server=${REHEARSAL_PG:-postgresql+psycopg://postgres@127.0.0.1:5432}
database=${REHEARSAL_DB_PREFIX:-duesflow_rehearsal}_hosts
libpq=${server/postgresql+psycopg:/postgresql:}
work=$(mktemp -d)
pids=()
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
unset PROMETHEUS_MULTIPROC_DIR

admin() { psql "$libpq/postgres" -v ON_ERROR_STOP=1 -qc "$1"; }
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  admin "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "REHEARSAL FAILED: $*" >&2; for log in "$work"/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done; exit 1; }
free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # URL: until it answers (nginx or a host starting)
  for _ in $(seq 1 240); do curl -ksf -o /dev/null "$1" && return 0; sleep 0.5; done
  fail "$1 does not answer"
}

echo "== the shared database and secrets (env.example)"
admin "DROP DATABASE IF EXISTS $database WITH (FORCE)"
admin "CREATE DATABASE $database"
# Every host gets the same environment file, as /etc/duesflow/env.
cat > "$work/env" <<ENV
DUESFLOW_DATABASE_URL=$server/$database
DUESFLOW_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')
DUESFLOW_DATA_KEY=$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
DUESFLOW_PUBLIC_URL=https://duesflow.example.org
DUESFLOW_TRUSTED_PROXIES=1
DUESFLOW_SECURE_COOKIES=1
DUESFLOW_METRICS_ALLOW=127.0.0.0/8,::1
DUESFLOW_NOTIFY_AFTER_REQUEST=0
DUESFLOW_WORKERS=2
ENV
set -a; . "$work/env"; set +a

echo "== migrations, the channel tree and the demo branch (ExecStartPre: init-db)"
(cd "$root" && flask --app duesflow init-db > "$work/init-db.log" 2>&1 && flask --app duesflow seed-orgs > /dev/null \
  && flask --app duesflow demo > "$work/demo.log") || fail "init-db, seed-orgs or demo"

echo "== two hosts (duesflow.service: gunicorn -c deploy/gunicorn.conf.py)"
hosts=()
for name in host1 host2; do
  port=$(free_port)
  (cd "$root" && exec env DUESFLOW_BIND="127.0.0.1:$port" \
     gunicorn -c "$here/gunicorn.conf.py" 'duesflow:create_app()' > "$work/$name.log" 2>&1) &
  pids+=($!)
  hosts+=("127.0.0.1:$port")
done
for host in "${hosts[@]}"; do wait_for "http://$host/healthz"; done
echo "hosts: ${hosts[*]}"

echo "== nginx in front (nginx/duesflow.conf)"
https_port=$(free_port)
http_port=$(free_port)
mkdir -p "$work/nginx/tls" "$work/nginx/logs" "$work/nginx/temp"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=duesflow.example.org" \
  -keyout "$work/nginx/tls/privkey.pem" -out "$work/nginx/tls/fullchain.pem" 2> /dev/null
# The site as shipped; only what differs between the real hosts and this rehearsal is replaced.
sed -e "s|server 10.0.0.11:8000|server ${hosts[0]}|; s|server 10.0.0.12:8000|server ${hosts[1]}|" \
    -e "s|listen 80;|listen 127.0.0.1:$http_port;|; s|listen 443 ssl http2;|listen 127.0.0.1:$https_port ssl http2;|" \
    -e '/listen \[::\]/d' \
    -e "s|return 301 https://\$host\$request_uri;|return 301 https://\$host:$https_port\$request_uri;|" \
    -e "s|/etc/ssl/duesflow/|$work/nginx/tls/|; s|/var/log/nginx/|$work/nginx/logs/|" \
    "$here/nginx/duesflow.conf" > "$work/nginx/duesflow.conf"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
events { worker_connections 256; }
http {
    access_log $work/nginx/logs/access.log;
    client_body_temp_path $work/nginx/temp/body;
    proxy_temp_path $work/nginx/temp/proxy;
    fastcgi_temp_path $work/nginx/temp/fastcgi;
    uwsgi_temp_path $work/nginx/temp/uwsgi;
    scgi_temp_path $work/nginx/temp/scgi;
    include $work/nginx/duesflow.conf;
}
NGINX
nginx -t -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" > "$work/nginx-t.log" 2>&1 \
  || fail "nginx -t: $(cat "$work/nginx-t.log")"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" -g 'daemon off;' \
  > "$work/nginx.log" 2>&1 &
pids+=($!)
site="https://127.0.0.1:$https_port"
wait_for "$site/healthz"

echo "== as a user, through nginx"
curl -ks -o /dev/null -w '%{http_code} %{redirect_url}\n' "http://127.0.0.1:$http_port/login" > "$work/redirect"
grep -q "^301 https://127.0.0.1:$https_port/login" "$work/redirect" || fail "http is not sent to https: $(cat "$work/redirect")"
token=$(curl -ksf -X POST "$site/api/v1/auth/token" -H 'Content-Type: application/json' \
  -d '{"username": "demo-clerk", "password": "demo-password"}' | python -c 'import json, sys; print(json.load(sys.stdin)["token"])') \
  || fail "API login through nginx"
requests=10
for _ in $(seq 1 $requests); do
  status=$(curl -ks -o /dev/null -w '%{http_code}' "$site/api/v1/payments" -H "Authorization: Bearer $token")
  [ "$status" = 200 ] || fail "GET /api/v1/payments through nginx answered $status"
done
# A search by resident ID: its query string must reach no log.
status=$(curl -ks -o /dev/null -w '%{http_code}' "$site/api/v1/members?id_number=110101199003074477" \
  -H "Authorization: Bearer $token")
[ "$status" = 200 ] || fail "GET /api/v1/members?id_number= through nginx answered $status"
# The page login: the form's CSRF token and the session cookie (Secure, over TLS).
jar="$work/cookies"
csrf=$(curl -ks -c "$jar" "$site/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
[ -n "$csrf" ] || fail "no CSRF token on the login page"
login=$(curl -ks -b "$jar" -c "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' "$site/login" \
  --data-urlencode "username=demo-clerk" --data-urlencode "password=demo-password" --data-urlencode "csrf_token=$csrf")
[ "${login%% *}" = 302 ] || fail "page login through nginx answered $login"
grep -q "#HttpOnly_127.0.0.1.*TRUE" "$jar" || fail "the session cookie is not Secure over TLS"
home=$(curl -ks -b "$jar" -o /dev/null -w '%{http_code}' "$site/")
[ "$home" = 200 ] || fail "the home page after login answered $home"
echo "logged in through nginx (API and page); $requests API requests answered"

echo "== as Prometheus"
status=$(curl -ks -o /dev/null -w '%{http_code}' "$site/metrics")
[ "$status" = 404 ] || fail "/metrics through nginx answered $status"
total=0
for host in "${hosts[@]}"; do
  curl -sf "http://$host/metrics" > "$work/metrics-$host" || fail "/metrics of $host"
  served=$(python - "$work/metrics-$host" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
print(int(sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
              if sample.name == "duesflow_http_requests_total"
              and sample.labels["endpoint"] == "/api/v1/payments" and sample.labels["status"] == "200")))
PY
)
  grep -q '^duesflow_payments{state="receipted"}' "$work/metrics-$host" || fail "no payments by state from $host"
  echo "$host served $served of the payment lists"
  [ "$served" -gt 0 ] || fail "$host served none: nginx did not balance"
  total=$((total + served))
done
[ "$total" = "$requests" ] || fail "the hosts' metrics count $total payment lists, $requests were sent"
grep -q '"route": "/api/v1/payments", "status": 200' "$work"/host*.log || fail "no JSON request line in the hosts' logs"
grep -q "id_number\|?" "$work/nginx/logs/duesflow.access.log" && fail "a query string reached nginx's access log"
grep -q '"GET /api/v1/payments HTTP/[0-9.]*" 200' "$work/nginx/logs/duesflow.access.log" || fail "nginx's access log"
echo "two-host deployment rehearsed: login through nginx, /metrics of both hosts, $total requests counted"

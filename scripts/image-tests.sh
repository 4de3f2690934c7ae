#!/usr/bin/env bash
# Runs the images that scripts/images.sh built the way a pod runs them, and fails on the first
# check that does not hold:
#   --user 65532:65532 --read-only (no tmpfs either) --cap-drop=ALL no-new-privileges, a volume
#   at /data, the config mounted read-only at /etc/botfleet, as the operator renders the pod.
#
# sizes:    bot <= 20 MB, operator <= 25 MB (uncompressed, as podman image inspect reports).
# operator: `botfleet-operator crd` prints crds/telegrambots.botfleet.dev.yaml exactly.
# bot:      with the fakes of scripts/image_fakes.py on loopback (host network), reached by host
#           name only: fake Telegram through /etc/hosts (--add-host), the fake LLM through DNS
#           (a resolv.conf pointing at the fakes' DNS responder, like a Service name in a pod);
#           PostgreSQL through --add-host as well. The binary is static glibc without NSS
#           modules: these are the lookups that prove its resolver works.
#           It answers a webhook update end to end, serves /healthz /readyz /metrics on 9090,
#           writes botfleet.db under /data and nothing anywhere else, migrates PostgreSQL, and
#           exits 0 soon after SIGTERM as PID 1 (no --init: the bot handles SIGTERM itself).
#
# Needs: podman (see scripts/podman-env.sh), python3, curl, jq; PostgreSQL on 127.0.0.1:5432
# (skipped without it unless CI=true). Ports 8080 and 9090 of the host must be free.
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
bot_image="botfleet-bot:${version}"
operator_image="botfleet-operator:${version}"
grace_seconds=10 # well inside Kubernetes' default terminationGracePeriodSeconds (30)

# shellcheck source=scripts/podman-env.sh
. scripts/podman-env.sh

passed=0
container=""
fakes_pid=""
pg_db=""
work="$(mktemp -d)"
cleanup() {
  [ -n "${container}" ] && podman rm -f -t 0 "${container}" >/dev/null 2>&1 || true
  [ -n "${fakes_pid}" ] && kill "${fakes_pid}" 2>/dev/null || true
  [ -n "${pg_db}" ] && psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"${pg_db}\"" >/dev/null 2>&1 || true
  rm -rf "${work}"
}
trap cleanup EXIT

ok() {
  passed=$((passed + 1))
  echo "image-tests: ok   $*"
}
fail() {
  echo "image-tests: FAIL $*" >&2
  if [ -n "${container}" ]; then
    echo "--- logs of ${container}:" >&2
    podman logs "${container}" >&2 || true
  fi
  echo "image-tests: ${passed} passed, 1 failed" >&2
  exit 1
}
# As a pod with the operator's security context runs a container (restricted Pod Security).
as_pod=(--user 65532:65532 --read-only --read-only-tmpfs=false --cap-drop=ALL
  --security-opt no-new-privileges)

for image in "${bot_image}" "${operator_image}"; do
  podman image exists "${image}" || fail "${image} is not built (run scripts/images.sh)"
done

# --- sizes (uncompressed, as podman reports them) -------------------------------------------
check_size() { # image, limit in MB (10^6 bytes)
  local size
  size="$(podman image inspect --format '{{.Size}}' "$1")"
  [ "${size}" -le "$(($2 * 1000000))" ] || fail "$1 is ${size} bytes, over its ${2} MB target"
  ok "$1 is $(awk -v s="${size}" 'BEGIN { printf "%.1f", s / 1e6 }') MB (target <= $2 MB)"
}
check_size "${bot_image}" 20
check_size "${operator_image}" 25

# --- operator -------------------------------------------------------------------------------
podman run --rm "${as_pod[@]}" --network none "${operator_image}" crd >"${work}/crd.yaml" \
  || fail "botfleet-operator crd exited non-zero"
cmp -s "${work}/crd.yaml" crds/telegrambots.botfleet.dev.yaml \
  || fail "the operator image's CRD differs from crds/telegrambots.botfleet.dev.yaml: $(diff "${work}/crd.yaml" crds/telegrambots.botfleet.dev.yaml | head -5)"
ok "operator image: \`botfleet-operator crd\` is crds/telegrambots.botfleet.dev.yaml"

# --- bot ------------------------------------------------------------------------------------
for port in 8080 9090; do
  if ss -Hltn "sport = :${port}" | grep -q .; then
    fail "port ${port} of the host is taken; the bot container needs it (host network)"
  fi
done

zone=botfleet.test
python3 scripts/image_fakes.py --dns-zone "${zone}" --max-seconds 600 \
  >"${work}/fakes.out" 2>"${work}/fakes.err" &
fakes_pid=$!
for _ in $(seq 1 50); do [ -s "${work}/fakes.out" ] && break; sleep 0.1; done
[ -s "${work}/fakes.out" ] || fail "the fakes did not start: $(cat "${work}/fakes.err")"
telegram_port="$(head -1 "${work}/fakes.out" | jq -r .telegram)"
llm_port="$(head -1 "${work}/fakes.out" | jq -r .llm)"
telegram="http://127.0.0.1:${telegram_port}"

mkdir -p "${work}/config" "${work}/data"
# The volume is writable by the pod's fsGroup in Kubernetes; here by its owner.
chown 65532:65532 "${work}/data"
printf 'nameserver 127.0.0.53\noptions attempts:2 timeout:2\n' >"${work}/resolv.conf"
cat >"${work}/config/config.yaml" <<YAML
mode: webhook
webhook:
  path: /telegram/image-test
llm:
  provider: anthropic
  model: claude-image
  baseUrl: http://fake-llm.${zone}:${llm_port}
  systemPrompt: You are the image test's bot.
  timeout: 10s
  maxRetries: 1
pricing:
  - {model: claude-image, input: "3.00", output: "15.00"}
YAML

container="botfleet-image-test-$$"
podman run --detach --name "${container}" "${as_pod[@]}" \
  --network host \
  --add-host "fake-telegram:127.0.0.1" \
  --volume "${work}/resolv.conf:/etc/resolv.conf:ro" \
  --volume "${work}/config:/etc/botfleet:ro" \
  --volume "${work}/data:/data" \
  --env BOTFLEET_CONFIG=/etc/botfleet/config.yaml \
  --env TELEGRAM_BOT_TOKEN=123456:IMAGE-test_token \
  --env "TELEGRAM_API_URL=http://fake-telegram:${telegram_port}" \
  --env LLM_API_KEY=image-test-llm-key \
  --env WEBHOOK_SECRET_TOKEN=image-test-secret \
  "${bot_image}" serve >/dev/null || fail "podman run ${bot_image} serve"

ready=0
for _ in $(seq 1 150); do
  if curl -fsS -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null; then ready=1; break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "${container}")" = true ] || fail "the bot exited before it was ready"
  sleep 0.2
done
[ "${ready}" = 1 ] || fail "/readyz on 9090 did not answer 200 within 30 s"
curl -fsS -o /dev/null http://127.0.0.1:9090/healthz || fail "/healthz on 9090"
ok "bot image: /healthz and /readyz answer 200 on 9090"

status="$(curl -sS -o "${work}/webhook.out" -w '%{http_code}' \
  -H 'Content-Type: application/json' -H 'X-Telegram-Bot-Api-Secret-Token: image-test-secret' \
  --data '{"update_id":7001,"message":{"message_id":7001,"date":1700000000,"chat":{"id":4242,"type":"private","first_name":"Lead"},"from":{"id":4242,"is_bot":false,"first_name":"Lead"},"text":"Do you ship to Lisbon?"}}' \
  http://127.0.0.1:8080/telegram/image-test)"
[ "${status}" = 200 ] || fail "the webhook answered ${status}: $(cat "${work}/webhook.out")"
reply=""
for _ in $(seq 1 100); do
  reply="$(curl -fsS "${telegram}/_sent" | jq -r '[.[] | select(.chat_id == 4242)][0].text // empty')"
  [ -n "${reply}" ] && break
  sleep 0.2
done
[ "${reply}" = "Hello from the image test's LLM." ] \
  || fail "no reply from the LLM reached the fake Telegram within 20 s (got '${reply}')"
ok "bot image: a webhook update is answered with the LLM's text (Telegram via --add-host, LLM via DNS)"

# The fake Telegram records the message before its answer reaches the bot, and the bot counts
# the message when that answer arrives: the counter may lag the reply by a moment.
counted=0
for _ in $(seq 1 50); do
  curl -fsS http://127.0.0.1:9090/metrics >"${work}/metrics" || fail "/metrics on 9090"
  if grep -q '^botfleet_messages_sent_total 1$' "${work}/metrics"; then counted=1; break; fi
  sleep 0.1
done
[ "${counted}" = 1 ] \
  || fail "/metrics lacks botfleet_messages_sent_total 1 5 s after the reply: $(grep botfleet_messages "${work}/metrics")"
ok "bot image: /metrics on 9090 counts the reply"

[ -s "${work}/data/botfleet.db" ] || fail "no botfleet.db in the /data volume: $(ls -la "${work}/data")"
[ "$(sqlite3 "${work}/data/botfleet.db" 'SELECT count(*) FROM _sqlx_migrations')" -gt 0 ] \
  || fail "botfleet.db in /data is not the migrated database"
# podman creates the mount point of the config volume (/etc/botfleet) in the container's layer;
# that is podman's, not a write of the bot.
changes="$(podman diff "${container}" | grep -v -x -E 'C /etc|A /etc/botfleet' || true)"
[ -z "${changes}" ] || fail "the container wrote outside its volumes: ${changes}"
ok "bot image: SQLite lives in the /data volume; the root file system is unchanged"

started="$(date +%s.%N)"
podman kill --signal TERM "${container}" >/dev/null
exit_code="$(timeout 60 podman wait "${container}")" || fail "the bot did not exit within 60 s of SIGTERM"
elapsed="$(awk -v a="${started}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
[ "${exit_code}" = 0 ] || fail "the bot exited ${exit_code} on SIGTERM (want 0)"
awk -v e="${elapsed}" -v g="${grace_seconds}" 'BEGIN { exit !(e < g) }' \
  || fail "the bot took ${elapsed} s to exit on SIGTERM (want < ${grace_seconds} s)"
ok "bot image: as PID 1 it exits 0 ${elapsed} s after SIGTERM"
podman rm "${container}" >/dev/null
container=""

# PostgreSQL by host name: sqlx connects through getaddrinfo, i.e. static glibc's own lookup.
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_db="botfleet_image_$$"
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE \"${pg_db}\"" >/dev/null
  podman run --rm "${as_pod[@]}" --network host --add-host "postgres.${zone}:127.0.0.1" \
    --env "DATABASE_URL=postgres://postgres@postgres.${zone}:5432/${pg_db}" \
    "${bot_image}" migrate >"${work}/migrate.log" 2>&1 \
    || fail "botfleet-bot migrate on PostgreSQL by host name: $(tail -5 "${work}/migrate.log")"
  applied="$(psql -h 127.0.0.1 -U postgres -d "${pg_db}" -tAc 'SELECT count(*) FROM _sqlx_migrations WHERE success')"
  [ "${applied}" -gt 0 ] || fail "migrate applied no PostgreSQL migration"
  ok "bot image: migrates PostgreSQL reached by host name (${applied} migrations)"
elif [ "${CI:-}" = true ]; then
  fail "PostgreSQL is not on 127.0.0.1:5432 (CI=true needs it)"
else
  echo "image-tests: skip PostgreSQL by host name (no server on 127.0.0.1:5432)"
fi

echo "image-tests: ${passed} passed, 0 failed"

#!/usr/bin/env bash
# End-to-end test of `strata serve` with the official openai npm package:
# starts the server on the stories260k fixture (its tokenizer, a simple chat
# template written here), runs openai_client.mjs against it, and checks that
# SIGTERM ends it with status 0.
#
#   run_openai_test.sh STRATA_BIN [FIXTURES_DIR]
#
# Exits 77 (ctest's SKIP_RETURN_CODE) with a message when Node is missing or
# the npm registry is unreachable; fails when the fixture model is missing
# under STRATA_REQUIRE_FIXTURES=1, else skips.
set -euo pipefail

strata=$1
fixtures=${STRATA_FIXTURES:-${2:-$(dirname "$0")/../fixtures}}
here=$(cd "$(dirname "$0")" && pwd)
skip=77

model_src=$fixtures/models/stories260k
if [[ ! -f $model_src/tokenizer.json ]]; then
  if [[ ${STRATA_REQUIRE_FIXTURES:-} == 1 ]]; then
    echo "FAIL: no fixture model in $model_src (STRATA_REQUIRE_FIXTURES=1)"
    exit 1
  fi
  echo "SKIP: no fixture model in $model_src"
  exit $skip
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: Node.js and npm are needed to run the openai package"
  exit $skip
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-serve-test.XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The openai package, fresh from the registry into the temporary folder.
if ! timeout 30 npm ping >"$work/npm-ping.log" 2>&1; then
  echo "SKIP: the npm registry is unreachable, so the openai package cannot be installed:"
  tail -n 3 "$work/npm-ping.log"
  exit $skip
fi
if ! timeout 120 npm install --prefix "$work/npm" --no-audit --no-fund --loglevel=error openai >"$work/npm.log" 2>&1; then
  echo "FAIL: npm install openai failed although the registry answers:"
  cat "$work/npm.log"
  exit 1
fi
openai_module=$work/npm/node_modules/openai
echo "openai package $(node -p "require('$openai_module/package.json').version")"

# The model with its tokenizer, and a chat template that begins with BOS,
# shows the tools it is given, and names Hermes' <tool_call> syntax (in a
# comment) so that the server parses replies for calls.
cp -r "$model_src" "$work/model"
cat >"$work/chat.jinja" <<'EOF'
{#- Call a tool with <tool_call>{"name": ..., "arguments": {...}}</tool_call> -#}
{{ bos_token }}{% if tools %}[{{ tools | length }} tools: {{ tools[0]['function']['name'] }}]
{% endif %}{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}
EOF

export STRATA_NO_GPU=1 XDG_CACHE_HOME=$work/cache
key=test-key-$$
: >"$work/server.log"
"$strata" serve -m "$work/model" --chat-template "$work/chat.jinja" --port 0 --parallel 16 --ctx 512 \
  --api-key "$key" --max-body 64KiB --log-interval 0.05 --grace 30 --compute exact --quiet-map -t 2 \
  2>"$work/server.log" &
server_pid=$!

# The port it chose, then ready.
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/server.log" | head -n 1 || true)
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "FAIL: the server did not start:"
  cat "$work/server.log"
  exit 1
fi
ready=
for _ in $(seq 1 600); do
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
  if [[ $status == 200 ]]; then ready=1; break; fi
  if [[ $status != 503 && $status != 000 ]]; then echo "FAIL: /health answered $status while loading"; exit 1; fi
  sleep 0.1
done
if [[ -z $ready ]]; then
  echo "FAIL: the server never became ready:"
  cat "$work/server.log"
  exit 1
fi

status=0
node "$here/openai_client.mjs" "$openai_module" "http://127.0.0.1:$port" "$key" "$strata" "$work/model" \
  "$work/server.log" "$server_pid" || status=$?

# The client sent SIGTERM last: the server must finish and exit 0.
server_status=0
for _ in $(seq 1 400); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  echo "FAIL: the server still runs 40 s after SIGTERM"
  status=1
else
  wait "$server_pid" || server_status=$?
  server_pid=
  if [[ $server_status != 0 ]]; then
    echo "FAIL: the server exited with status $server_status after SIGTERM"
    status=1
  else
    echo "ok   the server exited 0 after SIGTERM"
  fi
fi

if [[ $status != 0 ]]; then
  echo "---- server log (last 60 lines)"
  tail -n 60 "$work/server.log"
fi
exit $status

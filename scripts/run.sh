#!/usr/bin/env bash
# Start Lamina on 127.0.0.1:$PORT with the embedded store and deploy the example function.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-9000}
export LAMINA_ENDPOINT="http://127.0.0.1:${PORT}"
.venv/bin/lamina serve --port "$PORT" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' INT TERM EXIT
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
  sleep 0.1
done
.venv/bin/lamina deploy examples/hello --name hello --runtime python3.12 --handler lambda_function.handler
echo
echo "Try:  .venv/bin/lamina invoke hello --payload '{\"name\": \"Lamina\"}' --log"
echo "  or: aws --endpoint-url $LAMINA_ENDPOINT lambda invoke --function-name hello out.json"
wait $server

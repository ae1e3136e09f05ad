#!/usr/bin/env bash
# The project's test command (the README's second command, and what CI runs).
#
# 1. Embedded mode: plain `cargo test` needs no external service (the tests start the real
#    service on 127.0.0.1:0 with SQLite files in temporary directories).
# 2. PostgreSQL read models: this machine's PostgreSQL (127.0.0.1:5432, user postgres, trust
#    auth) is started when it is down; each test creates its own fresh database, and databases
#    left by earlier runs are dropped first. The PostgreSQL store tests run, then the HTTP
#    scenario suites run a second time with their read models in PostgreSQL.
# 3. Kafka event log: a real Kafka-protocol broker on loopback (Tansu, from crates.io; built
#    here when missing, in the background while the first suites run, and started on
#    127.0.0.1:9092 when nothing listens there). The Kafka-mode tests run, then the HTTP
#    scenario suites a third time with the event log in Kafka and read models in PostgreSQL.
# 4. The console's browser test in headless Chromium (Debian's chromium and chromium-driver,
#    installed here when missing).
# Debian's libfaketime is installed too when missing: tests/time_process.rs restarts the real
# binary with its clock moved ahead.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/tmp

export FULFILLMENT_TEST_KAFKA="${FULFILLMENT_TEST_KAFKA:-127.0.0.1:9092}"
kafka_host="${FULFILLMENT_TEST_KAFKA%%:*}"
kafka_port="${FULFILLMENT_TEST_KAFKA##*:}"
tansu="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
broker_listening() { (exec 3<>"/dev/tcp/$kafka_host/$kafka_port") 2>/dev/null; }
tansu_install_pid=""
if ! broker_listening && [ ! -x "$tansu" ]; then
  echo "== building the Tansu broker in the background (log: target/tmp/tansu-install.log)"
  cargo install tansu --version 0.6.0 --locked --features dynostore >target/tmp/tansu-install.log 2>&1 &
  tansu_install_pid=$!
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "== installing chromium and chromium-driver for the browser test"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then
  echo "== installing libfaketime for the tests that restart the service with its clock moved"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libfaketime >/dev/null
fi

export FULFILLMENT_TEST_POSTGRES="${FULFILLMENT_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "== starting PostgreSQL"
  for version in $(ls /etc/postgresql); do
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
fi
echo "== dropping test databases of earlier runs"
psql "$FULFILLMENT_TEST_POSTGRES" -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'fulfillment\_test\_%'" |
  while read -r db; do psql "$FULFILLMENT_TEST_POSTGRES" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done

echo "== embedded mode (plain cargo test)"
cargo test --workspace --locked "$@"

echo "== PostgreSQL read-model store (and fulfillment-bench fold into it), and the scenario suites with read models in PostgreSQL"
cargo test --workspace --locked --test postgres_read_model --test bench_commands -- --ignored
FULFILLMENT_TEST_READ_MODELS=postgres cargo test --workspace --locked \
  --test fulfillment_flow --test partner_api --test saas_api --test webhook_security --test console --test lifecycle --test metering

echo "== Kafka-protocol broker on $FULFILLMENT_TEST_KAFKA"
if [ -n "$tansu_install_pid" ]; then
  if ! wait "$tansu_install_pid"; then
    tail -n 40 target/tmp/tansu-install.log
    echo "building tansu failed" >&2
    exit 1
  fi
fi
if ! broker_listening; then
  "$tansu" broker --listener-url "tcp://$FULFILLMENT_TEST_KAFKA" --advertised-listener-url "tcp://$FULFILLMENT_TEST_KAFKA" \
    --storage-engine memory://tansu/ >target/tmp/tansu.log 2>&1 &
  tansu_pid=$!
  trap 'kill "$tansu_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 30); do broker_listening && break; sleep 1; done
  broker_listening || { cat target/tmp/tansu.log; echo "the broker did not start" >&2; exit 1; }
fi

echo "== Kafka event log: broker down, rebalance, projector kill, service kill during a burst; then the scenario suites on Kafka + PostgreSQL"
cargo test --workspace --locked --test kafka_mode -- --ignored
cargo test --workspace --locked --test kill_during_burst -- --ignored
FULFILLMENT_TEST_EVENT_LOG=kafka cargo test --workspace --locked \
  --test fulfillment_flow --test partner_api --test saas_api --test webhook_security --test console --test lifecycle --test metering

echo "== browser test (headless Chromium): screenshots in target/tmp/console-screenshots/"
cargo test --workspace --locked --test console_browser -- --ignored

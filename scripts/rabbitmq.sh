#!/usr/bin/env bash
# A private RabbitMQ node for the tests, on loopback only: AMQP on
# 127.0.0.1:25682, Erlang distribution on 127.0.0.1:25683, epmd on
# 127.0.0.1, its data under ${SENTIRIC_RABBITMQ_DIR:-/tmp/sentiric-rabbitmq}.
# It never touches a system RabbitMQ's node, data or vhosts.
#
#   scripts/rabbitmq.sh start    start it (if not running) and make the vhost
#   scripts/rabbitmq.sh stop     stop it
#   scripts/rabbitmq.sh pause    stop the broker, keep the node (an outage)
#   scripts/rabbitmq.sh resume   start the broker again
#   scripts/rabbitmq.sh url      the AMQP URL of the tests' vhost
#   scripts/rabbitmq.sh queues   the vhost's queues: name, messages
set -euo pipefail

base=${SENTIRIC_RABBITMQ_DIR:-/tmp/sentiric-rabbitmq}
export RABBITMQ_NODENAME=sentiric-test@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=25682
export RABBITMQ_DIST_PORT=25683
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_MNESIA_BASE=$base/mnesia
export RABBITMQ_LOG_BASE=$base/log
export RABBITMQ_PID_FILE=$base/pid
export RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
export RABBITMQ_CONFIG_FILE=$base/rabbitmq
bin=/usr/lib/rabbitmq/bin
vhost=sentiric-test
ctl() { "$bin/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" "$@"; }

case "${1:-}" in
  start)
    mkdir -p "$base/mnesia" "$base/log"
    [ -f "$base/enabled_plugins" ] || echo '[].' > "$base/enabled_plugins"
    # Loopback only, and no guest account limits to change.
    cat > "$base/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:25682
loopback_users.guest = true
CONF
    if ! ctl status >/dev/null 2>&1; then
      "$bin/rabbitmq-server" >"$base/log/start.out" 2>&1 &
      up=""
      for _ in $(seq 1 120); do
        if ctl await_startup --timeout 5 >/dev/null 2>&1; then up=1; break; fi
        sleep 0.5
      done
      if [ -z "$up" ]; then
        echo "rabbitmq: did not start; see $base/log" >&2
        tail -20 "$base/log/start.out" >&2 || true
        exit 1
      fi
    fi
    ctl start_app >/dev/null 2>&1 || true
    ctl list_vhosts | grep -qx "$vhost" || ctl add_vhost "$vhost" >/dev/null
    ctl set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
    ;;
  stop) ctl stop >/dev/null 2>&1 || true ;;
  pause) ctl stop_app >/dev/null ;;
  resume) ctl start_app >/dev/null ;;
  url) echo "amqp://guest:guest@127.0.0.1:25682/$vhost" ;;
  queues) ctl list_queues -p "$vhost" name messages ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac

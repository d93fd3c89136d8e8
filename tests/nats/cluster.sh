#!/usr/bin/env bash
# A three-node JetStream cluster on loopback for the bridge's tests.
#
#   cluster.sh start DIR        start nodes n1 n2 n3 (client and route ports
#                               free ones, a store per node under DIR), wait
#                               until a stream with 3 replicas can be created,
#                               print the client URLs (comma-separated; also
#                               in DIR/urls)
#   cluster.sh kill DIR NAME    kill -9 node NAME (n1, n2 or n3)
#   cluster.sh stop-node DIR NAME   stop node NAME cleanly (SIGTERM)
#   cluster.sh restart-node DIR NAME  start a stopped or killed node again
#   cluster.sh stop DIR         stop every node and remove DIR's stores
#   cluster.sh stream DIR NAME SUBJECT REPLICAS [MAX_BYTES]
#                               create a file-backed stream (through any live node)
#   cluster.sh messages DIR NAME  print how many messages the stream holds
#
# Exit status: 0 done; 1 the cluster did not come up (logs in DIR/NAME.log);
# 2 bad arguments; 77 nats-server is not installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=jetstream_api.sh
source "$here/jetstream_api.sh"

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 2 ] || usage
command=$1
dir=$2
nodes=(n1 n2 n3)

start_node() {
  local name=$1
  nats-server -c "$dir/$name.conf" >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

node_pid() {
  [ -f "$dir/$1.pid" ] && cat "$dir/$1.pid"
}

check_name() {
  case "$1" in n1 | n2 | n3) ;; *) echo "cluster.sh: no node \"$1\" (n1, n2, n3)" >&2; exit 2 ;; esac
}

case "$command" in
  start)
    command -v nats-server >/dev/null || { echo "cluster.sh: nats-server is not installed (tools/setup)" >&2; exit 77; }
    mkdir -p "$dir"
    declare -A client route
    for name in "${nodes[@]}"; do
      client[$name]=$(free_port)
      route[$name]=$(free_port)
    done
    urls=()
    for name in "${nodes[@]}"; do
      routes=()
      for other in "${nodes[@]}"; do
        [ "$other" = "$name" ] || routes+=("nats-route://127.0.0.1:${route[$other]}")
      done
      cat >"$dir/$name.conf" <<CONF
server_name: $name
listen: 127.0.0.1:${client[$name]}
jetstream {
  store_dir: "$dir/store-$name"
}
cluster {
  name: sluice-test
  listen: 127.0.0.1:${route[$name]}
  routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
      echo "${client[$name]}" >"$dir/$name.port"
      urls+=("nats://127.0.0.1:${client[$name]}")
    done
    for name in "${nodes[@]}"; do
      start_node "$name"
    done
    # Ready once the cluster has a JetStream leader and all three peers: a
    # stream with 3 replicas can then be created.
    deadline=$((SECONDS + 120))
    until stream_create 127.0.0.1 "${client[n1]}" CLUSTER_PROBE 3; do
      for name in "${nodes[@]}"; do
        kill -0 "$(node_pid "$name")" 2>/dev/null || {
          echo "cluster.sh: node $name exited; its log:" >&2
          tail -20 "$dir/$name.log" >&2
          exit 1
        }
      done
      if [ $SECONDS -ge $deadline ]; then
        echo "cluster.sh: no stream with 3 replicas after 120 s; n1's log:" >&2
        tail -20 "$dir/n1.log" >&2
        exit 1
      fi
      sleep 0.2
    done
    stream_delete 127.0.0.1 "${client[n1]}" CLUSTER_PROBE
    (IFS=,; echo "${urls[*]}") | tee "$dir/urls"
    ;;
  kill | stop-node)
    [ $# -eq 3 ] || usage
    check_name "$3"
    pid=$(node_pid "$3") || { echo "cluster.sh: node $3 was not started in $dir" >&2; exit 2; }
    signal=$([ "$command" = kill ] && echo KILL || echo TERM)
    kill -s "$signal" "$pid" 2>/dev/null || true
    # Wait until it is gone (it is our child only in the shell that started it).
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: node $3 (pid $pid) did not stop" >&2
      exit 1
    fi
    ;;
  restart-node)
    [ $# -eq 3 ] || usage
    check_name "$3"
    start_node "$3"
    ;;
  stop)
    for name in "${nodes[@]}"; do
      pid=$(node_pid "$name") || continue
      kill -TERM "$pid" 2>/dev/null || true
    done
    for name in "${nodes[@]}"; do
      pid=$(node_pid "$name") || continue
      for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
      done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    done
    rm -rf "$dir"/store-n?
    ;;
  stream | messages)
    [ "$command" = stream ] && { [ $# -ge 5 ] || usage; }
    [ "$command" = messages ] && { [ $# -eq 3 ] || usage; }
    for name in "${nodes[@]}"; do
      port=$(cat "$dir/$name.port")
      if [ "$command" = stream ]; then
        reply=$(js_request 127.0.0.1 "$port" "\$JS.API.STREAM.CREATE.$3" \
          "{\"name\":\"$3\",\"subjects\":[\"$4\"],\"storage\":\"file\",\"num_replicas\":$5,\"max_bytes\":${6:--1}}") || continue
        [[ "$reply" == *'"config"'* && "$reply" != *'"error"'* ]] && exit 0
        [ -z "$reply" ] || { echo "cluster.sh: $reply" >&2; exit 1; }
      else
        reply=$(js_request 127.0.0.1 "$port" "\$JS.API.STREAM.INFO.$3" "") || continue
        if [[ "$reply" =~ \"state\":\{\"messages\":([0-9]+) ]]; then
          echo "${BASH_REMATCH[1]}"
          exit 0
        fi
      fi
    done
    echo "cluster.sh: no live node answered" >&2
    exit 1
    ;;
  *) usage ;;
esac

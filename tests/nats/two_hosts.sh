#!/usr/bin/env bash
# Two "hosts" on one machine: network namespaces A and B joined by a veth
# pair (10.x.y.1 and 10.x.y.2), with a slow, lossy link between them. A
# nats-server with JetStream runs on A; the command given for each side runs
# in that side's namespace, both at once.
#
#   two_hosts.sh [options] --a 'COMMAND' --b 'COMMAND'
#
# The link: `tc qdisc ... netem delay D loss P` on both ends of the veth if
# the kernel has netem; otherwise sluice-tcp-relay on B between B's clients
# and A's server (--delay-ms D --loss P: a "lost" chunk is held one
# retransmission timeout, which is what packet loss does to a TCP stream).
# Which one ran is printed first.
#
# The commands see: NATS_URL (the server as seen from their side), SIDE (a or
# b), TWO_HOSTS_DIR (a directory both sides share, e.g. for logs),
# TWO_HOSTS_LINK (netem or relay).
#
# options:
#   --delay-ms D        one-way delay in milliseconds (default 5)
#   --loss P            loss probability 0..1 (default 0.01)
#   --cut-after S       cut the link S seconds after the commands start ...
#   --cut-for S         ... for S seconds (netem: the veth goes down; relay:
#                       its connections are reset and new ones refused)
#   --relay PATH        sluice-tcp-relay to use (default: $SLUICE_TCP_RELAY, or
#                       from PATH)
#   --no-netem          use the relay even where netem works
#   --keep DIR          use DIR as TWO_HOSTS_DIR and leave it in place
#
# Exit status: that of the first side's command that failed, else 0; 2 bad
# arguments; 77 namespaces or veth pairs cannot be made here (needs root or
# CAP_NET_ADMIN) or nats-server is missing. Always cleans up.
set -euo pipefail

usage() {
  sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

delay_ms=5
loss=0.01
cut_after=""
cut_for=""
relay="${SLUICE_TCP_RELAY:-$(command -v sluice-tcp-relay || true)}"
use_netem=1
keep=""
command_a=""
command_b=""
while [ $# -gt 0 ]; do
  case "$1" in
    --delay-ms) delay_ms=${2:?}; shift 2 ;;
    --loss) loss=${2:?}; shift 2 ;;
    --cut-after) cut_after=${2:?}; shift 2 ;;
    --cut-for) cut_for=${2:?}; shift 2 ;;
    --relay) relay=${2:?}; shift 2 ;;
    --no-netem) use_netem=0; shift ;;
    --keep) keep=${2:?}; shift 2 ;;
    --a) command_a=${2:?}; shift 2 ;;
    --b) command_b=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "two_hosts.sh: unknown argument $1" >&2; usage ;;
  esac
done
if [ -z "$command_a" ] || [ -z "$command_b" ]; then
  echo "two_hosts.sh: --a and --b are required" >&2
  usage
fi
[[ "$delay_ms" =~ ^[0-9]+$ ]] || { echo "two_hosts.sh: --delay-ms expects whole milliseconds" >&2; exit 2; }
[[ "$loss" =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || { echo "two_hosts.sh: --loss expects 0..1" >&2; exit 2; }
if { [ -n "$cut_after" ] && [ -z "$cut_for" ]; } || { [ -z "$cut_after" ] && [ -n "$cut_for" ]; }; then
  echo "two_hosts.sh: --cut-after and --cut-for go together" >&2
  exit 2
fi
command -v nats-server >/dev/null || { echo "two_hosts.sh: SKIP: nats-server is not installed" >&2; exit 77; }

# A run killed outright (SIGKILL, a test runner's timeout) had no chance to
# clean up: its namespaces are named by its process id, so those of a
# process that is gone are removed here, with whatever still runs in them.
for stale in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^sluice-[ab]-[0-9]+$' || true); do
  kill -0 "${stale##*-}" 2>/dev/null && continue
  ip netns pids "$stale" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  ip netns del "$stale" 2>/dev/null || true
  echo "two_hosts.sh: removed $stale, left by a run that was killed" >&2
done

id=$$
ns_a="sluice-a-$id"
ns_b="sluice-b-$id"
veth_a="sla$id"
veth_b="slb$id"
net="10.$((100 + id % 100)).$(((id / 100) % 256))"
addr_a="$net.1"
addr_b="$net.2"
if [ -n "$keep" ]; then
  dir=$keep
  mkdir -p "$dir"
else
  dir=$(mktemp -d /tmp/sluice-two-hosts-XXXXXX)
fi
pids=()

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local pid ns
  # Everything running in either namespace, whoever started it, then ours.
  for ns in "$ns_a" "$ns_b"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 100); do
    left=$(for ns in "$ns_a" "$ns_b"; do ip netns pids "$ns" 2>/dev/null; done)
    [ -z "$left" ] && break
    sleep 0.05
  done
  for ns in "$ns_a" "$ns_b"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  ip netns del "$ns_a" 2>/dev/null || true  # takes its end of the veth pair, and so both
  ip netns del "$ns_b" 2>/dev/null || true
  [ -n "$keep" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! ip netns add "$ns_a" 2>"$dir/netns.err" || ! ip netns add "$ns_b" 2>>"$dir/netns.err" ||
  ! ip link add "$veth_a" type veth peer name "$veth_b" 2>>"$dir/netns.err"; then
  echo "two_hosts.sh: SKIP: cannot make network namespaces and a veth pair here (needs root or CAP_NET_ADMIN): $(head -1 "$dir/netns.err")" >&2
  exit 77
fi
echo "two_hosts.sh: namespaces $ns_a and $ns_b"
ip link set "$veth_a" netns "$ns_a"
ip link set "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a"
ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b"
for side in a b; do
  ns_var="ns_$side"
  veth_var="veth_$side"
  ip -n "${!ns_var}" link set lo up
  ip -n "${!ns_var}" link set "${!veth_var}" up
done

loss_percent=$(awk -v p="$loss" 'BEGIN { printf "%g", p * 100 }')
link=relay
why_not_netem="--no-netem"
if [ $use_netem -eq 1 ]; then
  if ip netns exec "$ns_a" tc qdisc add dev "$veth_a" root netem delay "${delay_ms}ms" loss "${loss_percent}%" 2>"$dir/netem.err" &&
    ip netns exec "$ns_b" tc qdisc add dev "$veth_b" root netem delay "${delay_ms}ms" loss "${loss_percent}%" 2>>"$dir/netem.err"; then
    link=netem
  else
    why_not_netem="tc netem failed: $(head -1 "$dir/netem.err")"
  fi
fi

ip netns exec "$ns_a" nats-server -js -a "$addr_a" -p 4222 -sd "$dir/store" -l "$dir/nats-server.log" &
pids+=($!)
deadline=$((SECONDS + 60))
until ip netns exec "$ns_a" bash -c "exec 3<>/dev/tcp/$addr_a/4222 && head -c 4 <&3 | grep -q INFO" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "two_hosts.sh: nats-server on A did not start; its log:" >&2; tail -20 "$dir/nats-server.log" >&2; exit 1; }
  sleep 0.1
done

url_a="nats://$addr_a:4222"
if [ $link = netem ]; then
  url_b="nats://$addr_a:4222"
  echo "two_hosts.sh: link: netem delay ${delay_ms}ms loss ${loss_percent}% on both ends of the veth pair"
else
  if [ -z "$relay" ] || [ ! -x "$relay" ]; then
    echo "two_hosts.sh: SKIP: netem unavailable ($why_not_netem) and no sluice-tcp-relay (--relay PATH)" >&2
    exit 77
  fi
  cut_flags=()
  [ -z "$cut_after" ] || cut_flags=(--cut-after "$cut_after" --cut-for "$cut_for")
  ip netns exec "$ns_b" "$relay" --listen 127.0.0.1:4222 --to "$addr_a:4222" --delay-ms "$delay_ms" \
    --loss "$loss" "${cut_flags[@]}" >"$dir/relay.out" 2>"$dir/relay.err" &
  pids+=($!)
  until grep -q "listening" "$dir/relay.out" 2>/dev/null; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "two_hosts.sh: sluice-tcp-relay failed: $(cat "$dir/relay.err")" >&2; exit 1; }
    sleep 0.05
  done
  url_b="nats://127.0.0.1:4222"
  echo "two_hosts.sh: link: sluice-tcp-relay --delay-ms $delay_ms --loss $loss on B ($why_not_netem)"
fi

if [ $link = netem ] && [ -n "$cut_after" ]; then
  (
    sleep "$cut_after"
    ip -n "$ns_a" link set "$veth_a" down
    echo "two_hosts.sh: link cut (veth down)" >&2
    sleep "$cut_for"
    ip -n "$ns_a" link set "$veth_a" up
    echo "two_hosts.sh: link restored (veth up)" >&2
  ) &
  pids+=($!)
fi

run_side() {
  local side=$1 ns=$2 url=$3 command=$4
  ip netns exec "$ns" env NATS_URL="$url" SIDE="$side" TWO_HOSTS_DIR="$dir" TWO_HOSTS_LINK="$link" \
    bash -c "$command"
}
run_side a "$ns_a" "$url_a" "$command_a" &
pid_a=$!
run_side b "$ns_b" "$url_b" "$command_b" &
pid_b=$!
status_a=0
status_b=0
wait $pid_a || status_a=$?
wait $pid_b || status_b=$?
[ -f "$dir/relay.err" ] && cat "$dir/relay.err" >&2
echo "two_hosts.sh: side a exited $status_a, side b exited $status_b"
if [ $status_a -ne 0 ]; then
  exit $status_a
fi
exit $status_b

# shellcheck shell=bash
# Sourced by the NATS test scripts: JetStream API requests over the plain
# NATS protocol through bash's /dev/tcp, so the scripts need no NATS command
# line client.

# free_port: prints a loopback TCP port nobody listens on now.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      echo "$port"
      return
    fi
  done
}

# js_request HOST PORT SUBJECT JSON: sends one request, prints the reply's
# payload (empty if none came within 5 s).
js_request() {
  local host=$1 port=$2 subject=$3 body=$4 line reply=""
  { exec {fd}<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
  printf 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.sluice 1\r\nPUB %s _INBOX.sluice %d\r\n%s\r\n' \
    "$subject" "${#body}" "$body" >&"$fd"
  while IFS= read -r -t 5 line <&"$fd"; do
    case "$line" in
      MSG\ _INBOX.sluice*)
        IFS= read -r -t 5 reply <&"$fd"
        break
        ;;
      PING*) printf 'PONG\r\n' >&"$fd" ;;
    esac
  done
  exec {fd}>&-
  printf '%s\n' "${reply%$'\r'}"
}

# stream_create HOST PORT NAME REPLICAS: succeeds when the stream was created.
stream_create() {
  local reply
  reply=$(js_request "$1" "$2" "\$JS.API.STREAM.CREATE.$3" \
    "{\"name\":\"$3\",\"subjects\":[\"probe.$3\"],\"storage\":\"file\",\"num_replicas\":$4}") || return 1
  [[ "$reply" == *'"config"'* && "$reply" != *'"error"'* ]]
}

# stream_delete HOST PORT NAME
stream_delete() {
  js_request "$1" "$2" "\$JS.API.STREAM.DELETE.$3" "" >/dev/null
}

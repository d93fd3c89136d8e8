#!/usr/bin/env bash
# Model-checks the channel's wake-up protocol and buffer ownership
# (channel.pml) and the fan-in gate's wake-up protocol over several inputs
# (gate.pml) and the broadcast release protocol with a consumer's crash and
# takeover (broadcast.pml) exhaustively with spin, and checks that the checks
# can fail.
#
#   pass   the real protocol: safety (assertions + no invalid end state) on
#          two pool sizes, with the real wake counters, with spurious futex
#          returns; and the LTL claim `terminates` (no acceptance cycle), also
#          with spurious returns under weak fairness. For the gate: safety,
#          and with a producer that may die mid-stream plus spurious returns;
#          `terminates` with that producer, and with spurious returns under
#          weak fairness. For broadcast: safety, without and with a
#          consumer that may die at any step and be taken over, and with a
#          producer that may die at any step and be taken over.
#   fail   every mutant of the protocol must make spin report the expected
#          error: the lost wake-up mutants with end states ignored (-E), so
#          that the safety assertion alone catches them, and some of them also
#          as an invalid end state (a process asleep forever).
#   probe  reachability probes: states in which the properties have teeth
#          (someone asleep, a publish racing a sleeper, the close or a peer's
#          leaving landing on a sleeper, kPeerDied, an abandoned buffer; for
#          the gate: asleep on every input, a publish on one input making
#          futex_waitv return at once while the other stays empty, a close or
#          a death landing on the sleeping gate) must exist.
#
# Prints one line per run (states stored, depth, errors, time) and exits
# non-zero if any run does not end as expected or a search is incomplete.
# Environment: SPIN (default spin), CC (default gcc), MODEL_JOBS (default 2),
# MODEL_LARGE=1 (also the gate with three inputs: a bitstate search of about
# 52 million states, minutes and 512 MiB; too much for every CI run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
spin_bin="${SPIN:-spin}"
cc_bin="${CC:-gcc}"
jobs="${MODEL_JOBS:-2}"
command -v "$spin_bin" >/dev/null || { echo "check.sh: '$spin_bin' not found (Debian package spin)" >&2; exit 2; }
command -v "$cc_bin" >/dev/null || { echo "check.sh: C compiler '$cc_bin' not found" >&2; exit 2; }

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Each run: model (its .pml here) | name | expect (pass/fail) | spin -D flags | pan compile flags | pan run flags | expected first error (fail runs; ERE)
safety="-DSAFETY -DNOCLAIM"
hunt="$safety -DREVERSE" # runs that must fail: try the monitor last, which finds its errors sooner
n2m4="-DNBUF=2 -DCAP=2 -DMSGS=4 -DABANDONS=1"
n3m4="-DNBUF=3 -DCAP=4 -DMSGS=4 -DABANDONS=1"
n3m3="-DNBUF=3 -DCAP=4 -DMSGS=3 -DABANDONS=1"
lost='assertion violated +!\(\(\(?fq_(data|free)'
gate_lost='assertion violated +!\(\(g_asleep&&'
leaked='assertion violated +\(\(loc\[i\]==2\)\|\|\(loc\[i\]==3\)\)'
runs=(
  # The gate (its default: M=2 inputs, CAP=2, MSGS=3 records each). DEATH lets
  # producer 0 die mid-stream or not, so its runs cover the plain one too. The
  # progress runs use MSGS=2 to stay within the budget; the safety runs below
  # (which include "no invalid end state") use MSGS=3.
  "gate|ltl terminates death m2|pass|-DDEATH -DMSGS=2||-a"
  "gate|ltl terminates spurious m2|pass|-DSPURIOUS -DMSGS=2||-a -f"
  # The channel's real protocol (its default: NBUF=2 CAP=2 MSGS=3 ABANDONS=1, early exits).
  "channel|safety n2m4|pass|$n2m4|$safety|"
  "channel|ltl terminates spurious|pass|-DSPURIOUS -DNO_EARLY_EXIT||-a -f"
  "channel|safety n3m4 plain|pass|$n3m4 -DNO_EARLY_EXIT|$safety|"
  "channel|safety n3m3|pass|$n3m3|$safety|"
  "channel|safety n3m3 plain full-seq|pass|$n3m3 -DNO_EARLY_EXIT -DFULL_SEQ|$safety|"
  "channel|ltl terminates|pass|||-a"
  "channel|safety spurious|pass|-DSPURIOUS|$safety|"
  # Mutants: spin must find the bug.
  # (-E: invalid end states not checked, so the lost wake-up must be caught
  # by the safety assertion; the deadlock run catches it as a process asleep
  # forever, the assertion left aside by the search order.)
  "channel|mutant no-recheck -E|fail|-DMUTANT_NO_RECHECK|$hunt|-E|$lost"
  "channel|mutant no-recheck deadlock|fail|-DMUTANT_NO_RECHECK|$safety||invalid end state"
  "channel|mutant recheck-first -E|fail|-DMUTANT_RECHECK_FIRST|$hunt|-E|$lost"
  "channel|mutant late-seen -E|fail|-DMUTANT_LATE_SEEN|$hunt|-E|$lost"
  "channel|mutant close-order -E|fail|-DMUTANT_CLOSE_ORDER|$hunt|-E|$lost"
  "channel|mutant wake-before-unlock -E|fail|-DMUTANT_WAKE_BEFORE_UNLOCK|$hunt|-E|$lost"
  "channel|mutant cache-no-pop|fail|-DMUTANT_CACHE_NO_POP|$hunt||assertion violated.*(held|mn==1|bstate|pr_hcache)"
  "channel|mutant free-after-push|fail|-DMUTANT_FREE_AFTER_PUSH|$hunt||assertion violated.*bstate"
  "channel|mutant early-release|fail|-DMUTANT_EARLY_RELEASE|$hunt||assertion violated.*payload"
  # Reachability probes: each state must exist.
  "channel|probe data-while-asleep|fail|-DPROBE_DATA_WHILE_ASLEEP|$hunt||violated +!\\(\\(fq_data&&\\(d_tail"
  "channel|probe free-while-asleep|fail|-DPROBE_FREE_WHILE_ASLEEP|$hunt||violated +!\\(\\(fq_free&&\\(r_tail"
  "channel|probe close-while-asleep|fail|-DPROBE_CLOSE_WHILE_ASLEEP|$hunt||violated +!\\(\\(fq_data&&closed"
  "channel|probe recheck-finds-data|fail|-DPROBE_RECHECK_FINDS_DATA|$hunt||violated +!\\(\\(\\(\\(co_sleeping"
  "channel|probe abandoned|fail|-DPROBE_ABANDONED|$hunt||violated +\\(pr_ncache==0\\)"
  "channel|probe producer-gone-asleep|fail|-DPROBE_PRODUCER_GONE_WHILE_ASLEEP|$hunt||violated +!\\(\\(\\(fq_data&& !\\(pr_lock"
  "channel|probe consumer-gone-asleep|fail|-DPROBE_CONSUMER_GONE_WHILE_ASLEEP|$hunt||violated +!\\(\\(fq_free&& !\\(co_lock"
  "channel|probe peer-died|fail|-DPROBE_PEER_DIED|$hunt||violated +\\(co_end!=2\\)"
  # The gate's real protocol, safety.
  "gate|safety|pass||$safety|"
  "gate|safety death spurious|pass|-DDEATH -DSPURIOUS|$safety|"
  # The gate's mutants (-E as above).
  "gate|mutant no-recheck -E|fail|-DMUTANT_NO_RECHECK|$hunt|-E|$gate_lost"
  "gate|mutant no-recheck deadlock|fail|-DMUTANT_NO_RECHECK|$safety||invalid end state"
  "gate|mutant announce-first-only -E|fail|-DMUTANT_ANNOUNCE_FIRST_ONLY|$hunt|-E|$gate_lost"
  "gate|mutant late-seen -E|fail|-DMUTANT_LATE_SEEN|$hunt|-E|$gate_lost"
  "gate|mutant late-seen deadlock|fail|-DMUTANT_LATE_SEEN|$safety||invalid end state"
  "gate|mutant waitv-omits-last -E|fail|-DMUTANT_WAITV_OMITS_LAST|$hunt|-E|$gate_lost"
  "gate|mutant early-clear -E|fail|-DMUTANT_EARLY_CLEAR|$hunt|-E|$gate_lost"
  "gate|mutant early-clear deadlock|fail|-DMUTANT_EARLY_CLEAR|$safety||invalid end state"
  "gate|mutant no-drain|fail|-DMUTANT_NO_DRAIN|$hunt||assertion violated +\\(\\(head\\[i\\]==tail"
  # With three inputs the cross-input mutants must still fail (the last input is 2).
  "gate|mutant announce-first-only m3 -E|fail|-DM=3 -DMSGS=1 -DMUTANT_ANNOUNCE_FIRST_ONLY|$hunt|-E|$gate_lost"
  "gate|mutant waitv-omits-last m3 -E|fail|-DM=3 -DMSGS=1 -DMUTANT_WAITV_OMITS_LAST|$hunt|-E|$gate_lost"
  # The gate's reachability probes.
  "gate|probe asleep|fail|-DPROBE_ASLEEP|$hunt||violated +!\\(\\(g_asleep&&\\(wmask=="
  "gate|probe publish-races-sleep|fail|-DPROBE_PUBLISH_RACES_SLEEP|$hunt||violated +!\\(\\(+busy&&seqd\\[1\\]"
  "gate|probe data-while-asleep|fail|-DPROBE_DATA_WHILE_ASLEEP|$hunt||violated +!\\(\\(\\(g_asleep&&\\(\\(wmask&3\\)==3\\)\\)&&\\(tail\\[1\\]"
  "gate|probe close-while-asleep|fail|-DPROBE_CLOSE_WHILE_ASLEEP|$hunt||violated +!\\(\\(g_asleep&&\\(closed"
  "gate|probe death-while-asleep|fail|-DDEATH -DPROBE_DEATH_WHILE_ASLEEP|$hunt||violated +!\\(\\(\\(g_asleep&& !\\(lock\\[0\\]"
  "gate|probe peer-died|fail|-DDEATH -DPROBE_PEER_DIED|$hunt||violated +\\(fin\\[0\\]!=2\\)"
  # Broadcast (2 consumers, 2 buffers, MSGS=3): the real protocol, then with
  # one consumer that may die at any step and its successor's takeover, then
  # with the producer that may die at any step and its successor's.
  "broadcast|safety|pass||$safety|"
  "broadcast|safety crash|pass|-DCRASH|$safety|"
  "broadcast|safety producer crash|pass|-DPCRASH|$safety|"
  "broadcast|safety two producer crashes|pass|-DPCRASH -DPCRASH2|$safety|"
  # Its mutants: a leak shows as a pool not whole at the end.
  "broadcast|mutant last-clears crash|fail|-DCRASH -DMUTANT_LAST_CLEARS|$hunt||$leaked"
  "broadcast|mutant plain-store|fail|-DMUTANT_PLAIN_STORE|$hunt||$leaked"
  "broadcast|mutant successor-zero crash|fail|-DCRASH -DMUTANT_SUCCESSOR_ZERO|$hunt||assertion violated +\\(\\(loc\\[i\\]==1\\)&&\\(share"
  "broadcast|mutant no-sequence crash|fail|-DCRASH -DMUTANT_NO_SEQUENCE|$hunt||assertion violated +\\((state\\[(b|t)\\]==3|m==\\(prev\\+1\\))\\)"
  "broadcast|mutant no-complete producer-crash|fail|-DPCRASH -DMUTANT_NO_COMPLETE|$hunt||$leaked"
  "broadcast|mutant no-take-back producer-crash|fail|-DPCRASH -DMUTANT_NO_TAKE_BACK|$hunt||$leaked"
  "broadcast|mutant shared-count producer-crash|fail|-DPCRASH -DMUTANT_SHARED_COUNT|$hunt||assertion violated +\\(m==\\(prev\\+1\\)\\)"
  "broadcast|mutant no-count-store two-producer-crashes|fail|-DPCRASH -DPCRASH2 -DMUTANT_NO_COUNT_STORE|$hunt||assertion violated +\\(m==\\(prev\\+1\\)\\)"
  # Its reachability probes.
  "broadcast|probe complete|fail|-DPCRASH -DPROBE_COMPLETE|$hunt||violated +0"
  "broadcast|probe take-back-shared|fail|-DPCRASH -DPROBE_TAKE_BACK_SHARED|$hunt||violated +\\(st!=3\\)"
  "broadcast|probe count-freed|fail|-DPCRASH -DPROBE_COUNT_FREED|$hunt||violated +\\(\\(st==3\\)"
  "broadcast|probe cas-retry|fail|-DPROBE_CAS_RETRY|$hunt||violated +\\(who!="
  "broadcast|probe redeliver|fail|-DCRASH -DPROBE_REDELIVER|$hunt||violated +\\(redo!=3\\)"
  "broadcast|probe return-freed|fail|-DCRASH -DPROBE_RETURN_FREED|$hunt||violated +0"
)
if [[ "${MODEL_LARGE:-0}" == 1 ]]; then
  # Three inputs, one record each: too many states to store exhaustively here,
  # so a bitstate search (pan reports its hash factor; above 80 it is close to
  # complete).
  runs+=("gate|safety m3 bitstate|pass|-DM=3 -DMSGS=1|$safety -DBITSTATE -O2|-w32 -k3")
fi

now() { date +%s.%N; }

# run_one INDEX: verifies runs[INDEX] in its own directory; writes
# summary (one line) and verdict (ok/FAILED) there.
run_one() {
  local i=$1 model_name name expect spin_flags cc_flags pan_flags pattern
  IFS='|' read -r model_name name expect spin_flags cc_flags pan_flags pattern <<<"${runs[$i]}"
  local model="$here/$model_name.pml" trail="$model_name.pml.trail"
  name="$model_name $name"
  local dir="$scratch/$i"
  mkdir -p "$dir"
  local start verdict=ok note=""
  start=$(now)
  # shellcheck disable=SC2086  # flags are word lists
  if ! (cd "$dir" && "$spin_bin" $spin_flags -a "$model" >spin.log 2>&1); then
    verdict=FAILED note="spin -a failed: $(tail -n 3 "$dir/spin.log" | tr '\n' ' ')"
  elif ! (cd "$dir" && "$cc_bin" -w -O0 $cc_flags -DMEMLIM=2048 -o pan pan.c >cc.log 2>&1); then
    verdict=FAILED note="compiling pan failed: $(tail -n 3 "$dir/cc.log" | tr '\n' ' ')"
  else
    (cd "$dir" && ./pan -m20000 $pan_flags >pan.log 2>&1) || true
  fi
  local seconds states="-" depth="-" errors="-" first=""
  seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  if [[ -f "$dir/pan.log" ]]; then
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log" | head -n 1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$dir/pan.log" | head -n 1)
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log" | head -n 1)
    first=$(grep -m 1 -E '^pan:1:' "$dir/pan.log" || true)
    if [[ -z "$errors" ]]; then
      verdict=FAILED note="pan did not finish: $(tail -n 3 "$dir/pan.log" | tr '\n' ' ')"
    elif [[ "$expect" == pass && "$errors" != 0 ]]; then
      verdict=FAILED note="$first"
    elif [[ "$expect" == pass ]] &&
      grep -qE 'max search depth too small|out of memory|reached -DMEMLIM bound|Search not completed' "$dir/pan.log"; then
      verdict=FAILED note="incomplete search: $(grep -m 1 -E 'max search depth|memory|MEMLIM|not completed' "$dir/pan.log")"
    elif [[ "$expect" == fail && "$errors" == 0 ]]; then
      verdict=FAILED note="spin found no error, but this run must fail"
    elif [[ "$expect" == fail ]] && ! grep -qE "$pattern" <<<"$first"; then
      verdict=FAILED note="unexpected error: $first"
    elif [[ "$expect" == fail ]]; then
      note="${first#pan:1: }"
    fi
    if [[ "$verdict" == ok && "$expect" == pass ]] && grep -q 'hash factor' "$dir/pan.log"; then
      note="bitstate, $(grep -m 1 -o 'hash factor: [0-9.]*' "$dir/pan.log")"
    fi
  fi
  printf '%-7s %-46s states %9s  depth %4s  errors %s  %5ss  %s\n' \
    "$verdict" "$name ($expect)" "${states:--}" "${depth:--}" "${errors:--}" "$seconds" "$note" \
    >"$dir/summary"
  echo "$verdict" >"$dir/verdict"
  if [[ "$verdict" != ok && -f "$dir/pan.log" ]]; then
    {
      echo "    --- pan output ($name) ---"
      sed 's/^/    /' "$dir/pan.log" | head -n 40
      if [[ -f "$dir/$trail" ]]; then
        echo "    --- last steps of the counterexample (spin $spin_flags -t -p $model_name.pml) ---"
        # shellcheck disable=SC2086
        (cd "$dir" && "$spin_bin" $spin_flags -t -p -k "$trail" "$model" 2>&1 |
          grep -E '^ *[0-9]+:[[:space:]]+proc' | grep -v '(monitor:' | tail -n 30 | sed 's/^/    /')
      fi
    } >>"$dir/summary"
  fi
}

started=$(now)
echo "spin model check: $here/{channel,gate,broadcast}.pml ($("$spin_bin" -V 2>&1 | head -n 1))"
for i in "${!runs[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do
    wait -n || true
  done
  run_one "$i" &
done
wait

failures=0
for i in "${!runs[@]}"; do
  cat "$scratch/$i/summary" 2>/dev/null || echo "FAILED  run $i (${runs[$i]%%|*}) left no result"
  [[ "$(cat "$scratch/$i/verdict" 2>/dev/null)" == ok ]] || failures=$((failures + 1))
done
total=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
if ((failures > 0)); then
  echo "spin model check: $failures of ${#runs[@]} runs did not end as expected (${total}s)"
  exit 1
fi
echo "spin model check: all ${#runs[@]} runs as expected (${total}s)"

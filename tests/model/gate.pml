/*
 * Sluice fan-in gate: a Promela model of its wake-up protocol, checked
 * exhaustively by spin (run tests/model/check.sh).
 *
 * One consumer thread (the gate) reads M input channels. Each input is still
 * a 1:1 channel with its own ring, WakeWord `data_ready.sequence` (seq[i])
 * and SleepFlag `consumer_sleeping.sleeping` (flag[i]); its producer runs the
 * unchanged channel protocol (wake_peer after a publish, wake_peer_always
 * after close and in detach). The gate blocks for all inputs with one
 * futex_waitv call.
 *
 * What is modelled, in the order of the code:
 *   - per input: a bounded SPSC ring of capacity CAP with monotonically
 *     growing head and tail, whose slots carry the record number; `closed`;
 *     the wake sequence; the sleep flag; the producer's liveness lock;
 *   - producer i: publishes MSGS records (slot, tail.store(release)), each
 *     followed by wake_peer; then close (closed.store(release);
 *     wake_peer_always); then detach (unlock; wake_peer_always). Under DEATH
 *     producer 0 may instead stop at any point between records and detach
 *     without closing (a Producer destroyed without close()): the gate must
 *     drain what it published, then finish that input with kPeerDied;
 *   - the gate's loop:
 *       serve: for each unfinished input, round-robin: take one record if
 *         the ring is non-empty; if empty and `closed` (acquire), look once
 *         more; still empty -> the input is finished (kClosed).
 *       every input finished -> end of stream. Something taken -> serve again.
 *       sleep phase:
 *         for each unfinished i: seen_i = seq_i (acquire)   -- before the peer check
 *         for each unfinished i: if closed_i or producer i dead: take from i
 *           again (records it published before going are still ours; empty
 *           -> finished, kClosed / kPeerDied); something taken or every input
 *           finished -> serve again
 *         for each unfinished i: flag_i.exchange(1, seq_cst)  -- on every input
 *         re-check each unfinished ring and `closed`: anything -> no sleep
 *         else futex_waitv({(seq_i, seen_i) : i unfinished})
 *         for each unfinished i: flag_i.store(0, relaxed); serve again
 *   - futex_waitv compares every word with its expected value and, if all
 *     match, queues its caller on all of them, in one atomic step; it then
 *     blocks until a futex_wake on any of those words dequeues it (wmask:
 *     the words it is queued on). A word that moved makes it return at once
 *     (EAGAIN). The kernel compares and queues word by word, each under its
 *     hash-bucket lock, with the task already marked as sleeping; a waker
 *     bumps its word before it wakes, so a bump that lands before that word's
 *     compare is seen by it and one that lands after finds the gate queued:
 *     for this protocol that is the one atomic step.
 *
 * Memory is sequentially consistent (spin interleaves whole transitions); the
 * memory orders are argued in wait_strategy.hpp. Granularity as in
 * channel.pml: every transition makes at most one access to a location both
 * sides use at the time (a ring's head or tail, `closed`, a wake sequence, a
 * sleep flag, a liveness lock, the futex queue); owned accesses (the slot
 * being published or taken, gate-private state) are folded into the
 * neighbouring one. A taken slot is cleared (model only).
 *
 * Not modelled: buffers and their ownership, the return ring and the
 * producer's own wait for space (checked in channel.pml; here a producer just
 * blocks until its ring has room), deadlines and sleep slices (except as
 * spurious returns), a producer that crashes without detaching (noticed
 * through the liveness lock after one sleep slice), the spin/yield phase,
 * takeover, counters, the record layer.
 *
 * Options: M (inputs: 2 or 3), CAP, MSGS (sizes); DEATH (producer 0 may die
 * mid-stream); SPURIOUS (futex_waitv may also return at any time: a sleep
 * slice ending, a signal); MUTANT_* (below); PROBE_* (reachability probes in
 * `monitor`, each of which must fail). M=3 with MSGS=1 has about 52 million
 * states: check.sh searches it only with MODEL_LARGE=1, and with bitstate
 * hashing; its mutants (cheap: the errors are shallow) run every time.
 *
 * Properties:
 *   (a) No lost wake-up. Safety form, asserted by `monitor` in every state:
 *       the gate never sits in futex_waitv while an unfinished input holds
 *       something for it (a record, the close, or its producer gone) unless
 *       that input's producer is still between the publish and the end of
 *       its wake call (ghost waking[i]). Progress form: every run ends with
 *       the gate and all producers done, checked as "no invalid end state"
 *       (the gate asleep forever is one) and as the LTL claim `terminates`.
 *   (b) Every record of every input arrives exactly once and in order: the
 *       gate checks each record number against the next one it expects from
 *       that input; at the end it has every record each producer published,
 *       and each input finished as kClosed exactly when it was closed
 *       (otherwise kPeerDied).
 *
 * Mutants (check.sh requires spin to find an error in each):
 *   MUTANT_NO_RECHECK     the gate announces itself, then sleeps without
 *                         re-checking the rings;
 *   MUTANT_ANNOUNCE_FIRST_ONLY  the gate sets the sleep flag of the first
 *                         unfinished input only;
 *   MUTANT_LATE_SEEN      the gate reads the wake sequences just before
 *                         futex_waitv (after the re-check) instead of before
 *                         the peer check;
 *   MUTANT_WAITV_OMITS_LAST  futex_waitv leaves out the last input (M - 1):
 *                         neither compared nor queued on;
 *   MUTANT_EARLY_CLEAR    the gate clears its sleep flags before the re-check
 *                         instead of after the wait;
 *   MUTANT_NO_DRAIN       an input whose producer closed or died is finished
 *                         at once, without taking what it published first
 *                         (records are lost: property (b)).
 */

#ifndef M
#define M 2 /* inputs */
#endif
#ifndef CAP
#define CAP 2 /* each input's ring capacity */
#endif
#ifndef MSGS
#define MSGS 3 /* records per producer */
#endif

/* Status */
#define ST_OK         0
#define ST_WOULDBLOCK 1
#define ST_CLOSED     2
#define ST_PEERDIED   3

/* RingResult */
#define R_OK    0
#define R_EMPTY 1

/* How an input ended for the gate (fin[i]) */
#define FIN_NO       0
#define FIN_CLOSED   1
#define FIN_PEERDIED 2

/* ---- shared memory, per input ------------------------------------------ */
byte slot[M * CAP];         /* the rings: record numbers */
byte head[M];
byte tail[M];
bit  closed[M];             /* StreamState.closed */
byte seqd[M];               /* WakeWord data_ready, as seq - seen (below) */
bit  flag[M];               /* SleepFlag consumer_sleeping */

/* ---- the kernel -------------------------------------------------------- */
bit  lock[M];               /* producer i's liveness lock is held (set by init) */
bit  g_asleep;              /* the gate is queued in futex_waitv */
byte wmask;                 /* the words it is queued on: bit i = seq[i] */

/* ---- private state the monitor inspects -------------------------------- */
byte fin[M];                /* the gate finished input i: FIN_* */
byte next[M];               /* the record number the gate expects next from input i */
bit  p_done[M];
bit  g_done;

/* ---- ghosts ------------------------------------------------------------ */
bit  waking[M];             /* producer i between a publish (data, close, detach) and the end of its wake */

/* ---- wake sequences ---------------------------------------------------- */
/* As in channel.pml: the only reader of seq[i] is the gate, which loads
   seen_i and hands it to futex_waitv; the compare depends only on whether the
   word moved since the load, so the model keeps that bit (seqd[i]): the load
   clears it, a bump sets it. Exact bar 2^32 wrap-around. */
#define load_seen(i) seqd[i] = 0
#define bump(i) seqd[i] = 1

/* futex_wake(seq[i], 1): dequeues the gate if it is queued on seq[i] */
#define futex_wake(i) \
  if \
  :: g_asleep && (wmask & (1 << (i))) -> g_asleep = 0; wmask = 0 \
  :: else -> skip \
  fi

/* wake_peer: if (sleeping.fetch_add(0, seq_cst) != 0) { sequence.fetch_add(1); futex_wake } */
inline wake_peer(i) {
  if
  :: flag[i] != 0 ->
     bump(i);
     d_step { futex_wake(i); waking[i] = 0 }
  :: atomic { flag[i] == 0 -> waking[i] = 0 }
  fi
}

/* wake_peer_always: sequence.fetch_add(1); futex_wake */
inline wake_peer_always(i) {
  bump(i);
  d_step { futex_wake(i); waking[i] = 0 }
}

/* ======================================================================== */
/* producers                                                                 */
/* ======================================================================== */

proctype producer(byte id) {
  byte m = 1;               /* the next record number */
  bit died;

  do
#ifdef DEATH
  :: id == 0 && m <= MSGS -> died = 1; break    /* destroyed mid-stream without close() */
#endif
  :: m <= MSGS ->
     (tail[id] - head[id] < CAP);           /* waits for room: the channel's own wait (channel.pml) */
     d_step {
       slot[id * CAP + tail[id] % CAP] = m; /* slot store (relaxed) */
       tail[id]++;                          /* tail.store(release) */
       waking[id] = 1
     };
     wake_peer(id);
     m++
  :: else -> break
  od;
  if
  :: !died ->
     /* Producer::close */
     atomic { closed[id] = 1; waking[id] = 1 };  /* closed.store(1, release) */
     wake_peer_always(id)
  :: else -> skip
  fi;
  /* Producer::~Producer -> detach: unlock, wake (wake_peer_always) */
  atomic { lock[id] = 0; waking[id] = 1 };
  bump(id);
  d_step { futex_wake(id); waking[id] = 0; p_done[id] = 1 }
}

/* ======================================================================== */
/* the gate                                                                  */
/* ======================================================================== */

/* input i's data_in.peek, then (when OK) the take and data_in.advance() -> res */
inline g_pop() {
  atomic {                                  /* tail.load(acquire) */
    if
    :: tail[i] != head[i] -> res = R_OK
    :: else -> res = R_EMPTY
    fi
  };
  if
  :: res == R_OK ->
     d_step {
       assert(slot[i * CAP + head[i] % CAP] == next[i]);   /* (b): in order, none lost or doubled */
       next[i]++;
       slot[i * CAP + head[i] % CAP] = 0;
       head[i]++                            /* advance: head.store(release) */
     }
  :: else -> skip
  fi
}

/* input i's take_queued_buffer -> st */
inline g_take() {
  g_pop();
  if
  :: res == R_EMPTY ->
     if
     :: closed[i] ->                        /* closed.load(acquire): look once more */
        g_pop();
        if
        :: res == R_EMPTY -> st = ST_CLOSED
        :: else -> st = ST_OK
        fi
     :: else -> st = ST_WOULDBLOCK
     fi
  :: else -> st = ST_OK
  fi
}

/* input i's producer_status -> peer (closed, then the lock, then closed again) */
inline g_peer_status() {
  if
  :: closed[i] -> peer = ST_CLOSED
  :: else ->
     if
     :: lock[i] -> peer = ST_OK             /* probe_role: the lock is held */
     :: else ->
        if
        :: closed[i] -> peer = ST_CLOSED
        :: else -> peer = ST_PEERDIED
        fi
     fi
  fi
}

/* for (i = 0; i < M; i++) if (!fin[i]) body: the loop's bookkeeping is private */
#define for_unfinished(body) \
  i = 0; \
  do \
  :: i < M && fin[i] -> i++ \
  :: i < M && !fin[i] -> body; i++ \
  :: else -> break \
  od

/* the wake sequences of every unfinished input (seen_i = seq_i, acquire) */
#define load_all_seen for_unfinished(load_seen(i))

#if M == 3
#define ALL_FINISHED (fin[0] && fin[1] && fin[2])
#else
#define ALL_FINISHED (fin[0] && fin[1])
#endif

proctype gate() {
  byte i;
  byte res;
  byte st;
  byte peer;
  bit took;
  bit busy;
#ifdef MUTANT_ANNOUNCE_FIRST_ONLY
  bit first;
#endif

serve:
  took = 0;
  for_unfinished(
     g_take();
     if
     :: st == ST_OK -> took = 1
     :: st == ST_CLOSED -> fin[i] = FIN_CLOSED
     :: st == ST_WOULDBLOCK -> skip
     fi);
  if
  :: ALL_FINISHED -> goto stream_ended
  :: else -> skip
  fi;
  if
  :: took -> goto serve
  :: else -> skip
  fi;

  /* sleep phase */
#ifndef MUTANT_LATE_SEEN
  load_all_seen;
#endif
  for_unfinished(
     g_peer_status();
     if
     :: peer != ST_OK ->                    /* do not sleep on it: take again */
#ifdef MUTANT_NO_DRAIN
        st = ST_WOULDBLOCK;
#else
        g_take();
#endif
        if
        :: st == ST_OK -> took = 1
        :: st == ST_CLOSED -> fin[i] = FIN_CLOSED
        :: st == ST_WOULDBLOCK ->
           if
           :: peer == ST_CLOSED -> fin[i] = FIN_CLOSED
           :: else -> fin[i] = FIN_PEERDIED
           fi
        fi
     :: else -> skip
     fi);
  if
  :: took || ALL_FINISHED -> goto serve
  :: else -> skip
  fi;

  /* announce on every unfinished input: flag_i.exchange(1, seq_cst) */
#ifdef MUTANT_ANNOUNCE_FIRST_ONLY
  first = 1;
#endif
  i = 0;
  do
  :: i < M && fin[i] -> i++
  :: i < M && !fin[i] ->
#ifdef MUTANT_ANNOUNCE_FIRST_ONLY
     if
     :: first -> flag[i] = 1; first = 0
     :: else -> skip
     fi;
#else
     flag[i] = 1;
#endif
     i++
  :: else -> break
  od;
#ifdef MUTANT_EARLY_CLEAR
  for_unfinished(flag[i] = 0);
#endif

  /* the re-check: any record or close on an unfinished input -> no sleep */
  busy = 0;
#ifndef MUTANT_NO_RECHECK
  i = 0;
  do
  :: i < M && fin[i] -> i++
  :: i < M && !fin[i] ->
     if
     :: tail[i] != head[i] -> busy = 1; break    /* tail.load(acquire) */
     :: else -> skip
     fi;
     if
     :: closed[i] -> busy = 1; break             /* closed.load(acquire) */
     :: else -> skip
     fi;
     i++
  :: else -> break
  od;
#endif
  if
  :: !busy ->
#ifdef MUTANT_LATE_SEEN
     load_all_seen;
     skip;                                  /* (no jump into the d_step) */
#endif
     /* futex_waitv over {(seq_i, seen_i) : i unfinished}: compare all, then
        queue on all, in one step; EAGAIN if any word moved */
     d_step {
       wmask = 0;
       busy = 0;
       i = 0;
       do
#ifdef MUTANT_WAITV_OMITS_LAST
       :: i < M - 1 ->
#else
       :: i < M ->
#endif
          if
          :: !fin[i] ->
             wmask = wmask | (1 << i);
             if
             :: seqd[i] != 0 -> busy = 1
             :: else -> skip
             fi
          :: else -> skip
          fi;
          i++
       :: else -> break
       od;
#ifdef PROBE_PUBLISH_RACES_SLEEP              /* input 1 published after its re-check: EAGAIN, input 0 still empty */
       assert(!(busy && seqd[1] && tail[1] != head[1] && !closed[1] && !fin[0] && !seqd[0] && tail[0] == head[0]));
#endif
       if
       :: !busy && wmask != 0 -> g_asleep = 1
       :: else -> wmask = 0                 /* EAGAIN (or EINVAL: no words) */
       fi;
       i = 0
     };
     if
     :: !g_asleep                           /* woken (or never queued) */
#ifdef SPURIOUS
     :: atomic { g_asleep -> g_asleep = 0; wmask = 0 }   /* a sleep slice ends, or a signal */
#endif
     fi
  :: else -> skip
  fi;
#ifndef MUTANT_EARLY_CLEAR
  for_unfinished(flag[i] = 0);              /* sleeping.store(0, relaxed) */
#endif
  goto serve;

stream_ended:
  g_done = 1
}

/* ======================================================================== */
/* invariants, checked in every reachable state                              */
/* ======================================================================== */

/* input i holds something for the gate that no wake is on its way for */
#define UNANNOUNCED(i) (!fin[i] && (tail[i] != head[i] || closed[i] || !lock[i]) && !waking[i])
#if M == 3
#define ANY_UNANNOUNCED (UNANNOUNCED(0) || UNANNOUNCED(1) || UNANNOUNCED(2))
#define ANY_CLOSED (closed[0] || closed[1] || closed[2])
#else
#define ANY_UNANNOUNCED (UNANNOUNCED(0) || UNANNOUNCED(1))
#define ANY_CLOSED (closed[0] || closed[1])
#endif

/* One statement that can fire in any state: spin tries it in every reachable one. */
proctype monitor() {
  d_step {
    /* (a): the gate never sleeps while an input holds something for it,
       unless that input's producer is still on its way to its wake call */
    assert(!(g_asleep && ANY_UNANNOUNCED));
    /* Reachability probes: check.sh requires each of these states to exist,
       so that the properties above are not true for want of trying. */
#ifdef PROBE_ASLEEP                           /* the gate asleep on every input */
    assert(!(g_asleep && wmask == (1 << M) - 1));
#endif
#ifdef PROBE_DATA_WHILE_ASLEEP                /* the gate asleep on both, a record on input 1, its wake on its way */
    assert(!(g_asleep && (wmask & 3) == 3 && tail[1] != head[1]));
#endif
#ifdef PROBE_CLOSE_WHILE_ASLEEP               /* a close lands on the sleeping gate */
    assert(!(g_asleep && ANY_CLOSED));
#endif
#ifdef PROBE_DEATH_WHILE_ASLEEP               /* producer 0 gone without close, the gate asleep */
    assert(!(g_asleep && !lock[0] && !closed[0]));
#endif
#ifdef PROBE_PEER_DIED                        /* the gate finished input 0 as kPeerDied */
    assert(fin[0] != FIN_PEERDIED);
#endif
    skip
  }
}

init {
  byte i;
  d_step {
    i = 0;
    do
    :: i < M -> lock[i] = 1; next[i] = 1; i++
    :: else -> break
    od;
    i = 0
  };
  atomic {
    i = 0;
    do
    :: i < M -> run producer(i); i++
    :: else -> break
    od;
    run gate();
    run monitor();
    i = 0
  };
  (g_done && p_done[0] && p_done[1]
#if M == 3
   && p_done[2]
#endif
  );
  d_step {
    /* (b): every record of every input arrived, once; kClosed exactly when closed */
    i = 0;
    do
    :: i < M ->
       assert(head[i] == tail[i] && next[i] == tail[i] + 1);
       assert((closed[i] && fin[i] == FIN_CLOSED) || (!closed[i] && fin[i] == FIN_PEERDIED));
#ifndef DEATH
       assert(tail[i] == MSGS);
#endif
       assert(!flag[i]);
       i++
    :: else -> break
    od;
    assert(!g_asleep);
    i = 0
  }
}

/* (a), as progress: every run ends with the gate and every producer done. */
#if M == 3
ltl terminates { <> (g_done && p_done[0] && p_done[1] && p_done[2]) }
#else
ltl terminates { <> (g_done && p_done[0] && p_done[1]) }
#endif

/*
 * Sluice channel: a Promela model of the wake-up protocol and of buffer
 * ownership, checked exhaustively by spin (run tests/model/check.sh).
 *
 * What is modelled, in the order of the code:
 *   - a pool of NBUF buffers with their state words (channel_layout.hpp,
 *     BufferState) and their contents (the record number each one carries);
 *   - the data ring (producer -> consumer) and the return ring (consumer ->
 *     producer): SPSC, monotonically growing head and tail, each side's cached
 *     copy of the other side's index, capacity CAP (spsc_ring.hpp); the return
 *     ring starts out holding every buffer (channel.cpp);
 *   - Producer::acquire (take_free_buffer: peek, mark, advance; the private
 *     cache of abandoned buffers first), WritableBuffer::reset
 *     (abandon_buffer: the buffer stays kWriting), Producer::commit,
 *     Producer::close and Producer::detach (producer.cpp);
 *   - Consumer::receive (take_queued_buffer: peek, mark, advance;
 *     producer_status), release_buffer (in any order) and Consumer::detach
 *     (consumer.cpp);
 *   - wait_for, wake_peer and wake_peer_always (wait_strategy.hpp) with the
 *     wake sequences, the sleep flags and the futex: futex_wait compares the
 *     word and enqueues its caller in one atomic step (as the kernel does
 *     under the hash-bucket lock) and then blocks until futex_wake dequeues
 *     it; futex_wake(word, 1) dequeues the (only possible) waiter;
 *   - the endpoint state words and liveness locks, as close and detach use them;
 *   - how each side may end: the producer sends all MSGS records or stops
 *     early (at any point), then closes or not (a Producer destroyed without
 *     close(): the consumer must get kPeerDied once it has drained the ring),
 *     then detaches; it also stops when acquire returns kPeerDied. The
 *     consumer receives until kClosed or kPeerDied, or leaves early; it
 *     releases what it holds and detaches (-DNO_EARLY_EXIT: only the plain
 *     run, all records then close).
 *
 * Memory is sequentially consistent (spin interleaves whole transitions), so
 * the model checks the protocol's logic and the order of its operations, not
 * the C++ memory orders chosen for them (wait_strategy.hpp argues those).
 *
 * Granularity. A "sync" access is one to a location both processes use at
 * the time: a ring's head or tail, a wake sequence, a sleep flag, `closed`,
 * an endpoint state, a liveness lock, the futex queue. Every transition makes
 * at most one sync access, in program order. Accesses to what the process
 * owns at that moment -- its private variables, a ring slot it is about to
 * publish or is taking, the state word, commit record and bytes of a buffer
 * it holds or is taking -- are folded into the neighbouring sync access:
 * nobody else touches them then (which is what property (b) checks), so they
 * commute with every step of the peer. So peek / mark / advance is one step,
 * as is commit's record / state / slot / tail. A consumed slot is cleared
 * (model only; it is never read again before being rewritten), so stale slot
 * values do not split states.
 *
 * Not modelled: deadlines and timeouts, the spin/yield phase (its polls are
 * the same attempt as the sleeping loop's), a peer that crashes without
 * detaching (noticed through the liveness lock after one sleep slice, i.e.
 * through a timeout), the take-over of a channel by a new producer or
 * consumer (recover_from_previous_producer, take_over_from_previous_consumer,
 * the ProducerLoss/ConsumerLoss "wait for a new peer" policies), forged
 * shared state, counters and wait timestamps, the record layer. The commit
 * record (BufferCommit) is an owned write like the buffer's bytes; `payload`
 * stands for both.
 *
 * Options: NBUF, CAP, MSGS, ABANDONS (sizes); NO_EARLY_EXIT (only the plain
 * run); SPURIOUS (futex_wait may also return at any time: a sleep slice
 * ending, a signal; the safety properties must still hold); FULL_SEQ (real
 * wake counters, see below); MUTANT_* (below); PROBE_* (reachability probes
 * in `monitor`, each of which must fail).
 *
 * Properties:
 *   (a) No lost wake-up. Safety form, asserted by `monitor` in every state: a
 *       process never sits in the futex queue while its ring holds something
 *       for it (for the consumer: data, the close, or the producer gone; for
 *       the producer: a free buffer, or the consumer gone) unless its peer is
 *       still between that publish and the end of its wake call (ghosts
 *       pr_waking / co_waking). Progress form: every run ends with both
 *       processes done, checked as "no invalid end state" (a process blocked
 *       in futex_wait forever is one), and as the LTL claim `terminates`.
 *   (b) Each buffer is in exactly one place in every state: the return ring,
 *       the producer's cache of abandoned buffers, the producer's hands, the
 *       data ring, or the consumer's hands; and its state word agrees: Free
 *       in the return ring, Writing with the producer (hands or cache),
 *       Queued in the data ring, Reading with the consumer. Asserted by
 *       `monitor`. The code's own corruption checks on take (state word,
 *       held[], index range, ring never full) are asserted never to fire.
 *   (c) Records arrive in order, none lost or duplicated: the consumer checks
 *       each buffer's record number against the next one it expects; when it
 *       gets kClosed (only after a close) or kPeerDied (only without one) it
 *       has every record the producer committed; one that left early has a
 *       prefix. At the end the consumer holds nothing and every buffer is in
 *       a ring or the producer's cache.
 *
 * Mutants (check.sh requires spin to find an error in each):
 *   MUTANT_NO_RECHECK     the waiter announces itself, then sleeps without
 *                         re-checking its ring;
 *   MUTANT_RECHECK_FIRST  the waiter re-checks, then announces itself;
 *   MUTANT_LATE_SEEN      the waiter reads the wake sequence just before
 *                         futex_wait instead of before announcing itself;
 *   MUTANT_CLOSE_ORDER    close() bumps the sequence and wakes before it sets
 *                         `closed`;
 *   MUTANT_WAKE_BEFORE_UNLOCK  detach() wakes the peer before it releases its
 *                         liveness lock (the peer's probe still sees it alive);
 *   MUTANT_CACHE_NO_POP   acquire takes an abandoned buffer without removing
 *                         it from the cache (ownership breaks);
 *   MUTANT_FREE_AFTER_PUSH  release_buffer marks the buffer kFree after
 *                         handing it back instead of before (its state word
 *                         can then contradict its place);
 *   MUTANT_EARLY_RELEASE  the consumer releases a buffer before reading it
 *                         (the producer may overwrite it: order breaks).
 */

#ifndef NBUF
#define NBUF 2
#endif
#ifndef CAP
#define CAP 2 /* ring capacity: a power of two >= NBUF */
#endif
#ifndef MSGS
#define MSGS 3
#endif
#ifndef ABANDONS
#define ABANDONS 1 /* how many times the producer may drop a buffer uncommitted */
#endif

#define NONE 255

/* BufferState */
#define FREE    0
#define WRITING 1
#define QUEUED  2
#define READING 3

/* Status */
#define ST_OK         0
#define ST_WOULDBLOCK 1
#define ST_CLOSED     2
#define ST_PEERDIED   3

/* RingResult, plus "taken from the producer's cache" */
#define R_OK     0
#define R_EMPTY  1
#define R_CACHED 2

/* How the consumer's receive loop ended */
#define END_RUNNING  0
#define END_CLOSED   1
#define END_PEERDIED 2
#define END_LEFT     3

/* EndpointState */
#define NEVER_ATTACHED 0
#define ATTACHED       1
#define DETACHED       2

/* ---- shared memory ----------------------------------------------------- */
byte bstate[NBUF];          /* per-buffer state word */
byte payload[NBUF];         /* the buffer's bytes: the record number in it */
byte d_slot[CAP];           /* data ring */
byte d_head;
byte d_tail;
byte r_slot[CAP];           /* return ring */
byte r_head;
byte r_tail;
bit  closed;                /* StreamState.closed */
byte pr_state = ATTACHED;   /* EndpointRecord.state */
byte co_state = ATTACHED;
byte data_seq;              /* WakeWord data_ready: the producer wakes the consumer */
bit  co_sleeping;           /* SleepFlag consumer_sleeping */
byte free_seq;              /* WakeWord buffer_free: the consumer wakes the producer */
bit  pr_sleeping;           /* SleepFlag producer_sleeping */

/* ---- the kernel -------------------------------------------------------- */
bit pr_lock = 1;            /* the producer's liveness lock is held */
bit co_lock = 1;
bit fq_data;                /* the consumer is queued in futex_wait(data_ready) */
bit fq_free;                /* the producer is queued in futex_wait(buffer_free) */

/* ---- private state the monitor inspects -------------------------------- */
bit  pr_held[NBUF];         /* ProducerState::held (stays 1 for abandoned buffers) */
byte pr_cache[NBUF];        /* ProducerState::abandoned, a stack */
byte pr_ncache;
bit  co_held[NBUF];         /* ConsumerState::held */
byte co_next = 1;           /* the record number the consumer expects next */
byte pr_sent;               /* records committed, once the producer stops */
byte co_end;                /* how the consumer stopped: END_* */
bit  pr_done;
bit  co_done;

/* ---- ghosts for property (a) ------------------------------------------- */
bit pr_waking;              /* producer between a publish (data, close, detach) and the end of its wake */
bit co_waking;              /* consumer between a publish (release, detach) and the end of its wake */

/* Everything else private is a local of its proctype, so that spin's
   dead-variable reduction forgets values that are no longer used. */

/* ---- wake sequences ---------------------------------------------------- */
/* The only reader of a wake sequence is its one waiter: it loads `seen`, and
   futex_wait compares the word with it. So by default the model keeps just
   what that compare depends on -- whether the word moved since the load -- as
   `seq - seen` saturated at 1: the load sets both to 0, a bump sets the word
   to 1. This is exact (bar 2^32 wrap-around) and keeps the counters' history
   out of the state. -DFULL_SEQ keeps the real counters (larger state space). */
#ifdef FULL_SEQ
#define load_seen(word, seen) seen = word
#define bump(word) word++
#else
#define load_seen(word, seen) d_step { word = 0; seen = 0 }
#define bump(word) word = 1
#endif

/* ---- futex ------------------------------------------------------------- */
inline futex_wait(word, expected, queued) {
  d_step {
    if
    :: word == expected -> queued = 1
    :: else -> skip                         /* EAGAIN: the word moved on */
    fi
  };
  if
  :: queued == 0                            /* woken (or never queued) */
#ifdef SPURIOUS
  :: atomic { queued == 1 -> queued = 0 }   /* a sleep slice ends, or a signal */
#endif
  fi
}

#define futex_wake(queued) queued = 0

/* wake_peer: if (sleeping.fetch_add(0, seq_cst) != 0) { sequence.fetch_add(1); futex_wake } */
inline wake_peer(word, flag, queued, waking) {
  if
  :: flag != 0 ->
     bump(word);
     d_step { futex_wake(queued); waking = 0 }
  :: atomic { flag == 0 -> waking = 0 }
  fi
}

/* wake_peer_always: sequence.fetch_add(1); futex_wake */
inline wake_peer_always(word, queued, waking) {
  bump(word);
  d_step { futex_wake(queued); waking = 0 }
}

/* ======================================================================== */
/* producer                                                                  */
/* ======================================================================== */

/* ProducerState::take_free_buffer -> pr_st, pr_idx */
inline pr_take() {
  atomic {
    pr_st = ST_OK;
    pr_res = R_OK;
    if
    :: pr_ncache > 0 ->                     /* abandoned.back(); pop_back(): already ours, kWriting */
#ifdef MUTANT_CACHE_NO_POP
       pr_idx = pr_cache[pr_ncache - 1];
#else
       pr_ncache--;
       pr_idx = pr_cache[pr_ncache];
       pr_cache[pr_ncache] = NONE;
#endif
       pr_res = R_CACHED
    :: else ->
       if
       :: r_head == pr_tcache ->            /* free_in.peek -> refresh(): tail.load(acquire) */
          pr_tcache = r_tail;
          assert(pr_tcache - r_head <= CAP);
          if
          :: pr_tcache == r_head -> pr_res = R_EMPTY; pr_st = ST_WOULDBLOCK
          :: else -> skip
          fi
       :: else -> skip
       fi
    fi
  };
  if
  :: pr_res == R_OK ->
     d_step {
       pr_idx = r_slot[r_head % CAP];       /* peek: slot load */
       assert(pr_idx < NBUF);               /* "beyond the pool": never */
       assert(!pr_held[pr_idx]);            /* "a buffer this producer holds": never */
       assert(bstate[pr_idx] == FREE);      /* "not free": never */
       pr_held[pr_idx] = 1;
       bstate[pr_idx] = WRITING;            /* marked before the ring moves on */
       r_slot[r_head % CAP] = 0;
       r_head++                             /* advance: head.store(release) */
     }
  :: else -> skip
  fi
}

/* ProducerState::consumer_status -> pr_peer */
inline pr_peer_status() {
  if
  :: co_state == NEVER_ATTACHED -> pr_peer = ST_OK
  :: else ->
     if
     :: co_lock != 0 -> pr_peer = ST_OK     /* probe_role: the lock is held */
     :: else -> pr_peer = ST_PEERDIED
     fi
  fi
}

/* Producer::acquire = wait_for(take_free_buffer, consumer_status,
   buffer_free, producer_sleeping) with no deadline */
inline pr_acquire() {
  pr_take();
  if
  :: pr_st == ST_WOULDBLOCK ->
     do
     :: true ->
#ifndef MUTANT_LATE_SEEN
        load_seen(free_seq, pr_seen);       /* seen = sequence.load(acquire) */
#endif
        pr_peer_status();
        if
        :: pr_peer != ST_OK ->
           pr_take();
           if
           :: pr_st == ST_WOULDBLOCK -> pr_st = pr_peer
           :: else -> skip
           fi;
           break
        :: else -> skip
        fi;
#if defined(MUTANT_RECHECK_FIRST)
        pr_take();
        pr_sleeping = 1;
#elif defined(MUTANT_NO_RECHECK)
        pr_sleeping = 1;
#else
        pr_sleeping = 1;                    /* sleeping.exchange(1, seq_cst) */
        pr_take();                          /* the re-check */
#endif
        if
        :: pr_st == ST_WOULDBLOCK ->
#ifdef MUTANT_LATE_SEEN
           load_seen(free_seq, pr_seen);
#endif
           futex_wait(free_seq, pr_seen, fq_free);
           pr_take()
        :: else -> skip
        fi;
        atomic {
          pr_sleeping = 0;                  /* sleeping.store(0, relaxed) */
          if
          :: pr_st != ST_WOULDBLOCK -> break
          :: else -> skip
          fi
        }
     od
  :: else -> skip
  fi
}

proctype producer() {
  byte m = 1;               /* the next record number */
  byte pr_idx;              /* the buffer being taken / written */
  byte pr_res;
  byte pr_st;
  byte pr_peer;
  byte pr_seen;
  byte pr_tcache;           /* free_in's cached tail of the return ring */
  byte pr_hcache;           /* data_out's cached head of the data ring */
  byte pr_abandons;

  do
  :: m <= MSGS ->
     pr_acquire();
     if
     :: pr_st == ST_PEERDIED -> break       /* the consumer is gone */
     :: else -> assert(pr_st == ST_OK)
     fi;
     if
     :: pr_abandons < ABANDONS ->
        /* WritableBuffer::reset -> abandon_buffer: into the cache; held stays 1, state kWriting */
        d_step {
          pr_cache[pr_ncache] = pr_idx;
          pr_ncache++;
          pr_abandons++
        }
     :: true ->
        /* Producer::commit -> data_out.push = stage + publish */
        atomic {
          if
          :: d_tail - pr_hcache >= CAP ->
             pr_hcache = d_head;            /* looks full: head.load(acquire) */
             assert(d_tail - pr_hcache < CAP)   /* "data ring reported full": never */
          :: else -> skip
          fi
        };
        d_step {
          payload[pr_idx] = m;              /* the caller filled it; commit record (bytes, sequence) */
          bstate[pr_idx] = QUEUED;
          d_slot[d_tail % CAP] = pr_idx;    /* slot store (relaxed) */
          d_tail++;                         /* tail.store(release) */
          pr_held[pr_idx] = 0;
          pr_waking = 1
        };
        wake_peer(data_seq, co_sleeping, fq_data, pr_waking);
        m++
     fi
#ifndef NO_EARLY_EXIT
  :: m <= MSGS -> break                     /* the owner stops before sending everything */
#endif
  :: else -> break
  od;
  pr_sent = m - 1;

  if
  :: true ->
     /* Producer::close */
#ifdef MUTANT_CLOSE_ORDER
     atomic { bump(data_seq); pr_waking = 1 };
     futex_wake(fq_data);
     atomic { closed = 1; pr_waking = 0 }
#else
     atomic { closed = 1; pr_waking = 1 };  /* closed.store(1, release) */
     wake_peer_always(data_seq, fq_data, pr_waking)
#endif
#ifndef NO_EARLY_EXIT
  :: true -> skip                           /* destroyed without close(): the consumer gets kPeerDied */
#endif
  fi;
  /* Producer::~Producer -> detach: state, unlock, wake */
  atomic { pr_state = DETACHED; pr_waking = 1 };
#ifdef MUTANT_WAKE_BEFORE_UNLOCK
  wake_peer_always(data_seq, fq_data, pr_waking);
  atomic { pr_lock = 0; pr_waking = 0 };
#else
  pr_lock = 0;
  wake_peer_always(data_seq, fq_data, pr_waking);
#endif
  pr_done = 1
}

/* ======================================================================== */
/* consumer                                                                  */
/* ======================================================================== */

/* data_in.peek(descriptor), then (when OK) take_queued_buffer's checks,
   its marks, and data_in.advance() -> co_res, co_idx */
inline co_pop() {
  atomic {
    co_res = R_OK;
    if
    :: d_head == co_tcache ->               /* refresh(): tail.load(acquire) */
       co_tcache = d_tail;
       assert(co_tcache - d_head <= CAP);
       if
       :: co_tcache == d_head -> co_res = R_EMPTY
       :: else -> skip
       fi
    :: else -> skip
    fi
  };
  if
  :: co_res == R_OK ->
     d_step {
       co_idx = d_slot[d_head % CAP];       /* peek: slot load */
       assert(co_idx < NBUF);               /* "beyond the pool": never */
       assert(!co_held[co_idx]);            /* "a buffer this consumer still holds": never */
       assert(bstate[co_idx] == QUEUED);    /* "not queued": never */
       co_held[co_idx] = 1;
       co_nheld++;
       bstate[co_idx] = READING;            /* marked before the ring moves on */
       d_slot[d_head % CAP] = 0;
       d_head++                             /* advance: head.store(release) */
     }
  :: else -> skip
  fi
}

/* ConsumerState::take_queued_buffer -> co_st, co_idx */
inline co_take() {
  co_pop();
  if
  :: co_res == R_EMPTY ->
     if
     :: closed != 0 ->                      /* closed.load(acquire): look once more */
        co_pop();
        if
        :: co_res == R_EMPTY -> co_st = ST_CLOSED
        :: else -> co_st = ST_OK
        fi
     :: else -> co_st = ST_WOULDBLOCK
     fi
  :: else -> co_st = ST_OK
  fi
}

/* ConsumerState::producer_status -> co_peer */
inline co_peer_status() {
  if
  :: closed != 0 -> co_peer = ST_CLOSED
  :: else ->
     if
     :: pr_lock != 0 -> co_peer = ST_OK     /* probe_role: the lock is held */
     :: else ->
        if
        :: closed != 0 -> co_peer = ST_CLOSED
        :: else -> co_peer = ST_PEERDIED
        fi
     fi
  fi
}

/* Consumer::receive = wait_for(take_queued_buffer, producer_status,
   data_ready, consumer_sleeping) with no deadline */
inline co_receive() {
  co_take();
  if
  :: co_st == ST_WOULDBLOCK ->
     do
     :: true ->
#ifndef MUTANT_LATE_SEEN
        load_seen(data_seq, co_seen);       /* seen = sequence.load(acquire) */
#endif
        co_peer_status();
        if
        :: co_peer != ST_OK ->
           co_take();
           if
           :: co_st == ST_WOULDBLOCK -> co_st = co_peer
           :: else -> skip
           fi;
           break
        :: else -> skip
        fi;
#if defined(MUTANT_RECHECK_FIRST)
        co_take();
        co_sleeping = 1;
#elif defined(MUTANT_NO_RECHECK)
        co_sleeping = 1;
#else
        co_sleeping = 1;                    /* sleeping.exchange(1, seq_cst) */
        co_take();                          /* the re-check */
#endif
        if
        :: co_st == ST_WOULDBLOCK ->
#ifdef MUTANT_LATE_SEEN
           load_seen(data_seq, co_seen);
#endif
           futex_wait(data_seq, co_seen, fq_data);
           co_take()
        :: else -> skip
        fi;
        atomic {
          co_sleeping = 0;                  /* sleeping.store(0, relaxed) */
          if
          :: co_st != ST_WOULDBLOCK -> break
          :: else -> skip
          fi
        }
     od
  :: else -> skip
  fi
}

/* Picks any buffer the consumer holds (they go back in any order) -> co_rel */
inline co_pick() {
  if
  :: co_held[0] -> co_rel = 0
#if NBUF > 1
  :: co_held[1] -> co_rel = 1
#endif
#if NBUF > 2
  :: co_held[2] -> co_rel = 2
#endif
#if NBUF > 3
  :: co_held[3] -> co_rel = 3
#endif
  fi
}

/* release_buffer(co_rel): held = 0; state Free; free_out.push; wake_peer */
inline co_release() {
  atomic {
    if
    :: r_tail - co_hcache >= CAP ->
       co_hcache = r_head;                  /* looks full: head.load(acquire) */
       assert(r_tail - co_hcache < CAP)     /* "return ring reported full": never */
    :: else -> skip
    fi
  };
#ifdef MUTANT_FREE_AFTER_PUSH
  d_step {
    co_held[co_rel] = 0;
    co_nheld--;
    r_slot[r_tail % CAP] = co_rel;
    r_tail++;
    co_waking = 1
  };
  bstate[co_rel] = FREE;                    /* marked only once the producer may have it */
#else
  d_step {
    co_held[co_rel] = 0;
    co_nheld--;
    bstate[co_rel] = FREE;
    r_slot[r_tail % CAP] = co_rel;          /* slot store (relaxed) */
    r_tail++;                               /* tail.store(release) */
    co_waking = 1
  };
#endif
  wake_peer(free_seq, pr_sleeping, fq_free, co_waking)
}

proctype consumer() {
  byte co_idx;              /* the buffer just taken */
  byte co_rel;              /* the buffer being released */
  byte co_res;
  byte co_st;
  byte co_peer;
  byte co_seen;
  byte co_tcache;           /* data_in's cached tail of the data ring */
  byte co_hcache;           /* free_out's cached head of the return ring (it starts at 0) */
  byte co_nheld;

  do
  :: co_nheld < NBUF ->     /* (holding all NBUF while waiting for more would be the caller's deadlock) */
     co_receive();
     if
     :: co_st == ST_OK ->
#ifdef MUTANT_EARLY_RELEASE
        co_rel = co_idx;
        co_release();
#endif
        d_step {
          assert(payload[co_idx] == co_next);   /* (c): in order, none lost */
          co_next++
        }
     :: co_st == ST_CLOSED -> co_end = END_CLOSED; break
     :: co_st == ST_PEERDIED -> co_end = END_PEERDIED; break
     fi
  :: co_nheld > 0 ->
     co_pick();
     co_release()
#ifndef NO_EARLY_EXIT
  :: co_end = END_LEFT; break               /* the owner stops early */
#endif
  od;
  do
  :: co_nheld > 0 -> co_pick(); co_release()
  :: else -> break
  od;
  /* Consumer::~Consumer -> detach: state, unlock, wake */
  atomic { co_state = DETACHED; co_waking = 1 };
#ifdef MUTANT_WAKE_BEFORE_UNLOCK
  wake_peer_always(free_seq, fq_free, co_waking);
  atomic { co_lock = 0; co_waking = 0 };
#else
  co_lock = 0;
  wake_peer_always(free_seq, fq_free, co_waking);
#endif
  co_done = 1
}

/* ======================================================================== */
/* invariants, checked in every reachable state                              */
/* ======================================================================== */

hidden byte mb;
hidden byte mi;
hidden byte mn;
hidden byte mc;

/* One d_step that can fire in any state: spin tries it in every reachable one. */
proctype monitor() {
  d_step {
    mb = 0;
    do
    :: mb < NBUF ->
       mn = 0;
       /* free, in the return ring */
       mi = r_head;
       do
       :: mi < r_tail ->
          if
          :: r_slot[mi % CAP] == mb -> mn++; assert(bstate[mb] == FREE)
          :: else -> skip
          fi;
          mi++
       :: else -> break
       od;
       /* free, in the producer's cache of abandoned buffers (still kWriting) */
       mc = 0;
       mi = 0;
       do
       :: mi < pr_ncache ->
          if
          :: pr_cache[mi] == mb -> mc++; assert(pr_held[mb] && bstate[mb] == WRITING)
          :: else -> skip
          fi;
          mi++
       :: else -> break
       od;
       mn = mn + mc;
       /* being written, in the producer's hands */
       if
       :: pr_held[mb] && mc == 0 -> mn++; assert(bstate[mb] == WRITING)
       :: else -> skip
       fi;
       /* queued, in the data ring */
       mi = d_head;
       do
       :: mi < d_tail ->
          if
          :: d_slot[mi % CAP] == mb -> mn++; assert(bstate[mb] == QUEUED)
          :: else -> skip
          fi;
          mi++
       :: else -> break
       od;
       /* being read, in the consumer's hands */
       if
       :: co_held[mb] -> mn++; assert(bstate[mb] == READING)
       :: else -> skip
       fi;
       assert(mn == 1);                     /* (b): exactly one place */
       mb++
    :: else -> break
    od;
    /* (a): nobody sleeps while its ring holds something for it, unless its
       peer is still on its way from that publish to its wake call */
    assert(!(fq_data && (d_tail != d_head || closed || !pr_lock) && !pr_waking));
    assert(!(fq_free && (r_tail != r_head || !co_lock) && !co_waking));
    /* Reachability probes: check.sh requires each of these states to exist,
       so that the properties above are not true for want of trying. */
#ifdef PROBE_DATA_WHILE_ASLEEP                /* published, wake on its way */
    assert(!(fq_data && d_tail != d_head));
#endif
#ifdef PROBE_FREE_WHILE_ASLEEP
    assert(!(fq_free && r_tail != r_head));
#endif
#ifdef PROBE_CLOSE_WHILE_ASLEEP               /* the close lands on a sleeping consumer */
    assert(!(fq_data && closed));
#endif
#ifdef PROBE_RECHECK_FINDS_DATA               /* announced, and the re-check will succeed */
    assert(!(co_sleeping && !fq_data && d_tail != d_head && !pr_waking));
#endif
#ifdef PROBE_ABANDONED
    assert(pr_ncache == 0);
#endif
#ifdef PROBE_PRODUCER_GONE_WHILE_ASLEEP       /* destroyed without close, consumer asleep */
    assert(!(fq_data && !pr_lock && !closed));
#endif
#ifdef PROBE_CONSUMER_GONE_WHILE_ASLEEP       /* the consumer leaves, producer asleep */
    assert(!(fq_free && !co_lock));
#endif
#ifdef PROBE_PEER_DIED                        /* the consumer got kPeerDied */
    assert(co_end != END_PEERDIED);
#endif
    mb = 0;
    mi = 0;
    mn = 0;
    mc = 0
  }
}

init {
  byte i;
  d_step {
    /* channel.cpp: every buffer starts free in the return ring */
    i = 0;
    do
    :: i < NBUF -> r_slot[i] = i; pr_cache[i] = NONE; i++
    :: else -> break
    od;
    r_tail = NBUF;
    i = 0
  };
  atomic {
    run producer();
    run consumer();
    run monitor()
  };
  (pr_done && co_done);
  d_step {
    /* (c): kClosed or kPeerDied only once every committed record arrived;
       kPeerDied only without a close; a consumer that left early got a prefix */
    assert(co_end != END_RUNNING);
    assert(co_end != END_CLOSED || (closed && co_next == pr_sent + 1));
    assert(co_end != END_PEERDIED || (!closed && co_next == pr_sent + 1));
    assert(co_next <= pr_sent + 1);
#ifdef NO_EARLY_EXIT
    assert(co_end == END_CLOSED && pr_sent == MSGS);
#endif
    /* the end state: the consumer holds nothing; the rest is in the rings or the producer's cache */
    assert(r_tail - r_head + d_tail - d_head + pr_ncache == NBUF);
    i = 0;
    do
    :: i < NBUF ->
       assert(!co_held[i] && ((bstate[i] == FREE && !pr_held[i]) || (bstate[i] == WRITING && pr_held[i]) ||
                              (bstate[i] == QUEUED && !pr_held[i])));
       i++
    :: else -> break
    od;
    assert(!fq_data && !fq_free && !co_sleeping && !pr_sleeping);
    i = 0
  }
}

/* (a), as progress: every run ends with both endpoints done. */
ltl terminates { <> (pr_done && co_done) }

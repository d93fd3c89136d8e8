/*
 * Sluice channel: a Promela model of the wake-up protocol and of buffer
 * ownership, checked exhaustively by spin (tests/model/check.sh).
 *
 * What is modelled, step for step in the order of the code:
 *   - a pool of NBUF buffers with their state words (channel_layout.hpp
 *     BufferState) and their contents (the record number they carry);
 *   - the data ring (producer -> consumer) and the return ring (consumer ->
 *     producer), SPSC, with monotonically growing head and tail and each
 *     side's cached copy of the other side's index (spsc_ring.hpp); the return
 *     ring starts holding every buffer (channel.cpp);
 *   - Producer::acquire (take_free_buffer, including the private cache of
 *     abandoned buffers), WritableBuffer::reset (abandon), Producer::commit,
 *     Producer::close, Producer::detach (producer.cpp);
 *   - Consumer::receive (take_queued_buffer, producer_status), release_buffer,
 *     Consumer::detach (consumer.cpp);
 *   - wait_for, wake_peer and wake_peer_always (wait_strategy.hpp): the wake
 *     sequences, the sleep flags and the futex (futex_wait compares the word
 *     and enqueues the caller in one atomic step; futex_wake dequeues it);
 *   - endpoint state and liveness locks, as far as close and detach use them.
 *
 * Memory is sequentially consistent (spin interleaves whole statements), so
 * the model checks the protocol's logic and the order of its operations, not
 * the C++ memory orders chosen for them (wait_strategy.hpp argues those).
 * Each statement touching shared memory is one step. Private bookkeeping that
 * the code does next to a shared access (the held[] arrays, a local index) is
 * folded into that access's step; the peer cannot observe the difference.
 * A ring's slot read is folded into the head store that follows it: the
 * writer never touches a slot between head and tail (asserted at every stage).
 *
 * Not modelled: deadlines and timeouts, the spin/yield phase (its polls are
 * the same attempt that the sleeping loop makes), a peer that crashes without
 * detaching (it is noticed through the liveness lock after one sleep slice,
 * i.e. through a timeout), consumer takeover, corrupt peers, the record layer.
 * With -DSPURIOUS, futex_wait may return at any time (a sleep slice ending,
 * a signal), which must not break any safety property.
 *
 * Properties:
 *   (a) no lost wake-up: a process never sits in the futex queue while its
 *       ring has something for it (data, or the close / the peer's going, for
 *       the consumer; a free buffer, or the consumer's going, for the
 *       producer), unless its peer is still between that publish and the end
 *       of its wake call. Asserted in every state by `monitor`. Also: every
 *       run ends with both processes done (no invalid end state = no
 *       deadlock), and the LTL claim `terminates` (<> both done).
 *   (b) each buffer is in exactly one place in every state: the return ring,
 *       the producer's cache of abandoned buffers, the producer's hands, the
 *       data ring or the consumer's hands; and its state word agrees with the
 *       place (Free in the return ring and the cache, Queued in the data
 *       ring). Asserted in every state by `monitor`. The code's own
 *       corruption checks (state word and held[] on take) are asserted too.
 *   (c) records arrive in order, none lost, none twice: the consumer checks
 *       each buffer's record number against the next one it expects, and at
 *       the end has received all MSGS records; all buffers are free again.
 *
 * Mutants (each must make check.sh's spin run fail; see check.sh):
 *   MUTANT_NO_RECHECK      the waiter announces itself, then sleeps without
 *                          re-checking its ring.
 *   MUTANT_RECHECK_FIRST   the waiter re-checks, then announces itself.
 *   MUTANT_LATE_SEEN       the waiter reads the wake sequence after its
 *                          re-check instead of before announcing itself.
 *   MUTANT_CLOSE_ORDER     close() wakes the consumer before setting closed.
 *   MUTANT_CACHE_NO_POP    acquire takes the last abandoned buffer without
 *                          removing it from the cache (ownership breaks).
 *   MUTANT_EARLY_RELEASE   the consumer releases a buffer before reading it
 *                          (the record is overwritten: order breaks).
 */

#ifndef NBUF
#define NBUF 3
#endif
#ifndef CAP
#define CAP 4 /* ring capacity: a power of two >= NBUF */
#endif
#ifndef MSGS
#define MSGS 4
#endif
#ifndef ABANDONS
#define ABANDONS 1 /* how often the producer may drop a buffer uncommitted */
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

/* RingResult */
#define R_OK    0
#define R_EMPTY 1

/* EndpointState */
#define NEVER_ATTACHED 0
#define ATTACHED       1
#define DETACHED       2

/* ---- shared memory ----------------------------------------------------- */
byte bstate[NBUF];           /* per-buffer state word */
byte payload[NBUF];          /* the buffer's bytes: the record number in it */
byte d_slot[CAP];            /* data ring */
byte d_head;
byte d_tail;
byte r_slot[CAP];            /* return ring */
byte r_head;
byte r_tail;
bit  closed;                 /* StreamState.closed */
byte pr_state = ATTACHED;    /* EndpointRecord.state */
byte co_state = ATTACHED;
byte data_seq;               /* WakeWord data_ready: producer wakes consumer */
bit  co_sleeping;            /* SleepFlag consumer_sleeping */
byte free_seq;               /* WakeWord buffer_free: consumer wakes producer */
bit  pr_sleeping;            /* SleepFlag producer_sleeping */

/* ---- the kernel -------------------------------------------------------- */
bit pr_lock = 1;             /* the producer's liveness (OFD) lock is held */
bit co_lock = 1;
bit fq_data;                 /* consumer queued in futex_wait(data_ready) */
bit fq_free;                 /* producer queued in futex_wait(buffer_free) */

/* ---- producer-private ---------------------------------------------------- */
bit  pr_held[NBUF];          /* ProducerState::held */
byte pr_cache[NBUF];         /* ProducerState::abandoned (a stack) */
byte pr_ncache;
byte pr_tcache;              /* free_in (RingReader) tail cache */
byte pr_hcache;              /* data_out (RingWriter) head cache */
byte pr_hand = NONE;         /* a buffer the producer owns through a local only */
byte pr_abandons;
bit  pr_done;
/* locals of proctype producer: pr_idx, pr_res, pr_st, pr_peer, pr_seen */

/* ---- consumer-private ---------------------------------------------------- */
bit  co_held[NBUF];          /* ConsumerState::held */
byte co_nheld;
byte co_tcache;              /* data_in (RingReader) tail cache */
byte co_hcache;              /* free_out (RingWriter) head cache */
byte co_hand = NONE;         /* a buffer the consumer owns through a local only */
byte co_next = 1;            /* the record number expected next */
bit  co_done;
/* locals of proctype consumer: co_idx, co_rel, co_res, co_st, co_peer, co_seen
   (locals, so that spin's dead-variable reduction resets them once dead) */

/* ---- ghosts for property (a) ------------------------------------------- */
bit pr_waking;   /* producer between a publish (data, close, detach) and the end of its wake */
bit co_waking;   /* consumer between a publish (release, detach) and the end of its wake */

/* ---- futex ------------------------------------------------------------- */
/* futex_wait(word, expected): compare and enqueue in one step (the kernel
 * does both under the hash-bucket lock), then block until futex_wake. */
inline futex_wait(word, expected, queued) {
  d_step {
    if
    :: word == expected -> queued = 1
    :: else -> skip
    fi
  };
  if
  :: queued == 0
#ifdef SPURIOUS
  :: atomic { queued == 1 -> queued = 0 }   /* sleep slice over, or a signal */
#endif
  fi
}

/* futex_wake(word, 1): one waiter at most per word (one consumer, one producer). */
#define futex_wake(queued) queued = 0

/* wake_peer: sleeping.fetch_add(0, seq_cst) != 0 ? sequence.fetch_add(1), futex_wake */
inline wake_peer(word, flag, queued, waking) {
  if
  :: flag != 0 ->
     word++;
     d_step { futex_wake(queued); waking = 0 }
  :: atomic { flag == 0 -> waking = 0 }
  fi
}

/* wake_peer_always: sequence.fetch_add(1), futex_wake */
inline wake_peer_always(word, queued, waking) {
  word++;
  d_step { futex_wake(queued); waking = 0 }
}

/* ======================================================================== */
/* producer                                                                  */
/* ======================================================================== */

/* free_in.pop(value) on the return ring (RingReader::pop / refresh). */
inline pr_pop() {
  pr_res = R_OK;
  if
  :: r_head == pr_tcache ->
     d_step {                                 /* tail.load(acquire) */
       pr_tcache = r_tail;
       assert(pr_tcache - r_head <= CAP);
       if
       :: pr_tcache == r_head -> pr_res = R_EMPTY
       :: else -> skip
       fi
     }
  :: else -> skip
  fi;
  if
  :: pr_res == R_OK ->
     d_step {                                 /* slot load; ++head; head.store(release) */
       pr_idx = r_slot[r_head % CAP];
       r_slot[r_head % CAP] = 0;              /* model only: a consumed slot is never read again */
       r_head++;
       pr_hand = pr_idx
     }
  :: else -> skip
  fi
}

/* ProducerState::take_free_buffer */
inline pr_take() {
  pr_st = ST_OK;
  if
  :: pr_ncache > 0 ->
#ifdef MUTANT_CACHE_NO_POP
     d_step { pr_idx = pr_cache[pr_ncache - 1] }
#else
     d_step { pr_ncache--; pr_idx = pr_cache[pr_ncache]; pr_cache[pr_ncache] = NONE }
#endif
  :: else ->
     pr_pop();
     if
     :: pr_res == R_EMPTY -> pr_st = ST_WOULDBLOCK
     :: else ->
        assert(pr_idx < NBUF);                /* "beyond the pool" never happens */
        assert(!pr_held[pr_idx]);             /* "a buffer this producer holds" never happens */
        assert(bstate[pr_idx] == FREE)        /* states[index].load(): "not free" never happens */
     fi
  fi;
  if
  :: pr_st == ST_OK ->
     d_step { pr_held[pr_idx] = 1; pr_hand = NONE; bstate[pr_idx] = WRITING }
  :: else -> skip
  fi
}

/* ProducerState::consumer_status */
inline pr_peer_status() {
  if
  :: co_state == NEVER_ATTACHED -> pr_peer = ST_OK
  :: else ->
     if
     :: co_lock != 0 -> pr_peer = ST_OK
     :: else -> pr_peer = ST_PEERDIED
     fi
  fi
}

/* Producer::acquire: wait_for(take_free_buffer, consumer_status, buffer_free, producer_sleeping) */
inline pr_acquire() {
  pr_take();
  if
  :: pr_st == ST_WOULDBLOCK ->
     do
     :: true ->
#ifndef MUTANT_LATE_SEEN
        pr_seen = free_seq;                   /* sequence.load(acquire) */
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
        pr_sleeping = 1;                      /* sleeping.exchange(1, seq_cst) */
        pr_take();                            /* re-check */
#endif
        if
        :: pr_st == ST_WOULDBLOCK ->
#ifdef MUTANT_LATE_SEEN
           pr_seen = free_seq;
#endif
           futex_wait(free_seq, pr_seen, fq_free);
           pr_take()
        :: else -> skip
        fi;
        pr_sleeping = 0;                      /* sleeping.store(0, relaxed) */
        if
        :: pr_st != ST_WOULDBLOCK -> break
        :: else -> skip
        fi
     od
  :: else -> skip
  fi
}

proctype producer() {
  byte m = 1;
  byte pr_idx;   /* the index being taken / written */
  byte pr_res;
  byte pr_st;
  byte pr_peer;
  byte pr_seen;
  do
  :: m <= MSGS ->
     pr_acquire();
     assert(pr_st == ST_OK);                  /* the consumer stays until the close */
     if
     :: pr_abandons < ABANDONS ->
        /* WritableBuffer::reset -> abandon_buffer: state Free, into the cache (held stays 1) */
        d_step {
          bstate[pr_idx] = FREE;
          pr_cache[pr_ncache] = pr_idx;
          pr_ncache++;
          pr_abandons++
        }
     :: true ->
        payload[pr_idx] = m;                  /* fill the buffer */
        /* Producer::commit */
        bstate[pr_idx] = QUEUED;
        /* data_out.push: stage (the ring is never full) then publish */
        if
        :: d_tail - pr_hcache >= CAP ->
           pr_hcache = d_head;                /* head.load(acquire) */
           assert(d_tail - pr_hcache < CAP)   /* "data ring reported full" never happens */
        :: else -> skip
        fi;
        d_slot[d_tail % CAP] = pr_idx;        /* slot store (relaxed) */
        d_step { d_tail++; pr_held[pr_idx] = 0; pr_waking = 1 }   /* tail.store(release); held = 0 */
        wake_peer(data_seq, co_sleeping, fq_data, pr_waking);
        m++
     fi
  :: else -> break
  od;
  /* Producer::close */
#ifdef MUTANT_CLOSE_ORDER
  atomic { data_seq++; pr_waking = 1 }
  futex_wake(fq_data);
  d_step { closed = 1; pr_waking = 0 }
#else
  atomic { closed = 1; pr_waking = 1 }      /* closed.store(1, release) */
  wake_peer_always(data_seq, fq_data, pr_waking);
#endif
  /* Producer::detach (destructor): state, unlock, wake */
  d_step { pr_state = DETACHED; pr_waking = 1 }
  pr_lock = 0;
  wake_peer_always(data_seq, fq_data, pr_waking);
  pr_done = 1
}

/* ======================================================================== */
/* consumer                                                                  */
/* ======================================================================== */

/* data_in.pop(descriptor) on the data ring */
inline co_pop() {
  co_res = R_OK;
  if
  :: d_head == co_tcache ->
     d_step {                                 /* tail.load(acquire) */
       co_tcache = d_tail;
       assert(co_tcache - d_head <= CAP);
       if
       :: co_tcache == d_head -> co_res = R_EMPTY
       :: else -> skip
       fi
     }
  :: else -> skip
  fi;
  if
  :: co_res == R_OK ->
     d_step {                                 /* slot load; ++head; head.store(release) */
       co_idx = d_slot[d_head % CAP];
       d_slot[d_head % CAP] = 0;              /* model only: a consumed slot is never read again */
       d_head++;
       co_hand = co_idx
     }
  :: else -> skip
  fi
}

/* ConsumerState::take_queued_buffer */
inline co_take() {
  co_pop();
  co_st = ST_WOULDBLOCK;
  if
  :: co_res == R_EMPTY ->
     if
     :: closed != 0 ->                        /* closed.load(acquire): look once more */
        co_pop();
        if
        :: co_res == R_EMPTY -> co_st = ST_CLOSED
        :: else -> skip
        fi
     :: else -> skip
     fi
  :: else -> skip
  fi;
  if
  :: co_res == R_OK ->
     assert(co_idx < NBUF);                   /* "beyond the pool" never happens */
     assert(!co_held[co_idx]);                /* "a buffer this consumer still holds" never happens */
     assert(bstate[co_idx] == QUEUED);        /* states[index].load(): "not queued" never happens */
     d_step { co_held[co_idx] = 1; co_nheld++; co_hand = NONE; bstate[co_idx] = READING };
     co_st = ST_OK
  :: else -> skip
  fi
}

/* ConsumerState::producer_status */
inline co_peer_status() {
  if
  :: closed != 0 -> co_peer = ST_CLOSED
  :: else ->
     if
     :: pr_lock != 0 -> co_peer = ST_OK
     :: else ->
        if
        :: closed != 0 -> co_peer = ST_CLOSED
        :: else -> co_peer = ST_PEERDIED
        fi
     fi
  fi
}

/* Consumer::receive: wait_for(take_queued_buffer, producer_status, data_ready, consumer_sleeping) */
inline co_receive() {
  co_take();
  if
  :: co_st == ST_WOULDBLOCK ->
     do
     :: true ->
#ifndef MUTANT_LATE_SEEN
        co_seen = data_seq;                   /* sequence.load(acquire) */
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
        co_sleeping = 1;                      /* sleeping.exchange(1, seq_cst) */
        co_take();                            /* re-check */
#endif
        if
        :: co_st == ST_WOULDBLOCK ->
#ifdef MUTANT_LATE_SEEN
           co_seen = data_seq;
#endif
           futex_wait(data_seq, co_seen, fq_data);
           co_take()
        :: else -> skip
        fi;
        co_sleeping = 0;                      /* sleeping.store(0, relaxed) */
        if
        :: co_st != ST_WOULDBLOCK -> break
        :: else -> skip
        fi
     od
  :: else -> skip
  fi
}

/* release_buffer(co_rel): held = 0, state Free, free_out.push, wake_peer */
inline co_release() {
  d_step { co_held[co_rel] = 0; co_nheld--; co_hand = co_rel; bstate[co_rel] = FREE }
  if
  :: r_tail - co_hcache >= CAP ->
     co_hcache = r_head;                      /* head.load(acquire) */
     assert(r_tail - co_hcache < CAP)         /* "return ring reported full" never happens */
  :: else -> skip
  fi;
  r_slot[r_tail % CAP] = co_rel;              /* slot store (relaxed) */
  d_step { r_tail++; co_hand = NONE; co_waking = 1 };   /* tail.store(release) */
  wake_peer(free_seq, pr_sleeping, fq_free, co_waking)
}

/* Picks any buffer the consumer holds: buffers go back in any order. */
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

proctype consumer() {
  byte co_idx;
  byte co_rel;
  byte co_res;
  byte co_st;
  byte co_peer;
  byte co_seen;
  do
  :: co_nheld < NBUF ->                      /* holding all NBUF and waiting for more would be the application's deadlock */
     co_receive();
     if
     :: co_st == ST_OK ->
#ifdef MUTANT_EARLY_RELEASE
        co_rel = co_idx;
        co_release();
        assert(payload[co_idx] == co_next);
        co_next++
#else
        assert(payload[co_idx] == co_next);   /* read the record: in order, none lost */
        co_next++
#endif
     :: co_st == ST_CLOSED -> break
     :: else -> assert(false)                 /* kPeerDied: the producer always closes first */
     fi
  :: co_nheld > 0 ->
     co_pick();
     co_release()
  od;
  assert(co_next == MSGS + 1);                /* everything arrived before kClosed */
  do
  :: co_nheld > 0 -> co_pick(); co_release()
  :: else -> break
  od;
  /* Consumer::detach (destructor): state, unlock, wake */
  atomic { co_state = DETACHED; co_waking = 1 };
  co_lock = 0;
  wake_peer_always(free_seq, fq_free, co_waking);
  co_done = 1
}

/* ======================================================================== */
/* invariants, checked in every reachable state                              */
/* ======================================================================== */

hidden byte mb;
hidden byte mi;
hidden byte mn;
hidden byte mc;

/* Fires once, at any point: spin explores it from every reachable state. */
proctype monitor() {
  d_step {
    mb = 0;
    do
    :: mb < NBUF ->
       mn = 0;
       /* free: in the return ring */
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
       /* free: in the producer's cache of abandoned buffers (held stays 1 there) */
       mc = 0;
       mi = 0;
       do
       :: mi < pr_ncache ->
          if
          :: pr_cache[mi] == mb -> mc++; assert(pr_held[mb] && bstate[mb] == FREE)
          :: else -> skip
          fi;
          mi++
       :: else -> break
       od;
       mn = mn + mc;
       /* being written: the producer's hands */
       if
       :: (pr_held[mb] && mc == 0) || pr_hand == mb ->
          mn++;
          assert(bstate[mb] == FREE || bstate[mb] == WRITING || bstate[mb] == QUEUED)
       :: else -> skip
       fi;
       if
       :: pr_held[mb] && mc == 0 && pr_hand == mb -> mn++
       :: else -> skip
       fi;
       /* queued: in the data ring */
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
       /* being read: the consumer's hands */
       if
       :: co_held[mb] || co_hand == mb ->
          mn++;
          assert(bstate[mb] == QUEUED || bstate[mb] == READING || bstate[mb] == FREE)
       :: else -> skip
       fi;
       if
       :: co_held[mb] && co_hand == mb -> mn++
       :: else -> skip
       fi;
       assert(mn == 1);                       /* (b): exactly one place */
       mb++
    :: else -> break
    od;
    /* (a): nobody sleeps while its ring holds something for it, unless the
       peer is still on its way from that publish to its wake call */
    assert(!(fq_data && (d_tail != d_head || closed || !pr_lock) && !pr_waking));
    assert(!(fq_free && (r_tail != r_head || !co_lock) && !co_waking));
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
    /* (c) and the end state: all records in, every buffer free and back */
    assert(co_next == MSGS + 1);
    assert(r_tail - r_head + pr_ncache == NBUF);
    i = 0;
    do
    :: i < NBUF -> assert(bstate[i] == FREE && !co_held[i]); i++
    :: else -> break
    od;
    assert(!fq_data && !fq_free && !co_sleeping && !pr_sleeping);
    i = 0
  }
}

/* (a), as liveness: every run ends with both endpoints done. */
ltl terminates { <> (pr_done && co_done) }

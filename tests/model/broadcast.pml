/*
 * Sluice broadcast fan-out: a Promela model of its release protocol (one
 * shared buffer queued in every data ring, a holders word per buffer, the
 * last holder returns it) and of a consumer's takeover after a crash,
 * checked exhaustively by spin (run tests/model/check.sh).
 *
 * K = 2 subpartitions (consumers 0 and 1), a pool of NBUF buffers (2), MSGS
 * messages. What is modelled, in the order of the code (producer.cpp
 * take_from_pool and publish_shared; consumer.cpp take_shared_buffer,
 * release_shared, take_over_shared_buffers, take_over_from_previous_consumer):
 *   - per buffer: the state word (kFree | s, kWriting, kShared), the holders
 *     word, the commit record (sequence, and the message number as payload);
 *   - per subpartition: a data ring and a return ring (capacity NBUF, which
 *     the pool never exceeds), monotonically growing head and tail;
 *   - the producer: takes a free buffer off either return ring (peek, check
 *     kFree | s, mark kWriting, advance), writes the commit record (sequence
 *     = the data rings' common position), holders = both bits (release),
 *     state kShared (release), pushes the descriptor into data ring 0, then
 *     into data ring 1; after MSGS messages it closes. All buffers start in
 *     return ring 0, marked kFree | 0;
 *   - consumer s: waits for a descriptor (or the close, looked at once more
 *     before it ends), checks kShared and its own bit, advances its ring,
 *     reads the payload; it holds up to two buffers (both of the pool) and
 *     releases the oldest whenever it likes: loads holders (acquire); its bit alone ->
 *     last holder: state kFree | s, push into return ring s; otherwise a
 *     compare-exchange clearing its bit, retried with the value it found;
 *   - under CRASH a killer may kill one consumer at any step (spin's
 *     `unless`: before any statement of its loop); its private state is lost.
 *     Its successor takes over: (a) for each buffer: state (acquire) kShared,
 *     then holders (acquire) with bit s, then the commit sequence below the
 *     data ring's head -> received again, in sequence order, before the ring;
 *     (b) reads return ring s's head and its own tail, and pushes every
 *     buffer marked kFree | s that is not in [head, tail). Then it continues
 *     where its predecessor's ring head is;
 *   - under PCRASH a killer may kill the producer at any step instead; its
 *     private state is lost. Its successor (producer.cpp recover_broadcast):
 *     (1) pushes into every data ring shorter than the longest the buffer
 *     the longest holds at that position (at most one publish was cut
 *     short); (2) advances a return ring whose head buffer is marked
 *     kWriting (taken, not yet advanced); (3) takes back, buffer by buffer,
 *     each one marked kWriting or marked kShared with a sequence at or past
 *     the tails (pushed nowhere): kWriting, holders 0, used first; (4)
 *     continues at one past the highest message of every other buffer's
 *     commit record and the published-messages counter (stored after each
 *     publish); (5) stores that count into the counter, since it may take
 *     the buffer whose commit record told it and die before publishing;
 *     then it goes on as the producer, and closes. Under PCRASH2 the
 *     successor may die too, at any step after its recovery, and its own
 *     successor recovers the same way;
 *
 * Memory is sequentially consistent (spin interleaves whole transitions); the
 * memory orders are argued in consumer.cpp and producer.cpp. Every
 * transition makes at most one access to a word the other side uses at the
 * time (a state, a holders word, a commit record, a ring index); the slot of
 * a ring being pushed or taken is folded into its index's step.
 *
 * Not modelled: waiting (a side just blocks until its ring has something;
 * the wake-up protocol is channel.pml's), the cap (broadcast_room: the pool
 * of NBUF buffers and rings of capacity NBUF bound the rings here),
 * abandoned buffers other than a dead producer's, both crashes in one run
 * (CRASH and PCRASH are run apart), more than one consumer crash or two
 * producer crashes, a successor dying inside its own recovery, K > 2 or more
 * than two buffers, releases out of the order taken, forged words (the C++
 * checks them; here any failed check is an assertion), counters, the record
 * layer.
 *
 * Options: MSGS (3); CRASH (one consumer may die, see above); PCRASH (the
 * producer may die, see above); PCRASH2 (with PCRASH: its successor too);
 * MUTANT_* (below); PROBE_* (reachability probes, each of which must fail:
 * PROBE_CAS_RETRY, a failed compare-exchange that finds its bit alone;
 * PROBE_COMPLETE, PROBE_TAKE_BACK_SHARED and PROBE_COUNT_FREED, a producer
 * successor completing a cut-short publish, taking back a buffer marked
 * shared but pushed nowhere, and counting from a freed buffer's record
 * beyond the counter;
 * PROBE_REDELIVER, a successor with both buffers to receive again;
 * PROBE_RETURN_FREED, a successor returning a buffer its predecessor freed).
 *
 * Properties:
 *   (a) Each buffer is in exactly one place from the producer's view (ghost
 *       loc[b]: the producer's hands, out with the consumers, or one return
 *       ring; ghost share[b]: the consumers that have not given up their
 *       share): a push into a return ring finds the buffer out and only the
 *       pusher's share left (never in two return rings, never returned while
 *       another consumer holds it); the producer takes only a buffer in the
 *       ring it takes from, with no share left; a consumer reads only a
 *       buffer that is out, kShared, with its own share. At the end every
 *       buffer is in a return ring (the pool is whole: nothing leaked).
 *   (b) Each consumer receives every message at least once and in order:
 *       within one life each message is the one after the last it received;
 *       a successor starts at most one past what its predecessor received
 *       (a consumer that has not died: exactly once). At the end each has
 *       received MSGS.
 *   (c) Nobody waits forever: no invalid end state (the producer waiting for
 *       a buffer that never comes back, a consumer for a message).
 *
 * Mutants (check.sh requires spin to find an error in each):
 *   MUTANT_LAST_CLEARS       the last holder clears its own bit too
 *                            (fetch_and to 0) before it marks the buffer
 *                            free: a death in between leaks it;
 *   MUTANT_PLAIN_STORE       a non-last release loads holders and stores it
 *                            without its bit (no compare-exchange): a clear
 *                            is lost;
 *   MUTANT_SUCCESSOR_ZERO    the alternative protocol: the last holder clears
 *                            to 0, and a successor finishes any kShared
 *                            buffer whose holders are 0, whoever was last:
 *                            it returns a buffer a live consumer is
 *                            returning too;
 *   MUTANT_NO_SEQUENCE       takeover (a) without the sequence check: a
 *                            buffer still in the ring is received twice;
 *   MUTANT_NO_COMPLETE       producer takeover without (1): the short ring's
 *                            consumer never gets the cut-short message, and
 *                            the rings' positions disagree;
 *   MUTANT_NO_TAKE_BACK      producer takeover (3) only for kWriting: a
 *                            buffer pushed nowhere leaks;
 *   MUTANT_SHARED_COUNT      producer takeover (4) from kShared buffers
 *                            only: a message every consumer already released
 *                            is broadcast again;
 *   MUTANT_NO_COUNT_STORE    producer takeover without (5): a successor
 *                            that took the buffer telling the count and died
 *                            leaves its successor one message short, which
 *                            is broadcast again.
 */

#define NBUF 2 /* buffers in the pool; each ring's capacity (the redelivery order below assumes 2) */
#ifndef MSGS
#define MSGS 3 /* messages the producer broadcasts */
#endif

#define K 2
#define ALL 3 /* every subpartition's bit */
#define BIT(s) (1 << (s))

/* state words */
#define S_FREE0   0  /* kFree | 0 << 8 */
#define S_FREE1   1  /* kFree | 1 << 8 */
#define S_WRITING 2
#define S_SHARED  3
#define S_FREE(s) (s)

/* ghost: where a buffer is, from the producer's view */
#define L_PRODUCER 0
#define L_OUT      1  /* published: with the consumers */
#define L_RING0    2  /* in return ring 0 */
#define L_RING1    3
#define L_RING(s)  (L_RING0 + (s))

/* ---- shared memory ----------------------------------------------------- */
byte state[NBUF];
byte holders[NBUF];
byte cseq[NBUF];            /* commit record: sequence */
byte cmsg[NBUF];            /* commit record, standing for the payload: the message number */
byte dslot[K * NBUF];       /* data rings: buffer indices */
byte dhead[K];
byte dtail[K];
byte rslot[K * NBUF];       /* return rings: buffer indices */
byte rhead[K];
byte rtail[K];
bit  closed;
byte pcount;                /* producer_counters.records: messages published, stored after each */

/* ---- ghosts and what the checks inspect -------------------------------- */
byte loc[NBUF];
byte share[NBUF];           /* bit s: consumer s (or its successor) has not given up the buffer */
byte last[K];               /* the highest message consumer s's application received */
byte kill[K];               /* 1: kill consumer s now; 2: it died */
byte pkill;                 /* 1: kill the producer now; 2: it died */
bit  p_done;
bit  c_done[K];
#ifdef CRASH
bit  killed;                /* the one crash happened (or was ruled out) */
#endif

/* ======================================================================== */
/* producer                                                                  */
/* ======================================================================== */

proctype producer() {
  byte m = 1;
  byte s;
  byte b;
  byte pos;
  byte abandoned;                           /* bit b: buffer b taken back by a successor */
  byte lt;                                  /* successor: the longest data ring's tail */
  byte ls;                                  /* successor: that ring */
  byte i;
  byte st;
  byte mx;

life:
  skip;
  {
    do
    :: m <= MSGS ->
       if
       :: abandoned != 0 ->                 /* take_from_pool: the abandoned ones first */
          d_step {
            b = ((abandoned & 1) -> 0 : 1);
            abandoned = abandoned & ~BIT(b);
            assert(loc[b] == L_PRODUCER && state[b] == S_WRITING)
          }
       :: else ->
          /* take_from_pool: either return ring with a buffer (the real one
             tries them in turn; any order is covered) */
          if
          :: atomic { rtail[0] != rhead[0] -> s = 0; b = rslot[0 * NBUF + rhead[0] % NBUF] }
          :: atomic { rtail[1] != rhead[1] -> s = 1; b = rslot[1 * NBUF + rhead[1] % NBUF] }
          fi;
          d_step {
            assert(state[b] == S_FREE(s));  /* freed by this ring's own consumer */
            /* (a): in this ring and nowhere else, nobody's share left */
            assert(loc[b] == L_RING(s) && share[b] == 0);
            loc[b] = L_PRODUCER;
            state[b] = S_WRITING
          };
          rhead[s]++                        /* free_in.advance() (release) */
       fi;
       /* publish_shared */
       d_step { pos = dtail[0]; assert(dtail[1] == pos); cseq[b] = pos; cmsg[b] = m };
       d_step { holders[b] = ALL; loc[b] = L_OUT; share[b] = ALL };   /* release */
       state[b] = S_SHARED;                 /* release */
       s = 0;
       do
       :: s < K ->
          d_step {
            assert(dtail[s] - dhead[s] < NBUF);
            dslot[s * NBUF + dtail[s] % NBUF] = b;
            dtail[s]++                      /* push: tail.store(release) */
          };
          s++
       :: else -> break
       od;
       pcount = m;                          /* commit() counts after the publish */
       m++
    :: else -> break
    od;
    assert(abandoned == 0);                 /* every buffer taken back went out again */
    closed = 1
  } unless {
    atomic { pkill == 1 -> pkill = 2; m = 0; s = 0; b = 0; pos = 0; abandoned = 0 };
    /* (1) the longest data ring, and the cut-short push completed */
    d_step {
      lt = dtail[0]; ls = 0;
      if
      :: dtail[1] > lt -> lt = dtail[1]; ls = 1
      :: else -> skip
      fi
    };
    i = 0;
    do
    :: i < K ->
       if
       :: dtail[i] < lt ->
          d_step {
            assert(lt - dtail[i] == 1);     /* one publish in progress at most */
#ifdef PROBE_COMPLETE
            assert(false);                  /* a publish cut short between the rings */
#endif
#ifndef MUTANT_NO_COMPLETE
            assert(dtail[i] - dhead[i] < NBUF);
            dslot[i * NBUF + dtail[i] % NBUF] = dslot[ls * NBUF + dtail[i] % NBUF];
            dtail[i]++                      /* push (release) */
#endif
          }
       :: else -> skip
       fi;
       i++
    :: else -> break
    od;
    /* (2) a return ring's head taken (kWriting) but not advanced */
    i = 0;
    do
    :: i < K ->
       if
       :: atomic { rtail[i] != rhead[i] -> b = rslot[i * NBUF + rhead[i] % NBUF] };
          if
          :: state[b] == S_WRITING -> rhead[i]++
          :: else -> skip
          fi
       :: atomic { rtail[i] == rhead[i] -> skip }
       fi;
       i++
    :: else -> break
    od;
    /* (3) buffers pushed nowhere taken back, (4) the count from the rest */
    mx = pcount;
    i = 0;
    do
    :: i < NBUF ->
       st = state[i];                       /* one state word per step */
       if
#ifdef MUTANT_NO_TAKE_BACK
       :: st == S_WRITING ->
#else
       :: st == S_WRITING || (st == S_SHARED && cseq[i] >= lt) ->
#endif
          d_step {
#ifdef PROBE_TAKE_BACK_SHARED
            assert(st != S_SHARED);         /* a buffer marked shared, pushed nowhere */
#endif
            /* (a): nobody can have it: ours, or out but in no data ring */
            assert(loc[i] == L_PRODUCER ||
                   (loc[i] == L_OUT && share[i] == ALL && cseq[i] >= dtail[0] && cseq[i] >= dtail[1]));
            state[i] = S_WRITING;
            holders[i] = 0;
            loc[i] = L_PRODUCER;
            share[i] = 0;
            abandoned = abandoned | BIT(i)
          }
       :: else ->
#ifdef MUTANT_SHARED_COUNT
          if
          :: st == S_SHARED && cmsg[i] > mx -> mx = cmsg[i]
          :: else -> skip
          fi
#else
          if
          :: cmsg[i] > mx ->
#ifdef PROBE_COUNT_FREED
             assert(st == S_SHARED || cmsg[i] <= pcount);   /* a freed buffer's record counts */
#endif
             mx = cmsg[i]
          :: else -> skip
          fi
#endif
       fi;
       i++
    :: else -> break
    od;
#ifndef MUTANT_NO_COUNT_STORE
    pcount = mx;                            /* (5) the count stored for its own successor */
#endif
    m = mx + 1;                             /* (no jump into a d_step) */
    d_step { mx = 0; i = 0; st = 0; lt = 0; ls = 0; b = 0 };
    pkill = 3;                              /* recovered: PCRASH2 may kill it in turn */
    goto life
  };
  p_done = 1
}

/* ======================================================================== */
/* consumers                                                                 */
/* ======================================================================== */

/* the application receives the message in buffer b (the read) */
inline c_read(b) {
  d_step {
    /* (a): still ours to read */
    assert(loc[b] == L_OUT && state[b] == S_SHARED && (share[b] & BIT(s)));
    m = cmsg[b];
    /* (b): the next one in this life; a successor may repeat, never skip */
    if
    :: got -> assert(m == prev + 1)
    :: else -> assert(m >= 1 && m <= last[s] + 1)
    fi;
    assert(kill[s] == 2 || m == last[s] + 1);   /* exactly once until a death */
    got = 1;
    prev = m;
    if
    :: m > last[s] -> last[s] = m
    :: else -> skip
    fi;
    m = 0
  }
}

/* push b into return ring s (stage + publish), the ghost accounting with it */
inline c_return(b) {
  d_step {
    /* (a): out with the consumers, and only our share left */
    assert(loc[b] == L_OUT && share[b] == BIT(s));
    assert(rtail[s] - rhead[s] < NBUF);
    rslot[s * NBUF + rtail[s] % NBUF] = b;
    rtail[s]++;
    loc[b] = L_RING(s);
    share[b] = 0
  }
}

/* release_shared(b) */
inline c_release(b) {
  who = holders[b];                         /* load(acquire) */
  do
  :: who == BIT(s) ->                       /* the last holder */
#if defined(MUTANT_LAST_CLEARS) || defined(MUTANT_SUCCESSOR_ZERO)
     holders[b] = holders[b] & ~BIT(s);     /* fetch_and: the word says nobody */
#endif
     state[b] = S_FREE(s);                  /* store kFree | s << 8 */
     c_return(b);
     break
  :: who != BIT(s) ->
     assert(who & BIT(s));                  /* our bit is still there */
#ifdef MUTANT_PLAIN_STORE
     d_step { holders[b] = who & ~BIT(s); share[b] = share[b] & ~BIT(s) };
     break
#else
     if
     :: d_step { holders[b] == who -> holders[b] = who & ~BIT(s); share[b] = share[b] & ~BIT(s) };
        break                               /* compare_exchange succeeded */
     :: atomic { else -> who = holders[b] } /* failed: retry with what it found */
#ifdef PROBE_CAS_RETRY
        ; assert(who != BIT(s))                 /* the other's clear made us the last holder */
#endif
     fi
#endif
  od;
  who = 0
}

proctype consumer(byte s) {
  byte b;                                   /* the buffer held longest */
  byte hb;                                  /* the one taken after it, if n == 2 */
  byte n;                                   /* buffers held (taken, not yet released) */
  byte t;                                   /* the one being taken */
  byte m;
  byte who;
  byte prev;
  bit  got;
  byte redo;                                /* takeover (a): bit i = receive buffer i again */
  byte i;
  byte st;
  byte h;
  byte returned;                            /* takeover (b): bit i = buffer i is in return ring s */

life:
  skip;
  {
    do
#ifdef CRASH
    :: redo != 0 ->                         /* received again first, in commit order */
       if
       :: (redo & 1) && (!(redo & 2) || cseq[0] < cseq[1]) -> b = 0
       :: (redo & 2) && (!(redo & 1) || cseq[1] < cseq[0]) -> b = 1
       fi;
       c_read(b);
       c_release(b);
       d_step { redo = redo & ~BIT(b); b = 0 }
#endif
    :: atomic { redo == 0 && n < 2 && dtail[s] != dhead[s] ->   /* tail.load(acquire), the descriptor */
         t = dslot[s * NBUF + dhead[s] % NBUF] };
       d_step {
         assert(state[t] == S_SHARED);       /* take_shared_buffer's checks */
         assert(holders[t] & BIT(s))
       };
       dhead[s]++;                          /* data_in.advance() (release) */
       c_read(t);
       d_step {
         if
         :: n == 0 -> b = t
         :: else -> hb = t
         fi;
         n++;
         t = 0
       }
    :: n > 0 ->                             /* the oldest one held, released */
       c_release(b);
       d_step { b = hb; hb = 0; n-- }
    :: atomic { redo == 0 && n == 0 && dtail[s] == dhead[s] && closed -> skip };
       if
       :: dtail[s] == dhead[s] -> break     /* closed and drained */
       :: else -> skip
       fi
    od
  } unless {
    atomic { kill[s] == 1 -> kill[s] = 2; b = 0; hb = 0; n = 0; m = 0; who = 0; prev = 0; got = 0 };
    /* the successor: take_over_shared_buffers (a) */
    i = 0;
    do
    :: i < NBUF ->
       st = state[i];                       /* acquire */
       if
       :: st == S_SHARED ->
          who = holders[i];                 /* acquire */
          if
          :: who & BIT(s) ->
#ifdef MUTANT_NO_SEQUENCE
             redo = redo | BIT(i)
#else
             if
             :: atomic { cseq[i] < dhead[s] -> redo = redo | BIT(i) }
             :: else -> skip                /* still in our ring, or being pushed into it */
             fi
#endif
#ifdef MUTANT_SUCCESSOR_ZERO
          :: who == 0 ->                    /* finish a release whoever was last */
             state[i] = S_FREE(s);
             c_return(i)
#endif
          :: else -> skip
          fi
       :: else -> skip
       fi;
       i++
    :: else -> break
    od;
#ifdef PROBE_REDELIVER
    assert(redo != ALL);                    /* two buffers to receive again, in commit order */
#endif
    /* (b): freed by the dead consumer, never returned */
    h = rhead[s];                           /* acquire */
    d_step {
      returned = 0;
      i = h;
      do
      :: i != rtail[s] -> returned = returned | BIT(rslot[s * NBUF + i % NBUF]); i++
      :: else -> break
      od;
      i = 0
    };
    do
    :: i < NBUF ->
       if
       :: !(returned & BIT(i)) && state[i] == S_FREE(s) ->
#ifdef PROBE_RETURN_FREED
          assert(false);                    /* a buffer its predecessor freed but never returned */
#endif
          c_return(i)
       :: else -> skip
       fi;
       i++
    :: else -> break
    od;
    i = 0;                                  /* (no jump into a d_step) */
    d_step { st = 0; h = 0; returned = 0; who = 0 };
    goto life
  };
  c_done[s] = 1
}

#ifdef CRASH
/* kills one consumer at any point of its life, or none */
proctype killer() {
  if
  :: kill[0] = 1
  :: kill[1] = 1
  :: skip
  fi;
  killed = 1
}
#endif

#ifdef PCRASH
/* kills the producer at any point of its life, or not; under PCRASH2 its
   successor too, at any point after its recovery, or not */
proctype producer_killer() {
  if
  :: pkill = 1
  :: skip
  fi;
#ifdef PCRASH2
  if
  :: pkill == 3 ->
     if
     :: pkill = 1
     :: skip
     fi
  :: p_done -> skip
  fi
#endif
}
#endif

init {
  byte i;
  d_step {
    i = 0;
    do
    :: i < NBUF ->
       state[i] = S_FREE0; rslot[i] = i; loc[i] = L_RING0; i++
    :: else -> break
    od;
    rtail[0] = NBUF;
    i = 0
  };
  atomic {
    run producer();
    run consumer(0);
    run consumer(1);
#ifdef CRASH
    run killer()
#endif
#ifdef PCRASH
    ; run producer_killer()
#endif
  };
  (p_done && c_done[0] && c_done[1]);
  d_step {
    /* (a): the pool is whole, each buffer in one return ring */
    i = 0;
    do
    :: i < NBUF -> assert(loc[i] == L_RING0 || loc[i] == L_RING1); i++
    :: else -> break
    od;
    assert(rtail[0] - rhead[0] + rtail[1] - rhead[1] == NBUF);
    /* (b): every message, to each consumer */
    assert(last[0] == MSGS && last[1] == MSGS);
    i = 0
  }
}

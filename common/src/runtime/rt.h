/* The runtime's private state, shared by its modules:
 *   daemon.c    start, options, signals, drain, exit; wiring  (loop thread)
 *   pipeline.c  the batches and their states; consume, publish (loop thread)
 *   batch.c     a batch, and the FIFO of them                  (loop thread)
 *   kafka.c     librdkafka clients, callbacks, wake-up pipes   (loop thread)
 *   message.c   what a message's bytes alone decide            (worker thread)
 *   txn.c       the batch transaction and the handler's API    (worker thread)
 *   outbox.c    outbox rows, dead letters, parking, sweeping   (worker thread)
 * A batch crosses the thread boundary whole: while its state is BATCH_WORKING only
 * the worker touches it (and rt->db); otherwise only the loop does. */
#ifndef LMP_RT_H
#define LMP_RT_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "io/db.h"
#include "io/http.h"
#include "io/kafka_conf.h"
#include "io/metrics.h"
#include "lmp/base/buf.h"
#include "lmp/avro/registry.h"
#include "lmp/io/trace.h"
#include "lmp/runtime/service.h"
#include "lmp/runtime/tx.h"

/* What a dead-letter copy keeps of the original: the bound keeps the copy publishable
 * whatever arrived (the producer's message.max.bytes is 1,000,000). */
#define LMP_DLQ_VALUE_MAX (256 * 1024)
#define LMP_DLQ_KEY_MAX 1024
#define LMP_DLQ_HEADER_VALUE_MAX 1024
#define LMP_DLQ_HEADERS_MAX 32
/* Keys and ids the runtime accepts on consumed messages. */
#define LMP_KEY_MAX 256
#define LMP_ID_MAX 128
/* The longest topic name Kafka allows. */
#define LMP_TOPIC_MAX 249

struct rt;
struct batch;
struct lmp_ops;

/* A Kafka header as the outbox keeps it: a UTF-8 name, a value of any bytes. */
struct lmp_hdr {
  char *name;
  unsigned char *value;
  size_t len;
};

/* A consumed message's parts, wherever they come from (librdkafka, a test, a fuzzer). */
struct lmp_raw {
  const char *topic;
  int32_t partition;
  int64_t offset;
  const void *key;      /* NULL: no key */
  size_t keylen;
  const void *payload;
  size_t len;
  const void *(*header)(const void *ctx, const char *name, size_t *n); /* last value, or NULL */
  /* The i-th header: 0, or -1 past the last. */
  int (*header_at)(const void *ctx, size_t i, const char **name, const void **value, size_t *n);
  const void *hctx;
};

enum row_state {
  ROW_NEW,      /* not handed to the producer yet */
  ROW_SENT,     /* with the producer, no delivery report yet */
  ROW_ACKED,    /* the broker has it */
  ROW_FAILED,   /* delivery failed for a reason that may pass: produced again later */
  ROW_REFUSED,  /* the broker refuses it for good: parked by the next transaction */
};

/* An event in the outbox, from its insert to the broker's acknowledgement. */
struct outrow {
  char *event_id;       /* the outbox key; printable ASCII */
  char *topic;
  unsigned char *key;   /* NULL when the message has no key */
  size_t keylen;
  unsigned char *value;
  size_t len;
  struct lmp_hdr *hdrs;
  size_t nhdrs;
  enum row_state state;
  int kerr;             /* rd_kafka_resp_err_t of the last failed delivery */
  char parent[64];      /* the traceparent of the handling that emitted it; "" when swept */
  int64_t emitted_ns;   /* when it was emitted (or first produced, when swept): its
                         * publish span starts there; 0 while tracing is off */
  int32_t partition;    /* where the broker put it, from the delivery report */
  int64_t offset;
  struct batch *b;      /* for the delivery report */
};

/* A row the broker refused for good, waiting for a transaction to park it. */
struct parked {
  char *event_id;
  char reason[256];
};

enum batch_kind {
  BATCH_MESSAGES,  /* consumed messages */
  BATCH_SWEEP,     /* republish what a crash left in the outbox */
  BATCH_TICK,      /* the service's periodic work */
};

/* A batch moves down this list, and back up to BATCH_BACKOFF or BATCH_RESEND when the
 * environment fails it. Only pipeline.c changes a batch's state, in set_state(). */
enum batch_state {
  BATCH_WORKING,     /* its transaction runs on the worker thread */
  BATCH_BACKOFF,     /* the transaction failed for the environment; runs again on rt->retry */
  BATCH_PUBLISHING,  /* committed; rows are with the producer */
  BATCH_RESEND,      /* some rows failed to deliver; produced again on rt->resend */
  BATCH_DONE,        /* every row acknowledged or refused; retired once older batches are */
};

struct batch {
  struct batch *next;          /* the FIFO, oldest first */
  enum batch_kind kind;
  enum batch_state state;
  struct lmp_raw *raws;        /* the consumed messages, as the transaction reads them */
  void **msgs;                 /* what they point into: released (ops->release) with the batch */
  size_t n;
  const struct lmp_ops *ops;
  unsigned char *retried;      /* per message: LMP_ERETRY failures while isolated */
  int isolate;                 /* one message at a time, each in a savepoint */
  int sweep_age_ms;
  char *in_flight;             /* a sweep's: ids of rows older batches are publishing, as a
                                * PostgreSQL text[] literal; they are not sent twice */
  int purge;                   /* a sweep that also purges what is past retention */
  struct outrow *rows;         /* what the transaction emitted or swept */
  size_t nrows, caprows;
  size_t flushed;              /* rows already inserted into lmp_outbox */
  char **del_ids;              /* acknowledged rows this transaction deletes */
  size_t ndel;
  struct parked *park;         /* refused rows this transaction parks */
  size_t npark;
  int rc;                      /* the worker's result */
  char err[600];
  int attempts;                /* transactions tried */
  int pending;                 /* rows with the producer */
  int wake;                    /* run the service's tick after this commit */
  uint64_t started_ns;
  uint64_t applied, dups, dead, parked;
  int64_t parked_waiting;      /* a sweep's count of lmp_outbox_parked; -1 not counted */
};

/* What the pipeline needs from Kafka and from the worker: librdkafka and the real
 * transaction in a daemon (lmp__daemon_ops), fakes in the pipeline's unit test. */
struct lmp_ops {
  /* Up to max messages fetched without waiting, as views (raws) into what msgs keeps. */
  size_t (*fetch)(struct rt *rt, struct lmp_raw *raws, void **msgs, size_t max);
  /* While fetching is paused: at most one message, to stay in the group. */
  size_t (*poll_one)(struct rt *rt, struct lmp_raw *raw, void **msg);
  void (*release)(void *msg);                           /* a fetched message is done with */
  int (*produce)(struct rt *rt, struct outrow *row);    /* 0 queued, else rd_kafka_resp_err_t */
  void (*serve)(struct rt *rt);                         /* serve delivery reports now */
  void (*commit)(struct rt *rt, struct batch *b);       /* the batch's offsets */
  void (*pause)(struct rt *rt, int pause);
  void (*txn)(struct rt *rt, struct batch *b);          /* on the worker thread */
};

/* What the runtime's lower modules call in the ones above them, set by daemon.c
 * (lmp__daemon_wire): librdkafka's callbacks and the background threads wake the
 * pipeline or report deliveries, and a module that sees the end ends the daemon,
 * without a file depending on one above it. */
struct rt_upcalls {
  void (*consume)(struct rt *rt);  /* the pipeline: messages waiting, or room for them */
  void (*delivered)(struct rt *rt, struct outrow *row, rd_kafka_resp_err_t err);
  void (*finish)(struct rt *rt);       /* the end: drained, or cut short */
  void (*finish_soon)(struct rt *rt);  /* a fatal error: the end, from the loop */
};

struct rt {
  const struct lmp_service *svc;
  const struct lmp_ops *ops;
  struct rt_upcalls up;
  struct lmp_config cfg;
  char group[256];
  char dead_letter[300], replay[300]; /* the daemon's own topics, under cfg's prefix */
  char dbname[64];
  struct lmp_schemas *schemas;
  struct lmp_registry *registry; /* schema_registry.url: events framed with its ids */
  int32_t *emit_ids;             /* the registry's id of each of svc->emits' schemas */
  uv_loop_t *loop;
  rd_kafka_t *consumer, *producer;
  rd_kafka_queue_t *cq, *pq;
  int cpipe[2], ppipe[2];
  uv_poll_t cpoll, ppoll;
  uv_timer_t tick;             /* once a second: heartbeat, pause and poll */
  uv_timer_t retry;            /* backoff of the batch in BATCH_BACKOFF */
  uv_timer_t resend;           /* backoff of batches in BATCH_RESEND */
  uv_timer_t sweep, svc_tick, deadline, grace;
  uv_signal_t sigterm, sigint;
  uv_work_t work;
  uv_work_t probe;             /* the first contact with the brokers, at start */
  rd_kafka_resp_err_t probe_err;
  int reach[2];                /* per client (consumer, producer): 1 a broker answers, 0 none, -1 not known yet */
  struct lmp_db db;            /* the worker's connection */
  struct lmp_http *http;
  uv_async_t wake;             /* lmp_service_wake: the tick, asked from any thread */
  struct lmp_background *background; /* svc->background's threads (background.c) */
  struct lmp_http_host host;   /* what HTTP routes may use of the runtime */
  rd_kafka_t *door;            /* the producer of HTTP routes' events (door.c), made on first use */
  pthread_mutex_t door_lock;
  pthread_t door_poller;       /* serves the door's delivery reports */
  atomic_int door_closed;      /* the daemon stops: no new door, the poller ends */
  struct batch *head, *tail;   /* batches not yet retired, oldest first */
  struct batch *txn;           /* the youngest, while WORKING or BACKOFF; else NULL */
  size_t nbatches;
  struct lmp_raw *carry;       /* fetched while fetching was paused: the next batch's head */
  void **carry_msgs;
  size_t ncarry, capcarry;
  char **published;            /* acknowledged event ids not yet deleted */
  size_t npublished, cappublished;
  struct parked *park;         /* refused rows not yet parked */
  size_t npark, cappark;
  int backoff_ms, resend_ms;
  int paused;
  uint64_t last_consume_ns;    /* the consumer's queue was last read (hrtime) */
  int sweep_wanted;            /* the sweep timer fired */
  uint64_t purged_ns;          /* the last purge (hrtime) */
  uint64_t trim_moved;         /* messages consumed and published when memory was last given back */
  uint64_t trim_quiet_ns;      /* since when that count stands (hrtime) */
  int tick_wanted;             /* the tick timer fired, or a transaction asked for it */
  int tick_now;                /* the timer fired, or the tick asked for itself: no gap */
  uint64_t ticked_ns;          /* the last tick started (hrtime) */
  int draining, closing, first_sweep_done;
  pthread_t watchdog;           /* bounds the stop once closing (daemon.c) */
  int has_watchdog;
  int final_sweep;             /* the drain's last transaction (deletes acknowledged rows) ran */
  int exit_code;
  struct lmp_metrics m;
};

/* A consumed message, checked before the database sees it (message.c). */
struct lmp_msg {
  const struct lmp_raw *raw;        /* set by txn.c */
  char id[LMP_ID_MAX + 1];          /* the inbox key: event id, or position for poison */
  char corr[LMP_ID_MAX + 1];
  char key[LMP_KEY_MAX + 1];
  char parent[64];                  /* the incoming traceparent, when it is one */
  const char *code;                 /* why it is poison, NULL when it is not */
  int retry;                        /* it cannot be read now (the registry away): retry the batch */
  char why[600];
  const struct lmp_schema *schema;
  avro_value_t value;
  int decoded;
  const struct lmp_route *route;
  char source[LMP_TOPIC_MAX + 1];   /* the topic whose route applies: raw->topic, or for a
                                     * message on the daemon's replay topic, its source_topic */
  int fresh;                        /* the inbox had not seen it */
};

/* The transaction handed to handlers. */
struct lmp_tx {
  struct rt *rt;
  struct lmp_db *db;           /* the worker's connection, or a background thread's */
  struct batch *b;             /* NULL in background work */
  const struct lmp_event *ev;  /* the event being handled; NULL in sweeps and ticks */
  char traceparent[64];        /* the current span, continued by emitted events */
  struct lmp_span *spans;      /* each consumed message's, ended when the batch commits */
  size_t nspans, capspans;
  struct lmp_span *span;       /* the message being handled's, NULL when not sampled */
  char correlation[LMP_ID_MAX + 1];
  char why[400];               /* a handler's reason for refusing (lmp_tx_reject) */
  int wake;                    /* background work asked for the tick (lmp_tx_wake) */
  struct lmp_background *bg;   /* background work's threads (lmp_tx_stopping); NULL elsewhere */
  struct txset {               /* rows added for a set's one statement (lmp_tx_add) */
    const struct lmp_set *set;
    struct lmp_buf cols[LMP_SET_COLS]; /* each column's array literal, without its braces */
    size_t n;
  } sets[4];
};

/* daemon.c */
void lmp__daemon_finish(struct rt *rt);         /* the end: drained, or cut short */
void lmp__daemon_finish_soon(struct rt *rt);    /* the same from a librdkafka callback: next turn */
/* The runtime's wiring: the Kafka client and the transaction as the pipeline's ops,
 * and the upcalls of its lower modules (a test replaces rt->ops after). */
void lmp__daemon_wire(struct rt *rt);

/* pipeline.c */
void lmp__pipeline_consume(struct rt *rt);      /* the consumer's queue has messages */
void lmp__pipeline_delivered(struct rt *rt, struct outrow *row, rd_kafka_resp_err_t err);
void lmp__pipeline_housekeeping(struct rt *rt); /* once a second */
void lmp__pipeline_start(struct rt *rt);        /* timers; the first sweep migrates */
void lmp__pipeline_drain(struct rt *rt);        /* SIGTERM: finish what is in flight */
void lmp__pipeline_free(struct rt *rt);         /* every batch and carried message */
int lmp__pipeline_idle(const struct rt *rt);    /* nothing in flight */

/* kafka.c */
extern const struct lmp_ops lmp__kafka_ops;          /* librdkafka, and lmp__txn_run */
int lmp__kafka_start(struct rt *rt, char *err, size_t errlen);
void lmp__kafka_stop(struct rt *rt);            /* leave the group, flush, stop the pipes */
void lmp__kafka_free(struct rt *rt);            /* after every message is destroyed */
/* An event's bytes as this daemon frames them (with its registry id, or
 * single-object), and the content_type header that says which. */
int lmp__frame_event(const struct rt *rt, const struct lmp_schema *s, avro_value_t *value, struct lmp_buf *out);
const char *lmp__content_type(const struct rt *rt);
/* background.c: the service's background threads; start also sets up
 * lmp_service_wake. Stop asks them to end after their current call, free joins. */
int lmp__background_start(struct rt *rt);
void lmp__background_wake(struct rt *rt);
void lmp__background_stop(struct rt *rt);
void lmp__background_free(struct rt *rt);
void lmp__background_unwake(void);              /* no more wake-ups: the loop closes its handle */
/* HTTP routes' events (door.c): lmp_http_host's functions, and the end. */
int lmp__door_value(void *rt, const char *event_type, avro_value_t *out);
int lmp__door_publish(void *rt, const char *event_type, const char *key, avro_value_t *value, const char *traceparent,
                      void *runtime, uint64_t ticket, struct lmp_http_pending **pending, char *err, size_t errlen);
void lmp__door_free(struct rt *rt);

/* txn.c */
void lmp__txn_run(struct rt *rt, struct batch *b); /* worker thread; sets b->rc, b->err */

/* message.c */
void lmp__message_check(const struct lmp_schemas *schemas, const struct lmp_config *cfg,
                        const struct lmp_route *routes, const struct lmp_raw *raw, struct lmp_msg *out);
void lmp__message_clear(struct lmp_msg *x);

/* outbox.c */
struct outrow *lmp__row_add(struct batch *b);
void lmp__rows_truncate(struct batch *b, size_t n);
int lmp__row_header(struct outrow *r, const char *name, const void *value, size_t len);
int lmp__row_emit(struct lmp_tx *tx, const char *event_type, const char *key, avro_value_t *value);
int lmp__row_dead_letter(struct rt *rt, struct batch *b, const struct lmp_msg *x,
                         const char *code, const char *why, const char *corr);
int lmp__outbox_flush(struct rt *rt, struct batch *b, int ahead);
int lmp__outbox_delete(struct rt *rt, char **ids, size_t n);
int lmp__outbox_park(struct rt *rt, struct batch *b);
int lmp__outbox_sweep(struct rt *rt, struct batch *b, int age_ms);

/* batch.c */
/* A new batch at the FIFO's tail; it takes raws and msgs (n of each). NULL when out
 * of memory: then the messages are released, their offsets not committed. */
struct batch *lmp__batch_new(struct rt *rt, enum batch_kind kind, struct lmp_raw *raws, void **msgs, size_t n);
/* Retires the FIFO's head, and frees it. */
void lmp__batch_unlink_head(struct rt *rt);
/* Removes the youngest batch, one that never committed (a failed sweep or tick). */
void lmp__batch_unlink_tail(struct rt *rt, struct batch *b);
/* The ids of every outbox row the batches carry, as a text[] literal; NULL for none. */
char *lmp__batches_in_flight(const struct rt *rt);
void lmp__batch_free(struct batch *b);

#endif

/* Spans, exported over OTLP/HTTP (JSON) to tracing.endpoint. A span is filled on the
 * stack of whoever times the work and handed over whole when it ends (lmp_span_end):
 * copied into a bounded queue that one thread of the exporter sends in batches. Ending
 * a span never waits for the collector: when the queue is full, or a batch cannot be
 * sent, the spans are dropped and counted (lmp_trace_counts, shown on /metrics).
 * Without tracing.endpoint nothing is queued, and a span costs a few stores. */
#ifndef LMP_TRACE_H
#define LMP_TRACE_H

#include <stdint.h>

#include "lmp/base/config.h"

/* OTLP's SpanKind. */
enum lmp_span_kind {
  LMP_SPAN_INTERNAL = 1,
  LMP_SPAN_SERVER = 2,
  LMP_SPAN_CLIENT = 3,
  LMP_SPAN_PRODUCER = 4,
  LMP_SPAN_CONSUMER = 5,
};

#define LMP_SPAN_ATTRS 12
#define LMP_SPAN_TEXT 128

struct lmp_span_attr {
  const char *key; /* a string that outlives the span: a literal */
  int is_int;
  int64_t i;
  char s[LMP_SPAN_TEXT];
};

struct lmp_span {
  char trace_id[33];
  char span_id[17];
  char parent_id[17];   /* "" for a trace's root */
  int sampled;          /* the traceparent's flag: only sampled spans are exported */
  char name[96];
  enum lmp_span_kind kind;
  int64_t start_ns, end_ns; /* Unix time */
  int error;
  char status[LMP_SPAN_TEXT];
  struct lmp_span_attr attrs[LMP_SPAN_ATTRS];
  int nattrs;
};

/* Starts the exporter from the tracing.* settings, for the daemon named service
 * ("lmp-intake"): 0 (also when tracing.endpoint is empty: then it stays off), or
 * LMP_ECONFIG / LMP_ENOMEM with err saying why. Also sets the sampler (ids.h). */
int lmp_trace_start(const struct lmp_config *cfg, const char *service, char *err, size_t errlen);
/* Sends what is queued, for at most tracing.timeout_ms in all, then stops the
 * exporter; spans ended after are dropped and counted. */
void lmp_trace_stop(void);
/* Whether spans are exported at all: instrumented code may skip building them. */
int lmp_trace_enabled(void);
/* Spans the collector took, and spans dropped (queue full, or the collector away). */
void lmp_trace_counts(uint64_t *exported, uint64_t *dropped, uint64_t *queued);

/* A span that starts now. traceparent is the span's own W3C context (its trace id,
 * span id and sampled flag); parent, the traceparent it continues, or NULL or invalid
 * for a root. Names are cut to fit. */
void lmp_span_begin(struct lmp_span *s, const char *name, enum lmp_span_kind kind, const char *traceparent,
                    const char *parent);
void lmp_span_str(struct lmp_span *s, const char *key, const char *value);
void lmp_span_int(struct lmp_span *s, const char *key, int64_t value);
/* Marks the span as an error, with the reason as its status message. */
void lmp_span_fail(struct lmp_span *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the span now (unless end_ns is already set) and queues it for export. */
void lmp_span_end(struct lmp_span *s);
/* The clock spans use: Unix time in nanoseconds. */
int64_t lmp_span_now(void);

#endif

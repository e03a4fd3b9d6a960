/* Avro codec: the schema set, canonical form and fingerprints, other versions, the
 * bounded walk, single-object framing, JSON. Field access is in lmp/avro/av.h. */
#ifndef LMP_CODEC_H
#define LMP_CODEC_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lmp/base/buf.h"

/* Single-object encoding: 2 marker bytes, 8-byte little-endian fingerprint, body. */
#define LMP_SOE_HEADER_LEN 10
/* A schema registry's framing: a zero byte, the 4-byte big-endian schema id, body. */
#define LMP_REGISTRY_HEADER_LEN 5
/* The largest message body the decoder accepts; Avro-C trusts encoded lengths. */
#define LMP_MAX_MESSAGE_BYTES (1024 * 1024)
/* The largest event a daemon emits: under the producer's message.max.bytes
 * (1,000,000) with room for key and headers. */
#define LMP_MAX_EVENT_BYTES (900 * 1024)

/* Parsing Canonical Form of a schema given as JSON text (Avro spec, "Schema
 * Resolution / Parsing Canonical Form"). *out is malloc'd. */
int lmp_avro_canonical_form(const char *schema_json, char **out, char *err, size_t errlen);
int lmp_avro_canonical_form_json(json_t *schema, struct lmp_buf *out, char *err, size_t errlen);

/* CRC-64-AVRO (Rabin) fingerprint of bytes, as the spec defines it. */
uint64_t lmp_avro_crc64(const void *p, size_t n);

/* One event type's schema, loaded from schemas/. */
struct lmp_schema {
  char *name;             /* event type, e.g. "onboarding.requested" (the file's stem) */
  char *full_name;        /* Avro full name, e.g. "lmp.onboarding.OnboardingRequested" */
  char *json;             /* the schema with references to other files inlined */
  char *canonical;        /* its Parsing Canonical Form */
  uint64_t fingerprint;   /* CRC-64-AVRO of canonical */
  avro_schema_t avro;     /* parsed by Avro-C */
  avro_value_iface_t *iface; /* generic value class for this schema */
  json_t *defs;           /* its named types' JSON by full name (field defaults) */
};

struct lmp_schemas;

/* Loads every schema of a {name,text} table (see embed.h); references between files
 * by full name are inlined so each schema stands alone. */
int lmp_schemas_new(struct lmp_schemas **out, char *err, size_t errlen);
void lmp_schemas_free(struct lmp_schemas *s);
const struct lmp_schema *lmp_schemas_get(const struct lmp_schemas *s, const char *event_type);
const struct lmp_schema *lmp_schemas_by_fingerprint(const struct lmp_schemas *s, uint64_t fp);
size_t lmp_schemas_count(const struct lmp_schemas *s);
const struct lmp_schema *lmp_schemas_at(const struct lmp_schemas *s, size_t i);

/* Teaches the set another writer's version of one of its event schemas (an older or
 * a newer one, as JSON; it may refer to types of schemas/). Messages framed with its
 * fingerprint then decode into the current schema by Avro's resolution rules.
 * Refused, with the reason in err, when the current schema cannot read it. */
int lmp_schemas_add_writer(struct lmp_schemas *s, const char *json, char *err, size_t errlen);
/* Every *.avsc of a folder, as lmp_schemas_add_writer. */
int lmp_schemas_add_writer_dir(struct lmp_schemas *s, const char *dir, char *err, size_t errlen);
/* Whether a proposed version of an event schema is compatible both ways with the
 * current one: the current readers read it, and it reads what the current writers
 * wrote. 0, or LMP_ESCHEMA with the reason. */
int lmp_schemas_check_compat(const struct lmp_schemas *s, const char *json, char *err, size_t errlen);

/* Walks an Avro binary body against a schema without allocating, checking that every
 * length, count, union branch and enum index fits in what is left of the input.
 * Returns 0 when the whole input is exactly one value. */
int lmp_avro_check(avro_schema_t schema, const void *body, size_t len, char *err, size_t errlen);

/* Frames a value: appends the single-object header and binary body to out. */
int lmp_avro_encode(const struct lmp_schema *schema, avro_value_t *value, struct lmp_buf *out);
/* Frames a value as a schema registry's clients do: a zero byte, the schema's id
 * (4 bytes, big-endian), the binary body. */
int lmp_avro_encode_id(int32_t id, avro_value_t *value, struct lmp_buf *out);
/* Registry framing is read with the ids this registry resolves (NULL: none; the
 * registry must outlive the set). Both framings are always read. */
struct lmp_registry;
void lmp_schemas_use_registry(struct lmp_schemas *s, struct lmp_registry *r);

/* Decodes a framed message, single-object (C3 01, fingerprint) or registry (00, id).
 * On success *schema is the current schema of its event type and *value a new generic
 * value the caller releases with avro_value_decref. LMP_ERETRY: the registry that
 * would resolve its id did not answer. */
int lmp_avro_decode(const struct lmp_schemas *s, const void *msg, size_t len,
                    const struct lmp_schema **schema, avro_value_t *value, char *err,
                    size_t errlen);

/* Sets an Avro value from plain JSON: records as objects, enums as symbol strings,
 * unions as null, a bare value of one branch, or Avro's {"type": value} form. */
int lmp_avro_from_json(avro_value_t *value, json_t *json, char *err, size_t errlen);
/* Plain JSON for an Avro value (the inverse of lmp_avro_from_json). Strings that are
 * not UTF-8 or hold NUL come out with U+FFFD in place of the bad bytes. */
json_t *lmp_avro_to_json(avro_value_t *value);

#endif

/* The bounded walk: an Avro binary body checked against its schema before Avro-C
 * sees it, so a lying length or count is refused instead of allocated, and its work
 * is bounded by the body's length. */
#include <stdio.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"

#define MAX_DEPTH 64

struct cursor {
  const unsigned char *p;
  size_t left;
  size_t items;  /* array items and map entries the rest of the message may still hold */
  size_t visits; /* schema nodes walked so far: the walk's work */
  char *err;
  size_t errlen;
};

static int fail(struct cursor *c, int code, const char *what) {
  snprintf(c->err, c->errlen, "%s (%zu bytes left)", what, c->left);
  return code;
}

static int read_long(struct cursor *c, int64_t *v) {
  uint64_t u = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (c->left == 0)
      return fail(c, LMP_EDECODE, "truncated varint");
    unsigned char b = *c->p++;
    c->left--;
    u |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
      return 0;
    }
  }
  return fail(c, LMP_EDECODE, "varint longer than 10 bytes");
}

static int skip(struct cursor *c, int64_t n, const char *what) {
  if (n < 0)
    return fail(c, LMP_EDECODE, what);
  if ((uint64_t)n > c->left)
    return fail(c, LMP_EDECODE, what);
  c->p += n;
  c->left -= (size_t)n;
  return 0;
}

static int walk(avro_schema_t s, struct cursor *c, int depth) {
  int64_t n;
  int r;
  c->visits++;
  if (depth > MAX_DEPTH)
    return fail(c, LMP_EDECODE, "nesting too deep");
  switch (avro_typeof(s)) {
  case AVRO_NULL:
    return 0;
  case AVRO_BOOLEAN:
    if (c->left < 1)
      return fail(c, LMP_EDECODE, "truncated boolean");
    if (*c->p > 1)
      return fail(c, LMP_EDECODE, "boolean byte not 0 or 1");
    return skip(c, 1, "truncated boolean");
  case AVRO_INT32:
    if ((r = read_long(c, &n)) < 0)
      return r;
    return (n < INT32_MIN || n > INT32_MAX) ? fail(c, LMP_EDECODE, "int out of range") : 0;
  case AVRO_INT64:
    return read_long(c, &n);
  case AVRO_FLOAT:
    return skip(c, 4, "truncated float");
  case AVRO_DOUBLE:
    return skip(c, 8, "truncated double");
  case AVRO_STRING:
  case AVRO_BYTES:
    if ((r = read_long(c, &n)) < 0)
      return r;
    return skip(c, n, "string or bytes length past the end of the message");
  case AVRO_FIXED:
    return skip(c, avro_schema_fixed_size(s), "truncated fixed");
  case AVRO_ENUM:
    if ((r = read_long(c, &n)) < 0)
      return r;
    if (n < 0 || n >= avro_schema_enum_number_of_symbols(s))
      return fail(c, LMP_EDECODE, "enum index out of range");
    return 0;
  case AVRO_UNION:
    if ((r = read_long(c, &n)) < 0)
      return r;
    if (n < 0 || (uint64_t)n >= avro_schema_union_size(s))
      return fail(c, LMP_EDECODE, "union branch out of range");
    return walk(avro_schema_union_branch(s, (int)n), c, depth + 1);
  case AVRO_RECORD:
    for (size_t i = 0; i < avro_schema_record_size(s); i++)
      if ((r = walk(avro_schema_record_field_get_by_index(s, (int)i), c, depth + 1)) < 0)
        return r;
    return 0;
  case AVRO_ARRAY:
  case AVRO_MAP:
    for (;;) {
      if ((r = read_long(c, &n)) < 0)
        return r;
      if (n == 0)
        return 0;
      if (n < 0) {
        int64_t block_bytes;
        if (n == INT64_MIN)
          return fail(c, LMP_EDECODE, "block count out of range");
        n = -n;
        if ((r = read_long(c, &block_bytes)) < 0)
          return r;
        if (block_bytes < 0 || (uint64_t)block_bytes > c->left)
          return fail(c, LMP_EDECODE, "block size past the end of the message");
      }
      /* Every item takes at least one byte of its own (lmp__avro_items_sized refuses
       * schemas where one could take none): a count larger than the bytes left is a
       * lie that would make Avro-C allocate for nothing. */
      if ((uint64_t)n > c->left)
        return fail(c, LMP_EDECODE, "item count larger than the message");
      /* The same holds for the whole message, not just this block: were each block
       * checked alone, items that take no bytes would let every block of a message
       * claim its whole length again, and the work grow with the square of it. */
      if ((uint64_t)n > c->items)
        return fail(c, LMP_EDECODE, "more array and map items than the message has bytes");
      c->items -= (size_t)n;
      for (int64_t i = 0; i < n; i++) {
        if (avro_typeof(s) == AVRO_MAP) {
          int64_t klen;
          if ((r = read_long(c, &klen)) < 0 || (r = skip(c, klen, "map key past the end")) < 0)
            return r;
          if ((r = walk(avro_schema_map_values(s), c, depth + 1)) < 0)
            return r;
        } else if ((r = walk(avro_schema_array_items(s), c, depth + 1)) < 0) {
          return r;
        }
      }
    }
  case AVRO_LINK:
    return walk(avro_schema_link_target(s), c, depth + 1);
  default:
    return fail(c, LMP_EDECODE, "unsupported schema type");
  }
}

int lmp__avro_check_counted(avro_schema_t schema, const void *body, size_t len, size_t *visits, char *err,
                            size_t errlen) {
  struct cursor c = {body, len, len, 0, err, errlen};
  int r = walk(schema, &c, 0);
  *visits = c.visits;
  if (r == 0 && c.left != 0)
    return fail(&c, LMP_EDECODE, "trailing bytes after the value");
  return r;
}

int lmp_avro_check(avro_schema_t schema, const void *body, size_t len, char *err, size_t errlen) {
  size_t visits;
  return lmp__avro_check_counted(schema, body, len, &visits, err, errlen);
}

/* Whether a value of s may be written in no bytes at all: null, fixed(0), and a
 * record whose fields all may (an empty record among them). */
static int takes_no_bytes(avro_schema_t s, int depth) {
  if (depth > MAX_DEPTH)
    return 0; /* a record that holds itself has no finite value to write */
  switch (avro_typeof(s)) {
  case AVRO_NULL:
    return 1;
  case AVRO_FIXED:
    return avro_schema_fixed_size(s) == 0;
  case AVRO_RECORD:
    for (size_t i = 0; i < avro_schema_record_size(s); i++)
      if (!takes_no_bytes(avro_schema_record_field_get_by_index(s, (int)i), depth + 1))
        return 0;
    return 1;
  case AVRO_LINK:
    return takes_no_bytes(avro_schema_link_target(s), depth + 1);
  default:
    return 0; /* numbers, strings, enums and unions write at least one byte */
  }
}

static int items_sized(avro_schema_t s, const char *where, int depth, char *err, size_t errlen) {
  if (depth > MAX_DEPTH)
    return 0; /* deeper than the walk goes: no message it lets through reaches there */
  int r = 0;
  switch (avro_typeof(s)) {
  case AVRO_RECORD:
    for (size_t i = 0; r == 0 && i < avro_schema_record_size(s); i++)
      r = items_sized(avro_schema_record_field_get_by_index(s, (int)i), avro_schema_record_field_name(s, (int)i),
                      depth + 1, err, errlen);
    return r;
  case AVRO_UNION:
    for (size_t i = 0; r == 0 && i < avro_schema_union_size(s); i++)
      r = items_sized(avro_schema_union_branch(s, (int)i), where, depth + 1, err, errlen);
    return r;
  case AVRO_ARRAY:
  case AVRO_MAP: {
    int array = avro_typeof(s) == AVRO_ARRAY;
    avro_schema_t item = array ? avro_schema_array_items(s) : avro_schema_map_values(s);
    if (takes_no_bytes(item, 0)) {
      snprintf(err, errlen, "%s is %s of %s, whose %s take no bytes (the bounded walk needs every one to take a "
               "byte)", where, array ? "an array" : "a map", avro_schema_type_name(item), array ? "items" : "values");
      return LMP_ESCHEMA;
    }
    return items_sized(item, where, depth + 1, err, errlen);
  }
  default:
    return 0; /* a link names a type checked where it is defined */
  }
}

int lmp__avro_items_sized(avro_schema_t s, char *err, size_t errlen) {
  return items_sized(s, "the schema", 0, err, errlen);
}

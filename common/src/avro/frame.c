/* Single-object framing: the C3 01 marker, the fingerprint, the body; decoding by
 * the current schema or, for another version, by resolution. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "avro/internal.h"
#include "lmp/avro/codec.h"
#include "lmp/base/error.h"

/* A header of hlen bytes, then the body. */
static int frame(const unsigned char *header, size_t hlen, avro_value_t *value, struct lmp_buf *out) {
  size_t size = 0;
  if (avro_value_sizeof(value, &size) != 0)
    return LMP_EINVAL;
  int r = lmp_buf_reserve(out, hlen + size);
  if (r < 0)
    return r;
  unsigned char *h = (unsigned char *)out->data + out->len;
  memcpy(h, header, hlen);
  avro_writer_t w = avro_writer_memory((char *)h + hlen, (int64_t)size);
  if (w == NULL)
    return LMP_ENOMEM;
  int wr = avro_value_write(w, value);
  avro_writer_free(w);
  if (wr != 0)
    return LMP_EINVAL;
  out->len += hlen + size;
  out->data[out->len] = '\0';
  return 0;
}

int lmp_avro_encode(const struct lmp_schema *schema, avro_value_t *value, struct lmp_buf *out) {
  unsigned char h[LMP_SOE_HEADER_LEN] = {0xC3, 0x01};
  uint64_t fp = htole64(schema->fingerprint);
  memcpy(h + 2, &fp, 8);
  return frame(h, sizeof(h), value, out);
}

int lmp_avro_encode_id(int32_t id, avro_value_t *value, struct lmp_buf *out) {
  unsigned char h[LMP_REGISTRY_HEADER_LEN] = {0x00};
  uint32_t be = htobe32((uint32_t)id);
  memcpy(h + 1, &be, 4);
  return frame(h, sizeof(h), value, out);
}

/* Another version's body, read into a value of the current schema. */
static int decode_resolved(const struct lmp_writer *w, const char *body, size_t blen,
                           const struct lmp_schema **schema, avro_value_t *value, char *err, size_t errlen) {
  char why[200];
  int r = lmp_avro_check(w->avro, body, blen, why, sizeof(why));
  if (r < 0) {
    snprintf(err, errlen, "%s (other version): %s", w->reader->name, why);
    return r;
  }
  avro_value_t wv;
  if (avro_generic_value_new(w->iface, &wv) != 0)
    return LMP_ENOMEM;
  avro_reader_t rd = avro_reader_memory(body, (int64_t)blen);
  int ar = rd ? avro_value_read(rd, &wv) : ENOMEM;
  if (rd)
    avro_reader_free(rd);
  if (ar == 0 && avro_generic_value_new(w->reader->iface, value) != 0)
    ar = ENOMEM;
  if (ar == 0 && lmp__avro_resolve(value, &wv, w->reader->defs) < 0) {
    avro_value_decref(value);
    ar = EINVAL;
  }
  avro_value_decref(&wv);
  if (ar != 0) {
    snprintf(err, errlen, "%s (other version): cannot be read", w->reader->name);
    return LMP_EDECODE;
  }
  *schema = w->reader;
  return 0;
}

/* A body of a current schema. */
static int decode_current(const struct lmp_schema *sc, const char *body, size_t blen,
                          const struct lmp_schema **schema, avro_value_t *value, char *err, size_t errlen) {
  char why[200];
  int r = lmp_avro_check(sc->avro, body, blen, why, sizeof(why));
  if (r < 0) {
    snprintf(err, errlen, "%s: %s", sc->name, why);
    return r;
  }
  if (avro_generic_value_new(sc->iface, value) != 0)
    return LMP_ENOMEM;
  avro_reader_t rd = avro_reader_memory(body, (int64_t)blen);
  if (rd == NULL) {
    avro_value_decref(value);
    return LMP_ENOMEM;
  }
  int ar = avro_value_read(rd, value);
  avro_reader_free(rd);
  if (ar != 0) {
    snprintf(err, errlen, "%s: %s", sc->name, avro_strerror());
    avro_value_decref(value);
    return LMP_EDECODE;
  }
  *schema = sc;
  return 0;
}

/* Registry framing: the id says which schema, the registry says what it is. */
static int decode_registry(const struct lmp_schemas *s, const unsigned char *m, size_t len,
                           const struct lmp_schema **schema, avro_value_t *value, char *err, size_t errlen) {
  uint32_t be;
  memcpy(&be, m + 1, 4);
  int32_t id = (int32_t)be32toh(be);
  const struct lmp_by_id *b;
  int r = lmp__schemas_by_id(s, id, &b, err, errlen);
  if (r < 0)
    return r;
  const char *body = (const char *)m + LMP_REGISTRY_HEADER_LEN;
  size_t blen = len - LMP_REGISTRY_HEADER_LEN;
  return b->current ? decode_current(b->current, body, blen, schema, value, err, errlen)
                    : decode_resolved(&b->writer, body, blen, schema, value, err, errlen);
}

int lmp_avro_decode(const struct lmp_schemas *s, const void *msg, size_t len,
                    const struct lmp_schema **schema, avro_value_t *value, char *err,
                    size_t errlen) {
  const unsigned char *m = msg;
  if (len > LMP_SOE_HEADER_LEN + (size_t)LMP_MAX_MESSAGE_BYTES) {
    snprintf(err, errlen, "message of %zu bytes is over the %d byte limit", len,
             LMP_MAX_MESSAGE_BYTES);
    return LMP_ETOOBIG;
  }
  if (m && len >= LMP_REGISTRY_HEADER_LEN && m[0] == 0x00)
    return decode_registry(s, m, len, schema, value, err, errlen);
  if (m == NULL || len < LMP_SOE_HEADER_LEN || m[0] != 0xC3 || m[1] != 0x01) {
    snprintf(err, errlen, "neither a single-object marker C3 01 nor a registry's 00 (%zu bytes)", len);
    return LMP_EFRAME;
  }
  uint64_t fp;
  memcpy(&fp, m + 2, 8);
  fp = le64toh(fp);
  const struct lmp_schema *sc = lmp_schemas_by_fingerprint(s, fp);
  const char *body = (const char *)m + LMP_SOE_HEADER_LEN;
  size_t blen = len - LMP_SOE_HEADER_LEN;
  if (sc == NULL) {
    for (size_t i = 0; i < s->nw; i++)
      if (s->w[i].fingerprint == fp)
        return decode_resolved(&s->w[i], body, blen, schema, value, err, errlen);
    snprintf(err, errlen, "unknown schema fingerprint %016llx", (unsigned long long)fp);
    return LMP_ESCHEMA;
  }
  return decode_current(sc, body, blen, schema, value, err, errlen);
}

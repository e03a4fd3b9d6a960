/* Reading and writing the fields of decoded events (Avro-C generic values). The
 * values stay the caller's; strings returned point into the value and live as long
 * as it does. Missing or mistyped fields read as defaults. */
#ifndef LMP_AV_H
#define LMP_AV_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

/* Field of a record, with a union's current branch resolved; 0 when found non-null. */
int lmp_av_field(avro_value_t *rec, const char *field, avro_value_t *out);
const char *lmp_av_str(avro_value_t *rec, const char *field);   /* NULL when absent or null */
int32_t lmp_av_int(avro_value_t *rec, const char *field);       /* 0 when absent */
int lmp_av_bool(avro_value_t *rec, const char *field);          /* -1 when null */
int lmp_av_enum(avro_value_t *rec, const char *field);          /* symbol index, -1 */
const char *lmp_av_enum_name(avro_value_t *rec, const char *field);

/* Setters: 0, or LMP_EINVAL when the field does not exist or takes no such value. A
 * string is copied; NULL sets a nullable field to null. */
int lmp_av_set_str(avro_value_t *rec, const char *field, const char *s);
int lmp_av_set_int(avro_value_t *rec, const char *field, int32_t v);
int lmp_av_set_long(avro_value_t *rec, const char *field, int64_t v);
/* Copies src into a record's field; a union field takes src's type's branch. */
int lmp_av_copy_field(avro_value_t *rec, const char *field, avro_value_t *src);

/* Copies src into dst by structure: record fields by name, enums by symbol, union
 * branches by type name. Unlike avro_value_copy it does not need the two schemas to
 * be the same object graph (a named type inlined in one and referenced in another). */
int lmp_avro_copy(avro_value_t *dst, avro_value_t *src);

/* Calls fn for every string of a value, with its field path ("customer.legal_name",
 * "deployment.addresses[0].city") and its bytes (n, any NUL included); stops at the
 * first negative return of fn, and returns it. */
typedef int (*lmp_string_fn)(void *ctx, const char *path, const char *s, size_t n);
int lmp_avro_walk_strings(avro_value_t *value, lmp_string_fn fn, void *ctx);
/* Whether every string of a value is UTF-8 without NUL; err names the first field
 * that is not. 0, or LMP_EDECODE. */
int lmp_avro_check_text(avro_value_t *value, char *err, size_t errlen);

#endif

/* A Confluent-compatible schema registry (Confluent Schema Registry, Apicurio's
 * /apis/ccompat/v7, Karapace): writer schemas registered under a subject, ids
 * resolved to schemas. Calls are rare (at start, and for an id not seen before), so
 * each is its own HTTPS request; the functions may be called from any thread. */
#ifndef LMP_REGISTRY_H
#define LMP_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "lmp/base/config.h"

struct lmp_registry;

/* Whether cfg's registry settings are usable: an https:// schema_registry.url, or an
 * http:// one with schema_registry.allow_http. 0, or LMP_ECONFIG with the reason. */
int lmp_registry_check_config(const struct lmp_config *cfg, char *err, size_t errlen);
/* A client for cfg->registry_url (with its CA, user and password file); *out is
 * NULL when no registry is configured. 0, or LMP_ECONFIG with the reason. */
int lmp_registry_new(struct lmp_registry **out, const struct lmp_config *cfg, char *err, size_t errlen);
void lmp_registry_free(struct lmp_registry *r);
/* The registry's address, for messages. */
const char *lmp_registry_url(const struct lmp_registry *r);
/* Registers a schema under subject, whose compatibility it first sets to BACKWARD;
 * *id the schema's id (the same id for the same schema). LMP_ESCHEMA when the
 * registry refuses it (incompatible), LMP_ERETRY when it did not answer. */
int lmp_registry_register(struct lmp_registry *r, const char *subject, const char *schema_json, int32_t *id,
                          char *err, size_t errlen);
/* The id of a schema registered under subject already, without writing anything (a
 * client that may only read): LMP_ESCHEMA, saying so, when it is not registered there,
 * LMP_ERETRY when the registry did not answer. */
int lmp_registry_lookup(struct lmp_registry *r, const char *subject, const char *schema_json, int32_t *id,
                        char *err, size_t errlen);
/* The schema with this id, malloc'd JSON. LMP_ESCHEMA when the registry has none,
 * LMP_ERETRY when it did not answer. */
int lmp_registry_schema(struct lmp_registry *r, int32_t id, char **json, char *err, size_t errlen);

#endif

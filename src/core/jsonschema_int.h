/* jsonschema_int.h -- what the validator's three files share and nothing
 * outside them may use: the schema's layout and the compiled patterns. */
#ifndef HMS_CORE_JSONSCHEMA_INT_H
#define HMS_CORE_JSONSCHEMA_INT_H

#include <regex.h>
#include <stdint.h>

#include "core/jsonschema.h"

/* Nesting of schemas (and $ref hops) during one validation, and of the
 * schema document walked at load.  Far beyond any real schema; a $ref cycle
 * that does not consume the instance hits it and fails instead of looping. */
#define HMS_SCHEMA_MAX_DEPTH 128

/* The keywords of one schema object, read once when the schema is loaded:
 * looking each keyword up by name, for every value validated, cost more
 * than the rest of the check (each lookup hashes the name).  A member that is present with the
 * value null is a non-NULL pointer's absence in json-c, so presence is
 * kept apart (has). */
typedef struct {
    json_object *k_ref;
    json_object *k_additionalProperties;
    json_object *k_allOf;
    json_object *k_anyOf;
    json_object *k_const;
    json_object *k_contains;
    json_object *k_dependentRequired;
    json_object *k_dependentSchemas;
    json_object *k_else;
    json_object *k_enum;
    json_object *k_exclusiveMaximum;
    json_object *k_exclusiveMinimum;
    json_object *k_format;
    json_object *k_if;
    json_object *k_items;
    json_object *k_maxContains;
    json_object *k_maxItems;
    json_object *k_maxLength;
    json_object *k_maxProperties;
    json_object *k_maximum;
    json_object *k_minContains;
    json_object *k_minItems;
    json_object *k_minLength;
    json_object *k_minProperties;
    json_object *k_minimum;
    json_object *k_multipleOf;
    json_object *k_not;
    json_object *k_oneOf;
    json_object *k_pattern;
    json_object *k_patternProperties;
    json_object *k_prefixItems;
    json_object *k_properties;
    json_object *k_propertyNames;
    json_object *k_required;
    json_object *k_then;
    json_object *k_type;
    json_object *k_uniqueItems;
    uint64_t has; /* bit i: keyword the i-th keyword the validator knows is a member */
} hms_schema_kw_t;

typedef struct {
    json_object *node;
    hms_schema_kw_t kw;
} hms_schema_node_t;

struct hms_schema {
    json_object *doc;
    char *id;
    hms_schema_node_t *nodes; /* every schema object in doc, by address */
    size_t nnodes, capnodes;
};

/* Reads the keywords of schema object schema into kw (jsonschema_validate.c
 * knows their names). */
void hms_schema_kw_read(json_object *schema, hms_schema_kw_t *kw);

/* The keywords of schema object node of s, read at load; NULL for an object
 * the load did not take for a schema. */
const hms_schema_kw_t *hms_schema_kw_of(const hms_schema_t *s, json_object *node);

/* Compiled regular expressions hang off the json-c string (pattern) or
 * object (patternProperties) they came from, as its userdata. */
typedef struct {
    size_t n;
    regex_t re[];
} hms_schema_regset_t;

/* Errors echo schema text and instance keys, which may hold control
 * characters: replaces each with '?' so messages stay one line. */
void hms_schema_one_line(hms_err_t *err);

/* Compiles the n patterns (ECMA-262 as the header describes) into a regset
 * that owner keeps as its userdata and frees with itself. */
hms_status_t hms_schema_attach_regexes(json_object *owner, const char **pats, size_t n,
                                       hms_err_t *err);

/* The regset attached to owner, if owner has the type patterns are attached
 * to (a string for pattern, an object for patternProperties), else NULL.  The
 * type check matters: json-c keeps userdata of its own on some values (a
 * double parsed from text holds its original spelling there), so a
 * "pattern": 0.5 must never have its userdata read as a regset. */
const hms_schema_regset_t *hms_schema_regexes_of(json_object *owner, json_type type);

#endif

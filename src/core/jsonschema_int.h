/* jsonschema_int.h -- what the validator's three files share and nothing
 * outside them may use: the schema's layout and the compiled patterns. */
#ifndef HMS_CORE_JSONSCHEMA_INT_H
#define HMS_CORE_JSONSCHEMA_INT_H

#include <regex.h>

#include "core/jsonschema.h"

/* Nesting of schemas (and $ref hops) during one validation, and of the
 * schema document walked at load.  Far beyond any real schema; a $ref cycle
 * that does not consume the instance hits it and fails instead of looping. */
#define HMS_SCHEMA_MAX_DEPTH 128

struct hms_schema {
    json_object *doc;
    char *id;
};

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

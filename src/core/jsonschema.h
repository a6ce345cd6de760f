/* jsonschema.h -- a JSON Schema 2020-12 validator over json-c values, used
 * to check events against the contract in schemas/.
 *
 * Supported keywords (everything else is ignored, as annotations are):
 *   type (a name or an array of names; "integer" accepts 1.0), enum, const
 *   (numbers compare by value), multipleOf, minimum, maximum,
 *   exclusiveMinimum, exclusiveMaximum, minLength, maxLength (in Unicode code
 *   points), pattern, format ("date-time" per RFC 3339 incl. leap seconds,
 *   and "uuid"; other formats are annotations), prefixItems, items (2020-12:
 *   the items after prefixItems), contains, minContains, maxContains,
 *   minItems, maxItems, uniqueItems, properties, patternProperties,
 *   additionalProperties, required, minProperties, maxProperties,
 *   propertyNames, dependentRequired, dependentSchemas, allOf, anyOf, oneOf,
 *   not, if/then/else, $ref, $defs, and boolean schemas.
 *
 * Not supported: $dynamicRef/$dynamicAnchor, $anchor, unevaluatedItems,
 * unevaluatedProperties, $ref to anything but the same document ("#",
 * "#/json/pointer", or the document's own $id followed by one of those).
 *
 * pattern and patternProperties use POSIX extended regular expressions
 * (regcomp REG_EXTENDED), not ECMA-262: \d \D \w \W \s \S are translated
 * outside and \d \w \s inside brackets, other backslash escapes inside
 * brackets are taken literally, lookaround, lazy quantifiers and \p{...} are
 * unavailable (such a schema fails to load), and matching is byte-wise, so
 * '.' matches one byte of a multi-byte character.
 *
 * Pure except for the two loaders that read files (_load_file, _load_dir).
 * Validation never crashes on any input: schema and $ref nesting is capped
 * and exceeding the cap is reported as a failure. */
#ifndef HMS_CORE_JSONSCHEMA_H
#define HMS_CORE_JSONSCHEMA_H

#include <json-c/json.h>

#include "core/status.h"

typedef struct hms_schema hms_schema_t;

/* Builds a schema from a parsed document and takes ownership of doc in every
 * case (it is released on failure too).  Compiles every pattern up front, so
 * a pattern POSIX cannot express fails here.  NULL with err on failure. */
hms_schema_t *hms_schema_from_json(json_object *doc, hms_err_t *err);
/* Parses text[0..len) (one JSON document, nothing after it), then as
 * hms_schema_from_json().  Errors start with name, the text's origin (a file
 * name, say).  text is borrowed for the call. */
hms_schema_t *hms_schema_from_text(const char *name, const char *text, size_t len, hms_err_t *err);
void hms_schema_free(hms_schema_t *s);

/* The schema's "$id", or NULL; owned by the schema. */
const char *hms_schema_id(const hms_schema_t *s);

/* Checks instance (borrowed; a NULL pointer is JSON null, as in json-c)
 * against s.  HMS_OK when valid; HMS_ERR_MALFORMED when not, with err
 * naming the JSON pointer of the first failing location and the keyword,
 * e.g. "/data/severity: 7 is greater than maximum 5".  May be called from
 * several threads at once on the same schema. */
hms_status_t hms_schema_validate(const hms_schema_t *s, json_object *instance, hms_err_t *err);

/* A set of schemas looked up by $id: the envelope plus every data schema an
 * event's dataschema can name. */
typedef struct hms_schema_set hms_schema_set_t;

hms_schema_set_t *hms_schema_set_new(void);
/* Frees the set and every schema in it. */
void hms_schema_set_free(hms_schema_set_t *set);
/* Adds s, which must have a $id not already in the set; the set owns s
 * afterwards, also on failure. */
hms_status_t hms_schema_set_add(hms_schema_set_t *set, hms_schema_t *s, hms_err_t *err);
/* The schema whose $id is id, or NULL; owned by the set. */
const hms_schema_t *hms_schema_set_find(const hms_schema_set_t *set, const char *id);

#endif

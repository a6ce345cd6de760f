/* lsn.h -- PostgreSQL log sequence numbers: parsing and the two text forms
 * hms-sync uses (PostgreSQL's "X/X" and the event id's 16 hex digits). */
#ifndef HMS_CORE_LSN_H
#define HMS_CORE_LSN_H

#include <stdbool.h>
#include <stdint.h>

#define HMS_LSN_STR_MAX 18 /* "FFFFFFFF/FFFFFFFF" + NUL */

/* Writes "0/16B3748" (upper-case hex, no padding) into out. */
void hms_lsn_format(uint64_t lsn, char out[HMS_LSN_STR_MAX]);
/* Writes exactly 16 upper-case hex digits, e.g. "00000000016B3748". */
void hms_lsn_hex16(uint64_t lsn, char out[17]);
/* Parses PostgreSQL's "X/X" form; false on anything else. */
bool hms_lsn_parse(const char *s, uint64_t *out);

#endif

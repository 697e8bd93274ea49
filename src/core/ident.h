#ifndef HEARTH_CORE_IDENT_H
#define HEARTH_CORE_IDENT_H

/*
 * Random identifiers from libsodium's CSPRNG, in MCSManager's formats.
 * Each writes a NUL-terminated string into out.
 */

/* uuid v4 without dashes: 32 lowercase hex characters (instance, user and
 * node ids, API keys). */
void ident_uuid32(char out[33]);

/* uuid v4 with dashes: 36 characters. */
void ident_uuid36(char out[37]);

/* n random lowercase hex characters (n < size of out). */
void ident_hex(char *out, int n);

#endif

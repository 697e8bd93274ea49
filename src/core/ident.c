#include "core/ident.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

static void ident__uuid_bytes(unsigned char b[16])
{
    randombytes_buf(b, 16);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void ident_uuid32(char out[33])
{
    unsigned char b[16];

    ident__uuid_bytes(b);
    sodium_bin2hex(out, 33, b, 16);
}

void ident_uuid36(char out[37])
{
    char hex[33];

    ident_uuid32(hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

void ident_hex(char *out, int n)
{
    unsigned char b[64];
    char hex[129];

    if (n > 128)
        n = 128;
    randombytes_buf(b, (size_t)(n + 1) / 2);
    sodium_bin2hex(hex, sizeof(hex), b, (size_t)(n + 1) / 2);
    memcpy(out, hex, (size_t)n);
    out[n] = '\0';
}

/*
 * Cut points in console text, with ECMA-48's escape grammar. A CSI is
 * ESC '[', parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F and
 * one final byte 0x40-0x7E. OSC, DCS, SOS, PM and APC strings run to BEL
 * or ESC '\'. Any other ESC x is a two-byte sequence.
 */
#include "core/text.h"

#define ESC 0x1b
#define BEL 0x07

/* Returns the offset just past the CSI whose '[' is at text[i - 1]. */
static size_t text__csi_end(const unsigned char *text, size_t len, size_t i)
{
    while (i < len && text[i] >= 0x20 && text[i] <= 0x3f)
        i++;
    if (i < len && text[i] >= 0x40 && text[i] <= 0x7e)
        return i + 1;
    /* A byte outside the grammar ends a malformed sequence before it. */
    return i;
}

/* Returns the offset just past the string sequence that starts at i. */
static size_t text__string_end(const unsigned char *text, size_t len,
                               size_t i)
{
    for (; i < len; i++) {
        if (text[i] == BEL)
            return i + 1;
        if (text[i] == ESC)
            return i + 1 < len && text[i + 1] == '\\' ? i + 2 : i;
    }
    return len;
}

/* Returns the offset just past the escape sequence whose ESC is at esc. */
static size_t text__escape_end(const unsigned char *text, size_t len,
                               size_t esc)
{
    size_t i = esc + 1;

    if (i >= len)
        return len;
    switch (text[i]) {
    case '[':
        return text__csi_end(text, len, i + 1);
    case ']': /* OSC */
    case 'P': /* DCS */
    case 'X': /* SOS */
    case '^': /* PM */
    case '_': /* APC */
        return text__string_end(text, len, i + 1);
    default:
        return i + 1;
    }
}

size_t text_cut_start(const char *text, size_t len, size_t pos)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t floor, i, end;
    int n;

    if (pos >= len)
        return len;
    floor = pos > TEXT_ESCAPE_LOOKBACK ? pos - TEXT_ESCAPE_LOOKBACK : 0;
    /* Only the nearest ESC can start a sequence that reaches pos, because
     * a sequence ends at the next ESC at the latest. */
    for (i = pos; i > floor; i--) {
        if (p[i - 1] == ESC) {
            end = text__escape_end(p, len, i - 1);
            if (end > pos)
                return end;
            break;
        }
    }
    for (n = 0; n < 3 && pos < len && (p[pos] & 0xc0) == 0x80; n++)
        pos++;
    return pos;
}

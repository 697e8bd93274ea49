#ifndef HEARTH_CORE_TEXT_H
#define HEARTH_CORE_TEXT_H

#include <stddef.h>

/*
 * Safe cut points in console text: UTF-8 with ANSI escape sequences
 * (ECMA-48), as game servers print it.
 */

/*
 * Bytes looked back from a cut point for the ESC that may start a
 * sequence around it. Colour and cursor sequences are far shorter, but an
 * OSC sequence (a window title) longer than this is not recognised.
 */
#define TEXT_ESCAPE_LOOKBACK 64

/*
 * Returns the first offset >= pos of text[0..len) where text may be cut
 * without leaving a fragment behind: not inside a UTF-8 character (at most
 * 3 continuation bytes are skipped) and not inside an escape sequence
 * whose ESC lies at most TEXT_ESCAPE_LOOKBACK bytes before pos, so that
 * the rest never starts with "[36m" or "31m" without its ESC. A sequence
 * still open at len makes the result len. pos > len returns len.
 */
size_t text_cut_start(const char *text, size_t len, size_t pos);

#endif

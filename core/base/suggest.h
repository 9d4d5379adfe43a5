/*
** suggest.h - "did you mean ...?" for a misspelt name: the closest of the
** known names by edit distance, when it is close enough to be a typo.
**
** The rule is sdk/tp/suggest.lua's, so the host and the SDK suggest alike:
** Levenshtein distance in bytes, within a third of the word's length (at
** least 1, at most 3 edits); ties go to the first known name.
*/
#ifndef TP_SUGGEST_H
#define TP_SUGGEST_H

#include <stddef.h>

/* The known name (a NULL-terminated list) closest to word, or NULL. */
const char *tp_suggest(const char *word, const char *const *known);
/* " (did you mean 'x'?)" into out for the closest known name, or "". */
const char *tp_suggest_hint(const char *word, const char *const *known, char *out, size_t cap);

#endif

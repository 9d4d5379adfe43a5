/*
** version.h - the host's version, as the OpenAPI document reports it.
**
** The same token sequence as main.c's definition, so that main.c can include
** this header instead of its own #define (an identical redefinition is legal C).
*/
#ifndef TP_VERSION_H
#define TP_VERSION_H

#define TIDEPOOL_VERSION "0.1.0"

#endif

/*
** router.h - routes of one tenant: method + path pattern -> handler data.
**
** A pattern is a path of segments, each a literal or a typed parameter:
**     /catalog/products/{id:int}/skus/{code}
** {name} and {name:str} take one non-empty, percent-decoded, valid UTF-8
** segment; {name:int} takes 1-18 decimal digits. Literal segments win over
** parameters at the same depth. Matching tells apart "no such path" (404),
** "path exists for other methods" (405, with the allowed methods) and "path
** exists but a parameter has the wrong type" (400).
*/
#ifndef TP_ROUTER_H
#define TP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#define TPR_MAX_PARAMS 8
#define TPR_MAX_DEPTH 32
#define TPR_MAX_PATH 2048

typedef enum { TPR_STR, TPR_INT } tpr_type;

typedef struct tpr_param {
  const char *name;
  tpr_type type;
  const char *value;  /* decoded, NUL-terminated, inside the match's scratch */
  size_t len;
  int64_t ival;       /* for TPR_INT */
} tpr_param;

typedef enum {
  TPR_FOUND = 0,
  TPR_NOT_FOUND = -1,
  TPR_METHOD_NOT_ALLOWED = -2,
  TPR_BAD_PARAM = -3,
} tpr_result;

typedef struct tpr_match {
  void *data;                 /* what tpr_add stored */
  const char *pattern;        /* the route's pattern, for logs and metrics */
  int nparams;
  tpr_param params[TPR_MAX_PARAMS];
  char allow[64];             /* for TPR_METHOD_NOT_ALLOWED: "GET, POST" */
  const char *bad_param;      /* for TPR_BAD_PARAM */
  char scratch[TPR_MAX_PATH + 1];
} tpr_match;

typedef struct tpr_router tpr_router;

tpr_router *tpr_new(void);
void tpr_free(tpr_router *r);
/* Returns 0, or -1 with a message in err for a bad pattern or a duplicate. */
int tpr_add(tpr_router *r, const char *method, const char *pattern, void *data,
            char *err, size_t errcap);
tpr_result tpr_find(const tpr_router *r, const char *method, const char *path,
                    size_t len, tpr_match *m);
/* Calls fn for every route, in insertion order of nodes. */
void tpr_each(const tpr_router *r,
              void (*fn)(const char *method, const char *pattern, void *data, void *ud),
              void *ud);

#endif

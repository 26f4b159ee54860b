/* sluice: the C tests' assertions. CHECK prints file:line and exits 1; no
 * framework. Every C test includes this. */
#ifndef SLUICE_TEST_CHECK_H
#define SLUICE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(expr)                                                                                \
  do {                                                                                             \
    if (!(expr)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);                     \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#define CHECK_EQ(a, b)                                                                             \
  do {                                                                                             \
    long long ca_ = (long long) (a), cb_ = (long long) (b);                                        \
    if (ca_ != cb_) {                                                                              \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, \
              #b, ca_, cb_);                                                                       \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#endif /* SLUICE_TEST_CHECK_H */

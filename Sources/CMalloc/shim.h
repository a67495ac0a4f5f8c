// glibc malloc tuning (mallopt), which the Glibc Swift module does not export.
#include <malloc.h>

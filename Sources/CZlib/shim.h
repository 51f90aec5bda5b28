#ifndef DORY_CZLIB_SHIM_H
#define DORY_CZLIB_SHIM_H
#include <zlib.h>

/// deflateInit2 and inflateInit2 are macros: Swift cannot call them directly.
/// windowBits 15+16 writes a gzip member (RFC 1952); 15+32 reads gzip or zlib.
static inline int dory_deflate_init_gzip(z_streamp stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int dory_inflate_init_gzip(z_streamp stream) {
    return inflateInit2(stream, 15 + 16);
}
#endif

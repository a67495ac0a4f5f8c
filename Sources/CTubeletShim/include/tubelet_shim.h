#ifndef TUBELET_SHIM_H
#define TUBELET_SHIM_H
#include <stdint.h>
#include <stddef.h>

/// AVERROR(e) is a function-like macro.
int tubelet_averror(int posixError);
/// av_err2str is a macro around a compound literal; copies the message into buf.
void tubelet_av_strerror(int errnum, char *buf, size_t size);
/// v4l2_fourcc is a function-like macro.
uint32_t tubelet_v4l2_fourcc(char a, char b, char c, char d);
/// v4l2_ioctl is variadic.
int tubelet_v4l2_ioctl(int fd, unsigned long request, void *arg);

#endif

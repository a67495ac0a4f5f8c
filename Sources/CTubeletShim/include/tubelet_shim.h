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

/// V4L2 ioctl request codes (_IOWR macros Swift cannot import).
unsigned long tubelet_vidioc_querycap(void);
unsigned long tubelet_vidioc_enum_fmt(void);
unsigned long tubelet_vidioc_s_fmt(void);
unsigned long tubelet_vidioc_s_parm(void);
unsigned long tubelet_vidioc_reqbufs(void);
unsigned long tubelet_vidioc_querybuf(void);
unsigned long tubelet_vidioc_qbuf(void);
unsigned long tubelet_vidioc_dqbuf(void);
unsigned long tubelet_vidioc_streamon(void);
unsigned long tubelet_vidioc_streamoff(void);
/// v4l2_open is variadic.
int tubelet_v4l2_open(const char *path, int flags);

#endif

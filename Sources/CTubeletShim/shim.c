#include "tubelet_shim.h"
#include <libavutil/error.h>
#include <linux/videodev2.h>
#include <libv4l2.h>

int tubelet_averror(int posixError) { return AVERROR(posixError); }

void tubelet_av_strerror(int errnum, char *buf, size_t size) { av_strerror(errnum, buf, size); }

uint32_t tubelet_v4l2_fourcc(char a, char b, char c, char d) { return v4l2_fourcc(a, b, c, d); }

int tubelet_v4l2_ioctl(int fd, unsigned long request, void *arg) { return v4l2_ioctl(fd, request, arg); }

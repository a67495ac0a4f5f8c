#include "tubelet_shim.h"
#include <libavutil/error.h>
#include <linux/videodev2.h>
#include <libv4l2.h>
#include <fcntl.h>

int tubelet_averror(int posixError) { return AVERROR(posixError); }

void tubelet_av_strerror(int errnum, char *buf, size_t size) { av_strerror(errnum, buf, size); }

uint32_t tubelet_v4l2_fourcc(char a, char b, char c, char d) { return v4l2_fourcc(a, b, c, d); }

int tubelet_v4l2_ioctl(int fd, unsigned long request, void *arg) { return v4l2_ioctl(fd, request, arg); }

unsigned long tubelet_vidioc_querycap(void) { return VIDIOC_QUERYCAP; }
unsigned long tubelet_vidioc_enum_fmt(void) { return VIDIOC_ENUM_FMT; }
unsigned long tubelet_vidioc_s_fmt(void) { return VIDIOC_S_FMT; }
unsigned long tubelet_vidioc_s_parm(void) { return VIDIOC_S_PARM; }
unsigned long tubelet_vidioc_reqbufs(void) { return VIDIOC_REQBUFS; }
unsigned long tubelet_vidioc_querybuf(void) { return VIDIOC_QUERYBUF; }
unsigned long tubelet_vidioc_qbuf(void) { return VIDIOC_QBUF; }
unsigned long tubelet_vidioc_dqbuf(void) { return VIDIOC_DQBUF; }
unsigned long tubelet_vidioc_streamon(void) { return VIDIOC_STREAMON; }
unsigned long tubelet_vidioc_streamoff(void) { return VIDIOC_STREAMOFF; }

int tubelet_v4l2_open(const char *path, int flags) { return v4l2_open(path, flags); }

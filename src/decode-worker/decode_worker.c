/*
 * cvrl-decode-worker: a long-lived process that reads video files in-process with libavformat,
 * libavcodec and libavfilter and answers the reader (CvrlServe.Core's DecodeWorkerPool) over its
 * stdin/stdout pipes. protocol.h describes the messages; docs/decode-worker.md says why it exists.
 *
 * What it computes is defined by the command-line path it replaces, not by this file:
 *  - a probe answers what `ffprobe -of json -select_streams V:0 -read_intervals %+#6 -show_entries ...`
 *    would print for the fields MediaInfoParser reads;
 *  - a decode delivers the frames `ffmpeg -copyts [-ss S] -t T -i file:... -filter_complex GRAPH
 *    -map [out] -fps_mode passthrough -pix_fmt rgb24 -f rawvideo` would write (DecodeCommand builds both).
 * To get the same bytes it follows ffmpeg 5.1's timestamp rules (the decoder's dts/pts bookkeeping, the
 * input's accurate-seek trim, autorotation, the pts that ends each input) and runs the same filter graph
 * in the same libavfilter. Where ffmpeg would reconfigure its graph midway (a frame size or display
 * matrix change) or an input yields no picture, the worker answers WORKER_USE_CLI rather than guess.
 * Parity with the command line is tested frame by frame on every test video (DecodeWorkerParityTests).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/parseutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "protocol.h"

/* The libav majors this worker was written and tested against (Debian 12: FFmpeg 5.1). Struct layouts
 * and ffmpeg's timestamp rules both change between majors, so any other major is refused at start. */
#ifndef TESTED_AVFORMAT /* overridable only to build the stub on purpose (a test of the fallback) */
#define TESTED_AVFORMAT 59
#endif
#define TESTED_AVCODEC 59
#define TESTED_AVFILTER 8
#define TESTED_SWSCALE 6
#define TESTED_AVUTIL 57

/* Built against another libav, the worker compiles to a stub that says so at start (the reader then uses
 * the command line and reports why): ffmpeg's timestamp rules it reproduces are those of 5.1. */
#define BUILT_FOR_TESTED_LIBAV                                                                          \
    (LIBAVFORMAT_VERSION_MAJOR == TESTED_AVFORMAT && LIBAVCODEC_VERSION_MAJOR == TESTED_AVCODEC &&      \
     LIBAVFILTER_VERSION_MAJOR == TESTED_AVFILTER && LIBSWSCALE_VERSION_MAJOR == TESTED_SWSCALE &&      \
     LIBAVUTIL_VERSION_MAJOR == TESTED_AVUTIL)

#define MAX_MESSAGE (1 << 20)
#define MAX_INPUTS 4096
#define MAX_LOG 16384
#define PROBE_PACKETS 6

/* ---------------------------------------------------------------- buffers and pipe I/O */

typedef struct Buf {
    char *data;
    size_t len, cap;
} Buf;

static void buf_reserve(Buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        fprintf(stderr, "cvrl-decode-worker: out of memory\n");
        _exit(70);
    }
    b->data = p;
    b->cap = cap;
}

static void buf_put(Buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_u8(Buf *b, uint8_t v) { buf_put(b, &v, 1); }

static void buf_u32(Buf *b, uint32_t v)
{
    uint8_t x[4] = { v, v >> 8, v >> 16, v >> 24 };
    buf_put(b, x, 4);
}

static void buf_i64(Buf *b, int64_t s)
{
    uint64_t v = (uint64_t)s;
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}

static void buf_str(Buf *b, const char *s, size_t n)
{
    buf_u32(b, (uint32_t)n);
    buf_put(b, s, n);
}

static void buf_printf(Buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        buf_put(b, tmp, n);
        return;
    }
    buf_reserve(b, n + 1);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, n + 1, fmt, ap);
    va_end(ap);
    b->len += n;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends one message; the reader gone means there is nobody to work for. */
static void send_message(uint8_t type, const void *payload, size_t n)
{
    uint8_t head[5] = { type, n, n >> 8, n >> 16, n >> 24 };
    if (write_all(1, head, 5) < 0 || write_all(1, payload, n) < 0)
        _exit(0);
}

typedef struct Reader {
    const uint8_t *p, *end;
    int bad;
} Reader;

static uint32_t rd_u32(Reader *r)
{
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = r->p[0] | r->p[1] << 8 | r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return v;
}

static int64_t rd_i64(Reader *r)
{
    if (r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return (int64_t)v;
}

/* A string as a fresh NUL-terminated copy; a NUL inside it makes the message bad. */
static char *rd_str(Reader *r)
{
    uint32_t n = rd_u32(r);
    if (r->bad || (uint64_t)(r->end - r->p) < n || memchr(r->p, 0, n)) {
        r->bad = 1;
        return NULL;
    }
    char *s = av_malloc(n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = 0;
    r->p += n;
    return s;
}

static int nvdec_enabled; /* --nvdec */

#if BUILT_FOR_TESTED_LIBAV
/* ---------------------------------------------------------------- the log (what `-v error` prints) */

static Buf request_log;

/* Decoder threads log too (frame threading): the log is shared, so every use of it takes the lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_ERROR)
        return;
    char line[1024];
    pthread_mutex_lock(&log_lock);
    static int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
    size_t n = strnlen(line, sizeof(line));
    if (request_log.len + n > MAX_LOG)
        n = request_log.len < MAX_LOG ? MAX_LOG - request_log.len : 0;
    buf_put(&request_log, line, n);
    pthread_mutex_unlock(&log_lock);
}

/* The log's length, read under the lock (decoder threads may still be writing). */
static size_t log_length(void)
{
    pthread_mutex_lock(&log_lock);
    size_t n = request_log.len;
    pthread_mutex_unlock(&log_lock);
    return n;
}

static void log_truncate(size_t n)
{
    pthread_mutex_lock(&log_lock);
    if (n < request_log.len)
        request_log.len = n;
    pthread_mutex_unlock(&log_lock);
}

static void log_error(const char *what, int err)
{
    char e[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(err, e, sizeof(e));
    av_log(NULL, AV_LOG_ERROR, "%s: %s\n", what, e);
}

/* ---------------------------------------------------------------- opening an input as the CLI does */

/* Opens `path` with the format options ffmpeg and ffprobe use here and reads the stream parameters. */
/* The request's decoder allowlist (-codec_whitelist), or "" for none: set per request, one at a time. */
static const char *request_decoders = "";

static int open_input(AVFormatContext **out, const char *path, const char *formats, int64_t max_pixels)
{
    AVFormatContext *ic = NULL;
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    av_dict_set(&opts, "format_whitelist", formats, 0);
    av_dict_set(&opts, "scan_all_pmts", "1", AV_DICT_DONT_OVERWRITE);
    if (request_decoders[0])
        av_dict_set(&opts, "codec_whitelist", request_decoders, 0);
    int ret = avformat_open_input(&ic, path, NULL, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        log_error(path, ret);
        return ret;
    }

    AVDictionary **stream_opts = av_calloc(ic->nb_streams ? ic->nb_streams : 1, sizeof(*stream_opts));
    if (!stream_opts) {
        avformat_close_input(&ic);
        return AVERROR(ENOMEM);
    }
    for (unsigned i = 0; i < ic->nb_streams; i++)
    {
        av_dict_set_int(&stream_opts[i], "max_pixels", max_pixels, 0);
        if (request_decoders[0])
            av_dict_set(&stream_opts[i], "codec_whitelist", request_decoders, 0);
    }
    unsigned counted = ic->nb_streams;
    ret = avformat_find_stream_info(ic, stream_opts);
    for (unsigned i = 0; i < counted; i++)
        av_dict_free(&stream_opts[i]);
    av_freep(&stream_opts);
    if (ret < 0) {
        log_error(path, ret);
        avformat_close_input(&ic);
        return ret;
    }
    *out = ic;
    return 0;
}

static int open_decoder_with(AVCodecContext **out, AVStream *st, const AVCodec *codec, int64_t max_pixels, const char *threads);

static int open_decoder_allowed(AVCodecContext **out, AVStream *st, const AVCodec *codec, int64_t max_pixels, const char *threads, const char *allowed);

static int open_decoder(AVCodecContext **out, AVStream *st, int64_t max_pixels, const char *threads)
{
    return open_decoder_allowed(out, st, avcodec_find_decoder(st->codecpar->codec_id), max_pixels, threads, request_decoders);
}

/* NVDEC's decoders are chosen here, not by the file, so the allowlist is not theirs. */
static int open_decoder_with(AVCodecContext **out, AVStream *st, const AVCodec *codec, int64_t max_pixels, const char *threads)
{
    return open_decoder_allowed(out, st, codec, max_pixels, threads, "");
}

static int open_decoder_allowed(AVCodecContext **out, AVStream *st, const AVCodec *codec, int64_t max_pixels, const char *threads, const char *allowed)
{
    if (!codec) {
        av_log(NULL, AV_LOG_ERROR, "Decoder (codec %s) not found for input stream #0:%d\n",
               avcodec_get_name(st->codecpar->codec_id), st->index);
        return AVERROR_DECODER_NOT_FOUND;
    }
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    if (!dec)
        return AVERROR(ENOMEM);
    int ret = avcodec_parameters_to_context(dec, st->codecpar);
    if (ret < 0) {
        avcodec_free_context(&dec);
        return ret;
    }
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
        dec->framerate = st->avg_frame_rate; /* what ffmpeg sets before opening */
    dec->pkt_timebase = st->time_base;
    AVDictionary *opts = NULL;
    av_dict_set_int(&opts, "max_pixels", max_pixels, 0);
    if (allowed && allowed[0])
        av_dict_set(&opts, "codec_whitelist", allowed, 0);
    if (threads)
        av_dict_set(&opts, "threads", threads, 0);
    ret = avcodec_open2(dec, codec, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        av_log(NULL, AV_LOG_ERROR, "Error while opening decoder for input stream #0:%d : %s\n", st->index, av_err2str(ret));
        avcodec_free_context(&dec);
        return ret;
    }
    *out = dec;
    return 0;
}

/* ---------------------------------------------------------------- probe */

static void json_string(Buf *b, const char *s)
{
    buf_u8(b, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            buf_u8(b, '\\');
            buf_u8(b, *c);
        } else if (*c < 0x20) {
            buf_printf(b, "\\u%04x", *c);
        } else {
            buf_u8(b, *c);
        }
    }
    buf_u8(b, '"');
}

/* ffprobe's print_time: "%f" of seconds, omitted when unknown. */
static void json_time(Buf *b, const char *key, int64_t ts, AVRational tb, int *first)
{
    if (ts == AV_NOPTS_VALUE)
        return;
    buf_printf(b, "%s\"%s\":\"%f\"", *first ? "" : ",", key, ts * av_q2d(tb));
    *first = 0;
}

static int probe(const char *path, const char *formats, int64_t max_pixels, Buf *json)
{
    AVFormatContext *ic = NULL;
    int ret = open_input(&ic, path, formats, max_pixels);
    if (ret < 0)
        return ret;

    int selected = -1;
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        AVStream *st = ic->streams[i];
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
            selected = (int)i;
            break;
        }
    }

    /* ffprobe opens a decoder for every stream it can and gives up when one fails to open. */
    AVCodecContext *dec = NULL;
    for (unsigned i = 0; i < ic->nb_streams && ret >= 0; i++) {
        AVStream *st = ic->streams[i];
        if (st->codecpar->codec_id == AV_CODEC_ID_PROBE || !avcodec_find_decoder(st->codecpar->codec_id))
            continue;
        AVCodecContext *c = NULL;
        ret = open_decoder(&c, st, max_pixels, NULL);
        if ((int)i == selected)
            dec = c;
        else
            avcodec_free_context(&c);
    }
    if (ret < 0) {
        avcodec_free_context(&dec);
        avformat_close_input(&ic);
        return ret;
    }

    buf_printf(json, "{\"frames\":[");
    int frames = 0;
    if (selected >= 0 && dec) {
        AVPacket *pkt = av_packet_alloc();
        AVFrame *frame = av_frame_alloc();
        AVRational tb = ic->streams[selected]->time_base;
        int packets = 0;
        int flushing = 0;
        for (;;) {
            if (!flushing) {
                if (av_read_frame(ic, pkt) < 0) {
                    flushing = 1;
                    av_packet_unref(pkt);
                } else if (pkt->stream_index != selected) {
                    av_packet_unref(pkt);
                    continue;
                } else if (packets >= PROBE_PACKETS) {
                    av_packet_unref(pkt);
                    flushing = 1;
                } else {
                    packets++;
                }
            }
            /* ffprobe's process_frame: send (again after EAGAIN), take frames until none. */
            int packet_new = 1;
            for (;;) {
                int got = 0, r = 0;
                if (packet_new) {
                    r = avcodec_send_packet(dec, pkt);
                    if (r == AVERROR(EAGAIN)) {
                        r = 0;
                    } else if (r >= 0 || r == AVERROR_EOF) {
                        r = 0;
                        packet_new = 0;
                    }
                }
                if (r >= 0) {
                    r = avcodec_receive_frame(dec, frame);
                    if (r >= 0)
                        got = 1;
                    else if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
                        r = 0;
                }
                if (r < 0)
                    break;
                if (got) {
                    buf_printf(json, "%s{", frames++ ? "," : "");
                    int first = 1;
                    json_time(json, "best_effort_timestamp_time", frame->best_effort_timestamp, tb, &first);
                    buf_u8(json, '}');
                    av_frame_unref(frame);
                }
                if (!got && !packet_new)
                    break;
            }
            av_packet_unref(pkt);
            if (flushing)
                break;
        }
        av_frame_free(&frame);
        av_packet_free(&pkt);
    }
    buf_printf(json, "],\"streams\":[");

    if (selected >= 0) {
        AVStream *st = ic->streams[selected];
        AVCodecParameters *par = st->codecpar;
        const AVCodecDescriptor *cd = avcodec_descriptor_get(par->codec_id);
        const char *pix = av_get_pix_fmt_name(par->format);
        buf_printf(json, "{\"index\":%d,\"codec_name\":", st->index);
        json_string(json, cd ? cd->name : "unknown");
        buf_printf(json, ",\"width\":%d,\"height\":%d", par->width, par->height);
        if (pix) {
            buf_printf(json, ",\"pix_fmt\":");
            json_string(json, pix);
        }
        buf_printf(json, ",\"r_frame_rate\":\"%d/%d\",\"avg_frame_rate\":\"%d/%d\"",
                   st->r_frame_rate.num, st->r_frame_rate.den, st->avg_frame_rate.num, st->avg_frame_rate.den);
        int first = 0;
        json_time(json, "start_time", st->start_time, st->time_base, &first);
        json_time(json, "duration", st->duration, st->time_base, &first);
        if (st->nb_frames)
            buf_printf(json, ",\"nb_frames\":\"%" PRId64 "\"", st->nb_frames);
        buf_printf(json, ",\"disposition\":{\"attached_pic\":%d}", !!(st->disposition & AV_DISPOSITION_ATTACHED_PIC));
        const AVDictionaryEntry *rotate = av_dict_get(st->metadata, "rotate", NULL, 0);
        if (rotate) {
            buf_printf(json, ",\"tags\":{\"rotate\":");
            json_string(json, rotate->value);
            buf_u8(json, '}');
        }
        size_t matrix_size = 0;
        const uint8_t *matrix = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &matrix_size);
        if (matrix && matrix_size >= 9 * 4)
            buf_printf(json, ",\"side_data_list\":[{\"rotation\":%lld}]",
                       (long long)av_display_rotation_get((const int32_t *)matrix));
        buf_u8(json, '}');
    }
    buf_printf(json, "],\"format\":{\"format_name\":");
    json_string(json, ic->iformat->name);
    buf_printf(json, ",\"nb_streams\":%u", ic->nb_streams);
    int first = 0;
    json_time(json, "start_time", ic->start_time, AV_TIME_BASE_Q, &first);
    json_time(json, "duration", ic->duration, AV_TIME_BASE_Q, &first);
    buf_printf(json, "}}");

    avcodec_free_context(&dec);
    avformat_close_input(&ic);
    return 0;
}

/* ---------------------------------------------------------------- decode */

typedef struct Input {
    /* from the request */
    char *path, *seek, *duration, *formats, *decoders;
    int64_t max_pixels;
    int64_t start_time;     /* -ss in microseconds, or AV_NOPTS_VALUE */
    int64_t recording_time; /* -t in microseconds, or INT64_MAX */

    AVFormatContext *ic;
    AVStream *st;
    AVCodecContext *dec;
    AVPacket *pkt, *avpkt;
    AVFrame *frame;

    /* ffmpeg's InputFile / InputStream bookkeeping, in AV_TIME_BASE units */
    int64_t ts_offset;
    int64_t skip_before; /* the trim's start less a frame's worth, or AV_NOPTS_VALUE: see decode_video */
    int saw_first_ts, wrap_correction_done;
    int64_t dts, next_dts, pts, next_pts;
    int64_t *dts_buffer;
    int nb_dts_buffer;
    int file_eof;   /* demuxer done and decoder drained, EOF sent */
    int reading_eof; /* demuxer done; the decoder is being drained one frame per step */
    int got_output;

    /* what the filter graph is configured from: the first picture */
    int configured_from_frame;
    int width, height, format;
    AVRational sar;
    int has_matrix;
    int32_t matrix[9];
    AVFrame **queue;
    int nb_queue;
    int queued_eof;
    AVFilterContext *src;
} Input;

typedef struct Decode {
    Input *inputs;
    int nb_inputs;
    char *graph_desc;
    int64_t max_bytes;
    AVFilterGraph *graph;
    AVFilterContext *sink;
    int64_t produced;
    int use_cli;
    int output_done;
} Decode;

static int parse_time_us(const char *s, int64_t *out)
{
    return av_parse_time(out, s, 1);
}

/* ---------------------------------------------------------------- NVDEC (--nvdec) */

/* What the last decode used: "software", "nvdec", or "software (why NVDEC did not open)". */
static Buf decoder_used;

/* Opens the CUVID decoder of the input's codec where there is one (h264, hevc, av1) and NVDEC is
 * enabled; <0 leaves the software decoder to the caller and records why. Frames then come from the
 * GPU's decoder in NV12: the same pictures, not the command line's bytes (no parity is claimed). */
static int open_nvdec(Input *in)
{
    const char *name = NULL;
    switch (in->st->codecpar->codec_id) {
    case AV_CODEC_ID_H264: name = "h264_cuvid"; break;
    case AV_CODEC_ID_HEVC: name = "hevc_cuvid"; break;
    case AV_CODEC_ID_AV1: name = "av1_cuvid"; break;
    default: break;
    }
    if (!nvdec_enabled)
        return AVERROR(ENOSYS);
    if (!name || (in->st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        if (!decoder_used.len)
            buf_printf(&decoder_used, "software (no NVDEC decoder for %s)", avcodec_get_name(in->st->codecpar->codec_id));
        return AVERROR(ENOSYS);
    }
    const AVCodec *codec = avcodec_find_decoder_by_name(name);
    size_t log_mark = log_length();
    int ret = codec ? open_decoder_with(&in->dec, in->st, codec, in->max_pixels, NULL) : AVERROR_DECODER_NOT_FOUND;
    if (ret >= 0) {
        if (!decoder_used.len)
            buf_printf(&decoder_used, "nvdec");
        return 0;
    }
    /* Why it failed goes into the answer, not the decode's error log. */
    decoder_used.len = 0;
    buf_printf(&decoder_used, "software (%s did not open: ", name);
    pthread_mutex_lock(&log_lock);
    size_t n = request_log.len > log_mark ? request_log.len - log_mark : 0;
    while (n > 0 && (request_log.data[log_mark + n - 1] == '\n'))
        n--;
    if (n > 0)
        buf_put(&decoder_used, request_log.data + log_mark, n > 300 ? 300 : n);
    pthread_mutex_unlock(&log_lock);
    if (n == 0)
        buf_printf(&decoder_used, "%s", av_err2str(ret));
    buf_u8(&decoder_used, ')');
    for (size_t i = 0; i < decoder_used.len; i++)
        if (decoder_used.data[i] == '\n')
            decoder_used.data[i] = ' ';
    log_truncate(log_mark);
    return ret;
}

/* Opens one input as ffmpeg_opt.c's open_input_file does: options, stream info, the seek. */
static int open_decode_input(Input *in)
{
    int ret = open_input(&in->ic, in->path, in->formats, in->max_pixels);
    if (ret < 0)
        return ret;
    AVFormatContext *ic = in->ic;

    if (in->start_time != AV_NOPTS_VALUE) {
        int64_t timestamp = in->start_time;
        if (ic->start_time != AV_NOPTS_VALUE)
            timestamp += ic->start_time;
        int64_t seek_timestamp = timestamp;
        if (!(ic->iformat->flags & AVFMT_SEEK_TO_PTS)) {
            for (unsigned i = 0; i < ic->nb_streams; i++) {
                if (ic->streams[i]->codecpar->video_delay) {
                    seek_timestamp -= 3 * AV_TIME_BASE / 23;
                    break;
                }
            }
        }
        ret = avformat_seek_file(ic, -1, INT64_MIN, seek_timestamp, seek_timestamp, 0);
        if (ret < 0)
            av_log(NULL, AV_LOG_WARNING, "%s: could not seek to position %0.3f\n", in->path, (double)timestamp / AV_TIME_BASE);
    }
    in->ts_offset = 0; /* -copyts */

    /* "[i:v]": the first video stream, cover art included, as the command line's stream specifier. */
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        if (!in->st && ic->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
            in->st = ic->streams[i];
        else
            ic->streams[i]->discard = AVDISCARD_ALL;
    }
    if (!in->st) {
        av_log(NULL, AV_LOG_ERROR, "Stream specifier ':v' in filtergraph description matches no streams.\n");
        return AVERROR(EINVAL);
    }
    in->st->discard = AVDISCARD_NONE;
    ret = open_nvdec(in);
    if (ret < 0)
        ret = open_decoder(&in->dec, in->st, in->max_pixels,
                           (in->st->disposition & AV_DISPOSITION_ATTACHED_PIC) ? "1" : "auto");
    if (ret < 0)
        return ret;
    in->pkt = av_packet_alloc();
    in->avpkt = av_packet_alloc();
    in->frame = av_frame_alloc();
    if (!in->pkt || !in->avpkt || !in->frame)
        return AVERROR(ENOMEM);
    in->dts = in->next_dts = in->pts = in->next_pts = AV_NOPTS_VALUE;
    in->skip_before = AV_NOPTS_VALUE;
    enum AVCodecID codec = in->st->codecpar->codec_id;
    /* Only where a non-reference picture is never referenced (not HEVC's sub-layer non-reference pictures). */
    if (in->start_time != AV_NOPTS_VALUE && (codec == AV_CODEC_ID_H264 || codec == AV_CODEC_ID_MPEG2VIDEO || codec == AV_CODEC_ID_MPEG4))
        in->skip_before = in->start_time + (ic->start_time != AV_NOPTS_VALUE ? ic->start_time : 0) - AV_TIME_BASE / 10;
    return 0;
}

static int insert_filter(AVFilterGraph *graph, AVFilterContext **last, const char *name, const char *args)
{
    AVFilterContext *ctx;
    int ret = avfilter_graph_create_filter(&ctx, avfilter_get_by_name(name), name, args, NULL, graph);
    if (ret < 0)
        return ret;
    ret = avfilter_link(*last, 0, ctx, 0);
    if (ret < 0)
        return ret;
    *last = ctx;
    return 0;
}

/* cmdutils.c's get_rotation. */
static double rotation_of(const int32_t *matrix)
{
    double theta = 0;
    if (matrix)
        theta = -round(av_display_rotation_get(matrix));
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    return theta;
}

/* The chain ffmpeg puts in front of "[i:v]": buffer source, autorotation, the accurate-seek trim. */
static int configure_input(Decode *d, Input *in, int index, AVFilterInOut *cur)
{
    AVRational tb = in->st->time_base;
    AVRational fr = av_guess_frame_rate(in->ic, in->st, NULL);
    AVRational sar = in->sar.den ? in->sar : (AVRational){ 0, 1 };
    char args[512];
    int n = snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d",
                     in->width, in->height, in->format, tb.num, tb.den, sar.num, sar.den);
    if (fr.num && fr.den)
        snprintf(args + n, sizeof(args) - n, ":frame_rate=%d/%d", fr.num, fr.den);
    char name[64];
    snprintf(name, sizeof(name), "graph 0 input from stream %d:%d", index, in->st->index);
    int ret = avfilter_graph_create_filter(&in->src, avfilter_get_by_name("buffer"), name, args, NULL, d->graph);
    if (ret < 0)
        return ret;
    AVFilterContext *last = in->src;

    const int32_t *matrix = in->has_matrix ? in->matrix : NULL;
    if (!matrix)
        matrix = (const int32_t *)av_stream_get_side_data(in->st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    double theta = rotation_of(matrix);
    if (fabs(theta - 90) < 1.0) {
        ret = insert_filter(d->graph, &last, "transpose", matrix[3] > 0 ? "cclock_flip" : "clock");
    } else if (fabs(theta - 180) < 1.0) {
        if (matrix[0] < 0)
            ret = insert_filter(d->graph, &last, "hflip", NULL);
        if (ret >= 0 && matrix[4] < 0)
            ret = insert_filter(d->graph, &last, "vflip", NULL);
    } else if (fabs(theta - 270) < 1.0) {
        ret = insert_filter(d->graph, &last, "transpose", matrix[3] < 0 ? "clock_flip" : "cclock");
    } else if (fabs(theta) > 1.0) {
        char rotate[64];
        snprintf(rotate, sizeof(rotate), "%f*PI/180", theta);
        ret = insert_filter(d->graph, &last, "rotate", rotate);
    } else if (matrix && matrix[4] < 0) {
        ret = insert_filter(d->graph, &last, "vflip", NULL);
    }
    if (ret < 0)
        return ret;

    int64_t trim_start = AV_NOPTS_VALUE;
    if (in->start_time != AV_NOPTS_VALUE) {
        trim_start = in->start_time;
        if (in->ic->start_time != AV_NOPTS_VALUE)
            trim_start += in->ic->start_time;
    }
    if (in->recording_time != INT64_MAX || trim_start != AV_NOPTS_VALUE) {
        AVFilterContext *trim = avfilter_graph_alloc_filter(d->graph, avfilter_get_by_name("trim"), "trim_in");
        if (!trim)
            return AVERROR(ENOMEM);
        if (in->recording_time != INT64_MAX)
            ret = av_opt_set_int(trim, "durationi", in->recording_time, AV_OPT_SEARCH_CHILDREN);
        if (ret >= 0 && trim_start != AV_NOPTS_VALUE)
            ret = av_opt_set_int(trim, "starti", trim_start, AV_OPT_SEARCH_CHILDREN);
        if (ret >= 0)
            ret = avfilter_init_str(trim, NULL);
        if (ret >= 0)
            ret = avfilter_link(last, 0, trim, 0);
        if (ret < 0)
            return ret;
        last = trim;
    }
    return avfilter_link(last, 0, cur->filter_ctx, cur->pad_idx);
}

static int all_inputs_have_format(Decode *d);

static int configure_graph(Decode *d)
{
    AVFilterInOut *inputs = NULL, *outputs = NULL;
    d->graph = avfilter_graph_alloc();
    if (!d->graph)
        return AVERROR(ENOMEM);
    d->graph->nb_threads = 0;
    int ret = avfilter_graph_parse2(d->graph, d->graph_desc, &inputs, &outputs);
    if (ret < 0)
        goto end;
    for (AVFilterInOut *cur = inputs; cur; cur = cur->next) {
        int index = -1;
        char tail = 0;
        if (!cur->name || sscanf(cur->name, "%d:v%c", &index, &tail) != 1 || index < 0 || index >= d->nb_inputs) {
            av_log(NULL, AV_LOG_ERROR, "Unexpected filter graph input '%s'\n", cur->name ? cur->name : "");
            ret = AVERROR(EINVAL);
            goto end;
        }
        if (d->inputs[index].src) {
            /* One input feeding two labels would need a split ffmpeg inserts; DecodeCommand never asks. */
            d->use_cli = 1;
            ret = WORKER_USE_CLI;
            goto end;
        }
        if ((ret = configure_input(d, &d->inputs[index], index, cur)) < 0)
            goto end;
    }
    if (!outputs || outputs->next || !outputs->name || strcmp(outputs->name, "out")) {
        av_log(NULL, AV_LOG_ERROR, "The filter graph must have one output, [out]\n");
        ret = AVERROR(EINVAL);
        goto end;
    }
    ret = avfilter_graph_create_filter(&d->sink, avfilter_get_by_name("buffersink"), "out_0_0", NULL, NULL, d->graph);
    if (ret < 0)
        goto end;
    AVFilterContext *last = outputs->filter_ctx;
    int pad = outputs->pad_idx;
    AVFilterContext *format;
    ret = avfilter_graph_create_filter(&format, avfilter_get_by_name("format"), "format", "rgb24", NULL, d->graph);
    if (ret < 0 || (ret = avfilter_link(last, pad, format, 0)) < 0 || (ret = avfilter_link(format, 0, d->sink, 0)) < 0)
        goto end;
    ret = avfilter_graph_config(d->graph, NULL);
    if (ret < 0)
        goto end;
    for (int i = 0; i < d->nb_inputs; i++) {
        if (!d->inputs[i].src) {
            av_log(NULL, AV_LOG_ERROR, "Input %d is not used by the filter graph\n", i);
            ret = AVERROR(EINVAL);
            goto end;
        }
    }

    /* The pictures that arrived before every input had one, then the EOFs of finished inputs. */
    for (int i = 0; i < d->nb_inputs && ret >= 0; i++) {
        Input *in = &d->inputs[i];
        for (int k = 0; k < in->nb_queue; k++) {
            if (ret >= 0)
                ret = av_buffersrc_add_frame(in->src, in->queue[k]);
            av_frame_free(&in->queue[k]);
        }
        in->nb_queue = 0;
    }
    for (int i = 0; i < d->nb_inputs && ret >= 0; i++) {
        if (d->inputs[i].queued_eof)
            ret = av_buffersrc_add_frame(d->inputs[i].src, NULL);
    }
end:
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    if (ret < 0) {
        /* Nothing may run on a half-built graph. */
        avfilter_graph_free(&d->graph);
        d->sink = NULL;
        for (int i = 0; i < d->nb_inputs; i++)
            d->inputs[i].src = NULL;
    }
    return ret;
}

/* Writes what the sink holds (reap_filters): every frame is one output frame (-fps_mode passthrough). */
static int reap(Decode *d, AVFrame *out)
{
    for (;;) {
        int ret = av_buffersink_get_frame_flags(d->sink, out, AV_BUFFERSINK_FLAG_NO_REQUEST);
        if (ret == AVERROR(EAGAIN))
            return 0;
        if (ret == AVERROR_EOF) {
            d->output_done = 1;
            return 0;
        }
        if (ret < 0)
            return ret;
        int row = out->width * 3;
        int64_t bytes = (int64_t)row * out->height;
        if (d->produced + bytes <= d->max_bytes) {
            Buf b = { 0 };
            buf_reserve(&b, (size_t)bytes);
            for (int y = 0; y < out->height; y++)
                buf_put(&b, out->data[0] + (ptrdiff_t)y * out->linesize[0], row);
            send_message('F', b.data, b.len);
            free(b.data);
        }
        d->produced += bytes;
        av_frame_unref(out);
    }
}

static int all_inputs_have_format(Decode *d)
{
    for (int i = 0; i < d->nb_inputs; i++)
        if (!d->inputs[i].configured_from_frame)
            return 0;
    return 1;
}

/* ifilter_send_frame: the first picture fixes the input's parameters; a change would make ffmpeg
 * rebuild its graph (resetting the fps and select state), which the worker leaves to the CLI. */
static int send_frame(Decode *d, Input *in, AVFrame *frame)
{
    const AVFrameSideData *sd = av_frame_get_side_data(frame, AV_FRAME_DATA_DISPLAYMATRIX);
    if (!in->configured_from_frame) {
        in->configured_from_frame = 1;
        in->width = frame->width;
        in->height = frame->height;
        in->format = frame->format;
        in->sar = frame->sample_aspect_ratio;
        in->has_matrix = sd && sd->size >= sizeof(in->matrix);
        if (in->has_matrix)
            memcpy(in->matrix, sd->data, sizeof(in->matrix));
    } else {
        int same_matrix = sd ? (in->has_matrix && sd->size >= sizeof(in->matrix) && !memcmp(sd->data, in->matrix, sizeof(in->matrix)))
                             : !in->has_matrix;
        if (frame->width != in->width || frame->height != in->height || frame->format != in->format || !same_matrix) {
            d->use_cli = 1;
            return WORKER_USE_CLI;
        }
    }

    if (!d->graph) {
        AVFrame *copy = av_frame_clone(frame);
        AVFrame **queue = copy ? av_realloc_array(in->queue, in->nb_queue + 1, sizeof(*queue)) : NULL;
        if (!queue) {
            av_frame_free(&copy);
            return AVERROR(ENOMEM);
        }
        in->queue = queue;
        in->queue[in->nb_queue++] = copy;
        if (!all_inputs_have_format(d))
            return 0;
        int ret = configure_graph(d);
        if (ret < 0)
            return ret;
        return 0;
    }
    int ret = av_buffersrc_add_frame_flags(in->src, frame, AV_BUFFERSRC_FLAG_PUSH | AV_BUFFERSRC_FLAG_KEEP_REF);
    return ret == AVERROR_EOF ? 0 : ret;
}

/* send_filter_eof: the pts is where ffmpeg believes the next picture would have started. */
static int send_eof(Decode *d, Input *in)
{
    int64_t pts = av_rescale_q_rnd(in->pts, AV_TIME_BASE_Q, in->st->time_base, AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX);
    in->file_eof = 1;
    if (!d->graph) {
        /* ifilter_send_eof before the graph exists: the EOF is sent (without a pts) once it is
         * configured, and an input that never had a picture takes its format from the codec. */
        in->queued_eof = 1;
        if (!in->configured_from_frame) {
            AVCodecParameters *par = in->st->codecpar;
            if (par->format < 0) {
                av_log(NULL, AV_LOG_ERROR, "Cannot determine format of input stream %d:%d after EOF\n", (int)(in - d->inputs), in->st->index);
                return AVERROR_INVALIDDATA;
            }
            in->configured_from_frame = 1;
            in->width = par->width;
            in->height = par->height;
            in->format = par->format;
            in->sar = par->sample_aspect_ratio;
            in->has_matrix = 0;
        }
        return all_inputs_have_format(d) ? configure_graph(d) : 0;
    }
    return av_buffersrc_close(in->src, pts, AV_BUFFERSRC_FLAG_PUSH);
}

/* ffmpeg.c's decode_video for one call. */
static int decode_video(Decode *d, Input *in, AVPacket *pkt, int *got_output, int64_t *duration_pts, int eof, int *decode_failed)
{
    AVFrame *frame = in->frame;
    int64_t dts = AV_NOPTS_VALUE;
    *got_output = 0;
    if (!eof && pkt && pkt->size == 0)
        return 0;
    if (in->dts != AV_NOPTS_VALUE)
        dts = av_rescale_q(in->dts, AV_TIME_BASE_Q, in->st->time_base);
    if (pkt)
        pkt->dts = dts;
    if (eof) {
        int64_t *grown = av_realloc_array(in->dts_buffer, in->nb_dts_buffer + 1, sizeof(*grown));
        if (!grown)
            return AVERROR(ENOMEM);
        in->dts_buffer = grown;
        in->dts_buffer[in->nb_dts_buffer++] = dts;
    }

    int ret = 0;
    *decode_failed = 0;
    if (pkt) {
        /* A picture shown before the seek point is dropped by the trim that follows, so one nobody
         * references need not be decoded at all (what ffmpeg would decode and throw away). */
        if (in->skip_before != AV_NOPTS_VALUE)
            in->dec->skip_frame = pkt->pts != AV_NOPTS_VALUE && pkt->dts != AV_NOPTS_VALUE &&
                                          av_rescale_q(pkt->pts, in->st->time_base, AV_TIME_BASE_Q) < in->skip_before
                                      ? AVDISCARD_NONREF
                                      : AVDISCARD_DEFAULT;
        ret = avcodec_send_packet(in->dec, pkt);
        if (ret < 0 && ret != AVERROR_EOF) {
            *decode_failed = 1;
            return ret;
        }
    }
    ret = avcodec_receive_frame(in->dec, frame);
    if (ret < 0 && ret != AVERROR(EAGAIN)) {
        *decode_failed = ret != AVERROR_EOF;
        return ret;
    }
    if (ret < 0)
        return 0;
    *got_output = 1;

    int64_t best = frame->best_effort_timestamp;
    *duration_pts = frame->pkt_duration;
    if (eof && best == AV_NOPTS_VALUE && in->nb_dts_buffer > 0) {
        best = in->dts_buffer[0];
        memmove(in->dts_buffer, in->dts_buffer + 1, (in->nb_dts_buffer - 1) * sizeof(*in->dts_buffer));
        in->nb_dts_buffer--;
    }
    if (best != AV_NOPTS_VALUE) {
        frame->pts = best;
        int64_t ts = av_rescale_q(best, in->st->time_base, AV_TIME_BASE_Q);
        if (ts != AV_NOPTS_VALUE)
            in->next_pts = in->pts = ts;
    }
    if (in->st->sample_aspect_ratio.num)
        frame->sample_aspect_ratio = in->st->sample_aspect_ratio;
    in->got_output = 1;
    int err = send_frame(d, in, frame);
    av_frame_unref(frame);
    return err < 0 ? err : 0;
}

/* ffmpeg.c's process_input_packet: pkt NULL drains the decoder, one picture per call. Returns 1 while
 * more is to come after a drain step, 0 when done, <0 on a failure that stops the decode. */
static int process_packet(Decode *d, Input *in, AVPacket *pkt)
{
    int repeating = 0, eof_reached = 0;
    if (!in->saw_first_ts) {
        in->dts = in->st->avg_frame_rate.num
                      ? (int64_t)(-in->dec->has_b_frames * AV_TIME_BASE / av_q2d(in->st->avg_frame_rate))
                      : 0;
        in->pts = 0;
        in->saw_first_ts = 1;
    }
    if (in->next_dts == AV_NOPTS_VALUE)
        in->next_dts = in->dts;
    if (in->next_pts == AV_NOPTS_VALUE)
        in->next_pts = in->pts;
    if (pkt) {
        av_packet_unref(in->avpkt);
        int ret = av_packet_ref(in->avpkt, pkt);
        if (ret < 0)
            return ret;
    }
    if (pkt && pkt->dts != AV_NOPTS_VALUE)
        in->next_dts = in->dts = av_rescale_q(pkt->dts, in->st->time_base, AV_TIME_BASE_Q);

    for (;;) {
        int64_t duration_dts = 0, duration_pts = 0;
        int got = 0;
        in->pts = in->next_pts;
        in->dts = in->next_dts;
        int decode_failed = 0;
        int ret = decode_video(d, in, repeating ? NULL : in->avpkt, &got, &duration_pts, !pkt, &decode_failed);
        if (d->use_cli)
            return WORKER_USE_CLI;
        if (!repeating || !pkt || got) {
            if (pkt && pkt->duration) {
                duration_dts = av_rescale_q(pkt->duration, in->st->time_base, AV_TIME_BASE_Q);
            } else if (in->dec->framerate.num != 0 && in->dec->framerate.den != 0) {
                AVCodecParserContext *parser = av_stream_get_parser(in->st);
                int ticks = parser ? parser->repeat_pict + 1 : in->dec->ticks_per_frame;
                duration_dts = ((int64_t)AV_TIME_BASE * in->dec->framerate.den * ticks) / in->dec->framerate.num / in->dec->ticks_per_frame;
            }
            if (in->dts != AV_NOPTS_VALUE && duration_dts)
                in->next_dts += duration_dts;
            else
                in->next_dts = AV_NOPTS_VALUE;
        }
        if (got) {
            if (duration_pts > 0)
                in->next_pts += av_rescale_q(duration_pts, in->st->time_base, AV_TIME_BASE_Q);
            else
                in->next_pts += duration_dts;
        }
        av_packet_unref(in->avpkt);
        if (ret == AVERROR_EOF) {
            eof_reached = 1;
            break;
        }
        if (ret < 0) {
            /* A decoding error: ffmpeg logs it and goes on with the next packet. Any other failure
             * (the filter graph, memory) ends the decode, as it ends ffmpeg. */
            if (!decode_failed) {
                log_error("Error while processing the decoded data for stream #0:0", ret);
                return ret;
            }
            log_error("Error while decoding stream #0:0", ret);
            break;
        }
        if (!got || !pkt)
            break;
        repeating = 1;
    }
    if (!pkt && eof_reached) {
        int ret = send_eof(d, in);
        if (ret < 0)
            return ret;
    }
    return !eof_reached;
}

/* ffmpeg.c's process_input for one packet (or one drain step) of one input, with -copyts. */
static int process_input(Decode *d, Input *in)
{
    if (in->reading_eof) {
        int ret = process_packet(d, in, NULL);
        return ret < 0 ? ret : 0;
    }
    AVPacket *pkt = in->pkt;
    int ret = av_read_frame(in->ic, pkt);
    if (ret < 0) {
        if (ret != AVERROR_EOF)
            log_error(in->path, ret);
        in->reading_eof = 1;
        ret = process_packet(d, in, NULL);
        return ret < 0 ? ret : 0;
    }
    if (pkt->stream_index != in->st->index) {
        av_packet_unref(pkt);
        return 0;
    }
    AVFormatContext *is = in->ic;
    AVStream *st = in->st;
    if (!in->wrap_correction_done && is->start_time != AV_NOPTS_VALUE && st->pts_wrap_bits < 64) {
        if (in->next_dts == AV_NOPTS_VALUE && in->ts_offset == -is->start_time && (is->iformat->flags & AVFMT_TS_DISCONT)) {
            int64_t new_start_time = INT64_MAX;
            for (unsigned i = 0; i < is->nb_streams; i++) {
                AVStream *s = is->streams[i];
                if (s->discard == AVDISCARD_ALL || s->start_time == AV_NOPTS_VALUE)
                    continue;
                new_start_time = FFMIN(new_start_time, av_rescale_q(s->start_time, s->time_base, AV_TIME_BASE_Q));
            }
            if (new_start_time > is->start_time)
                in->ts_offset = -new_start_time;
        }
        int64_t stime = av_rescale_q(is->start_time, AV_TIME_BASE_Q, st->time_base);
        int64_t stime2 = stime + (1ULL << st->pts_wrap_bits);
        in->wrap_correction_done = 1;
        if (stime2 > stime && pkt->dts != AV_NOPTS_VALUE && pkt->dts > stime + (1LL << (st->pts_wrap_bits - 1))) {
            pkt->dts -= 1ULL << st->pts_wrap_bits;
            in->wrap_correction_done = 0;
        }
        if (stime2 > stime && pkt->pts != AV_NOPTS_VALUE && pkt->pts > stime + (1LL << (st->pts_wrap_bits - 1))) {
            pkt->pts -= 1ULL << st->pts_wrap_bits;
            in->wrap_correction_done = 0;
        }
    }
    if (pkt->dts != AV_NOPTS_VALUE)
        pkt->dts += av_rescale_q(in->ts_offset, AV_TIME_BASE_Q, st->time_base);
    if (pkt->pts != AV_NOPTS_VALUE)
        pkt->pts += av_rescale_q(in->ts_offset, AV_TIME_BASE_Q, st->time_base);

    /* With -copyts, ffmpeg corrects a discontinuity only where the jump looks like a timestamp wrap. */
    int64_t pkt_dts = av_rescale_q_rnd(pkt->dts, st->time_base, AV_TIME_BASE_Q, AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX);
    if (pkt_dts != AV_NOPTS_VALUE && in->next_dts != AV_NOPTS_VALUE && (is->iformat->flags & AVFMT_TS_DISCONT) && st->pts_wrap_bits < 60) {
        int64_t wrap_dts = av_rescale_q_rnd(pkt->dts + (1LL << st->pts_wrap_bits), st->time_base, AV_TIME_BASE_Q,
                                            AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX);
        if (FFABS(wrap_dts - in->next_dts) < FFABS(pkt_dts - in->next_dts) / 10) {
            int64_t delta = pkt_dts - in->next_dts;
            if (delta < -10LL * AV_TIME_BASE || delta > 10LL * AV_TIME_BASE || pkt_dts + AV_TIME_BASE / 10 < FFMAX(in->pts, in->dts)) {
                in->ts_offset -= delta;
                pkt->dts -= av_rescale_q(delta, AV_TIME_BASE_Q, st->time_base);
                if (pkt->pts != AV_NOPTS_VALUE)
                    pkt->pts -= av_rescale_q(delta, AV_TIME_BASE_Q, st->time_base);
            }
        }
    }
    ret = process_packet(d, in, pkt);
    av_packet_unref(pkt);
    return ret < 0 ? ret : 0;
}

/* transcode_step, for our one output: read from the input the graph is waiting for. */
static int run_decode(Decode *d)
{
    AVFrame *out = av_frame_alloc();
    if (!out)
        return AVERROR(ENOMEM);
    int ret = 0;
    while (!d->output_done) {
        Input *next = NULL;
        if (!d->graph) {
            for (int i = 0; i < d->nb_inputs; i++) {
                if (!d->inputs[i].got_output && !d->inputs[i].file_eof) {
                    next = &d->inputs[i];
                    break;
                }
            }
            if (!next)
                break;
        } else {
            ret = avfilter_graph_request_oldest(d->graph);
            if (ret >= 0) {
                if ((ret = reap(d, out)) < 0)
                    break;
                continue;
            }
            if (ret == AVERROR_EOF) {
                ret = reap(d, out);
                break;
            }
            if (ret != AVERROR(EAGAIN))
                break;
            ret = 0;
            unsigned most = 0;
            for (int i = 0; i < d->nb_inputs; i++) {
                if (d->inputs[i].file_eof)
                    continue;
                unsigned failed = av_buffersrc_get_nb_failed_requests(d->inputs[i].src);
                if (failed > most) {
                    most = failed;
                    next = &d->inputs[i];
                }
            }
            if (!next)
                break;
        }
        ret = process_input(d, next);
        if (ret < 0)
            break;
        if (d->graph && (ret = reap(d, out)) < 0)
            break;
    }
    av_frame_free(&out);
    if (d->use_cli)
        return WORKER_USE_CLI;
    if (ret < 0)
        return ret;
    if (!d->graph) {
        av_log(NULL, AV_LOG_ERROR, "No picture could be decoded\n");
        return AVERROR_INVALIDDATA;
    }
    return 0;
}

static void free_decode(Decode *d)
{
    for (int i = 0; i < d->nb_inputs; i++) {
        Input *in = &d->inputs[i];
        for (int k = 0; k < in->nb_queue; k++)
            av_frame_free(&in->queue[k]);
        av_freep(&in->queue);
        av_freep(&in->dts_buffer);
        av_packet_free(&in->pkt);
        av_packet_free(&in->avpkt);
        av_frame_free(&in->frame);
        avcodec_free_context(&in->dec);
        avformat_close_input(&in->ic);
        av_freep(&in->path);
        av_freep(&in->seek);
        av_freep(&in->duration);
        av_freep(&in->formats);
        av_freep(&in->decoders);
    }
    av_freep(&d->inputs);
    avfilter_graph_free(&d->graph);
    av_freep(&d->graph_desc);
}

static void handle_decode(Reader *r)
{
    Decode d = { 0 };
    int ret = 0;
    uint32_t n = rd_u32(r);
    if (r->bad || n == 0 || n > MAX_INPUTS) {
        av_log(NULL, AV_LOG_ERROR, "A decode request needs 1 to %d inputs\n", MAX_INPUTS);
        ret = AVERROR(EINVAL);
        goto reply;
    }
    d.inputs = av_calloc(n, sizeof(*d.inputs));
    if (!d.inputs) {
        ret = AVERROR(ENOMEM);
        goto reply;
    }
    d.nb_inputs = (int)n;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        Input *in = &d.inputs[i];
        in->path = rd_str(r);
        in->seek = rd_str(r);
        in->duration = rd_str(r);
        in->formats = rd_str(r);
        in->decoders = rd_str(r);
        in->max_pixels = rd_i64(r);
    }
    d.graph_desc = rd_str(r);
    d.max_bytes = rd_i64(r);
    if (r->bad || r->p != r->end) {
        av_log(NULL, AV_LOG_ERROR, "Malformed decode request\n");
        ret = AVERROR(EINVAL);
        goto reply;
    }
    for (int i = 0; i < d.nb_inputs && ret >= 0; i++) {
        Input *in = &d.inputs[i];
        in->start_time = AV_NOPTS_VALUE;
        in->recording_time = INT64_MAX;
        if (in->seek[0] && (ret = parse_time_us(in->seek, &in->start_time)) < 0)
            av_log(NULL, AV_LOG_ERROR, "Invalid seek '%s'\n", in->seek);
        if (ret >= 0 && in->duration[0] && (ret = parse_time_us(in->duration, &in->recording_time)) < 0)
            av_log(NULL, AV_LOG_ERROR, "Invalid duration '%s'\n", in->duration);
        if (ret >= 0 && (in->max_pixels <= 0 || in->max_pixels > INT_MAX)) {
            av_log(NULL, AV_LOG_ERROR, "Invalid pixel limit\n");
            ret = AVERROR(EINVAL);
        }
        if (ret >= 0) {
            request_decoders = in->decoders;
            ret = open_decode_input(in);
            request_decoders = "";
        }
    }
    if (ret >= 0)
        ret = run_decode(&d);
reply:;
    Buf b = { 0 };
    buf_u32(&b, (uint32_t)(d.use_cli ? WORKER_USE_CLI : ret));
    buf_i64(&b, d.produced);
    pthread_mutex_lock(&log_lock);
    buf_str(&b, request_log.data ? request_log.data : "", request_log.len);
    pthread_mutex_unlock(&log_lock);
    if (!decoder_used.len)
        buf_printf(&decoder_used, "software");
    buf_str(&b, decoder_used.data, decoder_used.len);
    free_decode(&d);
    send_message('E', b.data, b.len);
    free(b.data);
}

static void handle_probe(Reader *r)
{
    char *path = rd_str(r);
    char *formats = rd_str(r);
    char *decoders = rd_str(r);
    int64_t max_pixels = rd_i64(r);
    Buf json = { 0 };
    int ret;
    if (r->bad || r->p != r->end || max_pixels <= 0 || max_pixels > INT_MAX) {
        av_log(NULL, AV_LOG_ERROR, "Malformed probe request\n");
        ret = AVERROR(EINVAL);
    } else {
        request_decoders = decoders;
        ret = probe(path, formats, max_pixels, &json);
        request_decoders = "";
    }
    Buf b = { 0 };
    buf_u32(&b, (uint32_t)ret);
    buf_str(&b, ret >= 0 && json.data ? json.data : "", ret >= 0 ? json.len : 0);
    pthread_mutex_lock(&log_lock);
    buf_str(&b, request_log.data ? request_log.data : "", request_log.len);
    pthread_mutex_unlock(&log_lock);
    send_message('J', b.data, b.len);
    free(b.data);
    free(json.data);
    av_free(path);
    av_free(formats);
    av_free(decoders);
}

#endif /* BUILT_FOR_TESTED_LIBAV */

/* ---------------------------------------------------------------- start-up: limits and versions */

static unsigned long long cpu_budget; /* --cpu-seconds: CPU seconds each request may use, 0 for no limit */

/* RLIMIT_CPU counts the process's whole life: before each request its soft limit is moved to what has
 * been used so far plus the request's budget (SIGXCPU, which ends the worker, past it). */
static void allow_cpu_for_request(void)
{
    if (!cpu_budget)
        return;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct rlimit rl = { (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1) + cpu_budget, RLIM_INFINITY };
    setrlimit(RLIMIT_CPU, &rl);
}

static void set_limit(int resource, const char *value)
{
    char *end;
    unsigned long long v = strtoull(value, &end, 10);
    if (*value == 0 || *end) {
        fprintf(stderr, "cvrl-decode-worker: bad limit '%s'\n", value);
        exit(64);
    }
    struct rlimit rl = { v, v };
    if (resource == RLIMIT_CPU) {
        cpu_budget = v; /* per request: see allow_cpu_for_request */
        return;
    }
    if (setrlimit(resource, &rl) != 0) {
        perror("cvrl-decode-worker: setrlimit");
        exit(71);
    }
}

/* Only the three pipes stay open: nothing inherited can be read or written by a hostile file. */
static void close_other_descriptors(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        return;
    }
    int own = dirfd(dir);
    struct dirent *e;
    int fds[1024], n = 0;
    while ((e = readdir(dir)) && n < 1024) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != own)
            fds[n++] = fd;
    }
    closedir(dir);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nvdec")) {
            nvdec_enabled = 1;
            continue;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("cvrl-decode-worker protocol %d, built against libavformat %d, libavcodec %d, libavfilter %d\n",
                   WORKER_PROTOCOL, LIBAVFORMAT_VERSION_MAJOR, LIBAVCODEC_VERSION_MAJOR, LIBAVFILTER_VERSION_MAJOR);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: cvrl-decode-worker [--nvdec] [--address-space BYTES] [--cpu-seconds N] [--open-files N]\n");
            return 64;
        }
        if (!strcmp(argv[i], "--address-space"))
            set_limit(RLIMIT_AS, argv[++i]);
        else if (!strcmp(argv[i], "--cpu-seconds"))
            set_limit(RLIMIT_CPU, argv[++i]);
        else if (!strcmp(argv[i], "--open-files"))
            set_limit(RLIMIT_NOFILE, argv[++i]);
        else {
            fprintf(stderr, "cvrl-decode-worker: unknown option '%s'\n", argv[i]);
            return 64;
        }
    }
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    close_other_descriptors();
#if BUILT_FOR_TESTED_LIBAV
    av_log_set_level(AV_LOG_ERROR);
    av_log_set_callback(log_callback);
#endif

    unsigned versions[5] = { avformat_version(), avcodec_version(), avfilter_version(), swscale_version(), avutil_version() };
    unsigned tested[5] = { TESTED_AVFORMAT, TESTED_AVCODEC, TESTED_AVFILTER, TESTED_SWSCALE, TESTED_AVUTIL };
    const char *names[5] = { "libavformat", "libavcodec", "libavfilter", "libswscale", "libavutil" };
    char message[256] = "";
#if !BUILT_FOR_TESTED_LIBAV
    snprintf(message, sizeof(message), "built against libavformat %d, libavcodec %d, libavfilter %d; this worker reproduces ffmpeg 5.1 "
             "(libavformat %d) and was only tested there", LIBAVFORMAT_VERSION_MAJOR, LIBAVCODEC_VERSION_MAJOR, LIBAVFILTER_VERSION_MAJOR, TESTED_AVFORMAT);
#endif
    for (int i = 0; i < 5; i++) {
        if (AV_VERSION_MAJOR(versions[i]) != tested[i] && !message[0])
            snprintf(message, sizeof(message), "%s %u is installed; this worker was built and tested against major %u",
                     names[i], AV_VERSION_MAJOR(versions[i]), tested[i]);
    }
    Buf hello = { 0 };
    buf_u32(&hello, WORKER_PROTOCOL);
    for (int i = 0; i < 5; i++)
        buf_u32(&hello, versions[i]);
    buf_u8(&hello, message[0] == 0);
    buf_str(&hello, message, strlen(message));
    send_message('H', hello.data, hello.len);
    free(hello.data);
    if (message[0])
        return 0;

#if BUILT_FOR_TESTED_LIBAV
    uint8_t *payload = malloc(MAX_MESSAGE);
    if (!payload)
        return 70;
    for (;;) {
        uint8_t head[5];
        if (read_all(0, head, 5) < 0)
            return 0;
        uint32_t n = head[1] | head[2] << 8 | head[3] << 16 | (uint32_t)head[4] << 24;
        if (n > MAX_MESSAGE) {
            fprintf(stderr, "cvrl-decode-worker: a %u-byte request is over the limit\n", n);
            return 65;
        }
        if (read_all(0, payload, n) < 0)
            return 0;
        log_truncate(0);
        decoder_used.len = 0;
        allow_cpu_for_request();
        Reader r = { payload, payload + n, 0 };
        switch (head[0]) {
        case 'P':
            handle_probe(&r);
            break;
        case 'D':
            handle_decode(&r);
            break;
        case 'Q':
            return 0;
        default:
            fprintf(stderr, "cvrl-decode-worker: unknown request type %u\n", head[0]);
            return 65;
        }
    }
#endif
}

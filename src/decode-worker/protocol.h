/*
 * The decode worker's pipe protocol (see docs/decode-worker.md). Every message, in both directions, is
 *   u8 type, u32 payload length (little-endian), payload.
 * Integers are little-endian; a string is a u32 byte count and the bytes (no terminator).
 *
 * Worker -> reader, once at start:
 *   'H' hello: u32 protocol, u32 avformat, u32 avcodec, u32 avfilter, u32 swscale, u32 avutil (runtime
 *       versions, AV_VERSION_INT), u8 ok, str message (why not ok: a libav major the worker was not
 *       built and tested against).
 * Reader -> worker:
 *   'P' probe:  str path, str allowed formats (comma list), str allowed decoders (comma list, "" for
 *               any), i64 max pixels per frame.
 *   'D' decode: u32 inputs, per input { str path, str seek ("" for none), str duration, str allowed
 *               formats, str allowed decoders, i64 max pixels }, str filter graph, i64 most output
 *               bytes to send.
 *   'Q' quit.
 * Worker -> reader:
 *   'J' probe done: i32 status (0, or an AVERROR), str JSON (ffprobe's shape), str log.
 *   'F' frame: the rgb24 bytes of one output frame (rows packed).
 *   'E' decode done: i32 status (0, an AVERROR, or WORKER_USE_CLI), i64 bytes produced (all of them,
 *       including any not sent past the cap), str log, str decoder ("software", "nvdec", or
 *       "software (why NVDEC did not open)" when the worker runs with --nvdec).
 */
#ifndef CVRL_DECODE_WORKER_PROTOCOL_H
#define CVRL_DECODE_WORKER_PROTOCOL_H

#define WORKER_PROTOCOL 4

/* A decode the worker does not reproduce exactly as ffmpeg's command line would (a stream whose frame
 * size or display matrix changes midway, an input that yields no picture): the reader runs the CLI. */
#define WORKER_USE_CLI (-0x43564C49) /* -'CVLI' */

#endif

#!/usr/bin/python3
"""PyAV peer for tools/DecodeBench: decodes a clip plan the way PyTorch video readers do with PyAV
(torchvision.io.read_video, pytorchvideo's PyAV decoder): per clip one seek to the keyframe before the
clip, decode forward, stop after the clip's last slot, keep the picture on screen at each slot, and
scale it to the bench's size with swscale's bilinear filter into rgb24.

It serves requests so the interpreter and imports are paid once, as a worker's start-up is: each line
on stdin is a JSON request {"path", "rate", "start", "clips": [[slot, ...], ...], "width", "height"};
each answer is a line {"seconds", "frames", "bytes"}, timed inside this process from opening the file
to the last scaled frame. Debian's python3-av (PyAV 10, FFmpeg 5.1) is the intended peer.
"""
import json
import sys
import time

import av


def decode(request):
    clock = time.perf_counter()
    rate = request["rate"]
    start = request["start"]
    width, height = request["width"], request["height"]
    frames = 0
    size = 0
    with av.open(request["path"]) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base)
        for clip in request["clips"]:
            slots = sorted(set(clip))
            first = start + slots[0] / rate
            last = start + slots[-1] / rate
            container.seek(int(first / time_base), stream=stream, backward=True)
            on_screen = None
            wanted = iter(slots)
            slot = next(wanted)
            done = False
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                # Every slot that starts before this picture shows the previous one.
                while on_screen is not None and start + slot / rate < t - 1e-9:
                    image = on_screen.reformat(width, height, "rgb24", interpolation="BILINEAR")
                    size += len(bytes(image.planes[0]))
                    frames += 1
                    slot = next(wanted, None)
                    if slot is None:
                        done = True
                        break
                if done:
                    break
                on_screen = frame
                if t > last + 1.0 / rate:
                    break
            while not done and on_screen is not None and slot is not None:
                image = on_screen.reformat(width, height, "rgb24", interpolation="BILINEAR")
                size += len(bytes(image.planes[0]))
                frames += 1
                slot = next(wanted, None)
    return {"seconds": time.perf_counter() - clock, "frames": frames, "bytes": size}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(decode(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()

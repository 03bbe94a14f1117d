"""Prints the first presentation time (stream time, ns) of the first video and audio pads that
GStreamer's qtdemux exposes for an MP4, as `video NS` / `audio NS` lines.

A pad probe reads each buffer's pts against the segment in force on that pad (its sticky
SEGMENT event) as the buffer passes, so nothing depends on how gst-launch prints. Run with
Debian's Python (python3-gi, gir1.2-gstreamer-1.0)."""

import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

Gst.init(None)
path = sys.argv[1]
pipeline = Gst.parse_launch(
    f'filesrc location="{path}" ! qtdemux name=d '
    "d.video_0 ! queue ! fakesink name=video sync=false "
    "d.audio_0 ! queue ! fakesink name=audio sync=false"
)
first = {}


def probe(pad, info, kind):
    buf = info.get_buffer()
    event = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
    if buf.pts == Gst.CLOCK_TIME_NONE or event is None:
        return Gst.PadProbeReturn.OK
    segment = event.parse_segment()
    ok, stream_time = segment.to_stream_time_full(Gst.Format.TIME, buf.pts)
    # Buffers before the segment's start (decoded but not shown) have no place in it.
    if ok == 1 and buf.pts >= segment.start:
        first[kind] = min(first.get(kind, stream_time), stream_time)
    return Gst.PadProbeReturn.OK


for kind in ("video", "audio"):
    pad = pipeline.get_by_name(kind).get_static_pad("sink")
    pad.add_probe(Gst.PadProbeType.BUFFER, probe, kind)

pipeline.set_state(Gst.State.PLAYING)
bus = pipeline.get_bus()
msg = bus.timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
pipeline.set_state(Gst.State.NULL)
if msg is None or msg.type == Gst.MessageType.ERROR:
    err = msg.parse_error()[0].message if msg else "no end of stream within 60 s"
    sys.exit(f"{path}: {err}")
for kind in ("video", "audio"):
    if kind in first:
        print(kind, first[kind])

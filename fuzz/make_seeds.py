#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora from real encoder output, the way the tests make their
media: ffmpeg encodes short FLVs (H.264 with and without B-frames, AAC, MP3, HEVC over enhanced
FLV when the static ffmpeg 9 from imageio-ffmpeg is there) and publishes one over RTMP to
ffmpeg's own RTMP listener through a recording proxy, so the session seeds are a real
publisher's bytes. Usage: make_seeds.py OUT_DIR (one sub-folder per target)."""

import os
import socket
import subprocess
import sys
import tempfile
import threading

OUT = sys.argv[1]
TARGETS = ["rtmp_session", "chunk_reader", "amf0", "flv_reader", "remux_scan", "codec_headers"]
for t in TARGETS:
    os.makedirs(os.path.join(OUT, t), exist_ok=True)


def put(target, name, data):
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def ffmpeg(binary, *args):
    subprocess.run([binary, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def flv_tags(data):
    """(type, body) of each tag of an FLV."""
    at = int.from_bytes(data[5:9], "big") + 4
    while at + 11 <= len(data):
        kind = data[at] & 0x1F
        size = int.from_bytes(data[at + 1 : at + 4], "big")
        body = data[at + 11 : at + 11 + size]
        if len(body) < size:
            return
        yield kind, body
        at += 11 + size + 4


def hvcc_nals(record):
    """The parameter-set NAL units of an HEVCDecoderConfigurationRecord."""
    at = 23
    for _ in range(record[22] if len(record) > 22 else 0):
        count = int.from_bytes(record[at + 1 : at + 3], "big")
        at += 3
        for _ in range(count):
            size = int.from_bytes(record[at : at + 2], "big")
            yield record[at + 2 : at + 2 + size]
            at += 2 + size


work = tempfile.mkdtemp(prefix="rtmp-recorder-seeds-")
source = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=15", "-f", "lavfi",
          "-i", "sine=frequency=440:sample_rate=44100"]
encodes = {
    "h264_aac": ["-c:v", "libx264", "-g", "8", "-bf", "0", "-c:a", "aac", "-b:a", "32k"],
    "h264_bframes_aac": ["-c:v", "libx264", "-g", "8", "-bf", "2", "-c:a", "aac", "-b:a", "32k"],
    "h264_mp3": ["-c:v", "libx264", "-g", "8", "-c:a", "libmp3lame", "-b:a", "32k"],
    "video_only": ["-an", "-c:v", "libx264", "-g", "8"],
    "audio_only": ["-vn", "-c:a", "aac", "-b:a", "32k"],
}
files = {}
for name, codec in encodes.items():
    path = os.path.join(work, name + ".flv")
    ffmpeg("ffmpeg", *source, "-t", "0.7", *codec, "-pix_fmt", "yuv420p", "-f", "flv", path)
    files[name] = open(path, "rb").read()
try:
    import imageio_ffmpeg

    static = imageio_ffmpeg.get_ffmpeg_exe()
    path = os.path.join(work, "hevc_aac.flv")
    ffmpeg(static, *source, "-t", "0.7", "-c:v", "libx265", "-x265-params", "log-level=error",
           "-g", "8", "-c:a", "aac", "-pix_fmt", "yuv420p", "-f", "flv", path)
    files["hevc_aac"] = open(path, "rb").read()
except ImportError:
    print("imageio-ffmpeg missing: no HEVC seed", file=sys.stderr)

for name, data in files.items():
    put("flv_reader", name, data)
    put("remux_scan", name, data)
    for i, (kind, body) in enumerate(flv_tags(data)):
        if kind == 18:
            put("amf0", f"{name}_script{i}", body)
        elif kind == 9 and len(body) > 5 and body[0] & 0x0F == 7 and body[1] == 0:
            put("codec_headers", f"{name}_avc", b"\x00" + body[5:])
            record = body[5:]
            sps_len = int.from_bytes(record[6:8], "big")
            put("codec_headers", f"{name}_sps", b"\x05" + record[8 : 8 + sps_len])
        elif kind == 9 and len(body) > 5 and body[0] & 0x80 and body[1:5] == b"hvc1":
            record = body[5:]
            put("codec_headers", f"{name}_hevc", b"\x01" + record)
            for nal in hvcc_nals(record):
                if nal and (nal[0] >> 1) & 0x3F == 33:
                    put("codec_headers", f"{name}_hevc_sps", b"\x06" + nal)
        elif kind == 8 and len(body) > 2 and body[0] >> 4 == 10 and body[1] == 0:
            put("codec_headers", f"{name}_asc", b"\x03" + body[2:])
        elif kind == 8 and len(body) > 4 and body[0] >> 4 == 2 and i < 12:
            put("codec_headers", f"{name}_mp3_{i}", b"\x04" + body[1:])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A real publish: ffmpeg -> recording proxy -> ffmpeg's RTMP listener.
server_port, proxy_port = free_port(), free_port()
listener = subprocess.Popen(
    ["ffmpeg", "-hide_banner", "-loglevel", "error", "-listen", "1",
     "-i", f"rtmp://127.0.0.1:{server_port}/live/cam1", "-c", "copy", "-f", "null", "-"])
proxy = socket.socket()
proxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
proxy.bind(("127.0.0.1", proxy_port))
proxy.listen(1)
sent = bytearray()


def relay():
    client, _ = proxy.accept()
    upstream = None
    for _ in range(100):
        try:
            upstream = socket.create_connection(("127.0.0.1", server_port))
            break
        except OSError:
            threading.Event().wait(0.05)

    def back():
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass  # the publisher hung up first

    threading.Thread(target=back, daemon=True).start()
    while data := client.recv(65536):
        sent.extend(data)
        upstream.sendall(data)
    upstream.shutdown(socket.SHUT_WR)


relay_thread = threading.Thread(target=relay)
relay_thread.start()
ffmpeg("ffmpeg", "-re", "-i", os.path.join(work, "h264_aac.flv"), "-c", "copy", "-f", "flv",
       f"rtmp://127.0.0.1:{proxy_port}/live/cam1")
relay_thread.join(timeout=10)
listener.wait(timeout=10)
HANDSHAKE = 1 + 1536 + 1536
after = bytes(sent[HANDSHAKE:])
assert len(after) > 1000, f"only {len(sent)} bytes captured from the publisher"
put("rtmp_session", "ffmpeg_publish_with_handshake", b"\x00" + bytes(sent))
for split in (255, 1, 19):
    put("rtmp_session", f"ffmpeg_publish_split{split}", bytes([split]) + after)
# Chunk size 128 until the publisher's Set Chunk Size: read with the default, then with 4096.
put("chunk_reader", "ffmpeg_publish_128", b"\x00\x80\xff" + after)
put("chunk_reader", "ffmpeg_publish_4096", b"\x10\x00\x07" + after)
counts = {t: len(os.listdir(os.path.join(OUT, t))) for t in TARGETS}
print("seeds:", ", ".join(f"{t} {n}" for t, n in counts.items()))

"""Decoding video frames and audio with the ffmpeg binary, without ffprobe.

Everything goes through `ffmpeg` itself so that the one static binary shipped by
imageio-ffmpeg is enough. One module per job:

- `command`: the binary, the one command-line builder, ffmpeg's errors;
- `info`: `probe` parses the stream summary that `ffmpeg -i` prints;
- `decode`: `read_frames` seeks and pipes raw RGB, `read_audio` pipes mono float32 PCM;
- `stream`: whole videos through one ffmpeg process each way, a chunk of frames at a
  time: `iter_frames` decodes at a chosen rate, `video_writer` encodes (and muxes audio back);
- `image`: images (PNG masks, extracted frames), encoded and decoded with torchvision.io.

The public names of all of them are importable from `gsavl_cli.io.media`.
"""

from gsavl_cli.io.media.command import ffmpeg_binary, ffmpeg_command, ffmpeg_encoders, file_url, last_error_line
from gsavl_cli.io.media.decode import read_audio, read_frames
from gsavl_cli.io.media.image import decode_image, encode_image, read_image, read_mask, write_png
from gsavl_cli.io.media.info import MediaInfo, exact_rate, probe
from gsavl_cli.io.media.stream import (
    FrameChunk,
    VideoWriter,
    encoder_options,
    expected_frames,
    iter_frames,
    sampling_rate,
    video_writer,
)

__all__ = [
    "FrameChunk",
    "MediaInfo",
    "VideoWriter",
    "decode_image",
    "encode_image",
    "encoder_options",
    "exact_rate",
    "expected_frames",
    "ffmpeg_binary",
    "ffmpeg_command",
    "ffmpeg_encoders",
    "file_url",
    "iter_frames",
    "last_error_line",
    "probe",
    "read_audio",
    "read_frames",
    "read_image",
    "read_mask",
    "sampling_rate",
    "video_writer",
    "write_png",
]

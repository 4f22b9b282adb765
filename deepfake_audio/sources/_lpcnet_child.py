"""One LPCNet copy-synthesis in a process of its own: ``python _lpcnet_child.py`` with 16 kHz
int16 PCM (a whole number of 480-sample frames) on stdin writes the decoded int16 PCM to stdout.

Run by ``engines._LpcnetEngine`` only. It is a separate process because libcodec2's LPCNet keeps
state between calls that its API does not reset: a second encoding in the same process gave other
bits. A fresh process per clip gives the same samples every time. Standard library only (no numpy
import), so a call costs little more than the codec.
"""

import ctypes
import ctypes.util
import sys
from array import array

FREEDV_2020 = 1  # the vector quantiser of FreeDV mode 2020: 52 bits per 30 ms frame, 1733 bit/s


def main() -> None:
    name = ctypes.util.find_library("codec2")
    if name is None:
        sys.exit("libcodec2 not found (Debian package 'codec2')")
    lib = ctypes.CDLL(name)
    lib.lpcnet_freedv_create.restype = ctypes.c_void_p
    lib.lpcnet_freedv_create.argtypes = [ctypes.c_int]
    for fn in (lib.lpcnet_bits_per_frame, lib.lpcnet_samples_per_frame):
        fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_int
    lib.lpcnet_enc.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.lpcnet_dec.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.lpcnet_freedv_destroy.argtypes = [ctypes.c_void_p]

    pcm = array("h")
    pcm.frombytes(sys.stdin.buffer.read())
    encoder, decoder = lib.lpcnet_freedv_create(FREEDV_2020), lib.lpcnet_freedv_create(FREEDV_2020)
    n_bits, n_samples = lib.lpcnet_bits_per_frame(encoder), lib.lpcnet_samples_per_frame(encoder)
    if len(pcm) % n_samples:
        sys.exit(f"input is not a whole number of {n_samples}-sample frames: {len(pcm)} samples")
    bits = ctypes.create_string_buffer(n_bits)
    frames = []
    for i in range(len(pcm) // n_samples):  # encode everything first: only the bits reach the decoder
        lib.lpcnet_enc(encoder, (ctypes.c_short * n_samples).from_buffer(pcm, 2 * i * n_samples), bits)
        frames.append(bits.raw)
    out = array("h", bytes(2 * len(pcm)))
    for i, frame in enumerate(frames):
        target = (ctypes.c_short * n_samples).from_buffer(out, 2 * i * n_samples)
        lib.lpcnet_dec(decoder, ctypes.create_string_buffer(frame, n_bits), target)
    lib.lpcnet_freedv_destroy(encoder)
    lib.lpcnet_freedv_destroy(decoder)
    sys.stdout.buffer.write(out.tobytes())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the small seed inputs under Fuzz/corpus/ (run once; the seeds are committed).

Needs torch and safetensors. msgpack is written by hand (flax.serialization's layout) so that
neither flax nor msgpack is needed.
"""
import json
import pathlib
import shutil
import struct

import numpy as np
import torch
from safetensors.numpy import save_file

root = pathlib.Path(__file__).resolve().parent
corpus = root / "corpus"
repo = root.parent


def out(target, name, data):
    (corpus / target / name).write_bytes(data)


# --- safetensors: the loader fixture, several dtypes, and a Tubelet model file's metadata.
shutil.copy(repo / "Tests/TubeletLoadingTests/Fixtures/weights.safetensors", corpus / "FuzzSafeTensors/weights.safetensors")
tmp = corpus / "FuzzSafeTensors/dtypes.safetensors"
save_file({"f16": np.arange(4, dtype=np.float16), "i64": np.arange(3, dtype=np.int64),
           "b": np.array([True, False]), "u8": np.zeros((2, 2), np.uint8), "empty": np.zeros((0, 3), np.float32)},
          str(tmp))
# Metadata as `tubelet import` writes it (keys of VideoSwinConfig and Preprocessing), a tiny config, and
# the first weights the loader asks for; the fuzzer mutates from there into config validation and
# model construction.
config = {"depths": [1], "embedDim": 8, "inChannels": 3, "layerNormEps": 1e-05, "mlpRatio": 2, "numClasses": 2,
          "numHeads": [2], "patchNorm": False, "patchSize": [2, 4, 4], "streaming": True, "windowSize": [2, 2, 2]}
preprocessing = {"cropSize": 16, "frameStride": 1, "frames": 4, "mean": [0.5, 0.5, 0.5], "pixelScale": 0.003921569,
                 "resizeShortSide": 16, "std": [0.25, 0.25, 0.25], "subtractFrameMean": True}
save_file({"patch_embed.proj.weight": np.zeros((8, 3, 2, 4, 4), np.float32), "patch_embed.proj.bias": np.zeros(8, np.float32)},
          str(corpus / "FuzzSafeTensors/model.safetensors"),
          metadata={"tubelet.format": "1", "tubelet.architecture": "video_swin", "tubelet.config": json.dumps(config),
                    "tubelet.preprocessing": json.dumps(preprocessing), "tubelet.labels": json.dumps(["a", "b"])})

# --- torch.save zips: the loader fixtures, plus views (transposed, offset, broadcast), fp16, nesting.
for name in ["checkpoint.pth", "zip64.pth"]:
    shutil.copy(repo / "Tests/TubeletLoadingTests/Fixtures" / name, corpus / "FuzzTorchCheckpoint" / name)
base = torch.arange(12, dtype=torch.float32)
torch.save({"t": base.reshape(3, 4).t(), "off": base[2:5], "half": torch.ones(3, dtype=torch.float16),
            "long": torch.tensor([1, -2], dtype=torch.int64), "bcast": torch.ones(1).expand(4),
            "meta": {"epoch": 3, "lr": 0.1, "names": ["a", ("b", None, True)], "big": 2**70}},
           corpus / "FuzzTorchCheckpoint/views.pth")
torch.save({"state_dict": {"backbone.w": torch.zeros(2, 2)}, "meta": {"v": "1"}}, corpus / "FuzzTorchCheckpoint/official.pth")


# --- flax msgpack (flax.serialization.to_bytes): maps, ext 1 = ndarray (shape, dtype, bytes), ext 2 = scalar.
def pack(v):
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v if len(v) < 256 else b"\xc5" + struct.pack(">H", len(v)) + v
    if isinstance(v, (list, tuple)):
        return bytes([0x90 | len(v)]) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    if isinstance(v, np.ndarray):
        payload = pack([list(v.shape), v.dtype.name, v.tobytes()])
        ext = 1 if v.ndim else 2
        return b"\xc7" + bytes([len(payload), ext]) + payload if len(payload) < 256 else \
            b"\xc8" + struct.pack(">H", len(payload)) + bytes([ext]) + payload
    raise TypeError(type(v))


tree = {"params": {"Transformer": {"encoderblock_0": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
                                                      "bias": np.zeros(3, np.float16)}},
                   "cls": np.zeros((1, 1, 2), np.float32), "scale": np.array(2.0, np.float32)},
        "step": 7, "opt": None, "ints": np.arange(3, dtype=np.int64)}
out("FuzzFlaxMsgpack", "tree.msgpack", pack(tree))
out("FuzzFlaxMsgpack", "flat.msgpack", pack({"a": np.ones(4, np.float64), "b": np.array([1, 0], np.uint8)}))

# --- configurations: the documented examples.
for name in ["tubelet.yaml", "demo.yaml"]:
    shutil.copy(repo / "Config" / name, corpus / "FuzzConfig" / name)

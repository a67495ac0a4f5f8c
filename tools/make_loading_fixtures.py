#!/usr/bin/env python3
"""Writes the tiny TubeletLoading test fixtures (fixed seed, a few KB in all).

    python3 tools/make_loading_fixtures.py

Outputs in Tests/TubeletLoadingTests/Fixtures:
  checkpoint.pth         torch.save zip: {'meta', 'state_dict', 'optimizer'} with every storage dtype,
                         a transposed tensor, views at offsets into a shared storage, a Parameter
  weights.safetensors    the same state-dict tensors (contiguous copies), metadata {'format': 'pt'}
  expected.json          per tensor: dtype, shape, float32 bit patterns of t.float(), int64 values for ints
  deflated.pth           checkpoint.pth re-zipped with deflate (must be rejected)
  zip64.pth              checkpoint.pth re-packed with zip64 records and extra fields (must load)
  legacy.pth             pre-1.6 non-zip torch.save format (must be rejected with a clear message)
"""
import json
import os
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "TubeletLoadingTests", "Fixtures")


def state_dict():
    g = torch.Generator().manual_seed(1234)
    shared = torch.randn(20, generator=g)
    f16 = torch.tensor([1.0, -2.5, 65504.0, 6e-8, -6e-8, 1e-5, float("inf"), float("-inf"), float("nan"), -0.0],
                       dtype=torch.float16)
    bf16 = torch.tensor([1.0, -3.140625, 1e-40, 3e38, float("inf"), float("nan")], dtype=torch.bfloat16)
    sd = OrderedDict()
    sd["w_f32"] = torch.randn(3, 4, generator=g)
    sd["w_f16"] = f16
    sd["w_bf16"] = bf16.reshape(2, 3)
    sd["w_f64"] = torch.randn(4, generator=g, dtype=torch.float64)
    sd["relative_position_index"] = (torch.arange(12, dtype=torch.int64) - 5).reshape(3, 4)
    sd["i32"] = torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    sd["transposed"] = torch.randn(3, 5, generator=g).t()          # non-contiguous, stride (1, 5)
    sd["shared_base"] = shared
    sd["view_offset"] = shared[6:14].view(2, 4)                     # contiguous view at offset 6
    sd["view_strided"] = shared[1::3]                               # offset 1, stride 3
    sd["param"] = torch.nn.Parameter(torch.randn(2, generator=g))   # _rebuild_parameter
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    return sd


def expected_values(sd):
    out = OrderedDict()
    for name, t in sd.items():
        t = t.detach()
        entry = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                 "f32_bits": t.float().contiguous().view(torch.int32).flatten().tolist()}
        if not t.is_floating_point():
            entry["int64"] = t.to(torch.int64).flatten().tolist()
        out[name] = entry
    return out


def rezip(src, dst, compression):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def write_zip64(src, dst):
    """Stored entries whose central-directory sizes/offsets are all 0xFFFFFFFF with the real values in
    zip64 extra fields, plus a zip64 end record and locator; local extra fields pad data to 64 bytes."""
    with zipfile.ZipFile(src) as zin:
        items = [(i.filename, zin.read(i.filename), i.CRC) for i in zin.infolist()]
    body, central = bytearray(), bytearray()
    for name, data, crc in items:
        name_b = name.encode()
        offset = len(body)
        pad = (-(offset + 30 + len(name_b) + 4)) % 64
        local_extra = struct.pack("<HH", 0xCAFE, pad) + b"\0" * pad   # like torch's alignment padding
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, len(data), len(data),
                            len(name_b), len(local_extra)) + name_b + local_extra + data
        z64 = struct.pack("<HHQQQ", 0x0001, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(name_b), len(z64), 0, 0, 0, 0, 0xFFFFFFFF) + name_b + z64
    cd_offset, cd_size = len(body), len(central)
    z64_end_offset = cd_offset + cd_size
    end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(items), len(items), cd_size, cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, z64_end_offset, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(bytes(body + central + end + locator + eocd))


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = state_dict()
    optimizer = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.full((3, 4), 0.25)}},
        "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "params": [0]}],
    }
    meta = {"acc": np.float32(0.5), "lr": 0.1, "steps": [1, 2, 3], "name": "tiny", "big": 2**40, "neg": -3}
    checkpoint = OrderedDict([("meta", meta), ("state_dict", sd), ("optimizer", optimizer)])

    pth = os.path.join(OUT, "checkpoint.pth")
    torch.save(checkpoint, pth)
    save_file({k: v.detach().contiguous().clone() for k, v in sd.items()},
              os.path.join(OUT, "weights.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected_values(sd), f, indent=0)
    rezip(pth, os.path.join(OUT, "deflated.pth"), zipfile.ZIP_DEFLATED)
    write_zip64(pth, os.path.join(OUT, "zip64.pth"))
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)

    # Self-checks: the hand-made zip64 archive must be readable by torch itself.
    loaded = torch.load(os.path.join(OUT, "zip64.pth"), weights_only=False)
    assert torch.equal(loaded["state_dict"]["w_f32"], sd["w_f32"])
    for name in sorted(os.listdir(OUT)):
        print(f"{name:24s} {os.path.getsize(os.path.join(OUT, name)):6d} bytes")


if __name__ == "__main__":
    main()

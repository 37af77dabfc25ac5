#!/usr/bin/env python3
"""An independent safetensors reader and writer, written from the format's
specification with the Python standard library only (Debian 12 has no Python
`safetensors` package). The tests use it to check that files written by
musicvae read correctly elsewhere, and that files written elsewhere load in
musicvae.

Format: 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON,
an object mapping tensor names to {"dtype", "shape", "data_offsets": [begin,
end]} (offsets relative to the byte after the header) plus an optional
"__metadata__" object of string to string; then the data, little-endian,
row-major. The tensors must tile the data exactly.

  safetensors_ref.py list FILE         -> the same without the values
  safetensors_ref.py read FILE         -> JSON on stdout: {"metadata": {...},
                                          "tensors": {name: {"dtype", "shape", "values"}}}
  safetensors_ref.py write FILE < SPEC -> SPEC is that same JSON shape; dtype
                                          F32, F16 or BF16; tensors written in
                                          sorted name order
"""
import json
import struct
import sys

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I32": 4, "I64": 8, "U8": 1, "I8": 1,
         "I16": 2, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1}


def _bf16_decode(b):
    return [struct.unpack("<f", b"\x00\x00" + b[i:i + 2])[0] for i in range(0, len(b), 2)]


def _bf16_encode(values):
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        if (bits & 0x7FFFFFFF) > 0x7F800000:
            h = (bits >> 16) | 0x40
        else:
            h = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        out += struct.pack("<H", h & 0xFFFF)
    return bytes(out)


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("header length past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError("metadata must map strings to strings")
    spans = []
    tensors = {}
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        count = 1
        for d in shape:
            if not isinstance(d, int) or d < 0:
                raise ValueError("bad shape for %s" % name)
            count *= d
        if end - begin != count * SIZES[dtype] or end > len(data):
            raise ValueError("bad data_offsets for %s" % name)
        spans.append((begin, end, name))
        raw = data[begin:end]
        if dtype == "F32":
            values = list(struct.unpack("<%df" % count, raw))
        elif dtype == "F16":
            values = list(struct.unpack("<%de" % count, raw))
        elif dtype == "BF16":
            values = _bf16_decode(raw)
        else:
            raise ValueError("dtype %s not handled by this reader" % dtype)
        tensors[name] = {"dtype": dtype, "shape": shape, "values": values}
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise ValueError("tensors do not tile the data block at %s" % name)
        at = end
    if at != len(data):
        raise ValueError("bytes after the last tensor")
    return {"metadata": meta, "tensors": tensors}


def write(path, spec):
    header = {}
    chunks = []
    offset = 0
    for name in sorted(spec["tensors"]):
        t = spec["tensors"][name]
        dtype, shape, values = t["dtype"], t["shape"], t["values"]
        if dtype == "F32":
            raw = struct.pack("<%df" % len(values), *values)
        elif dtype == "F16":
            raw = struct.pack("<%de" % len(values), *values)
        elif dtype == "BF16":
            raw = _bf16_encode(values)
        else:
            raise ValueError("cannot write dtype %s" % dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if spec.get("metadata"):
        header["__metadata__"] = spec["metadata"]
    text = json.dumps(header, ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def main(argv):
    if len(argv) == 3 and argv[1] == "read":
        json.dump(read(argv[2]), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if len(argv) == 3 and argv[1] == "list":
        doc = read(argv[2])
        listing = {name: {"dtype": t["dtype"], "shape": t["shape"]} for name, t in doc["tensors"].items()}
        json.dump({"metadata": doc["metadata"], "tensors": listing}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if len(argv) == 3 and argv[1] == "write":
        write(argv[2], json.load(sys.stdin))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (ValueError, KeyError, OSError) as e:
        sys.stderr.write("safetensors_ref: %s\n" % e)
        sys.exit(1)

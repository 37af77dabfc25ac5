#!/usr/bin/env python3
"""The random streams of docs/design.md ("Random numbers"), transcribed from that paragraph with
Python's integers only (standard library, no musicvae code): the source of the golden values in
tests/c/test_rng.c and spec/rng_spec.lua. spec/rng_spec.lua runs it and compares with mv.rng.

  xoshiro256** (state: 4 x 64 bits); a stream is seeded from (seed, purpose, index):
  x = mix(mix(mix(seed) ^ purpose) ^ (index * 0xd1342543de82ef95 + 0x2545f4914f6cdd1d)), mix = one
  SplitMix64 step; the four state words are the next four SplitMix64 outputs from x. purpose is the
  FNV-1a 64 hash of a name. Uniforms take the top 53 bits; normals are Box-Muller on two fresh
  uniforms (u1 = 1 - uniform so the log is finite), no cached spare.

Run: python3 tools/rng_reference.py  -> one JSON object (hex strings for 64-bit words)
"""
import json
import math

M64 = (1 << 64) - 1


def fnv1a64(name):
    h = 0xcbf29ce484222325
    for byte in name.encode():
        h ^= byte
        h = (h * 0x100000001b3) & M64
    return h


class SplitMix64:
    def __init__(self, x):
        self.x = x & M64

    def next(self):
        self.x = (self.x + 0x9e3779b97f4a7c15) & M64
        z = self.x
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
        return z ^ (z >> 31)


def mix(v):
    return SplitMix64(v).next()


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Stream:
    def __init__(self, seed, purpose="default", index=0):
        p = fnv1a64(purpose) if isinstance(purpose, str) else purpose & M64
        x = mix(mix(mix(seed & M64) ^ p) ^ ((index * 0xd1342543de82ef95 + 0x2545f4914f6cdd1d) & M64))
        sm = SplitMix64(x)
        self.s = [sm.next() for _ in range(4)]
        if not any(self.s):
            self.s[0] = 1

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def golden():
    out = {"fnv1a64_z": "0x%016x" % fnv1a64("z")}
    out["first_draw_seed1_default_0"] = "0x%016x" % Stream(1).next()
    r = Stream(42, "z", 3)
    out["uniforms_seed42_z_3"] = [r.uniform() for _ in range(3)]
    r = Stream(7, "vary", 1)
    out["normals_seed7_vary_1"] = [r.normal() for _ in range(4)]
    r = Stream(5, 99, 2)
    out["words_seed5_purpose99_2"] = ["0x%016x" % r.next() for _ in range(3)]
    return out


if __name__ == "__main__":
    print(json.dumps(golden()))

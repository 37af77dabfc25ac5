#!/usr/bin/env python3
"""Writes spec/fixtures/reference-tiny.safetensors: a tiny hierarchical MusicVAE
built independently in PyTorch (float64) in Magenta's layout, with its weights
under Magenta's variable names, inputs, eps, and the expected mu, sigma,
logits, losses and every parameter gradient. The C model must reproduce them.

This does not reuse ../shared/bench/torch_musicvae.py (its LSTM gate order,
biases and loss differ from Magenta's). Magenta's layout, from
../shared/spec/magenta-reference.md §4-5:
  LSTM kernel [in + H, 4H] (rows [x ; h]), bias [4H], gates i, j, f, o,
  c = sigmoid(i) * tanh(j) + sigmoid(f + 1) * c_prev, h = sigmoid(o) * tanh(c);
  bidirectional encoder over the 10-dim roll, output [h_fw(last), h_bw(first)];
  mu = Dense, sigma = softplus(Dense); z = mu + sigma * eps;
  conductor state tanh(Dense(z)) split [c0, h0, c1, h1], input zeros(1);
  each bar: state tanh(Dense(emb)), input [one-hot(previous label), emb], the
  previous label carried across bars (zeros at step 0); logits = Dense(h_top);
  loss = mean_b(sum_t CE) + beta * mean_b(max(KL_b - free_nats, 0)).

Run: /usr/bin/python3 tools/make_reference.py   (needs python3-torch; the tests do not)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_ref  # noqa: E402

torch.manual_seed(20261123)
D = torch.float64
CFG = {"input_depth": 10, "vocab": 512, "z": 4, "bars": 2, "steps": 4,
       "enc": [6], "cond": [5, 4], "dec": [6, 5]}
B = 3
BETA, FREE_NATS = 0.5, 0.1
U, T, V, Z = CFG["bars"], CFG["steps"], CFG["vocab"], CFG["z"]
L = U * T

params = {}


def p(name, *shape, scale=0.3):
    # rounded to float32 first, so the reference is exact for the weights the C model loads
    t = (torch.randn(*shape, dtype=D) * scale).float().double().requires_grad_(True)
    params[name] = t
    return t


def lstm(prefix, n_in, H):
    return (p(prefix + "/lstm_cell/kernel", n_in + H, 4 * H), p(prefix + "/lstm_cell/bias", 4 * H, scale=0.1), H)


def cell(w, x, h, c):
    kernel, bias, H = w
    g = torch.cat([x, h], dim=1) @ kernel + bias
    i, j, f, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
    c = torch.sigmoid(i) * torch.tanh(j) + torch.sigmoid(f + 1.0) * c
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


enc = []
n_in = CFG["input_depth"]
for k, H in enumerate(CFG["enc"]):
    fw = lstm("encoder/cell_%d/bidirectional_rnn/fw/multi_rnn_cell/cell_0" % k, n_in, H)
    bw = lstm("encoder/cell_%d/bidirectional_rnn/bw/multi_rnn_cell/cell_0" % k, n_in, H)
    enc.append((fw, bw))
    n_in = 2 * H
mu_k, mu_b = p("encoder/mu/kernel", n_in, Z), p("encoder/mu/bias", Z, scale=0.1)
sg_k, sg_b = p("encoder/sigma/kernel", n_in, Z), p("encoder/sigma/bias", Z, scale=0.1)
cs = sum(2 * h for h in CFG["cond"])
ci_k, ci_b = p("decoder/hierarchical_level_0/initial_state/kernel", Z, cs), \
    p("decoder/hierarchical_level_0/initial_state/bias", cs, scale=0.1)
cond = []
n_in = 1
for l, H in enumerate(CFG["cond"]):
    cond.append(lstm("decoder/hierarchical_level_0/cell_%d" % l, n_in, H))
    n_in = H
E = CFG["cond"][-1]
ds = sum(2 * h for h in CFG["dec"])
di_k, di_b = p("core_decoder/decoder/z_to_initial_state/kernel", E, ds), \
    p("core_decoder/decoder/z_to_initial_state/bias", ds, scale=0.1)
dec = []
n_in = V + E
for l, H in enumerate(CFG["dec"]):
    dec.append(lstm("core_decoder/decoder/multi_rnn_cell/cell_%d" % l, n_in, H))
    n_in = H
out_k, out_b = p("core_decoder/decoder/output_projection/kernel", n_in, V), \
    p("core_decoder/decoder/output_projection/bias", V, scale=0.1)

labels = torch.randint(0, V, (B, L))
labels[0, 0] = 0
labels[1, 3] = 0
eps = torch.randn(B, Z, dtype=D).float().double()


def split_state(s, sizes):
    out, off = [], 0
    for H in sizes:
        out.append((s[:, off + H:off + 2 * H], s[:, off:off + H]))  # (h, c) from [c, h]
        off += 2 * H
    return out


# encoder
roll = torch.zeros(B, L, 10, dtype=D)
for b in range(B):
    for t in range(L):
        lab = int(labels[b, t])
        for q in range(9):
            roll[b, t, q] = (lab >> q) & 1
        roll[b, t, 9] = 1.0 if lab == 0 else 0.0
x = [roll[:, t] for t in range(L)]
for fw, bw in enc:
    H = fw[2]
    h, c = torch.zeros(B, H, dtype=D), torch.zeros(B, H, dtype=D)
    hf = []
    for t in range(L):
        h, c = cell(fw, x[t], h, c)
        hf.append(h)
    h, c = torch.zeros(B, H, dtype=D), torch.zeros(B, H, dtype=D)
    hb = [None] * L
    for t in reversed(range(L)):
        h, c = cell(bw, x[t], h, c)
        hb[t] = h
    x = [torch.cat([hf[t], hb[t]], dim=1) for t in range(L)]
enc_out = torch.cat([hf[-1], hb[0]], dim=1)
mu = enc_out @ mu_k + mu_b
sigma = torch.nn.functional.softplus(enc_out @ sg_k + sg_b)
z = mu + sigma * eps

# conductor
states = split_state(torch.tanh(z @ ci_k + ci_b), CFG["cond"])
emb = []
for u in range(U):
    xin = torch.zeros(B, 1, dtype=D)
    new = []
    for l, w in enumerate(cond):
        h, c = cell(w, xin, states[l][0], states[l][1])
        new.append((h, c))
        xin = h
    states = new
    emb.append(xin)

# bar decoder, teacher forcing, previous label carried across bars
logits = torch.zeros(B, L, V, dtype=D)
onehot = torch.nn.functional.one_hot(labels, V).to(D)
logit_list = []
for u in range(U):
    st = split_state(torch.tanh(emb[u] @ di_k + di_b), CFG["dec"])
    for t in range(T):
        s = u * T + t
        prev = onehot[:, s - 1] if s > 0 else torch.zeros(B, V, dtype=D)
        xin = torch.cat([prev, emb[u]], dim=1)
        new = []
        for l, w in enumerate(dec):
            h, c = cell(w, xin, st[l][0], st[l][1])
            new.append((h, c))
            xin = h
        st = new
        logit_list.append(xin @ out_k + out_b)
logits = torch.stack(logit_list, dim=1)  # [B, L, V]
ce = torch.nn.functional.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), reduction="none").reshape(B, L)
recon = ce.sum(dim=1)
kl = (-torch.log(sigma) + 0.5 * (sigma ** 2 + mu ** 2) - 0.5).sum(dim=1)
kl_cost = torch.clamp(kl - FREE_NATS, min=0.0)
loss = recon.mean() + BETA * kl_cost.mean()
loss.backward()
accuracy = (logits.argmax(dim=-1) == labels).double().mean()


def entry(t):
    t = t.detach().double()
    return {"dtype": "F32", "shape": list(t.shape) if t.dim() else [1], "values": t.reshape(-1).tolist()}


out = {"metadata": {"config": json.dumps(CFG), "batch": str(B), "beta": repr(BETA), "free_nats": repr(FREE_NATS),
                    "made_by": "tools/make_reference.py (PyTorch %s, float64)" % torch.__version__},
       "tensors": {}}
for name, t in params.items():
    out["tensors"]["param/" + name] = entry(t)
    out["tensors"]["grad/" + name] = entry(t.grad)
out["tensors"]["input/labels"] = entry(labels.double())
out["tensors"]["input/eps"] = entry(eps)
for name, t in [("mu", mu), ("sigma", sigma), ("logits", logits), ("recon", recon), ("kl", kl),
                ("loss", loss.reshape(1)), ("accuracy", accuracy.reshape(1))]:
    out["tensors"]["expected/" + name] = entry(t)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "reference-tiny.safetensors")
safetensors_ref.write(path, out)
print("wrote %s: loss %.6f, recon %s, kl %s" % (path, loss.item(), recon.tolist(), kl.tolist()))

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

Also a scheduled-sampling step of the same model (reference-tiny-sampling) and a tiny GrooVAE with
its flat decoder and loss (reference-groove-tiny); see sections 2 and 3 below.

Run: /usr/bin/python3 tools/make_reference.py [OUTDIR]   (needs python3-torch; the fast tier does not;
OUTDIR defaults to spec/fixtures; the full tier regenerates into a temporary folder and compares)
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


def draw_from(probs, u):
    """mv_vae.c's draw_from: the first class whose running sum of probabilities exceeds u."""
    acc, last = 0.0, 0
    for k, q in enumerate(probs.tolist()):
        if q <= 0:
            continue
        last = k
        acc += q
        if u < acc:
            return k
    return last


def forward(p_sample=0.0, coins=None, draws=None):
    """The categorical model's training forward. With p_sample > 0, Magenta's scheduled sampling per
    bar: the input of step t > 0 of bar u is drawn from softmax(previous logits) with the uniform
    draws[b, u, t] where coins[b, u, t] < p_sample, else the true previous label (the first input of
    every bar is always the true one). Returns the tensors and the decoder's input labels (-1 = zeros)."""
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

    # bar decoder, teacher forcing (or scheduled sampling), previous label carried across bars
    onehot = torch.nn.functional.one_hot(labels, V).to(D)
    inputs = torch.full((B, L), -1.0, dtype=D)
    logit_list = []
    for u in range(U):
        st = split_state(torch.tanh(emb[u] @ di_k + di_b), CFG["dec"])
        for t in range(T):
            s = u * T + t
            prev = onehot[:, s - 1] if s > 0 else torch.zeros(B, V, dtype=D)
            if s > 0:
                inputs[:, s] = labels[:, s - 1].to(D)
            if t > 0 and p_sample > 0:
                probs = torch.softmax(logit_list[-1].detach(), dim=1)
                rows = []
                for b in range(B):
                    if float(coins[b, u, t]) < p_sample:
                        k = draw_from(probs[b], float(draws[b, u, t]))
                        inputs[b, s] = k
                        rows.append(torch.nn.functional.one_hot(torch.tensor(k), V).to(D))
                    else:
                        rows.append(prev[b])
                prev = torch.stack(rows)
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
    accuracy = (logits.argmax(dim=-1) == labels).double().mean()
    return mu, sigma, logits, recon, kl, loss, accuracy, inputs


mu, sigma, logits, recon, kl, loss, accuracy, _ = forward()
loss.backward()


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
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else \
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures")
path = os.path.join(FIXTURES, "reference-tiny.safetensors")
safetensors_ref.write(path, out)
print("wrote %s: loss %.6f, recon %s, kl %s" % (path, loss.item(), recon.tolist(), kl.tolist()))


# ---- 2. a scheduled-sampling step: the same model and labels, p_sample = 0.5, explicit coins and draws
#      -> spec/fixtures/reference-tiny-sampling.safetensors (inputs the decoder read, logits, losses, gradients)
torch.manual_seed(20261202)
P_SAMPLE = 0.5
coins = torch.rand(B, U, T, dtype=D).float().double()
draws = torch.rand(B, U, T, dtype=D).float().double()
for t in params.values():
    t.grad = None
mu, sigma, logits, recon, kl, loss, accuracy, inputs = forward(P_SAMPLE, coins, draws)
loss.backward()
sampled = int(((inputs != -1) & (inputs != torch.cat([torch.full((B, 1), -1.0, dtype=D), labels[:, :-1].to(D)],
                                                      dim=1))).sum())
out = {"metadata": {"config": json.dumps(CFG), "batch": str(B), "beta": repr(BETA), "free_nats": repr(FREE_NATS),
                    "p_sample": repr(P_SAMPLE),
                    "made_by": "tools/make_reference.py (PyTorch %s, float64)" % torch.__version__},
       "tensors": {}}
for name, t in params.items():
    out["tensors"]["param/" + name] = entry(t)
    out["tensors"]["grad/" + name] = entry(t.grad)
for name, t in [("labels", labels.double()), ("eps", eps), ("coins", coins), ("draws", draws)]:
    out["tensors"]["input/" + name] = entry(t)
for name, t in [("inputs", inputs), ("mu", mu), ("sigma", sigma), ("logits", logits), ("recon", recon), ("kl", kl),
                ("loss", loss.reshape(1)), ("accuracy", accuracy.reshape(1))]:
    out["tensors"]["expected/" + name] = entry(t)
path = os.path.join(FIXTURES, "reference-tiny-sampling.safetensors")
safetensors_ref.write(path, out)
print("wrote %s: loss %.6f, %d inputs drawn from the model" % (path, loss.item(), sampled))

# ---- 3. a tiny GrooVAE (magenta's groovae_4bar layout): the encoder above over 27 floats per step
#      [hits | velocities | offsets], a flat decoder LSTM stack from tanh(Dense(z)) with input
#      [previous target step (zeros at step 0), z], outputs sigmoid hits, sigmoid velocities, tanh offsets;
#      loss per sequence = sum over steps and classes of the hits' cross-entropy (probabilities + 1e-7
#      inside the logs) plus the squared errors of velocities and offsets; + beta * mean(max(KL - free, 0)).
#      -> spec/fixtures/reference-groove-tiny.safetensors
torch.manual_seed(20261203)
GCFG = {"groove": True, "input_depth": 27, "vocab": 27, "z": 4, "bars": 2, "steps": 4, "enc": [6], "dec": [6, 5]}
C = 9
GV, GZ = GCFG["vocab"], GCFG["z"]
params = {}
genc = []
n_in = GCFG["input_depth"]
for k, H in enumerate(GCFG["enc"]):
    fw = lstm("encoder/cell_%d/bidirectional_rnn/fw/multi_rnn_cell/cell_0" % k, n_in, H)
    bw = lstm("encoder/cell_%d/bidirectional_rnn/bw/multi_rnn_cell/cell_0" % k, n_in, H)
    genc.append((fw, bw))
    n_in = 2 * H
gmu_k, gmu_b = p("encoder/mu/kernel", n_in, GZ), p("encoder/mu/bias", GZ, scale=0.1)
gsg_k, gsg_b = p("encoder/sigma/kernel", n_in, GZ), p("encoder/sigma/bias", GZ, scale=0.1)
gds = sum(2 * h for h in GCFG["dec"])
gdi_k, gdi_b = p("decoder/z_to_initial_state/kernel", GZ, gds), p("decoder/z_to_initial_state/bias", gds, scale=0.1)
gdec = []
n_in = GV + GZ
for l, H in enumerate(GCFG["dec"]):
    gdec.append(lstm("decoder/multi_rnn_cell/cell_%d" % l, n_in, H))
    n_in = H
gout_k, gout_b = p("decoder/output_projection/kernel", n_in, GV), p("decoder/output_projection/bias", GV, scale=0.1)

hits = (torch.rand(B, L, C, dtype=D) < 0.35).to(D)
target = torch.cat([hits, hits * torch.rand(B, L, C, dtype=D).float().double(),
                    hits * (torch.rand(B, L, C, dtype=D) - 0.5).float().double()], dim=2)  # [B, L, 27]
gx = target.clone()
gx[:, :, C:] = 0  # the encoder reads the hits only (humanize's input)
geps = torch.randn(B, GZ, dtype=D).float().double()

x = [gx[:, t] for t in range(L)]
for fw, bw in genc:
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
genc_out = torch.cat([hf[-1], hb[0]], dim=1)
gmu = genc_out @ gmu_k + gmu_b
gsigma = torch.nn.functional.softplus(genc_out @ gsg_k + gsg_b)
gz = gmu + gsigma * geps
st = split_state(torch.tanh(gz @ gdi_k + gdi_b), GCFG["dec"])
outs = []
for t in range(L):
    prev = target[:, t - 1] if t > 0 else torch.zeros(B, GV, dtype=D)
    xin = torch.cat([prev, gz], dim=1)
    new = []
    for l, w in enumerate(gdec):
        h, c = cell(w, xin, st[l][0], st[l][1])
        new.append((h, c))
        xin = h
    st = new
    lg = xin @ gout_k + gout_b
    outs.append(torch.cat([torch.sigmoid(lg[:, :C]), torch.sigmoid(lg[:, C:2 * C]), torch.tanh(lg[:, 2 * C:])], dim=1))
gouts = torch.stack(outs, dim=1)  # [B, L, 27]
hp, vel, off = gouts[:, :, :C], gouts[:, :, C:2 * C], gouts[:, :, 2 * C:]
th, tv, to = target[:, :, :C], target[:, :, C:2 * C], target[:, :, 2 * C:]
E7 = 1e-7
cell_loss = -th * torch.log(hp + E7) - (1 - th) * torch.log(1 - hp + E7) + (tv - vel) ** 2 + (to - off) ** 2
grecon = cell_loss.sum(dim=(1, 2))
gkl = (-torch.log(gsigma) + 0.5 * (gsigma ** 2 + gmu ** 2) - 0.5).sum(dim=1)
gloss = grecon.mean() + BETA * torch.clamp(gkl - FREE_NATS, min=0.0).mean()
gloss.backward()
gaccuracy = ((hp > 0.5) == (th > 0.5)).double().mean()
out = {"metadata": {"config": json.dumps(GCFG), "batch": str(B), "beta": repr(BETA), "free_nats": repr(FREE_NATS),
                    "made_by": "tools/make_reference.py (PyTorch %s, float64)" % torch.__version__},
       "tensors": {}}
for name, t in params.items():
    out["tensors"]["param/" + name] = entry(t)
    out["tensors"]["grad/" + name] = entry(t.grad)
for name, t in [("x", gx), ("target", target), ("eps", geps)]:
    out["tensors"]["input/" + name] = entry(t)
for name, t in [("mu", gmu), ("sigma", gsigma), ("outputs", gouts), ("recon", grecon), ("kl", gkl),
                ("loss", gloss.reshape(1)), ("accuracy", gaccuracy.reshape(1))]:
    out["tensors"]["expected/" + name] = entry(t)
path = os.path.join(FIXTURES, "reference-groove-tiny.safetensors")
safetensors_ref.write(path, out)
print("wrote %s: loss %.6f, recon %s, kl %s" % (path, gloss.item(), grecon.tolist(), gkl.tolist()))

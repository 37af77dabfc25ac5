-- Audio: FluidSynth renders patterns and MIDI files, libsndfile writes them (issue 21).
-- The analysis (onsets, spectral centroid) is written here, independent of the renderer.
local H = require "spec.helpers"
local mv = require "musicvae"
local json = require "musicvae.json"

local RATE = 44100
local available, why = mv.audio.available()
local soundfont, sf_err = mv.audio.find_soundfont()
if available and not soundfont then available, why = false, sf_err end
if available then
  local f = io.open(soundfont, "rb")
  if f then f:close() else available, why = false, soundfont .. " is missing (apt-get install fluid-soundfont-gm)" end
end

local function skip() pending("audio not available: " .. tostring(why)) end

-- samples [frames, 2] -> mono Lua array
local function mono(x)
  local d = x:tobytes()
  local out, n = {}, 0
  for i = 1, #d, 8 do
    local l, r = string.unpack("<ff", d, i)
    n = n + 1
    out[n] = 0.5 * (l + r)
  end
  return out
end

local function peak(x)
  local d, m = x:tobytes(), 0
  for i = 1, #d, 4 do
    local v = math.abs((string.unpack("<f", d, i)))
    if v > m then m = v end
  end
  return m
end

-- Energy-envelope onset detector: mean energy of the first difference (a pre-emphasis that
-- keeps a ringing kick from masking the hat after it) in 32-frame hops; an onset is a hop whose
-- energy is over 4 x the loudest hop of the previous 20 ms (a maximum, not a mean: low cycles
-- make short-hop energy swing) and over an absolute floor, at least 30 ms after the last onset.
-- Its time is the hop's start.
local function onsets(y, rate)
  local hop = 32
  local e = {}
  for k = 0, #y // hop - 1 do
    local s = 0
    for i = k * hop + 1, (k + 1) * hop do
      local d = y[i] - (y[i - 1] or 0)
      s = s + d * d
    end
    e[k + 1] = s / hop
  end
  local back = math.max(1, math.floor(0.020 * rate / hop + 0.5))
  local out, last = {}, -math.huge
  for k = 1, #e do
    local m = 0
    for j = math.max(1, k - back), k - 1 do m = math.max(m, e[j]) end
    local t = (k - 1) * hop / rate
    if e[k] > 1e-7 and e[k] > 4 * m + 1e-9 and t - last >= 0.030 then
      out[#out + 1] = t
      last = t
    end
  end
  return out
end

local function distinct(times)
  table.sort(times)
  local out = {}
  for _, t in ipairs(times) do
    if #out == 0 or t - out[#out] > 0.001 then out[#out + 1] = t end
  end
  return out
end

-- share of the expected times that have a detected onset within tol seconds
local function matched(expected, found, tol)
  local hit = 0
  for _, t in ipairs(expected) do
    for _, f in ipairs(found) do
      if math.abs(f - t) <= tol then
        hit = hit + 1
        break
      end
    end
  end
  return hit / #expected
end

local function nearest(found, t)
  local best
  for _, f in ipairs(found) do
    if not best or math.abs(f - t) < math.abs(best - t) then best = f end
  end
  return best
end

-- hit times of a pattern (seconds), as the conventions define them
local function pattern_times(p)
  local step = 60 / p.qpm / (p.steps_per_bar / 4)
  local t = {}
  for s, l in ipairs(p.labels) do
    for c = 1, 9 do
      if l & (1 << (c - 1)) ~= 0 then
        local o = p.offsets and p.offsets[s] and p.offsets[s][c] or 0
        t[#t + 1] = math.max(0, (s - 1 - o) * step)
      end
    end
  end
  return t
end

-- magnitude-weighted mean frequency over the loud 4096-frame windows (radix-2 FFT, Hann window)
local function fft(re, im)
  local n = #re
  local j = 1
  for i = 1, n do
    if i < j then re[i], re[j], im[i], im[j] = re[j], re[i], im[j], im[i] end
    local m = n // 2
    while m >= 1 and j > m do
      j = j - m
      m = m // 2
    end
    j = j + m
  end
  local len = 2
  while len <= n do
    local ang = -2 * math.pi / len
    for i = 1, n, len do
      for k = 0, len // 2 - 1 do
        local wr, wi = math.cos(ang * k), math.sin(ang * k)
        local a, b = i + k, i + k + len // 2
        local xr, xi = re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr
        re[b], im[b] = re[a] - xr, im[a] - xi
        re[a], im[a] = re[a] + xr, im[a] + xi
      end
    end
    len = len * 2
  end
end

local function centroid(y, rate)
  local n = 4096
  local num, den = 0, 0
  for start = 0, #y - n, n do
    local re, im, energy = {}, {}, 0
    for i = 1, n do
      local w = 0.5 - 0.5 * math.cos(2 * math.pi * (i - 1) / (n - 1))
      re[i], im[i] = y[start + i] * w, 0
      energy = energy + y[start + i] ^ 2
    end
    if energy / n > 1e-6 then
      fft(re, im)
      for k = 2, n // 2 do
        local mag = math.sqrt(re[k] ^ 2 + im[k] ^ 2)
        num = num + (k - 1) * rate / n * mag
        den = den + mag
      end
    end
  end
  return den > 0 and num / den or 0
end

local function one_class(c, every)
  local labels = {}
  for s = 1, 64 do labels[s] = (s - 1) % every == 0 and (1 << (c - 1)) or 0 end
  return mv.pattern { labels = labels, qpm = 120 }
end

local function rock()
  local labels = {}
  for s = 1, 64 do
    local l = 4 -- closed hat on every 16th
    if (s - 1) % 8 == 0 then l = l | 1 end
    if (s - 1) % 8 == 4 then l = l | 2 end
    if s % 16 == 15 then l = l | 1 end
    labels[s] = l
  end
  return mv.pattern { labels = labels, qpm = 120 }
end

describe("audio rendering (FluidSynth)", function()
  it("a 4-bar pattern at 120 qpm lasts 8 s plus the documented tail", function()
    if not available then return skip() end
    local p = rock()
    local x, info = assert(mv.audio.render(p, { rate = RATE }))
    assert.equal(2, x:size(2))
    assert.equal(8.0, info.length)
    assert.equal(mv.audio.TAIL, info.tail)
    local want = (8 + mv.audio.TAIL) * RATE
    assert.is_true(math.abs(x:size(1) - want) <= 64, ("%d frames, want %d"):format(x:size(1), want))
    x = assert(mv.audio.render(p, { rate = RATE, tail = 0 }))
    assert.is_true(math.abs(x:size(1) - 8 * RATE) <= 64)
    x = assert(mv.audio.render(p, { rate = 22050, loops = 3, tail = 0.5 }))
    assert.is_true(math.abs(x:size(1) - 24.5 * 22050) <= 64)
    -- the tail fades to silence; the body is not silent
    local y = mono(x)
    assert.is_true(math.abs(y[#y]) < 1e-3)
    assert.is_true(peak(x) > 0.05)
  end)

  it("onsets in the audio match the note times within 5 ms (pattern, MIDI file, model sample)", function()
    if not available then return skip() end
    local cases = {}
    local p = rock()
    cases[#cases + 1] = { "rock pattern", p, distinct(pattern_times(p)) }
    local path = H.root .. "/spec/fixtures/midi/rock-8bars-120.mid"
    local song = assert(mv.midi.read(path))
    local t = {}
    for _, n in ipairs(song.notes) do t[#t + 1] = n.on_time end
    cases[#cases + 1] = { "rock-8bars-120.mid", path, distinct(t) }
    local model = mv.load()
    if model then
      local s = model:sample { n = 1, seed = 3, temperature = 0.5 }[1]
      cases[#cases + 1] = { "sampled pattern", s, distinct(pattern_times(s)) }
    end
    for _, c in ipairs(cases) do
      local x = assert(mv.audio.render(c[2], { rate = RATE, tail = 0.5 }))
      local found = onsets(mono(x), RATE)
      local share = matched(c[3], found, 0.005)
      assert.is_true(share >= 0.95, ("%s: %.1f%% of %d hit times found"):format(c[1], 100 * share, #c[3]))
      -- and the detector does not just fire everywhere
      assert.is_true(#found <= 1.1 * #c[3] + 1, ("%s: %d onsets for %d hit times"):format(c[1], #found, #c[3]))
    end
  end)

  it("a humanized pattern's onsets move with its offsets and velocities are heard", function()
    if not available then return skip() end
    local labels, offsets, loud, soft = {}, {}, {}, {}
    local shifts = { 0.3, -0.3, 0.15, -0.2, 0.25, -0.1, 0.0, 0.2 }
    for s = 1, 64 do
      labels[s] = 0
      if (s - 1) % 8 == 0 then
        labels[s] = 2 -- snare every half note
        offsets[s] = { [2] = shifts[(s - 1) // 8 + 1] }
        loud[s], soft[s] = { [2] = 120 }, { [2] = 30 }
      end
    end
    local flat = mv.pattern { labels = labels, qpm = 120 }
    local human = mv.pattern { labels = labels, qpm = 120, offsets = offsets, velocities = loud }
    local fa = onsets(mono(assert(mv.audio.render(flat, { rate = RATE }))), RATE)
    local fb = onsets(mono(assert(mv.audio.render(human, { rate = RATE }))), RATE)
    local step = 60 / 120 / 4
    for k, sh in ipairs(shifts) do
      local t0 = (k - 1) * 8 * step
      local a, b = nearest(fa, t0), nearest(fb, math.max(0, t0 - sh * step))
      local moved = b - a
      assert.is_true(math.abs(moved - math.max(-t0, -sh * step)) <= 0.003,
        ("hit %d: moved %.4f s, offset %.2f steps = %.4f s"):format(k, moved, sh, -sh * step))
    end
    local pl = peak(assert(mv.audio.render(human, { rate = RATE })))
    local ps = peak(assert(mv.audio.render(mv.pattern { labels = labels, qpm = 120, offsets = offsets,
      velocities = soft }, { rate = RATE })))
    assert.is_true(pl > 2 * ps, ("velocity 120 peaks at %.3f, velocity 30 at %.3f"):format(pl, ps))
  end)

  it("a kick has a lower spectral centroid than a closed hi-hat", function()
    if not available then return skip() end
    local kick = centroid(mono(assert(mv.audio.render(one_class(1, 4), { rate = RATE, tail = 0 }))), RATE)
    local hat = centroid(mono(assert(mv.audio.render(one_class(3, 4), { rate = RATE, tail = 0 }))), RATE)
    assert.is_true(kick > 0 and hat > 0)
    assert.is_true(kick * 2 < hat, ("kick %.0f Hz, closed hat %.0f Hz"):format(kick, hat))
  end)

  it("silence in, silence out; renders repeat exactly; other channels are left out and counted", function()
    if not available then return skip() end
    local labels = {}
    for s = 1, 64 do labels[s] = 0 end
    local x = assert(mv.audio.render(mv.pattern { labels = labels }, { rate = RATE }))
    assert.equal(0, peak(x))
    -- nothing rings on from an earlier render (crashes every beat, then silence)
    assert(mv.audio.render(one_class(8, 4), { rate = RATE, tail = 0 }))
    assert.equal(0, peak(assert(mv.audio.render(mv.pattern { labels = labels }, { rate = RATE }))))
    -- a synth reused repeats a render (its voices keep a little DSP state: not to the bit)
    local p = rock()
    local a = mono(assert(mv.audio.render(p, { rate = RATE })))
    local b = mono(assert(mv.audio.render(p, { rate = RATE })))
    local d, top = 0, 0
    for i = 1, #a do
      d = math.max(d, math.abs(a[i] - b[i]))
      top = math.max(top, math.abs(a[i]))
    end
    assert.is_true(d < 0.1 * top, ("two renders differ by %g (peak %g)"):format(d, top))
    -- a MIDI file with only a piano part: silent, and the notes are counted as left out
    local dir = H.tmpdir()
    local f = dir .. "/piano.mid"
    assert(mv.core.midi_write(f, { { tick = 0, dur = 480, pitch = 60, velocity = 90 },
      { tick = 960, dur = 480, pitch = 64, velocity = 90 } }, { ppq = 480, qpm = 120, channel = 0, name = "Piano" }))
    local y, info = assert(mv.audio.render(f, { rate = RATE }))
    assert.equal(0, peak(y))
    assert.equal(2, info.left_out)
    y, info = assert(mv.audio.render(f, { rate = RATE, drum_channel = "all" }))
    assert.is_true(peak(y) > 0.01)
    assert.equal(0, info.left_out)
    local out, err, code = H.cli("render " .. H.shell_quote(f) .. " -o " .. H.shell_quote(dir .. "/p.wav"))
    assert.equal(0, code, err)
    assert.matches("2 notes on channels other than 10 left out", out)
    H.rmtree(dir)
  end)

  it("a missing or corrupt SoundFont and an unwritable output give one-line errors", function()
    if not available then return skip() end
    local dir = H.tmpdir()
    local bad = dir .. "/bad.sf2"
    H.writefile(bad, ("not a soundfont "):rep(64))
    local trunc = dir .. "/trunc.sf2"
    local f = assert(io.open(soundfont, "rb"))
    H.writefile(trunc, f:read(100000))
    f:close()
    local p = rock()
    for _, sf in ipairs { dir .. "/missing.sf2", bad, trunc, dir } do
      local x, err = mv.audio.render(p, { soundfont = sf })
      assert.is_nil(x)
      assert.is_string(err)
      assert.is_nil(err:find("\n"), err)
      assert.truthy(err:find(sf, 1, true), err)
    end
    local x = assert(mv.audio.render(p, { tail = 0 }))
    local ok, err = mv.audio.write(dir .. "/no/such/dir/x.wav", x, RATE)
    assert.is_nil(ok)
    assert.matches("cannot write", err)
    ok, err = mv.audio.write(dir .. "/x.mp9", x, RATE)
    assert.is_nil(ok)
    assert.matches("unknown audio format", err)
    assert.has_error(function() mv.audio.render(p, { loops = 0 }) end)
    assert.has_error(function() mv.audio.write(dir .. "/x.wav", "samples", RATE) end)
    -- the CLI: one line, status 1
    local mid = dir .. "/rock.mid"
    assert(mv.midi.write(mid, p))
    local cases = {
      { "--soundfont " .. H.shell_quote(bad) .. " -o " .. H.shell_quote(dir .. "/a.wav"), "not a SoundFont" },
      { "-o " .. H.shell_quote(dir .. "/b.wav"), "No such file", { MUSICVAE_SOUNDFONT = dir .. "/missing.sf2" } },
      { "-o " .. H.shell_quote(dir .. "/no/dir/c.wav"), "cannot write" },
    }
    for _, c in ipairs(cases) do
      local out, e, code = H.cli("render " .. H.shell_quote(mid) .. " " .. c[1], c[3])
      assert.equal(1, code, out .. e)
      assert.matches("^musicvae: [^\n]*" .. c[2] .. "[^\n]*\n$", e)
    end
    local _, e, code = H.cli("render " .. H.shell_quote(mid) .. " -o " .. H.shell_quote(dir .. "/d.mp3"))
    assert.equal(2, code)
    assert.matches("^musicvae: [^\n]*%.wav, %.flac or %.ogg\n$", e)
    H.rmtree(dir)
  end)

  it("sox reads every format written, with the samples that were rendered", function()
    if not available then return skip() end
    if not H.have("sox") then return pending("sox is not installed (apt-get install sox)") end
    local dir = H.tmpdir()
    local labels = {}
    for s = 1, 16 do labels[s] = (s % 4 == 1) and 5 or 4 end
    local x = assert(mv.audio.render(mv.pattern { labels = labels }, { rate = RATE, tail = 0.2 }))
    local want = x:tobytes()
    for _, c in ipairs { { "a.wav", 16, 1e-4 }, { "b.wav", 24, 1e-6 }, { "c.wav", 32, 0 }, { "d.flac", 16, 1e-4 },
      { "e.flac", 24, 1e-6 }, { "f.ogg", 16, nil } } do
      local path = dir .. "/" .. c[1]
      assert(mv.audio.write(path, x, RATE, { bits = c[2] }))
      local out, err, code = H.run("sox --i " .. H.shell_quote(path))
      assert.equal(0, code, err)
      assert.matches("Channels%s*: 2", out)
      assert.matches("Sample Rate%s*: 44100", out)
      local raw
      raw, err, code = H.run("sox " .. H.shell_quote(path) .. " -t raw -e floating-point -b 32 -L -")
      assert.equal(0, code, err)
      assert.equal(#want, #raw, c[1] .. ": frame count differs")
      if c[3] then
        local m = 0
        for i = 1, #want, 4 do
          m = math.max(m, math.abs(string.unpack("<f", want, i) - string.unpack("<f", raw, i)))
        end
        assert.is_true(m <= c[3] + 2 ^ -15, ("%s: max difference %g"):format(c[1], m))
      else -- lossy: the energy is about the same
        local ea, eb = 0, 0
        for i = 1, #want, 4 do
          ea = ea + string.unpack("<f", want, i) ^ 2
          eb = eb + string.unpack("<f", raw, i) ^ 2
        end
        assert.is_true(eb > 0.8 * ea and eb < 1.25 * ea, ("%s: energy %g vs %g"):format(c[1], eb, ea))
      end
    end
    H.rmtree(dir)
  end)

  it("bench/bench.lua --only audio reports rendering and SoundFont loading apart", function()
    if not available then return skip() end
    local out, err, code = H.run("cd " .. H.shell_quote(H.root) .. " && lua5.4 bench/bench.lua --only audio --steps 1",
      { MUSICVAE_BUILD = H.build_dir() })
    assert.equal(0, code, err)
    local seen = {}
    for line in out:gmatch("[^\n]+") do
      local r = assert(json.decode(line), line)
      seen[r.what] = r
    end
    assert.is_true(seen.soundfont_load.median_s > 0)
    assert.is_true(seen.render_4bar.median_s > 0)
    assert.near(8 / seen.render_4bar.median_s, seen.render_4bar.extra.realtime_factor, 1e-6)
  end)

  it("--wav writes a playable .wav beside each .mid; doctor shows the SoundFont", function()
    if not available then return skip() end
    local dir = H.tmpdir()
    local out, err, code = H.cli("sample -n 2 --seed 1 --wav -q -o " .. H.shell_quote(dir))
    assert.equal(0, code, err)
    for i = 1, 2 do
      local stem = ("%s/sample-s1-t0.5-%03d"):format(dir, i)
      assert.truthy(io.open(stem .. ".mid"), stem .. ".mid")
      local f = io.open(stem .. ".wav", "rb")
      assert.truthy(f, stem .. ".wav")
      assert.equal("RIFF", f:read(4))
      f:close()
      assert.matches(stem .. ".wav", out, 1, true)
    end
    -- not overwritten without --force
    out, err, code = H.cli("sample -n 1 --seed 1 --wav -q -o " .. H.shell_quote(dir))
    assert.equal(1, code)
    out, err, code = H.cli("doctor --json --size 32 --seconds 0.05")
    assert.equal(0, code, err)
    local r = assert(json.decode(out:match("[^\n]*\n?$")))
    assert.equal(soundfont, r.soundfont)
    out = H.cli("doctor --size 32 --seconds 0.05", { MUSICVAE_SOUNDFONT = dir .. "/nope.sf2" })
    assert.truthy(out:find("SoundFont   " .. dir .. "/nope.sf2 (MUSICVAE_SOUNDFONT; ", 1, true), out)
    H.rmtree(dir)
  end)
end)

--- Schedules: plain functions of the training step, chosen by name with
-- parameters from the config (a user may pass a function instead).
local S = {}

--- KL weight beta(step).
S.beta = {
  constant = function(c) return function() return c.max_beta end end,
  -- magenta: (1 - rate^step) * max_beta (rate 0: 0 at step 0, max_beta after)
  magenta = function(c)
    return function(step) return (1 - (c.beta_rate or 0) ^ step) * c.max_beta end
  end,
  linear = function(c)
    local n = c.beta_warmup_steps or 10000
    return function(step) return c.max_beta * math.min(1, step / n) end
  end,
  -- Fu et al. 2019: n cycles over total steps; in each, a linear rise over `ratio` of it, then flat
  cyclical = function(c)
    local total, cycles, ratio = c.beta_total_steps or 100000, c.beta_cycles or 4, c.beta_ratio or 0.5
    local period = total / cycles
    return function(step)
      local pos = (step % period) / period
      return c.max_beta * math.min(1, pos / ratio)
    end
  end,
  sigmoid = function(c)
    local mid, width = c.beta_midpoint or 5000, c.beta_width or 1000
    return function(step) return c.max_beta / (1 + math.exp(-(step - mid) / width)) end
  end,
}

--- Scheduled-sampling probability p(step).
S.sampling = {
  none = function() return function() return 0 end end,
  constant = function(c) return function() return c.sampling_rate end end,
  -- magenta: 1 - k / (k + exp(step / k))
  inverse_sigmoid = function(c)
    local k = c.sampling_rate
    return function(step) return 1 - k / (k + math.exp(math.min(step / k, 700))) end
  end,
  -- magenta: 1 - k^step
  exponential = function(c)
    return function(step) return 1 - c.sampling_rate ^ step end
  end,
  linear = function(c)
    local n, top = c.sampling_steps or 20000, c.sampling_max or 0.5
    return function(step) return top * math.min(1, step / n) end
  end,
}

--- Learning rate lr(step).
S.lr = {
  constant = function(c) return function() return c.learning_rate end end,
  -- magenta: (lr - min) * decay^step + min
  magenta = function(c)
    return function(step)
      return (c.learning_rate - c.min_learning_rate) * c.decay_rate ^ step + c.min_learning_rate
    end
  end,
  cosine = function(c)
    local warm, total, min = c.warmup_steps or 1000, c.total_steps or 100000, c.min_learning_rate or 0
    return function(step)
      if step < warm then return c.learning_rate * (step + 1) / warm end
      local t = math.min(1, (step - warm) / math.max(1, total - warm))
      return min + (c.learning_rate - min) * 0.5 * (1 + math.cos(math.pi * t))
    end
  end,
}

local function pick(kind, table_, spec, cfg)
  if type(spec) == "function" then return spec end
  local make = table_[spec or ""]
  if not make then
    local names = {}
    for k in pairs(table_) do names[#names + 1] = k end
    table.sort(names)
    error(("unknown %s schedule '%s' (one of: %s)"):format(kind, tostring(spec), table.concat(names, ", ")), 3)
  end
  return make(cfg)
end

--- S.from_config(cfg) -> {beta = f, sampling = f, lr = f}
function S.from_config(cfg)
  return {
    beta = pick("beta", S.beta, cfg.beta_schedule, cfg),
    sampling = pick("sampling", S.sampling, cfg.sampling_schedule, cfg),
    lr = pick("lr", S.lr, cfg.lr_schedule, cfg),
  }
end

return S

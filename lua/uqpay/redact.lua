-- Redaction of secrets: tokens, API keys, client ids, card numbers (all but
-- the last four digits) and CVVs. R.text is for --trace and error bodies;
-- the REPL printer uses SECRET_KEYS and mask_pans field by field.
local R = {}


local SECRET_KEYS = {
  auth_token = true, token = true, api_key = true, ["x-api-key"] = true, ["x-auth-token"] = true,
  ["x-client-id"] = true, client_id = true, cvv = true, cvc = true, cvv2 = true, pin = true,
  activation_code = true, secret = true, webhook_secret = true, password = true,
}
R.SECRET_KEYS = SECRET_KEYS

-- What never reaches a file: the secrets and all card data.
local KEPT_OUT = { card_number = true, pan = true, new_pin = true, old_pin = true, expiry_date = true,
                   expire_date = true }
for k in pairs(SECRET_KEYS) do KEPT_OUT[k] = true end

-- Redacts decoded data by structure: a copy in which every field named like
-- a secret holds "[REDACTED]"; the value itself when nothing needed it.
-- Returns the value and whether anything was redacted.
function R.value(v, seen)
  local mt = getmetatable(v)
  if type(v) ~= "table" or (mt and mt ~= require("uqpay.core").json_array_mt()) then return v, false end
  seen = seen or {}
  if seen[v] then return v, false end
  seen[v] = true
  local out, changed = nil, false
  for k, x in pairs(v) do
    local nx, c = x, false
    if type(k) == "string" and KEPT_OUT[k:lower()] and x ~= nil then
      nx, c = "[REDACTED]", true
    else
      nx, c = R.value(x, seen)
    end
    if c then
      if not out then
        out = setmetatable({}, getmetatable(v))
        for k2, x2 in pairs(v) do out[k2] = x2 end
      end
      out[k], changed = nx, true
    end
  end
  return out or v, changed
end

local function mask_pan(digits)
  return string.rep("*", #digits - 4) .. digits:sub(-4)
end

-- Masks 12-19 digit runs (card numbers) keeping the last four.
function R.mask_pans(s)
  return (s:gsub("%f[%d]%d%d%d%d%d%d%d%d%d%d%d%d+%f[%D]", function(d)
    if #d >= 12 and #d <= 19 then return mask_pan(d) end
  end))
end

-- Redacts a text: JSON string fields named like secrets, header lines,
-- bearer tokens, card numbers. Extra literal secrets (the configured API key
-- and client id) are replaced wherever they appear.
function R.text(s, extra)
  if type(s) ~= "string" then return s end
  for _, secret in ipairs(extra or {}) do
    if type(secret) == "string" and #secret >= 4 then
      s = s:gsub(secret:gsub("%W", "%%%0"), "[REDACTED]")
    end
  end
  s = s:gsub('("([%w_%-]+)"%s*:%s*)"([^"]*)"', function(prefix, key, _)
    if SECRET_KEYS[key:lower()] then return prefix .. '"[REDACTED]"' end
  end)
  s = s:gsub("[Bb]earer%s+[%w%._%-]+", "Bearer [REDACTED]")
  s = s:gsub("(x%-api%-key:%s*)[^\r\n]*", "%1[REDACTED]")
  s = s:gsub("(x%-client%-id:%s*)[^\r\n]*", "%1[REDACTED]")
  return R.mask_pans(s)
end

return R

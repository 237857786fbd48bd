-- Redaction of secrets in text and tables: tokens, API keys, client ids,
-- card numbers (all but the last four digits) and CVVs. Used by --trace,
-- error bodies and the REPL printer.
local R = {}

local SECRET_KEYS = {
  auth_token = true, token = true, api_key = true, ["x-api-key"] = true, ["x-auth-token"] = true,
  ["x-client-id"] = true, client_id = true, cvv = true, cvc = true, cvv2 = true, pin = true,
  activation_code = true, secret = true, webhook_secret = true, password = true,
}
R.SECRET_KEYS = SECRET_KEYS

local function mask_pan(digits)
  return string.rep("*", #digits - 4) .. digits:sub(-4)
end

-- Masks 12-19 digit runs (card numbers) keeping the last four.
local function mask_pans(s)
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
  return mask_pans(s)
end

-- A redacted deep copy of a table (for printing); cycles preserved.
function R.value(v, seen)
  if type(v) == "string" then return mask_pans(v) end
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = setmetatable({}, getmetatable(v))
  seen[v] = out
  for k, x in pairs(v) do
    if type(k) == "string" and SECRET_KEYS[k:lower()] and x ~= nil then
      out[k] = "[REDACTED]"
    elseif type(k) == "string" and (k == "card_number" or k == "pan") and type(x) == "string" then
      out[k] = x:gsub("%d", "*", math.max(0, #x:gsub("%D", "") - 4))
    else
      out[k] = R.value(x, seen)
    end
  end
  return out
end

return R

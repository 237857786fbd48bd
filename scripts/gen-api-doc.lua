-- Writes the reference sections of docs/api.md from uqpay.docs, the one
-- documentation table that help() also prints from.
--   uqlua scripts/gen-api-doc.lua            print the generated sections
--   uqlua scripts/gen-api-doc.lua --write    update docs/api.md in place
--   uqlua scripts/gen-api-doc.lua --check    fail when docs/api.md is stale
local docs = require "uqpay.docs"

local function entry(e, w)
  w("### `" .. e.signature .. "`")
  w("")
  w(e.summary)
  w("")
  if e.endpoint then
    w("- Endpoint: `" .. e.endpoint .. "`, a " .. e.effect .. (e.effect == "write" and " (journaled, one idempotency key)" or "") ..
      (e.banking and "; Banking: amounts sent as strings" or ""))
    if #e.fields > 0 then
      local f = {}
      for i, x in ipairs(e.fields) do
        f[i] = string.format("`%s`%s (%s)", x.name, x.required and " **required**" or "", x.type:gsub("|", " \\| "))
      end
      w("- Fields: " .. table.concat(f, ", "))
    end
    for k, v in pairs(e.fixed or {}) do w("- Sends `" .. k .. " = " .. v .. "`") end
  end
  w("- Returns: " .. e.returns)
  w("")
  w("```lua")
  w(e.example)
  w("```")
  w("")
end

local function section(list)
  local out = {}
  local function w(s) out[#out + 1] = s end
  for _, e in ipairs(list) do entry(e, w) end
  return table.concat(out, "\n")
end

local function splice(doc, tag, body)
  local b, e = "<!-- BEGIN GENERATED " .. tag .. " -->", "<!-- END GENERATED " .. tag .. " -->"
  local i, j = doc:find(b, 1, true), doc:find(e, 1, true)
  assert(i and j, "docs/api.md lacks the " .. tag .. " markers")
  return doc:sub(1, i + #b) .. "\n" .. body .. doc:sub(j)
end

-- Every endpoint family with its functions (the coverage of the reference).
local function coverage()
  local endpoints = require "uqpay.endpoints"
  local out = { "| family | method and path | function | effect |", "|---|---|---|---|" }
  local order = { "Issuing", "Banking", "Connect", "Simulation", "Files" }
  for _, g in ipairs(order) do
    for _, ep in ipairs(endpoints) do
      if docs.group(ep) == g then
        local fn = ep.kind == "list" and ("`uqpay." .. ep.name .. ".list/each`") or ("`uqpay." .. ep.name .. "`")
        out[#out + 1] = string.format("| %s | `%s %s` | %s | %s |", g, ep.method, ep.path, fn, ep.effect)
      end
    end
  end
  out[#out + 1] = "| Issuing | (built by the client, from `cards.pan_token`) | `uqpay.cards.secure_iframe_url` | read |"
  out[#out + 1] = "| Files | `POST /v1/files/upload` (multipart, files host) | `uqpay.files.upload` | write |"
  return table.concat(out, "\n") .. "\n"
end

local function generated(doc)
  local utilities = {}
  for _, e in ipairs(docs.entries()) do if e.group == "Utilities" then utilities[#utilities + 1] = e end end
  doc = splice(doc, "UTILITIES", section(utilities))
  doc = splice(doc, "COVERAGE", coverage())
  return splice(doc, "ENDPOINTS", section(docs.endpoint_entries()))
end

local f = assert(io.open("docs/api.md"))
local doc = f:read("a")
f:close()
if arg[1] == "--write" then
  f = assert(io.open("docs/api.md", "w"))
  f:write(generated(doc))
  f:close()
elseif arg[1] == "--check" then
  if generated(doc) ~= doc then
    io.stderr:write("docs/api.md is out of date: run `make docs`\n")
    os.exit(1)
  end
else
  print(generated(doc))
end

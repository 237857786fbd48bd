-- Writes the endpoint reference of docs/api.md from lua/uqpay/endpoints.lua,
-- the one table the functions and help() also come from.
--   uqlua scripts/gen-api-doc.lua            print the generated section
--   uqlua scripts/gen-api-doc.lua --write    update docs/api.md in place
local endpoints = require "uqpay.endpoints"

local function signature(ep)
  local args = {}
  for _, a in ipairs(ep.args) do
    if a == "{}" then args[#args + 1] = "{fields}"
    elseif a == "{}?" then args[#args + 1] = "[{filters}]"
    else args[#args + 1] = a end
  end
  args[#args + 1] = "[opts]"
  return table.concat(args, ", ")
end

local function fields(ep)
  local names = {}
  for k in pairs(ep.fields) do names[#names + 1] = k end
  table.sort(names)
  local out = {}
  for _, k in ipairs(names) do
    local t = ep.fields[k]
    local req = t:sub(-1) == "!"
    if req then t = t:sub(1, -2) end
    t = t:gsub("^enum:", ""):gsub("|", " \\| ")
    out[#out + 1] = string.format("`%s`%s (%s)", k, req and " **required**" or "", t)
  end
  return table.concat(out, ", ")
end

local function section()
  local out = {}
  local function w(s) out[#out + 1] = s end
  for _, ep in ipairs(endpoints) do
    local names
    if ep.kind == "list" then
      names = { "uqpay." .. ep.name .. ".list(" .. signature(ep) .. ")", "uqpay." .. ep.name .. ".each(" .. signature(ep) .. ")" }
    else
      names = { "uqpay." .. ep.name .. "(" .. signature(ep) .. ")" }
    end
    w("### `" .. table.concat(names, "` · `") .. "`")
    w("")
    w(ep.doc.summary)
    w("")
    w("- Endpoint: `" .. ep.method .. " " .. ep.path .. "`" .. (ep.banking and " (Banking: amounts sent as strings)" or ""))
    if next(ep.fields) then w("- Fields: " .. fields(ep)) end
    if ep.fixed then
      for k, v in pairs(ep.fixed) do w("- Sends `" .. k .. " = " .. v .. "`") end
    end
    w("- Returns: " .. ep.doc.returns)
    w("")
    w("```lua")
    w(ep.doc.example)
    w("```")
    w("")
  end
  return table.concat(out, "\n")
end

local BEGIN, END = "<!-- BEGIN GENERATED ENDPOINTS -->", "<!-- END GENERATED ENDPOINTS -->"

local function spliced(doc)
  local a = doc:find(BEGIN, 1, true)
  local b = doc:find(END, 1, true)
  assert(a and b, "docs/api.md lacks the generated-section markers")
  return doc:sub(1, a + #BEGIN) .. "\n" .. section() .. doc:sub(b)
end

if arg[1] == "--write" then
  local f = assert(io.open("docs/api.md"))
  local doc = f:read("a")
  f:close()
  f = assert(io.open("docs/api.md", "w"))
  f:write(spliced(doc))
  f:close()
elseif arg[1] == "--check" then
  local f = assert(io.open("docs/api.md"))
  local doc = f:read("a")
  f:close()
  if spliced(doc) ~= doc then
    io.stderr:write("docs/api.md is out of date: run `make docs`\n")
    os.exit(1)
  end
else
  print(section())
end

-- CSV, RFC 4180: one reader and one cell writer for the ops scripts' files,
-- the simulator's reports and the redactor (which reads a report's header
-- to know which columns hold card data).
local E = require "uqpay.errors"

local csv = {}

-- Splits CSV text into records of fields (RFC 4180: quoted fields, ""
-- escapes, CRLF or LF); each record carries its first line number.
function csv.parse(text)
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- UTF-8 BOM
  local records, rec, field, i, n, line = {}, {}, {}, 1, #text, 1
  local start_line, quoted = 1, false
  local function end_field()
    rec[#rec + 1] = table.concat(field)
    field = {}
  end
  local function end_record()
    end_field()
    if not (#rec == 1 and rec[1] == "") then -- blank lines are skipped
      rec.line = start_line
      records[#records + 1] = rec
    end
    rec = {}
  end
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1 else quoted = false end
      else
        if c == "\n" then line = line + 1 end
        field[#field + 1] = c
      end
    elseif c == '"' and #field == 0 then
      quoted = true
    elseif c == "," then
      end_field()
    elseif c == "\n" or (c == "\r" and text:sub(i + 1, i + 1) == "\n") then
      if c == "\r" then i = i + 1 end -- CRLF: one end of record
      end_record()
      line = line + 1
      start_line = line
    else
      field[#field + 1] = c
    end
    i = i + 1
  end
  if quoted then E.raise { kind = "usage", message = "line " .. start_line .. ": unterminated quoted field" } end
  if #field > 0 or #rec > 0 then end_record() end
  return records
end

-- One cell as written: quoted when it holds a quote, comma or line break.
function csv.cell(v)
  local s = tostring(v)
  if s:find('[",\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- One record as a line (no line break).
function csv.line(fields)
  local out = {}
  for i, v in ipairs(fields) do out[i] = csv.cell(v) end
  return table.concat(out, ",")
end

return csv

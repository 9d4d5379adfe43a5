---@diagnostic disable: undefined-global
-- members/lib/csv.lua: RFC 4180 CSV, the format Youzan, Weimob and every
-- spreadsheet export: fields separated by commas, a field quoted with " when it
-- holds a comma, a quote or a line break, a quote inside doubled (""). Lines end
-- with \n or \r\n.

local csv = {}

---Splits text into records (lists of fields). Returns nil, message, record
---number on a broken quote.
---@param text string
---@return table[]|nil records, string? err, integer? where
function csv.parse(text)
  local records, fields, i, n = {}, {}, 1, #text
  local field_start = 1
  if n == 0 then return records end
  while true do
    local c = text:sub(i, i)
    if c == '"' and i == field_start then
      -- a quoted field: up to the closing quote not followed by another
      local parts, j = {}, i + 1
      while true do
        local q = text:find('"', j, true)
        if not q then return nil, "a quoted field is not closed", #records + 1 end
        parts[#parts + 1] = text:sub(j, q - 1)
        if text:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      fields[#fields + 1] = table.concat(parts)
      c = text:sub(i, i)
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1; c = "\n" end
      if c == "," then
        i = i + 1
        field_start = i
      elseif c == "\n" or c == "" then
        records[#records + 1] = fields
        fields = {}
        i = i + 1
        field_start = i
        if i > n then break end
      else
        return nil, "a quoted field must be followed by a comma or the end of the line", #records + 1
      end
    else
      local stop = text:find("[,\r\n]", i)
      if not stop then
        fields[#fields + 1] = text:sub(i)
        records[#records + 1] = fields
        break
      end
      fields[#fields + 1] = text:sub(i, stop - 1)
      local sep = text:sub(stop, stop)
      if sep == "," then
        i = stop + 1
        field_start = i
        if i > n then  -- a trailing comma: one more empty field
          fields[#fields + 1] = ""
          records[#records + 1] = fields
          break
        end
      else
        if sep == "\r" and text:sub(stop + 1, stop + 1) == "\n" then stop = stop + 1 end
        records[#records + 1] = fields
        fields = {}
        i = stop + 1
        field_start = i
        if i > n then break end
      end
    end
  end
  return records
end

---One field, quoted when it must be.
---@param v any
---@return string
function csv.field(v)
  if v == nil or v == tp.json.null then return "" end
  local s = tostring(v)
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

---One line (with \r\n, as RFC 4180 has it).
---@param values any[]
---@param n integer how many values (nil ones are empty)
---@return string
function csv.line(values, n)
  local out = {}
  for i = 1, n do out[i] = csv.field(values[i]) end
  return table.concat(out, ",") .. "\r\n"
end

return csv

-- Posts (接龙帖): who may publish one, what a post offers, and reading it back.
-- A post's items are frozen at creation (sku, title, list and chain price,
-- per-member limit), so every entry of the chain is priced by the same rules.

local check = require("tp.check")
local schema = require("tp.schema")

local posts = {}

local MAX_ITEMS = 20          -- the orders plugin takes at most 20 lines per order by default
local MAX_LIMIT_PER_MEMBER = 999
local DEFAULT_MAX_OPEN_DAYS = 30

-- A post's fields and an item's, as an organiser publishes them, declared
-- once: the bounds, the known fields, the columns and the OpenAPI body come
-- from here (tp.schema); the catalog's rules (on sale, at most the list price)
-- and the cut-off's window are check_new's.
posts.ITEM = schema.new {
  { "sku", "ident", max = 64, required = true, doc = "a catalog SKU on sale" },
  { "chain_price_fen", "integer", min = 1, required = true, doc = "at most the list price" },
  { "per_member_limit", "integer", min = 1, max = MAX_LIMIT_PER_MEMBER, required = true },
}

posts.FIELDS = schema.new {
  { "title", "text", max = 100, required = true },
  { "pickup", "text", max = 200, nullable = true, doc = "pickup point, shown to members" },
  { "cutoff_at", "epoch", required = true,
    doc = "UTC epoch seconds, in the future and at most config.max_open_days (30) away" },
  { "items", "custom", required = true, column = false, schema = { type = "array", minItems = 1,
    maxItems = MAX_ITEMS, items = posts.ITEM:body(), description = "each SKU once" } },
}

posts.COLUMNS = posts.FIELDS:columns({ "id", "organiser" }, { "status", "last_seq", "created_at", "closed_at" })

---@class ChainItem
---@field sku string
---@field title string
---@field list_price_fen integer   the catalog's price when the post was published
---@field chain_price_fen integer  what a member pays per unit
---@field per_member_limit integer units of this item one member may hold in live entries

---@class ChainPost
---@field id integer
---@field organiser string
---@field title string
---@field pickup string?
---@field cutoff_at integer  epoch seconds: nothing is appended, edited or cancelled from then on
---@field status "open"|"closed"
---@field last_seq integer   the sequence number the latest entry got (0: none yet)
---@field items ChainItem[]

-- ---- organisers

---True if user may publish posts: granted by the operator, or everyone when
---the config says so.
---@param user string
---@return boolean
function posts.may_organise(user)
  if tp.config().anyone_may_organise == true then return true end
  return tp.db.one("SELECT 1 AS yes FROM group_chain_organisers WHERE user = ?", user) ~= nil
end

-- ---- reading

---@param post_id integer
---@return ChainItem[]
function posts.items(post_id)
  return tp.json.array(tp.db.query([[SELECT sku, title, list_price_fen, chain_price_fen, per_member_limit
    FROM group_chain_items WHERE post_id = ? ORDER BY item_no]], post_id))
end

local LOAD_SQL = "SELECT " .. posts.COLUMNS .. " FROM group_chain_posts WHERE id = ?"

---The post with its items, or nil.
---@param id integer
---@return ChainPost|nil
function posts.load(id)
  local post = tp.db.one(LOAD_SQL, id)
  if post then post.items = posts.items(id) end
  return post
end

---The post, or 404 post_not_found.
---@param id integer
---@return ChainPost
function posts.get(id)
  local post = posts.load(id)
  if not post then tp.fail(404, "post_not_found", "no such group chain post") end
  return post
end

---True while entries may still be appended, edited or cancelled. The clock
---decides, not only the close job: a job may run a little after its due time.
---@param post ChainPost
---@return boolean
function posts.is_open(post)
  return post.status == "open" and tp.now() < post.cutoff_at
end

---409 post_closed.
---@param post ChainPost
function posts.fail_closed(post)
  tp.fail(409, "post_closed", "this group chain is closed: its cut-off time has passed",
    { cutoff_at = post.cutoff_at })
end

---Refuses with 409 post_closed once the cut-off has passed.
---@param post ChainPost
function posts.require_open(post)
  if not posts.is_open(post) then posts.fail_closed(post) end
end

-- ---- publishing

---One item of the body, checked against the catalog.
---@return ChainItem
local function check_item(item, i)
  local field = ("items[%d]"):format(i)
  if type(item) ~= "table" then check.field_error(field, "must be an object") end
  check.only(item, posts.ITEM.names)
  local I = posts.ITEM
  local code = I:field("sku", item.sku, false, field .. ".sku")
  local chain_price = I:field("chain_price_fen", item.chain_price_fen, false, field .. ".chain_price_fen")
  local limit = I:field("per_member_limit", item.per_member_limit, false, field .. ".per_member_limit")
  local sku = tp.call("catalog", "sku", code)
  if not sku then
    tp.fail(400, "sku_not_found", ("no sku %s in the catalog"):format(code), { field = field .. ".sku" })
  end
  if not sku.on_sale then
    tp.fail(409, "not_on_sale", ("sku %s is not on sale"):format(code), { field = field .. ".sku" })
  end
  if chain_price > sku.price_fen then
    check.field_error(field .. ".chain_price_fen",
      ("cannot exceed the list price of %d fen"):format(sku.price_fen))
  end
  return { sku = code, title = sku.title, list_price_fen = sku.price_fen,
           chain_price_fen = chain_price, per_member_limit = limit }
end

---The body of POST /group_chain/posts, checked: title, items, cutoff_at, pickup.
---@param body any
---@return table
function posts.check_new(body)
  check.body(body, true)
  local F = posts.FIELDS
  check.only(body, F.names)
  local title = F:field("title", body.title)
  local pickup = F:field("pickup", check.present(body.pickup), true)
  local cutoff_at = F:field("cutoff_at", body.cutoff_at)
  local max_days = tp.config().max_open_days or DEFAULT_MAX_OPEN_DAYS
  if cutoff_at <= tp.now() then check.field_error("cutoff_at", "must be in the future") end
  if cutoff_at > tp.now() + max_days * 86400 then
    check.field_error("cutoff_at", ("must be at most %d days away"):format(max_days))
  end
  check.list(body.items, "items", 1, MAX_ITEMS)
  local items, seen = {}, {}
  for i, raw in ipairs(body.items) do
    local item = check_item(raw, i)
    if seen[item.sku] then check.field_error(("items[%d].sku"):format(i), "appears twice") end
    seen[item.sku] = true
    items[i] = item
  end
  return { title = title, pickup = pickup, cutoff_at = cutoff_at, items = items }
end

---Writes a checked post and schedules its close at the cut-off.
---@param organiser string
---@param new table what posts.check_new returned
---@return integer id
function posts.create(organiser, new)
  local row = tp.db.one([[INSERT INTO group_chain_posts (organiser, title, pickup, cutoff_at, status,
      last_seq, created_at) VALUES (?, ?, ?, ?, 'open', 0, ?) RETURNING id]],
    organiser, new.title, new.pickup, new.cutoff_at, tp.now())
  for i, item in ipairs(new.items) do
    tp.db.exec([[INSERT INTO group_chain_items (post_id, item_no, sku, title, list_price_fen,
        chain_price_fen, per_member_limit) VALUES (?, ?, ?, ?, ?, ?, ?)]],
      row.id, i, item.sku, item.title, item.list_price_fen, item.chain_price_fen, item.per_member_limit)
  end
  tp.jobs.schedule("close", { post_id = row.id }, { at = new.cutoff_at, key = "close:" .. row.id })
  return row.id
end

---Takes the next sequence number of an open post: one conditional update, so
---two entries never share a number, and a rolled-back entry gives its number
---back with everything else (no gaps). nil once the post is closed.
---@param post_id integer
---@return integer|nil
function posts.take_seq(post_id)
  local row = tp.db.one([[UPDATE group_chain_posts SET last_seq = last_seq + 1
    WHERE id = ? AND status = 'open' AND cutoff_at > ? RETURNING last_seq]], post_id, tp.now())
  return row and row.last_seq
end

---Closes an open post; true only for the call that closed it.
---@param post_id integer
---@return boolean
function posts.close(post_id)
  return tp.db.exec([[UPDATE group_chain_posts SET status = 'closed', closed_at = ?
    WHERE id = ? AND status = 'open']], tp.now(), post_id) == 1
end

return posts

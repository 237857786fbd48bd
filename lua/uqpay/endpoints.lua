-- Every UQPAY endpoint uqpay exposes, in one declarative table. Adding an
-- endpoint is one entry here (plus a test); lua/uqpay/api.lua turns each
-- entry into a validated function on the single request path.
--
--   name    where it lands: "cards.create" -> uqpay.cards.create
--   method, path   {placeholders} are filled from fields of the same name
--   args    positional parameters, in order; "{}" takes a table of fields,
--           "{}?" an optional one. opts ({on_behalf_of, key, timeout_ms})
--           may follow the last one.
--   fields  name -> type, "!" = required. Types: uuid, string, amount (> 0,
--           at most two decimals), amount0 (>= 0), currency (Issuing: USD,
--           SGD), ccy (any ISO 4217), integer, table, enum:A|B
--   kind    "call" (default), "list" (adds NAME.list and NAME.each over
--           every page), "all" (returns every item of every page), "iter"
--           (a lazy iterator)
--   fixed   fields set by the function itself (freeze -> FROZEN)
--   banking amounts are sent as JSON strings (Issuing sends numbers)
--   master  never send x-on-behalf-of (master-account operations)
--   effect  "read" or "write", on every entry: the only place that says
--           whether a call can change anything. Writes are operations
--           (journaled, keyed, guarded in production, never re-sent with a
--           new key once in doubt); reads are not. Retrieve Issuing Balance
--           is a POST and a read.
--   locks   writes only: what they must not be reordered against inside
--           uqpay.parallel: "card:FIELD", "account:FIELD", "cardholder:FIELD",
--           "account:@" (the x-on-behalf-of account, or the master)
--   money   {amount = FIELD, currency = FIELD | currency_of_card = FIELD}:
--           the money a write moves, for dry-run plans and money checks
--   wait_with  the endpoint uqpay.wait polls for this write's result
--   poll    {id = FIELD, status = FIELD [, when = FIELD]}: this GET is how
--           uqpay.wait follows a result with that id (when: only results
--           that have that field)
--   doc     {summary, returns, example} for help() and docs/api.md
local CARD_STATUS = "enum:PENDING|ACTIVE|FROZEN|BLOCKED|PRE_CANCEL|CANCELLED|LOST|STOLEN|FAILED"
local TIME_FILTERS = { start_time = "string", end_time = "string" }

local function with(t, extra)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

return {
  -- ---- Issuing balances ----
  { name = "balance", effect = "read", method = "POST", path = "/v1/issuing/balances", args = { "currency" },
    fields = { currency = "currency!" },
    doc = { summary = "Retrieve the Issuing balance in one currency (a POST: it carries an idempotency key).",
            returns = "balance {balance_id, currency, available_balance, margin_balance, frozen_balance, ...}",
            example = 'local b = uqpay.balance("USD")\nprint(b.available_balance)' } },
  { name = "balances", effect = "read", kind = "all", method = "GET", path = "/v1/issuing/balances", args = { "{}?" },
    fields = { currency = "currency" },
    doc = { summary = "List Issuing balances, every page.", returns = "array of balances",
            example = 'for _, b in ipairs(uqpay.balances()) do print(b.currency, b.available_balance) end' } },
  { name = "balance_transactions", effect = "read", kind = "iter", method = "GET", path = "/v1/issuing/balances/transactions",
    args = { "{}?" }, fields = with(TIME_FILTERS, { currency = "currency", transaction_type = "string",
      transaction_status = "string", transaction_id = "uuid" }),
    doc = { summary = "Iterate over Issuing balance transactions (every money movement), page by page.",
            returns = "iterator of transactions {transaction_type, amount, ending_balance, ...}",
            example = 'for t in uqpay.balance_transactions{currency = "USD"} do print(t.transaction_type, t.amount) end' } },

  -- ---- Issuing transfers ----
  { name = "transfer", effect = "write", locks = { "account:source_account_id", "account:destination_account_id" }, money = { amount = "amount", currency = "currency" }, wait_with = "transfers.get", method = "POST", path = "/v1/issuing/transfers", args = { "{}" },
    fields = { source_account_id = "uuid!", destination_account_id = "uuid!", currency = "currency!",
               amount = "amount!", remark = "string" },
    doc = { summary = "Move Issuing funds between the master account and a sub-account.",
            returns = "{transfer_id}; pass it to uqpay.wait for the final transfer",
            example = 'local t = uqpay.transfer{source_account_id = MASTER, destination_account_id = SUB,\n  currency = "USD", amount = "250.00", remark = "monthly top-up"}\nprint(uqpay.wait(t).transfer_status)' } },
  { name = "transfers.get", effect = "read", poll = { id = "transfer_id", status = "transfer_status" }, method = "GET", path = "/v1/issuing/transfers/{transfer_id}", args = { "transfer_id" },
    fields = { transfer_id = "uuid!" },
    doc = { summary = "Retrieve an Issuing transfer.", returns = "transfer {transfer_status, amount, fee_amount, ...}",
            example = 'print(uqpay.transfers.get(id).transfer_status)' } },

  -- ---- card balance ----
  { name = "recharge", effect = "write", locks = { "card:card_id" }, money = { amount = "amount", currency_of_card = "card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}/recharge", args = { "card_id", "amount" },
    fields = { card_id = "uuid!", amount = "amount!" },
    doc = { summary = "Add funds to a card. SINGLE cards take them from the Issuing balance; SHARE cards only raise their available balance.",
            returns = "card order {card_order_id, order_type, amount, order_status, ...}",
            example = 'local order = uqpay.recharge(card_id, "100.00")\nprint(order.order_status)' } },
  { name = "withdraw", effect = "write", locks = { "card:card_id" }, money = { amount = "amount", currency_of_card = "card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}/withdraw", args = { "card_id", "amount" },
    fields = { card_id = "uuid!", amount = "amount!" },
    doc = { summary = "Take funds off a card. SINGLE cards return them to the Issuing balance; SHARE cards only lower their available balance.",
            returns = "card order {card_order_id, order_type, amount, order_status, ...}",
            example = 'uqpay.withdraw(card_id, "25.50")' } },

  -- ---- cards ----
  { name = "cards.create", effect = "write", locks = { "account:@" }, money = { amount = "card_limit", currency = "card_currency" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards", args = { "{}" },
    fields = { card_currency = "currency!", cardholder_id = "uuid", card_product_id = "uuid!", card_limit = "amount0",
               spending_controls = "table", risk_controls = "table", metadata = "table",
               usage_type = "enum:NORMAL|ONE_TIME", auto_cancel_trigger = "enum:ON_AUTH|ON_CAPTURE",
               expiry_at = "string", cardholder_required_fields = "table" },
    doc = { summary = "Issue a virtual card. A SINGLE card is funded with card_limit from the Issuing balance.",
            returns = "{card_id, card_order_id, card_status, order_status, ...}",
            example = 'local c = uqpay.cards.create{card_currency = "USD", cardholder_id = CH,\n  card_product_id = PRODUCT, card_limit = "500.00"}' } },
  { name = "cards.get", effect = "read", method = "GET", path = "/v1/issuing/cards/{card_id}", args = { "card_id" },
    fields = { card_id = "uuid!" },
    doc = { summary = "Retrieve a card (no PAN or CVV).", returns = "card {card_status, mode_type, available_balance, card_limit, ...}",
            example = 'print(uqpay.cards.get(card_id).available_balance)' } },
  { name = "cards", effect = "read", kind = "list", method = "GET", path = "/v1/issuing/cards", args = { "{}?" },
    fields = { card_status = CARD_STATUS, cardholder_id = "uuid", card_number = "string" },
    doc = { summary = "Cards: .list(filters) returns all of them, .each(filters) iterates lazily.",
            returns = "array (list) or iterator (each) of cards",
            example = 'for card in uqpay.cards.each{card_status = "ACTIVE"} do print(card.card_id) end' } },
  { name = "cards.update", effect = "write", locks = { "card:card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}", args = { "card_id", "{}" },
    fields = { card_id = "uuid!", card_limit = "amount0", no_pin_payment_amount = "amount0",
               spending_controls = "table", risk_controls = "table", metadata = "table" },
    doc = { summary = "Update a card; fields left out stay unchanged (card_limit only for SHARE cards).",
            returns = "{card_id, card_order_id, card_status, order_status}",
            example = 'uqpay.cards.update(card_id, {card_limit = "2000.00"})' } },
  { name = "cards.set_status", effect = "write", locks = { "card:card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}/status",
    args = { "card_id", "card_status", "update_reason" },
    fields = { card_id = "uuid!", card_status = "enum:ACTIVE|FROZEN|CANCELLED!", update_reason = "string" },
    doc = { summary = "Change a card's status to ACTIVE, FROZEN or CANCELLED (irreversible).",
            returns = "{card_id, card_order_id, order_status, update_reason}",
            example = 'uqpay.cards.set_status(card_id, "FROZEN", "lost phone")' } },
  { name = "cards.freeze", effect = "write", locks = { "card:card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}/status", args = { "card_id", "update_reason" },
    fields = { card_id = "uuid!", update_reason = "string" }, fixed = { card_status = "FROZEN" },
    doc = { summary = "Freeze a card (status FROZEN).", returns = "as cards.set_status", example = 'uqpay.cards.freeze(card_id)' } },
  { name = "cards.unfreeze", effect = "write", locks = { "card:card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}/status", args = { "card_id", "update_reason" },
    fields = { card_id = "uuid!", update_reason = "string" }, fixed = { card_status = "ACTIVE" },
    doc = { summary = "Unfreeze a card (status ACTIVE).", returns = "as cards.set_status", example = 'uqpay.cards.unfreeze(card_id)' } },
  { name = "cards.cancel", effect = "write", locks = { "card:card_id" }, wait_with = "cards.order", method = "POST", path = "/v1/issuing/cards/{card_id}/status", args = { "card_id", "update_reason" },
    fields = { card_id = "uuid!", update_reason = "string" }, fixed = { card_status = "CANCELLED" },
    doc = { summary = "Cancel a card for good; a SINGLE card's balance returns to the Issuing balance.",
            returns = "as cards.set_status", example = 'uqpay.cards.cancel(card_id, "employee left")' } },
  { name = "cards.order", effect = "read", poll = { id = "card_order_id", status = "order_status" }, method = "GET", path = "/v1/issuing/cards/{card_order_id}/order", args = { "card_order_id" },
    fields = { card_order_id = "uuid!" },
    doc = { summary = "Retrieve a card order (creation, recharge, withdraw, update).",
            returns = "card order {order_type, amount, order_status, ...}",
            example = 'print(uqpay.cards.order(order.card_order_id).order_status)' } },

  -- ---- cardholders ----
  { name = "cardholders.create", effect = "write", method = "POST", path = "/v1/issuing/cardholders", args = { "{}" },
    fields = { first_name = "string!", last_name = "string!", email = "string!", country_code = "string!",
               phone_number = "string!", date_of_birth = "string", gender = "enum:MALE|FEMALE", nationality = "string",
               residential_address = "table", identity = "table", kyc_verification = "table",
               document_type = "string", document = "string" },
    doc = { summary = "Create a cardholder (email and phone_number unique within the account).",
            returns = "{cardholder_id, cardholder_status}",
            example = 'local ch = uqpay.cardholders.create{first_name = "Alex", last_name = "Chen",\n  email = "alex@example.com", country_code = "SG", phone_number = "91234567"}' } },
  { name = "cardholders.get", effect = "read", method = "GET", path = "/v1/issuing/cardholders/{cardholder_id}", args = { "cardholder_id" },
    fields = { cardholder_id = "uuid!" },
    doc = { summary = "Retrieve a cardholder.", returns = "cardholder", example = 'uqpay.cardholders.get(id)' } },
  { name = "cardholders", effect = "read", kind = "list", method = "GET", path = "/v1/issuing/cardholders", args = { "{}?" },
    fields = { cardholder_status = "enum:SUCCESS|PENDING|INCOMPLETE|FAILED" },
    doc = { summary = "Cardholders: .list(filters) or .each(filters).", returns = "array or iterator of cardholders",
            example = 'for ch in uqpay.cardholders.each() do print(ch.email) end' } },
  { name = "cardholders.update", effect = "write", locks = { "cardholder:cardholder_id" }, method = "POST", path = "/v1/issuing/cardholders/{cardholder_id}",
    args = { "cardholder_id", "{}" },
    fields = { cardholder_id = "uuid!", email = "string", phone_number = "string", country_code = "string",
               date_of_birth = "string", gender = "enum:MALE|FEMALE", nationality = "string",
               residential_address = "table", identity = "table", kyc_verification = "table" },
    doc = { summary = "Update a cardholder (names cannot change).", returns = "{cardholder_id, cardholder_status}",
            example = 'uqpay.cardholders.update(id, {email = "new@example.com"})' } },

  -- ---- products, transactions, reports, accounts ----
  { name = "products", effect = "read", kind = "list", method = "GET", path = "/v1/issuing/products", args = { "{}?" }, fields = {},
    doc = { summary = "Card products (BINs): .list() or .each().", returns = "array or iterator of products",
            example = 'for p in uqpay.products.each() do print(p.product_id, p.mode_type) end' } },
  { name = "transactions", effect = "read", kind = "list", method = "GET", path = "/v1/issuing/transactions", args = { "{}?" },
    fields = with(TIME_FILTERS, { card_id = "uuid" }),
    doc = { summary = "Card transactions: .list(filters) or .each(filters).", returns = "array or iterator",
            example = 'for t in uqpay.transactions.each{card_id = card_id} do print(t.transaction_status) end' } },
  { name = "transactions.get", effect = "read", method = "GET", path = "/v1/issuing/transactions/{transaction_id}",
    args = { "transaction_id" }, fields = { transaction_id = "uuid!" },
    doc = { summary = "Retrieve a card transaction.", returns = "transaction", example = 'uqpay.transactions.get(id)' } },
  { name = "reports.create", effect = "write", method = "POST", path = "/v1/issuing/reports", args = { "{}" },
    fields = { report_type = "enum:SETTLEMENT|LEDGER!", start_time = "string!", end_time = "string!" },
    doc = { summary = "Request a SETTLEMENT or LEDGER report.", returns = "{report_id}",
            example = 'local r = uqpay.reports.create{report_type = "LEDGER",\n  start_time = "2026-11-01T00:00:00+08:00", end_time = "2026-11-24T00:00:00+08:00"}' } },
  { name = "reports.download", effect = "read", method = "GET", path = "/v1/issuing/reports/{report_id}", args = { "report_id", "path" },
    fields = { report_id = "uuid!", path = "string" }, raw = true, local_fields = { path = true },
    doc = { summary = "Download a report as CSV, into a file when a path is given.",
            returns = "the CSV text (or the path written)", example = 'uqpay.reports.download(r.report_id, "ledger.csv")' } },
  { name = "accounts.get", effect = "read", method = "GET", path = "/v1/accounts/{account_id}", args = { "account_id" },
    fields = { account_id = "uuid!" }, master = true,
    doc = { summary = "Retrieve an account (the master or one of its sub-accounts).",
            returns = "account {account_id, account_name, short_reference_id, ...}",
            example = 'print(uqpay.accounts.get(uqpay.account().account_id).account_name)' } },
  { name = "accounts", effect = "read", kind = "list", method = "GET", path = "/v1/accounts", args = { "{}?" }, fields = {}, master = true,
    doc = { summary = "Connected sub-accounts: .list() or .each().", returns = "array or iterator of accounts",
            example = 'for a in uqpay.accounts.each() do print(a.account_id, a.account_name) end' } },

  -- ---- sandbox simulators ----
  { name = "simulate.authorization", effect = "write", locks = { "card:card_id" }, money = { amount = "transaction_amount", currency = "transaction_currency" }, method = "POST", path = "/v1/simulation/issuing/authorization", args = { "{}" },
    fields = { card_id = "uuid!", transaction_amount = "amount!", transaction_currency = "ccy",
               merchant_name = "string", mcc = "string" },
    doc = { summary = "Sandbox: simulate a card authorization.", returns = "card transaction (APPROVED or DECLINED)",
            example = 'uqpay.simulate.authorization{card_id = card_id, transaction_amount = "12.00"}' } },
  { name = "simulate.reversal", effect = "write", method = "POST", path = "/v1/simulation/issuing/reversal", args = { "{}" },
    fields = { original_transaction_id = "uuid!", transaction_amount = "amount" },
    doc = { summary = "Sandbox: reverse a simulated authorization.", returns = "card transaction",
            example = 'uqpay.simulate.reversal{original_transaction_id = t.transaction_id}' } },

  -- ---- Banking (amounts as strings) ----
  { name = "banking.balances", effect = "read", kind = "all", method = "GET", path = "/v1/balances", args = { "{}?" }, fields = {},
    banking = true,
    doc = { summary = "Banking balances, every page.", returns = "array of balances",
            example = 'for _, b in ipairs(uqpay.banking.balances()) do print(b.currency, b.available_balance) end' } },
  { name = "banking.balance", effect = "read", method = "GET", path = "/v1/balances/{currency}", args = { "currency" },
    fields = { currency = "ccy!" }, banking = true,
    doc = { summary = "One Banking balance.", returns = "balance", example = 'uqpay.banking.balance("EUR")' } },
  { name = "banking.transactions", effect = "read", kind = "iter", method = "GET", path = "/v1/balances/transactions", args = { "{}?" },
    fields = with(TIME_FILTERS, { currency = "ccy", transaction_type = "string", transaction_status = "string" }),
    banking = true,
    doc = { summary = "Iterate over Banking balance transactions.", returns = "iterator of transactions",
            example = 'for t in uqpay.banking.transactions{currency = "USD"} do print(t.amount) end' } },
  { name = "banking.transfer", effect = "write", locks = { "account:source_account_id", "account:target_account_id" }, money = { amount = "amount", currency = "currency" }, wait_with = "banking.transfers.get", method = "POST", path = "/v1/transfer", args = { "{}" }, banking = true,
    fields = { source_account_id = "uuid!", target_account_id = "uuid!", currency = "ccy!", amount = "amount!",
               reason = "string!" },
    doc = { summary = "Transfer Banking funds between UQPAY accounts.", returns = "{transfer_id, short_reference_id}",
            example = 'uqpay.banking.transfer{source_account_id = A, target_account_id = B,\n  currency = "USD", amount = "100.00", reason = "funding"}' } },
  { name = "banking.transfers.get", effect = "read", poll = { id = "transfer_id", status = "transfer_status", when = "short_reference_id" }, method = "GET", path = "/v1/transfer/{transfer_id}", args = { "transfer_id" },
    fields = { transfer_id = "uuid!" }, banking = true,
    doc = { summary = "Retrieve a Banking transfer.", returns = "transfer", example = 'uqpay.banking.transfers.get(id)' } },
  { name = "banking.transfers", effect = "read", kind = "list", method = "GET", path = "/v1/transfer", args = { "{}?" }, banking = true,
    fields = with(TIME_FILTERS, { transfer_status = "string", currency = "string" }),
    doc = { summary = "Banking transfers: .list(filters) or .each(filters).", returns = "array or iterator",
            example = 'for t in uqpay.banking.transfers.each() do print(t.transfer_status) end' } },
  { name = "banking.payouts.create", effect = "write", locks = { "account:@" }, money = { amount = "amount", currency = "currency" }, method = "POST", path = "/v1/payouts", args = { "{}" }, banking = true,
    fields = { currency = "ccy!", amount = "amount!", purpose_code = "string!", payout_reference = "string!",
               fee_paid_by = "enum:SHARED|OURS!", payout_date = "string!", beneficiary_id = "uuid", beneficiary = "table",
               quote_id = "string", payout_currency = "ccy", payout_amount = "amount", is_payer = "string",
               payer_id = "string", documentation = "table" },
    doc = { summary = "Create a payout (x-on-behalf-of for POBO).", returns = "{payout_id, short_reference_id, payout_status}",
            example = 'uqpay.banking.payouts.create{currency = "USD", amount = "10.00", ...}' } },
  { name = "banking.payouts.get", effect = "read", method = "GET", path = "/v1/payouts/{payout_id}", args = { "payout_id" },
    fields = { payout_id = "uuid!" }, banking = true,
    doc = { summary = "Retrieve a payout.", returns = "payout", example = 'uqpay.banking.payouts.get(id)' } },
  { name = "banking.payouts", effect = "read", kind = "list", method = "GET", path = "/v1/payouts", args = { "{}?" }, banking = true,
    fields = with(TIME_FILTERS, { payout_status = "string" }),
    doc = { summary = "Payouts: .list(filters) or .each(filters).", returns = "array or iterator",
            example = 'for p in uqpay.banking.payouts.each() do print(p.payout_status) end' } },
  { name = "banking.quote", effect = "write", method = "POST", path = "/v1/conversion/quote", args = { "{}" }, banking = true,
    fields = { sell_currency = "ccy!", buy_currency = "ccy!", conversion_date = "string!", sell_amount = "amount",
               buy_amount = "amount", transaction_type = "enum:conversion|payout" },
    doc = { summary = "Quote a conversion (valid 75 s; exactly one of sell_amount/buy_amount).",
            returns = "{quote_price = {quote_id, direct_rate, ...}, sell_amount, buy_amount, ...}",
            example = 'local q = uqpay.banking.quote{sell_currency = "USD", buy_currency = "SGD",\n  sell_amount = "100.00", conversion_date = os.date("!%Y-%m-%d")}' } },
  { name = "banking.convert", effect = "write", locks = { "account:@" }, money = { amount = "sell_amount", currency = "sell_currency" }, method = "POST", path = "/v1/conversion", args = { "{}" }, banking = true,
    fields = { quote_id = "string!", sell_currency = "ccy!", buy_currency = "ccy!", conversion_date = "string!",
               sell_amount = "amount", buy_amount = "amount" },
    doc = { summary = "Convert currency with a quote.", returns = "conversion",
            example = 'uqpay.banking.convert{quote_id = q.quote_price.quote_id, sell_currency = "USD",\n  buy_currency = "SGD", sell_amount = "100.00", conversion_date = os.date("!%Y-%m-%d")}' } },
  { name = "banking.deposits.get", effect = "read", method = "GET", path = "/v1/deposit/{deposit_id}", args = { "deposit_id" },
    fields = { deposit_id = "uuid!" }, banking = true,
    doc = { summary = "Retrieve a deposit.", returns = "deposit", example = 'uqpay.banking.deposits.get(id)' } },
  { name = "banking.deposits", effect = "read", kind = "list", method = "GET", path = "/v1/deposit", args = { "{}?" }, banking = true,
    fields = with(TIME_FILTERS, { status = "enum:PENDING|COMPLETED|FAILED" }),
    doc = { summary = "Deposits: .list(filters) or .each(filters).", returns = "array or iterator",
            example = 'for d in uqpay.banking.deposits.each() do print(d.amount) end' } },
  { name = "banking.beneficiaries.get", effect = "read", method = "GET", path = "/v1/beneficiaries/{beneficiary_id}",
    args = { "beneficiary_id" }, fields = { beneficiary_id = "uuid!" }, banking = true,
    doc = { summary = "Retrieve a beneficiary.", returns = "beneficiary", example = 'uqpay.banking.beneficiaries.get(id)' } },
  { name = "banking.beneficiaries", effect = "read", kind = "list", method = "GET", path = "/v1/beneficiaries", args = { "{}?" },
    banking = true, fields = {},
    doc = { summary = "Beneficiaries: .list() or .each().", returns = "array or iterator",
            example = 'for b in uqpay.banking.beneficiaries.each() do print(b.beneficiary_id) end' } },
}

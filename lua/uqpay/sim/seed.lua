-- The simulator's default seed: a master account with two sub-accounts,
-- USD and SGD issuing balances, SINGLE and SHARE products, two cardholders
-- and a handful of cards. IDs are fixed so docs and tests can name them.
-- A --seed FILE is JSON of the same shape.
return {
  client_id = "sim-client-0001",
  api_key = "sim-secret-key-0001",
  webhook_secret = "sim-webhook-secret",
  master = { account_id = "11111111-1111-4111-8111-111111111111", account_name = "Demo Master Ltd" },
  sub_accounts = {
    { account_id = "22222222-2222-4222-8222-222222222222", account_name = "Ops Team SG" },
    { account_id = "33333333-3333-4333-8333-333333333333", account_name = "Marketing US" },
  },
  -- account_id (or "master") -> currency -> amount
  issuing_balances = {
    master = { USD = "100000.00", SGD = "50000.00" },
    ["22222222-2222-4222-8222-222222222222"] = { USD = "1000.00", SGD = "0.00" },
    ["33333333-3333-4333-8333-333333333333"] = { USD = "250.00", SGD = "0.00" },
  },
  banking_balances = {
    master = { USD = "250000.00", SGD = "80000.00", EUR = "10000.00" },
    ["22222222-2222-4222-8222-222222222222"] = { USD = "500.00" },
  },
  deposits = {
    { deposit_id = "77777777-7777-4777-8777-777777777771", short_reference_id = "D00000001", amount = "10000.00",
      currency = "USD", deposit_fee = "1.00", deposit_status = "COMPLETED", deposit_reference = "INV-1001",
      receiver_account_number = "8812345678", sender = { name = "Acme Trading", account_number = "001-234567" },
      create_time = "2026-11-01T09:00:00+08:00", complete_time = "2026-11-01T09:05:00+08:00" },
    { deposit_id = "77777777-7777-4777-8777-777777777772", short_reference_id = "D00000002", amount = "2500.00",
      currency = "SGD", deposit_fee = "0.00", deposit_status = "PENDING", deposit_reference = "INV-1002",
      receiver_account_number = "8812345678", sender = { name = "Beta Pte Ltd", account_number = "002-345678" },
      create_time = "2026-11-20T09:00:00+08:00" },
  },
  beneficiaries = {
    { beneficiary_id = "88888888-8888-4888-8888-888888888881", short_reference_id = "B00000001",
      entity_type = "COMPANY", company_name = "Supplier Co", payment_method = "LOCAL", beneficiary_status = "ACTIVE",
      bank_details = { account_holder = "Supplier Co", account_number = "123456789", bank_country_code = "SG",
                       currency = "SGD" } },
  },
  products = {
    { product_id = "44444444-4444-4444-8444-444444444441", card_bin = "40963608", mode_type = "SINGLE",
      card_scheme = "VISA", card_currency = { "USD", "SGD" }, card_form = { "VIR" }, product_status = "ENABLED",
      kyc_level = "SIMPLIFIED", max_card_quota = 1000 },
    { product_id = "44444444-4444-4444-8444-444444444442", card_bin = "40963609", mode_type = "SHARE",
      card_scheme = "VISA", card_currency = { "USD", "SGD" }, card_form = { "VIR" }, product_status = "ENABLED",
      kyc_level = "SIMPLIFIED", max_card_quota = 1000 },
  },
  cardholders = {
    { cardholder_id = "55555555-5555-4555-8555-555555555551", first_name = "Emily", last_name = "Toy",
      email = "emily@example.com", country_code = "SG", phone_number = "91234567" },
    { cardholder_id = "55555555-5555-4555-8555-555555555552", first_name = "Alex", last_name = "Chen",
      email = "alex@example.com", country_code = "SG", phone_number = "91234568" },
  },
  cards = {
    { card_id = "66666666-6666-4666-8666-666666666661", cardholder_id = "55555555-5555-4555-8555-555555555551",
      card_product_id = "44444444-4444-4444-8444-444444444441", card_currency = "USD", card_limit = "500.00",
      card_status = "ACTIVE", last4 = "5668" },
    { card_id = "66666666-6666-4666-8666-666666666662", cardholder_id = "55555555-5555-4555-8555-555555555551",
      card_product_id = "44444444-4444-4444-8444-444444444442", card_currency = "USD", card_limit = "1000.00",
      card_status = "ACTIVE", last4 = "7731" },
    { card_id = "66666666-6666-4666-8666-666666666663", cardholder_id = "55555555-5555-4555-8555-555555555552",
      card_product_id = "44444444-4444-4444-8444-444444444441", card_currency = "USD", card_limit = "50.00",
      card_status = "FROZEN", last4 = "9902" },
    { card_id = "66666666-6666-4666-8666-666666666664", cardholder_id = "55555555-5555-4555-8555-555555555552",
      card_product_id = "44444444-4444-4444-8444-444444444441", card_currency = "SGD", card_limit = "200.00",
      card_status = "ACTIVE", last4 = "4410" },
  },
}

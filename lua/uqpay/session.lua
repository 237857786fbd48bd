-- The process's one client (uqpay.client over the resolved configuration),
-- created on first use so that utilities such as uqpay.uuid() need no
-- credentials. uqpay's functions and the reconcile script share it.
local S = {}
local client

function S.client()
  if not client then client = require("uqpay.client").new(require("uqpay.config").active()) end
  return client
end

return S

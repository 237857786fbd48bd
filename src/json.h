/* Exact JSON codec (see json.c). */
#ifndef UQPAY_JSON_H
#define UQPAY_JSON_H
#include <stddef.h>
#include "lua.h"

#define JSON_ARRAY_MT "uqpay.json.array"

/* Pushes the JSON text of the value at idx; raises on what JSON cannot hold. */
void json_encode(lua_State *L, int idx, int money_as_string);
/* Pushes the decoded value; with money, amount fields become uqpay.Money. */
void json_decode(lua_State *L, const char *s, size_t n, int money);
int json_is_amount_key(const char *k, size_t n);
/* Pushes the metatable that marks a table as a JSON array. */
void json_push_array_mt(lua_State *L);
#endif

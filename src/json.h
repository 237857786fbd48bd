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
/* The currency the object at t names for its amount field k, into code
 * (upper case); 0 when none. */
int json_currency_for(lua_State *L, int t, const char *k, size_t kn, char code[4]);
/* Pushes the metatable that marks a table as a JSON array. */
void json_push_array_mt(lua_State *L);
/* The inside of a JSON string (no quotes) for n bytes of s, written to out
 * with room for JSON_ESCAPED_MAX(n); returns its length. The encoder's and
 * the journal's records' one escaper. */
#define JSON_ESCAPED_MAX(n) (6 * (n))
size_t json_escape(char *out, const char *s, size_t n);
/* The decimal text of v, at the end of tmp; returns its start, and its
 * length in *len. */
#define JSON_INTEGER_TEXT 24
char *json_integer_text(char tmp[JSON_INTEGER_TEXT], long long v, size_t *len);
#endif

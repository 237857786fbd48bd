/* Exact decimal money: a signed 64-bit count of 10^-scale units. */
#ifndef UQPAY_MONEY_H
#define UQPAY_MONEY_H
#include <stddef.h>
#include <stdint.h>
#include "lua.h"

#define MONEY_MT "uqpay.Money"
#define MONEY_MAX_SCALE 8

typedef struct {
  int64_t units;
  int scale;     /* decimals kept: the currency's, 2 without one */
  char cur[4];   /* ISO 4217 code or "" */
} money_t;

/* Parses a plain decimal ("-12.50", "3"); with allow_exp also "1e+20".
 * Returns the number of decimals in *decimals; 0 on success, -1 malformed,
 * -2 out of range. */
int money_parse(const char *s, size_t len, int allow_exp, int64_t *units, int *decimals);
/* Decimals used by a currency (2 for unknown). */
int money_currency_scale(const char *cur);
/* The shortest text that reads back as exactly d ("%.17g" at most). */
void money_shortest_float(double d, char *buf, size_t n);
/* Writes "123.45" into buf (at least 32 bytes). */
void money_format(const money_t *m, char *buf);

money_t *money_push(lua_State *L, int64_t units, int scale, const char *cur);
money_t *money_test(lua_State *L, int idx);
/* Coerces the value at idx (money, string, integer, float with the
 * two-decimal rule) to money or raises a usage error naming field. */
money_t money_check(lua_State *L, int idx, const char *field);
/* Lenient: any decimal string or number literal text, up to MONEY_MAX_SCALE
 * decimals; used for responses. Returns 0 on success. */
int money_from_text(lua_State *L, const char *s, size_t len);
int luaopen_uqpay_money(lua_State *L);

#endif

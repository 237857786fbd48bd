/*
 * uqpay.Money: exact decimal amounts. Values are int64 units of 10^-scale;
 * scale is the currency's number of decimals (2 when no currency is given).
 * Floats are accepted only when their shortest round-trip text has at most
 * the allowed decimals, so 12.5 works and 0.1 + 0.2 is refused.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lauxlib.h"
#include "money.h"
#include "errors.h"

static const int64_t pow10_tab[] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL,
                                    10000000LL, 100000000LL, 1000000000LL, 10000000000LL};

int money_currency_scale(const char *cur) {
  static const char *const zero[] = {"JPY", "KRW", "VND", "IDR", "CLP", "ISK", "UGX", "XOF", NULL};
  static const char *const three[] = {"BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD", NULL};
  for (int i = 0; zero[i]; i++) if (strcmp(cur, zero[i]) == 0) return 0;
  for (int i = 0; three[i]; i++) if (strcmp(cur, three[i]) == 0) return 3;
  return 2;
}

int money_parse(const char *s, size_t len, int allow_exp, int64_t *units, int *decimals) {
  size_t i = 0;
  int neg = 0, digits = 0, frac = 0, dot = 0;
  unsigned __int128 acc = 0;
  if (i < len && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  for (; i < len; i++) {
    char c = s[i];
    if (c == '.' && !dot) { dot = 1; continue; }
    if (!isdigit((unsigned char)c)) break;
    digits++;
    if (dot) frac++;
    acc = acc * 10 + (unsigned)(c - '0');
    if (acc > (unsigned __int128)INT64_MAX * 1000000000000ULL) return -2;
  }
  if (digits == 0) return -1;
  if (i < len && allow_exp && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0, e = 0, edigits = 0;
    if (i < len && (s[i] == '-' || s[i] == '+')) eneg = s[i++] == '-';
    for (; i < len && isdigit((unsigned char)s[i]); i++, edigits++) {
      e = e * 10 + (s[i] - '0');
      if (e > 40) return -2;
    }
    if (!edigits) return -1;
    if (eneg) frac += e;
    else {
      for (; e > 0 && frac > 0; e--) frac--;
      for (; e > 0; e--) {
        acc *= 10;
        if (acc > (unsigned __int128)INT64_MAX) return -2;
      }
    }
  }
  if (i != len) return -1;
  /* Trailing zeros after the point carry no value: 1.50 has one decimal. */
  while (frac > 0 && acc % 10 == 0) { acc /= 10; frac--; }
  if (acc == 0) frac = 0;
  if (acc > (unsigned __int128)INT64_MAX || frac > 18) return -2;
  *units = neg ? -(int64_t)acc : (int64_t)acc;
  *decimals = frac;
  return 0;
}

/* Rescales units from 'from' to 'to' decimals (to >= from); 0 on success. */
static int rescale(int64_t units, int from, int to, int64_t *out) {
  if (to - from > 10) return -1;
  return __builtin_mul_overflow(units, pow10_tab[to - from], out) ? -1 : 0;
}

/* Digits written backwards from the end: snprintf's format parsing was
 * most of what encoding an amount cost. */
void money_format(const money_t *m, char *buf) {
  uint64_t mag = m->units < 0 ? (uint64_t)0 - (uint64_t)m->units : (uint64_t)m->units;
  char tmp[32];
  char *p = tmp + sizeof tmp;
  int frac = m->scale;
  do {
    *--p = (char)('0' + mag % 10);
    mag /= 10;
    if (--frac == 0) *--p = '.';
  } while (mag > 0 || frac >= 0);
  if (m->units < 0) *--p = '-';
  size_t n = (size_t)(tmp + sizeof tmp - p);
  memcpy(buf, p, n);
  buf[n] = '\0';
}

money_t *money_test(lua_State *L, int idx) {
  return (money_t *)luaL_testudata(L, idx, MONEY_MT);
}

money_t *money_push(lua_State *L, int64_t units, int scale, const char *cur) {
  money_t *m = (money_t *)lua_newuserdatauv(L, sizeof(money_t), 0);
  m->units = units;
  m->scale = scale;
  memset(m->cur, 0, sizeof m->cur);
  if (cur) strncpy(m->cur, cur, 3);
  luaL_setmetatable(L, MONEY_MT);
  return m;
}

/* Text of a float's shortest round-trip form ("%.17g" down to the first
 * precision that reads back identically). */
void money_shortest_float(double d, char *buf, size_t n) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) return;
  }
}

/* Converts idx into (units, decimals). Returns NULL on success, or a static
 * reason; *shown receives the value as the user should see it. */
static const char *coerce(lua_State *L, int idx, int64_t *units, int *decimals, int *scale,
                          const char **cur, char *shown, size_t shown_n) {
  money_t *m = money_test(L, idx);
  *cur = NULL;
  if (m) {
    *units = m->units;
    *decimals = m->scale;
    *scale = m->scale;
    *cur = m->cur[0] ? m->cur : NULL;
    return NULL;
  }
  int rc;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        *units = lua_tointeger(L, idx);
        *decimals = 0;
        snprintf(shown, shown_n, "%lld", (long long)*units);
        break;
      } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) { snprintf(shown, shown_n, "%g", d); return "is not a finite number"; }
        money_shortest_float(d, shown, shown_n);
        rc = money_parse(shown, strlen(shown), 1, units, decimals);
        if (rc == -2) return "is out of range";
        if (rc != 0) return "is not a decimal amount";
        if (*decimals > 2) return "is a float with more than two decimals (pass the amount as a string, e.g. \"12.34\")";
        break;
      }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      snprintf(shown, shown_n, "\"%.40s\"", s);
      /* strings are plain decimals only: no exponent, no spaces */
      rc = money_parse(s, len, 0, units, decimals);
      if (rc == -1) return "is not a decimal amount";
      if (rc == -2) return "is out of range";
      break;
    }
    default:
      snprintf(shown, shown_n, "(%s)", luaL_typename(L, idx));
      return "is not an amount (string, integer or uqpay.money)";
  }
  *scale = 2;
  return NULL;
}

/* As money_check, with the decimals allowed for a string or number given
 * (the currency's); money values keep their own. */
static money_t money_check_scale(lua_State *L, int idx, const char *field, int want);

money_t money_check(lua_State *L, int idx, const char *field) {
  return money_check_scale(L, idx, field, 2);
}

static money_t money_check_scale(lua_State *L, int idx, const char *field, int want) {
  int64_t units;
  int decimals = 0, scale = 2;
  const char *cur;
  char shown[64];
  idx = lua_absindex(L, idx);
  const char *why = coerce(L, idx, &units, &decimals, &scale, &cur, shown, sizeof shown);
  if (why) uqpay_raise_usage(L, field, shown, why);
  if (!money_test(L, idx)) scale = want;
  money_t out = {0, scale, {0}};
  if (cur) memcpy(out.cur, cur, 4);
  if (decimals > scale) uqpay_raise_usage(L, field, shown, "has more decimals than the currency allows");
  if (rescale(units, decimals, scale, &out.units) != 0) uqpay_raise_usage(L, field, shown, "is out of range");
  return out;
}

int money_from_text(lua_State *L, const char *s, size_t len) {
  int64_t units, out;
  int decimals;
  if (money_parse(s, len, 1, &units, &decimals) != 0 || decimals > MONEY_MAX_SCALE) return -1;
  int scale = decimals > 2 ? decimals : 2;
  if (rescale(units, decimals, scale, &out) != 0) return -1;
  money_push(L, out, scale, NULL);
  return 0;
}

/* uqpay.money(x [, currency]) */
static int l_money(lua_State *L) {
  const char *cur = luaL_optstring(L, 2, NULL);
  char code[4] = {0};
  if (cur) {
    size_t n = strlen(cur);
    if (n != 3) uqpay_raise_usage(L, "currency", cur, "is not a three-letter ISO 4217 code");
    for (int i = 0; i < 3; i++) {
      if (!isalpha((unsigned char)cur[i])) uqpay_raise_usage(L, "currency", cur, "is not a three-letter ISO 4217 code");
      code[i] = (char)toupper((unsigned char)cur[i]);
    }
  }
  money_t m = money_check_scale(L, 1, "amount", cur ? money_currency_scale(code) : 2);
  if (m.cur[0] && cur && strcmp(m.cur, code) != 0)
    uqpay_raise_usage(L, "currency", cur, "differs from the amount's currency");
  const char *use = cur ? code : (m.cur[0] ? m.cur : NULL);
  int scale = use ? money_currency_scale(use) : 2;
  int64_t units = m.units;
  if (scale < m.scale) {
    int64_t p = pow10_tab[m.scale - scale];
    if (units % p != 0) {
      char buf[32];
      money_format(&m, buf);
      uqpay_raise_usage(L, "amount", buf, "has more decimals than the currency allows");
    }
    units /= p;
  } else if (rescale(units, m.scale, scale, &units) != 0) {
    uqpay_raise_usage(L, "amount", "(value)", "is out of range");
  }
  money_push(L, units, scale, use);
  return 1;
}

/* Both operands as money at a common scale and currency. */
static void operands(lua_State *L, money_t *a, money_t *b, const char **cur, int *scale) {
  *a = money_check(L, 1, "left operand");
  *b = money_check(L, 2, "right operand");
  if (a->cur[0] && b->cur[0] && strcmp(a->cur, b->cur) != 0)
    uqpay_raise(L, "usage", "cannot combine %s and %s amounts", a->cur, b->cur);
  *cur = a->cur[0] ? a->cur : (b->cur[0] ? b->cur : NULL);
  *scale = a->scale > b->scale ? a->scale : b->scale;
  if (rescale(a->units, a->scale, *scale, &a->units) || rescale(b->units, b->scale, *scale, &b->units))
    uqpay_raise(L, "usage", "money overflow");
}

static int arith(lua_State *L, int sub) {
  money_t a, b;
  const char *cur;
  int scale;
  int64_t r;
  operands(L, &a, &b, &cur, &scale);
  int of = sub ? __builtin_sub_overflow(a.units, b.units, &r) : __builtin_add_overflow(a.units, b.units, &r);
  if (of) return uqpay_raise(L, "usage", "money overflow");
  money_push(L, r, scale, cur);
  return 1;
}
static int m_add(lua_State *L) { return arith(L, 0); }
static int m_sub(lua_State *L) { return arith(L, 1); }

static int m_mul(lua_State *L) {
  int mi = money_test(L, 1) ? 1 : 2;
  int ni = 3 - mi;
  money_t *m = money_test(L, mi);
  if (!lua_isinteger(L, ni))
    return uqpay_raise(L, "usage", "money can only be multiplied by an integer, not %s", luaL_typename(L, ni));
  int64_t r;
  if (__builtin_mul_overflow(m->units, lua_tointeger(L, ni), &r)) return uqpay_raise(L, "usage", "money overflow");
  money_push(L, r, m->scale, m->cur[0] ? m->cur : NULL);
  return 1;
}

static int m_unm(lua_State *L) {
  money_t *m = luaL_checkudata(L, 1, MONEY_MT);
  if (m->units == INT64_MIN) return uqpay_raise(L, "usage", "money overflow");
  money_push(L, -m->units, m->scale, m->cur[0] ? m->cur : NULL);
  return 1;
}

static int compare(lua_State *L) {
  money_t a, b;
  const char *cur;
  int scale;
  operands(L, &a, &b, &cur, &scale);
  return a.units < b.units ? -1 : a.units > b.units;
}
static int m_eq(lua_State *L) { lua_pushboolean(L, compare(L) == 0); return 1; }
static int m_lt(lua_State *L) { lua_pushboolean(L, compare(L) < 0); return 1; }
static int m_le(lua_State *L) { lua_pushboolean(L, compare(L) <= 0); return 1; }

static int m_tostring(lua_State *L) {
  char buf[32];
  money_format(luaL_checkudata(L, 1, MONEY_MT), buf);
  lua_pushstring(L, buf);
  return 1;
}

static int m_concat(lua_State *L) {
  for (int i = 1; i <= 2; i++) {
    if (money_test(L, i)) {
      char buf[32];
      money_format(money_test(L, i), buf);
      lua_pushstring(L, buf);
    } else {
      luaL_tolstring(L, i, NULL);
    }
  }
  lua_concat(L, 2);
  return 1;
}

/* m:minor() -> integer minor units at the currency's scale (2 without one). */
static int m_minor(lua_State *L) {
  money_t *m = luaL_checkudata(L, 1, MONEY_MT);
  int want = m->cur[0] ? money_currency_scale(m->cur) : 2;
  int64_t u = m->units;
  if (m->scale > want) {
    int64_t p = pow10_tab[m->scale - want];
    if (u % p) return uqpay_raise(L, "usage", "amount has sub-minor units");
    u /= p;
  } else if (rescale(u, m->scale, want, &u)) {
    return uqpay_raise(L, "usage", "money overflow");
  }
  lua_pushinteger(L, u);
  return 1;
}

static int m_currency(lua_State *L) {
  money_t *m = luaL_checkudata(L, 1, MONEY_MT);
  if (m->cur[0]) lua_pushstring(L, m->cur);
  else lua_pushnil(L);
  return 1;
}

static int m_is_money(lua_State *L) {
  lua_pushboolean(L, money_test(L, 1) != NULL);
  return 1;
}

static int m_sign(lua_State *L) {
  money_t *m = luaL_checkudata(L, 1, MONEY_MT);
  lua_pushinteger(L, m->units < 0 ? -1 : m->units > 0);
  return 1;
}

static const luaL_Reg money_meta[] = {
  {"__add", m_add}, {"__sub", m_sub}, {"__mul", m_mul}, {"__unm", m_unm},
  {"__eq", m_eq},   {"__lt", m_lt},   {"__le", m_le},   {"__tostring", m_tostring},
  {"__concat", m_concat}, {NULL, NULL}};

static const luaL_Reg money_methods[] = {
  {"minor", m_minor}, {"currency", m_currency}, {"sign", m_sign}, {NULL, NULL}};

/* check_amount(v, field [, allow_zero [, currency]]) -> money at the scale
 * the currency allows: a usage error naming the field for anything that
 * is not a positive (or zero) amount, has more decimals than the currency
 * (at most two), or is a money value of another currency than the
 * request's. */
static int l_check_amount(lua_State *L) {
  const char *field = luaL_checkstring(L, 2);
  const char *want = luaL_optstring(L, 4, NULL);
  money_t m = money_check(L, 1, field);
  char shown[48];
  money_format(&m, shown);
  if (m.units < 0 || (m.units == 0 && !lua_toboolean(L, 3)))
    uqpay_raise_usage(L, field, shown, lua_toboolean(L, 3) ? "must not be negative" : "must be greater than 0");
  if (m.cur[0] && want && strcasecmp(m.cur, want) != 0) {
    char why[64];
    snprintf(why, sizeof why, "is an amount in %s; the request is in %.3s", m.cur, want);
    uqpay_raise_usage(L, field, shown, why);
  }
  const char *cur = m.cur[0] ? m.cur : want;
  int allowed = cur && strlen(cur) == 3 ? money_currency_scale(cur) : 2;
  if (allowed > 2) uqpay_raise_usage(L, field, shown, "has more than two decimals");
  if (m.scale > allowed) {
    int64_t p = pow10_tab[m.scale - allowed];
    if (m.units % p) uqpay_raise_usage(L, field, shown, "has more decimals than the currency allows");
    m.units /= p;
    m.scale = allowed < 2 && !m.cur[0] && !want ? 2 : allowed;
  }
  /* The API reads amounts as JSON numbers, which servers commonly parse as
   * doubles: exact to 15 significant digits. Past that the amount applied
   * would not be the amount sent (and the simulator's sums would overflow). */
  if (m.units >= 1000000000000000LL)
    uqpay_raise_usage(L, field, shown, "has more than 15 digits: a server reading it as a JSON number would change it");
  money_push(L, m.units, m.scale, m.cur[0] ? m.cur : NULL);
  return 1;
}

static int call_money(lua_State *L) {
  lua_remove(L, 1); /* the uqpay.money table itself */
  return l_money(L);
}

/* Returns a callable table: uqpay.money(x, cur), uqpay.money.is(v). */
int luaopen_uqpay_money(lua_State *L) {
  if (luaL_newmetatable(L, MONEY_MT)) {
    luaL_setfuncs(L, money_meta, 0);
    luaL_newlib(L, money_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, m_is_money);
  lua_setfield(L, -2, "is");
  lua_pushcfunction(L, l_check_amount);
  lua_setfield(L, -2, "check");
  lua_newtable(L);
  lua_pushcfunction(L, call_money);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  return 1;
}

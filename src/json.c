/*
 * Exact JSON for uqpay. lua-cjson 2.1 turns every number into a double,
 * which loses large ids and cents; this codec keeps integers as Lua
 * integers, decodes amount fields into uqpay.Money from their literal text,
 * and encodes Money as a bare number (Issuing) or a string (Banking).
 * null is cjson's sentinel (a NULL light userdata) so both libraries agree.
 * Objects are written with sorted keys, so a body has one canonical text.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "errors.h"
#include "json.h"
#include "money.h"

#define MAX_DEPTH 128

int json_is_amount_key(const char *k, size_t n) {
#define ENDS(s) (n >= sizeof(s) - 1 && memcmp(k + n - (sizeof(s) - 1), s, sizeof(s) - 1) == 0)
  return (n == 6 && memcmp(k, "amount", 6) == 0) || ENDS("_amount") || ENDS("_balance") ||
         (n == 10 && memcmp(k, "card_limit", 10) == 0) || ENDS("_fee") ||
         (n == 7 && memcmp(k, "balance", 7) == 0);
#undef ENDS
}

void json_push_array_mt(lua_State *L) {
  if (luaL_newmetatable(L, JSON_ARRAY_MT)) {
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
  }
}

/* ---------- encoding ---------- */

/* The encoder's output buffer: a userdata so an error (luaL_error) during
 * encoding cannot leak it, and independent of the Lua stack, which the
 * encoder uses freely (luaL_Buffer forbids that). */
struct sbuf {
  char *p;
  size_t n, cap;
};

static int sbuf_gc(lua_State *L) {
  struct sbuf *b = lua_touserdata(L, 1);
  free(b->p);
  b->p = NULL;
  return 0;
}

struct enc {
  lua_State *L;
  struct sbuf *b;
  int money_as_string;
};

static void grow(struct enc *e, size_t n) {
  struct sbuf *b = e->b;
  size_t cap = b->cap ? b->cap * 2 : 256;
  while (cap < b->n + n) cap *= 2;
  char *np = realloc(b->p, cap);
  if (!np) uqpay_raise(e->L, "usage", "json: out of memory");
  b->p = np;
  b->cap = cap;
}

/* Makes room for n more bytes. */
static inline void reserve(struct enc *e, size_t n) {
  if (e->b->n + n > e->b->cap) grow(e, n);
}

static inline void addl(struct enc *e, const char *s, size_t n) {
  reserve(e, n);
  memcpy(e->b->p + e->b->n, s, n);
  e->b->n += n;
}
static void adds(struct enc *e, const char *s) { addl(e, s, strlen(s)); }
static inline void addc(struct enc *e, char c) {
  reserve(e, 1);
  e->b->p[e->b->n++] = c;
}

/* Bytes that a JSON string must escape: controls, '"', '\\' and DEL. */
static const unsigned char needs_escape[256] = {
  [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1,
};

/* Whether any of the 8 bytes of w is one that needs_escape lists. The
 * borrow of a byte that matches can flag bytes above it too, but never
 * flags a word with no match. */
static int word_needs_escape(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\'), del = w ^ (ones * 0x7f);
  return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | ((del - ones) & ~del)) & highs
           ? 1 : 0;
}

/* Writes into out the n bytes of s as a JSON string's inside; out has room
 * for JSON_ESCAPED_MAX(n). Plain bytes are found and copied 8 at a time,
 * and an escape is written in place: a reply's JSON text, kept as a
 * string, has a quote every few bytes, and a call per escape cost more
 * than the scan. Returns the bytes written. */
size_t json_escape(char *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  size_t i = 0;
  while (i < n) {
    uint64_t w;
    if (n - i >= 8 && (memcpy(&w, s + i, 8), !word_needs_escape(w))) {
      memcpy(o, &w, 8);
      o += 8;
      i += 8;
      continue;
    }
    unsigned char c = (unsigned char)s[i++];
    if (!needs_escape[c]) {
      *o++ = (char)c;
      continue;
    }
    *o++ = '\\';
    switch (c) {
      case '"': case '\\': *o++ = (char)c; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      case '\b': *o++ = 'b'; break;
      case '\f': *o++ = 'f'; break;
      default:
        memcpy(o, "u00", 3);
        o[3] = hex[c >> 4];
        o[4] = hex[c & 15];
        o += 5;
    }
  }
  return (size_t)(o - out);
}

/* A piece at a time, so that a long string does not reserve six times its
 * size at once. */
#define ESCAPE_PIECE 4096

static void enc_string(struct enc *e, const char *s, size_t n) {
  addc(e, '"');
  for (size_t i = 0; i < n;) {
    size_t m = n - i > ESCAPE_PIECE ? ESCAPE_PIECE : n - i;
    reserve(e, JSON_ESCAPED_MAX(m));
    e->b->n += json_escape(e->b->p + e->b->n, s + i, m);
    i += m;
  }
  addc(e, '"');
}

char *json_integer_text(char tmp[JSON_INTEGER_TEXT], long long v, size_t *len) {
  char *p = tmp + JSON_INTEGER_TEXT;
  unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--p = (char)('0' + mag % 10);
    mag /= 10;
  } while (mag);
  if (v < 0) *--p = '-';
  *len = (size_t)(tmp + JSON_INTEGER_TEXT - p);
  return p;
}

static void enc_integer(struct enc *e, lua_Integer v) {
  char tmp[JSON_INTEGER_TEXT];
  size_t n;
  const char *p = json_integer_text(tmp, v, &n);
  addl(e, p, n);
}

static int is_array(lua_State *L, int idx, lua_Integer *len) {
  if (lua_getmetatable(L, idx)) {
    json_push_array_mt(L);
    int arr = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (arr) { *len = (lua_Integer)lua_rawlen(L, idx); return 1; }
  }
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) { lua_pop(L, 1); return 0; }
    lua_Integer k = lua_tointeger(L, -1);
    if (k > max) max = k;
    count++;
  }
  *len = max;
  return count > 0 && count == max;
}

/* An object's key, and the stack slot of its value (0: look it up). */
struct key {
  const char *s;
  size_t n;
  int slot;
};

/* Byte order, shorter first on a tie: strcmp's order, and keys holding a
 * zero byte are whole. */
static int key_before(const struct key *a, const struct key *b) {
  int c = memcmp(a->s, b->s, a->n < b->n ? a->n : b->n);
  return c ? c < 0 : a->n < b->n;
}

static int cmp_key(const void *a, const void *b) {
  const struct key *x = a, *y = b;
  return key_before(x, y) ? -1 : key_before(y, x);
}

/* Objects are small: an insertion sort makes fewer calls than qsort. */
static void sort_keys(struct key *k, size_t n) {
  if (n > 32) {
    qsort(k, n, sizeof *k, cmp_key);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    struct key x = k[i];
    size_t j = i;
    for (; j > 0 && key_before(&x, &k[j - 1]); j--) k[j] = k[j - 1];
    k[j] = x;
  }
}

static void enc_value(struct enc *e, int idx, int depth);

static void enc_table(struct enc *e, int idx, int depth) {
  lua_State *L = e->L;
  lua_Integer n;
  if (depth > MAX_DEPTH) uqpay_raise(L, "usage", "json: nesting too deep (a cycle?)");
  luaL_checkstack(L, 8, "json");
  if (is_array(L, idx, &n)) {
    addc(e, '[');
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) addc(e, ',');
      lua_rawgeti(L, idx, i);
      enc_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    addc(e, ']');
    return;
  }
  /* object: gather string keys, sort, emit. The keys stay alive in the
   * table being encoded, so plain pointers to them are enough. The values
   * of the first SMALL_OBJECT keys stay on the stack as the one pass over
   * the table leaves them; a bigger object's keys go into a userdata and
   * their values are looked up again. */
  enum { SMALL_OBJECT = 32 };
  struct key small[SMALL_OBJECT];
  struct key *keys = small;
  size_t count = 0, cap = SMALL_OBJECT;
  int base = lua_gettop(L); /* values kept from base + 1 */
  int keys_ud = 0;
  luaL_checkstack(L, SMALL_OBJECT + 4, "json");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      uqpay_raise(L, "usage", "json: object keys must be strings (found a %s key)", luaL_typename(L, -2));
    }
    if (count == cap) {
      if (!keys_ud) { /* drop the kept values: every value is looked up */
        lua_pop(L, 1);
        lua_replace(L, base + 1); /* the iteration key, where the first value was */
        lua_settop(L, base + 1);
        lua_pushnil(L); /* stands for the value popped below */
        for (size_t i = 0; i < count; i++) keys[i].slot = 0;
      }
      cap *= 2;
      struct key *nk = (struct key *)lua_newuserdatauv(L, cap * sizeof *keys, 0);
      memcpy(nk, keys, count * sizeof *keys);
      /* the userdata goes below the iteration key and value */
      lua_insert(L, -3);
      if (keys_ud) lua_remove(L, keys_ud);
      keys_ud = lua_gettop(L) - 2;
      keys = nk;
    }
    size_t n;
    keys[count].s = lua_tolstring(L, -2, &n);
    keys[count].n = n;
    if (keys_ud) {
      keys[count].slot = 0;
      lua_pop(L, 1);
    } else {
      /* the value stays where the key was; the key goes on top for lua_next */
      lua_pushvalue(L, -2);
      lua_remove(L, -3);
      keys[count].slot = base + 1 + (int)count;
    }
    count++;
  }
  sort_keys(keys, count);
  addc(e, '{');
  for (size_t i = 0; i < count; i++) {
    if (i) addc(e, ',');
    enc_string(e, keys[i].s, keys[i].n);
    addc(e, ':');
    if (keys[i].slot) {
      enc_value(e, keys[i].slot, depth + 1);
    } else {
      lua_pushlstring(L, keys[i].s, keys[i].n);
      lua_rawget(L, idx); /* no metamethod runs mid-encode */
      enc_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
  }
  addc(e, '}');
  lua_settop(L, base);
}

static void enc_value(struct enc *e, int idx, int depth) {
  lua_State *L = e->L;
  char buf[64];
  switch (lua_type(L, idx)) {
    case LUA_TNIL: adds(e, "null"); break;
    case LUA_TBOOLEAN: adds(e, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        enc_integer(e, lua_tointeger(L, idx));
        break;
      } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) uqpay_raise(L, "usage", "json: cannot encode %f", d);
        money_shortest_float(d, buf, sizeof buf);
      }
      adds(e, buf);
      break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      enc_string(e, s, n);
      break;
    }
    case LUA_TTABLE: enc_table(e, idx, depth); break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { adds(e, "null"); break; }
      /* FALLTHROUGH */
    default: {
      money_t *m = money_test(L, idx);
      if (!m) uqpay_raise(L, "usage", "json: cannot encode a %s value", luaL_typename(L, idx));
      money_format(m, buf);
      if (e->money_as_string) enc_string(e, buf, strlen(buf));
      else adds(e, buf);
    }
  }
}

/* The state's one output buffer, kept in the registry between calls: a
 * buffer per call cost a userdata, a malloc and its reallocs. Encoding
 * runs no Lua code, so no two encodes in a state overlap. */
static char buffer_key;

static struct sbuf *state_buffer(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &buffer_key) == LUA_TUSERDATA) {
    struct sbuf *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return b;
  }
  lua_pop(L, 1);
  struct sbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, "uqpay.json.buffer")) {
    lua_pushcfunction(L, sbuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &buffer_key);
  return b;
}

void json_encode(lua_State *L, int idx, int money_as_string) {
  idx = lua_absindex(L, idx);
  struct sbuf *b = state_buffer(L);
  b->n = 0; /* an encode that raised left its bytes behind */
  struct enc e = {L, b, money_as_string};
  enc_value(&e, idx, 0);
  lua_pushlstring(L, b->p ? b->p : "", b->n);
  if (b->cap > 65536) { /* a big document's buffer is not kept */
    free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
}

/* ---------- decoding ---------- */

struct dec {
  lua_State *L;
  const char *s, *p, *end;
  int money;
  const char *key; /* the amount field being read, for errors */
};

static _Noreturn void dec_fail(struct dec *d, const char *what) {
  uqpay_raise(d->L, "usage", "json: %s at byte %d", what, (int)(d->p - d->s) + 1);
}

/* An amount field that is a number but no finite decimal (1e400, NaN):
 * never a float inf in a response. */
static _Noreturn void dec_bad_amount(struct dec *d, const char *text, size_t n) {
  char shown[48];
  snprintf(shown, sizeof shown, "%.*s", (int)(n > 40 ? 40 : n), text);
  uqpay_raise(d->L, "api", "amount field %s is not a finite decimal: %s", d->key ? d->key : "?", shown);
}

/* Does the text read as a number (or nan/inf) though not as money? */
static int numeric_text(const char *s, size_t n) {
  char buf[64];
  if (n == 0 || n >= sizeof buf) return n > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'));
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *end;
  strtod(buf, &end);
  return *end == '\0';
}

static void skip_ws(struct dec *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}

static void put_utf8(luaL_Buffer *b, unsigned long cp) {
  char o[4];
  int n;
  if (cp < 0x80) { o[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  luaL_addlstring(b, o, (size_t)n);
}

static int hex4(struct dec *d, unsigned long *out) {
  if (d->end - d->p < 4) return -1;
  unsigned long v = 0;
  for (int i = 0; i < 4; i++) {
    char c = d->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
    else return -1;
  }
  d->p += 4;
  *out = v;
  return 0;
}

/* What ends a string's plain run: its closing quote, an escape, or a
 * control character (refused). */
static const unsigned char ends_run[256] = {
  [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1,
};

static void dec_string(struct dec *d) {
  /* most strings have no escapes: pushed straight from the text */
  const char *start = ++d->p, *q = start;
  while (q < d->end && !ends_run[(unsigned char)*q]) q++;
  if (q < d->end && *q == '"') {
    lua_pushlstring(d->L, start, (size_t)(q - start));
    d->p = q + 1;
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, start, (size_t)(q - start));
  d->p = q;
  for (;;) {
    if (d->p >= d->end) dec_fail(d, "unterminated string");
    unsigned char c = (unsigned char)*d->p++;
    if (c == '"') break;
    if (c < 0x20) { d->p--; dec_fail(d, "control character in string"); }
    if (c != '\\') { luaL_addchar(&b, (char)c); continue; }
    if (d->p >= d->end) dec_fail(d, "unterminated string");
    c = (unsigned char)*d->p++;
    switch (c) {
      case '"': case '\\': case '/': luaL_addchar(&b, (char)c); break;
      case 'b': luaL_addchar(&b, '\b'); break;
      case 'f': luaL_addchar(&b, '\f'); break;
      case 'n': luaL_addchar(&b, '\n'); break;
      case 'r': luaL_addchar(&b, '\r'); break;
      case 't': luaL_addchar(&b, '\t'); break;
      case 'u': {
        unsigned long cp, lo;
        if (hex4(d, &cp)) dec_fail(d, "bad \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
            d->p += 2;
            if (hex4(d, &lo) || lo < 0xDC00 || lo > 0xDFFF) dec_fail(d, "bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else {
            dec_fail(d, "lone surrogate");
          }
        }
        put_utf8(&b, cp);
        break;
      }
      default: d->p--; dec_fail(d, "bad escape");
    }
  }
  luaL_pushresult(&b);
}

/* Pushes a number: integer when it is one and fits, Money for amount keys,
 * otherwise a float. */
static void dec_number(struct dec *d, int amount) {
  const char *start = d->p;
  int is_int = 1;
  if (d->p < d->end && *d->p == '-') d->p++;
  if (d->p >= d->end || *d->p < '0' || *d->p > '9') dec_fail(d, "bad number");
  while (d->p < d->end && ((*d->p >= '0' && *d->p <= '9') || *d->p == '.' || *d->p == 'e' ||
                           *d->p == 'E' || *d->p == '+' || *d->p == '-')) {
    if (*d->p == '.' || *d->p == 'e' || *d->p == 'E') is_int = 0;
    d->p++;
  }
  size_t n = (size_t)(d->p - start);
  if (amount) {
    if (money_from_text(d->L, start, n) == 0) return;
    dec_bad_amount(d, start, n);
  }
  char buf[64];
  if (n >= sizeof buf) dec_fail(d, "number too long");
  memcpy(buf, start, n);
  buf[n] = '\0';
  if (is_int) {
    char *endp;
    long long v = strtoll(buf, &endp, 10);
    if (*endp == '\0' && !(v == LLONG_MAX || v == LLONG_MIN)) {
      lua_pushinteger(d->L, (lua_Integer)v);
      return;
    }
  }
  char *endp;
  double v = strtod(buf, &endp);
  if (*endp != '\0') dec_fail(d, "bad number");
  lua_pushnumber(d->L, v);
}

static void dec_value(struct dec *d, int depth, int amount);

/* Moves the held values (key, value pairs of an object, or items of an
 * array) from the top of the stack into the container at index t, made
 * here at their count when it does not exist yet (no rehash while a
 * small document is read), in order: a later duplicate key wins. */
static void dec_flush(lua_State *L, int t, int object, int held, lua_Integer *next) {
  if (lua_isnil(L, t)) {
    lua_createtable(L, object ? 0 : held, object ? held : 0);
    if (!object) {
      json_push_array_mt(L);
      lua_setmetatable(L, -2);
    }
    lua_replace(L, t);
  }
  int base = lua_gettop(L) - held * (object ? 2 : 1);
  for (int k = 0; k < held; k++) {
    if (object) {
      lua_pushvalue(L, base + 1 + 2 * k);
      lua_pushvalue(L, base + 2 + 2 * k);
      lua_rawset(L, t);
    } else {
      lua_pushvalue(L, base + 1 + k);
      lua_rawseti(L, t, (*next)++);
    }
  }
  lua_settop(L, base);
}

#define DEC_BATCH 32 /* values held on the stack before they go into their container */

/* A currency field of an object: its name and its code (upper case). */
struct cur_field {
  const char *k;
  size_t kn;
  char code[4];
};
#define MAX_CUR_FIELDS 16
#define TAG_FIELDS 8 /* amounts and currency fields an object's decoding keeps in its frame */

/* Whether name [k, k+kn) is stem + "_currency" (or "currency" for no stem). */
static int names_currency_of(const char *k, size_t kn, const char *stem, size_t sn) {
  if (sn == 0) return kn == 8 && memcmp(k, "currency", 8) == 0;
  return kn == sn + 9 && memcmp(k, stem, sn) == 0 && memcmp(k + sn, "_currency", 9) == 0;
}

/* Whether key k with the value on top of the stack is a currency field (a
 * key ending in "currency", a three-letter code); if so, and out is not
 * NULL, it is written there. The key must stay alive while out is used. */
static int currency_field(lua_State *L, const char *k, size_t kn, struct cur_field *out) {
  size_t vn;
  if (kn < 8 || memcmp(k + kn - 8, "currency", 8) != 0 || lua_type(L, -1) != LUA_TSTRING) return 0;
  const char *v = lua_tolstring(L, -1, &vn);
  if (vn != 3 || !isalpha((unsigned char)v[0]) || !isalpha((unsigned char)v[1]) || !isalpha((unsigned char)v[2]))
    return 0;
  if (out) {
    out->k = k;
    out->kn = kn;
    for (int i = 0; i < 3; i++) out->code[i] = (char)toupper((unsigned char)v[i]);
    out->code[3] = '\0';
  }
  return 1;
}

/* The currency fields of the object at t into cf; their count, or -1 for
 * more than MAX_CUR_FIELDS. Keys stay valid while the table holds them. */
static int currency_fields(lua_State *L, int t, struct cur_field *cf) {
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    size_t kn;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kn) : NULL;
    if (k && currency_field(L, k, kn, n < MAX_CUR_FIELDS ? &cf[n] : NULL) && ++n > MAX_CUR_FIELDS) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  return n;
}

/* The currency an object with currency fields cf names for its amount
 * field k, by UQPAY's names: X_currency for X (transaction_fee), the
 * currency of the amount's prefix (billing_amount: billing_currency), else
 * the object's currency, else its card_currency (a card's balances, a
 * recharge's amount). NULL when it names none. */
static const char *currency_among(const struct cur_field *cf, int n, const char *k, size_t kn) {
  size_t us = 0; /* the prefix: up to the last '_' */
  for (size_t i = kn; i > 0 && !us; i--) if (k[i - 1] == '_') us = i - 1;
  const struct { const char *stem; size_t sn; } order[] = {
    {k, kn}, {k, us}, {"", 0}, {"card", 4}};
  for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
    if (o == 1 && us == 0) continue;
    for (int i = n - 1; i >= 0; i--) /* from the end: of a repeated key, the later wins, as in the table */
      if (names_currency_of(cf[i].k, cf[i].kn, order[o].stem, order[o].sn)) return cf[i].code;
  }
  return NULL;
}

/* The currency the object at t names for its amount field k, into code;
 * 0 when none. The one rule for amounts read from answers and amounts
 * checked before a request is sent (core.currency_for). */
int json_currency_for(lua_State *L, int t, const char *k, size_t kn, char code[4]) {
  struct cur_field cf[MAX_CUR_FIELDS];
  int n = currency_fields(L, lua_absindex(L, t), cf);
  const char *c = n > 0 ? currency_among(cf, n, k, kn) : NULL;
  if (c) memcpy(code, c, 4);
  return c != NULL;
}

/* Gives each amount of a decoded object the currency the object names for
 * it (currency_among), so that amounts of two currencies never add up
 * silently and a balance in one cannot be sent as an amount in another.
 * Two passes over the object's keys, no string made: a page of 100 cards
 * pays for it at every card. */
static void dec_tag_currencies(lua_State *L, int t) {
  struct cur_field cf[MAX_CUR_FIELDS];
  int n = currency_fields(L, t, cf);
  if (n <= 0) return; /* none, or an object of more currencies than any answer has: no tag */
  lua_pushnil(L);
  while (lua_next(L, t)) {
    size_t kn;
    money_t *m = lua_type(L, -2) == LUA_TSTRING ? money_test(L, -1) : NULL;
    const char *k = m ? lua_tolstring(L, -2, &kn) : NULL;
    const char *c = m && !m->cur[0] ? currency_among(cf, n, k, kn) : NULL;
    if (c) memcpy(m->cur, c, 4);
    lua_pop(L, 1);
  }
}

static void dec_container(struct dec *d, int depth, int object) {
  lua_State *L = d->L;
  if (depth > MAX_DEPTH) dec_fail(d, "nesting too deep");
  luaL_checkstack(L, 2 * DEC_BATCH + 8, "json");
  d->p++;
  lua_pushnil(L); /* the container, made when the first values are in */
  int t = lua_gettop(L), held = 0;
  lua_Integer next = 1;
  /* this object's amounts and currency fields, as they are read: tagged at
   * its end when it has both (no pass over the table, no string made; a
   * page of 100 cards pays for it at every card). More than fit: the
   * table is read again instead. */
  struct { money_t *m; const char *k; size_t kn; } am[TAG_FIELDS];
  struct cur_field cf[TAG_FIELDS];
  int amounts = 0, currencies = 0;
  skip_ws(d);
  char close = object ? '}' : ']';
  if (d->p < d->end && *d->p == close) {
    d->p++;
    dec_flush(L, t, object, 0, &next);
    return;
  }
  for (;;) {
    skip_ws(d);
    if (object) {
      if (d->p >= d->end || *d->p != '"') dec_fail(d, "expected a string key");
      dec_string(d);
      size_t kn;
      const char *k = lua_tolstring(L, -1, &kn);
      skip_ws(d);
      if (d->p >= d->end || *d->p != ':') dec_fail(d, "expected ':'");
      d->p++;
      int amount = d->money && json_is_amount_key(k, kn);
      if (amount) d->key = k; /* anchored: the key stays on the stack meanwhile */
      dec_value(d, depth + 1, amount);
      if (amount && lua_type(L, -1) == LUA_TUSERDATA) { /* the key stays alive in the table */
        if (amounts < TAG_FIELDS) { am[amounts].m = lua_touserdata(L, -1); am[amounts].k = k; am[amounts].kn = kn; }
        amounts++;
      } else if (d->money && currency_field(L, k, kn, currencies < TAG_FIELDS ? &cf[currencies] : NULL)) {
        currencies++;
      }
    } else {
      dec_value(d, depth + 1, 0);
    }
    if (++held == DEC_BATCH) {
      dec_flush(L, t, object, held, &next);
      held = 0;
    }
    skip_ws(d);
    if (d->p < d->end && *d->p == ',') { d->p++; continue; }
    if (d->p < d->end && *d->p == close) {
      d->p++;
      dec_flush(L, t, object, held, &next);
      if (amounts && currencies) {
        if (amounts > TAG_FIELDS || currencies > TAG_FIELDS) {
          dec_tag_currencies(L, t);
        } else {
          for (int i = 0; i < amounts; i++) {
            const char *c = currency_among(cf, currencies, am[i].k, am[i].kn);
            if (c) memcpy(am[i].m->cur, c, 4);
          }
        }
      }
      return;
    }
    dec_fail(d, object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int lit(struct dec *d, const char *w, size_t n) {
  if ((size_t)(d->end - d->p) >= n && memcmp(d->p, w, n) == 0) { d->p += n; return 1; }
  return 0;
}

static void dec_value(struct dec *d, int depth, int amount) {
  skip_ws(d);
  if (d->p >= d->end) dec_fail(d, "unexpected end of input");
  switch (*d->p) {
    case '{': dec_container(d, depth, 1); return;
    case '[': dec_container(d, depth, 0); return;
    case '"':
      dec_string(d);
      if (amount) { /* "100.02" -> money; "2000USD" stays a string; "NaN" is refused */
        size_t n;
        const char *s = lua_tolstring(d->L, -1, &n);
        if (money_from_text(d->L, s, n) == 0) lua_remove(d->L, -2);
        else if (numeric_text(s, n)) dec_bad_amount(d, s, n);
      }
      return;
    case 't': if (lit(d, "true", 4)) { lua_pushboolean(d->L, 1); return; } break;
    case 'f': if (lit(d, "false", 5)) { lua_pushboolean(d->L, 0); return; } break;
    case 'n': if (lit(d, "null", 4)) { lua_pushlightuserdata(d->L, NULL); return; } break;
    default:
      if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) { dec_number(d, amount); return; }
  }
  dec_fail(d, "unexpected character");
}

void json_decode(lua_State *L, const char *s, size_t n, int money) {
  struct dec d = {L, s, s, s + n, money, NULL};
  dec_value(&d, 0, 0);
  skip_ws(&d);
  if (d.p != d.end) dec_fail(&d, "trailing characters");
}

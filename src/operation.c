/*
 * One write's lifecycle (SPEC §5), owned here so that no other layer can
 * decide it:
 *
 *   NEW --intent(durable)--> INTENT --send--> IN_FLIGHT --> APPLIED
 *                                                       --> REJECTED
 *                                                       --> IN_DOUBT --send--> IN_FLIGHT ...
 *
 * An operation is identified by (method, path, account, canonical body,
 * occurrence of that identity in the run); only an HMAC of it, keyed by the
 * run's salt, reaches the journal. Its idempotency key is minted once and
 * kept: an operation that may have reached the server is IN_DOUBT until a
 * definitive answer for the same key arrives, and it is never given a new
 * key. The transport (http.c) sends a write only for an operation whose
 * intent is durable, and it alone puts the key header on the request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "lauxlib.h"
#include "core.h"
#include "errors.h"
#include "lazy.h"
#include "journal.h"

const char *const op_state_names[OP_NSTATES] = {"new", "intent", "in_flight", "applied", "rejected", "in_doubt"};
const char *const op_class_names[CL_NCLASSES] = {"done", "retry", "refresh_token", "rejected", "unknown"};

/* The transition after one attempt, from the state the operation was in
 * when it was sent (INTENT: no attempt may have reached the server yet;
 * IN_DOUBT: one may have). -1 for a state that cannot have been sent.
 *   done                     -> APPLIED (the key's 2xx, first or replayed)
 *   rejected (definitive 4xx) -> REJECTED: UQPAY answers a key with its
 *                               cached result, so a 4xx for this key means
 *                               this key applied nothing
 *   retry/refresh/unknown    -> IN_DOUBT if this attempt may have reached
 *                               the server, else unchanged (401, 403, 429,
 *                               a refused connection, no token: none of
 *                               them says anything about earlier attempts) */
int op_transition(int state, int cls, int reached) {
  if (state == OP_APPLIED || state == OP_REJECTED) return state; /* terminal */
  if (state != OP_INTENT && state != OP_IN_DOUBT) return -1;
  if (cls < 0 || cls >= CL_NCLASSES) return -1;
  if (cls == CL_DONE) return OP_APPLIED;
  if (cls == CL_REJECTED) return OP_REJECTED;
  return reached ? OP_IN_DOUBT : state;
}

static int find_name(const char *const *names, int n, const char *s) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], s) == 0) return i;
  return -1;
}

/* op_transition(state, class, reached) -> state | nil (for the table tests) */
static int l_op_transition(lua_State *L) {
  int s = find_name(op_state_names, OP_NSTATES, luaL_checkstring(L, 1));
  int c = find_name(op_class_names, CL_NCLASSES, luaL_checkstring(L, 2));
  if (s < 0 || c < 0) return uqpay_raise(L, "usage", "unknown state or class");
  int t = op_transition(s, c, lua_toboolean(L, 3));
  if (t < 0) return 0;
  lua_pushstring(L, op_state_names[t]);
  return 1;
}

static op_t *check_op(lua_State *L, int idx) {
  op_t *op = (op_t *)luaL_checkudata(L, idx, OP_MT);
  if (!op->j) uqpay_raise(L, "usage", "operation is closed");
  return op;
}

static int l_op_gc(lua_State *L) {
  op_t *op = (op_t *)luaL_checkudata(L, 1, OP_MT);
  free(op->method);
  free(op->path);
  free(op->obo);
  free(op->body);
  op->method = op->path = op->obo = op->body = NULL;
  op->j = NULL;
  return 0;
}

static char *dup_arg(lua_State *L, int idx) {
  size_t n;
  const char *s = luaL_checklstring(L, idx, &n);
  char *d = malloc(n + 1);
  if (!d) uqpay_raise(L, "config", "out of memory");
  memcpy(d, s, n + 1);
  return d;
}

/* The occurrence number of an identity in this invocation. */
static uint32_t next_occurrence(journal_t *j, const unsigned char id[16]) {
  uint64_t h;
  memcpy(&h, id, 8);
  if (!h) h = 1;
  if ((j->nocc + 1) * 5 >= j->occcap * 4) {
    size_t cap = j->occcap ? j->occcap * 2 : 1024;
    occ_t *o = calloc(cap, sizeof *o);
    if (!o) return 0;
    for (size_t i = 0; i < j->occcap; i++) {
      if (!j->occs[i].h) continue;
      size_t k = j->occs[i].h & (cap - 1);
      while (o[k].h) k = (k + 1) & (cap - 1);
      o[k] = j->occs[i];
    }
    free(j->occs);
    j->occs = o;
    j->occcap = cap;
  }
  size_t k = h & (j->occcap - 1);
  while (j->occs[k].h) {
    if (j->occs[k].h == h) return ++j->occs[k].n;
    k = (k + 1) & (j->occcap - 1);
  }
  j->nocc++;
  j->occs[k].h = h;
  j->occs[k].n = 1;
  return 1;
}

static void id_hex(const unsigned char id[16], char out[33]) { uqpay_hex(id, 16, out); }

/* The identity hash: HMAC-SHA256(salt, method NUL path NUL account NUL
 * body), first 16 bytes. The MAC is keyed once per salt and copied per
 * operation. Returns 0 on failure. */
static int identity(journal_t *j, const char *const parts[4], const size_t lens[4], unsigned char id[16]) {
  if (!j->mac) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (!ctx) return 0; /* libcrypto missing (lazy_crypto_error says why) or out of memory */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!EVP_MAC_init(ctx, j->salt, sizeof j->salt, params)) {
      EVP_MAC_CTX_free(ctx);
      return 0;
    }
    j->mac = ctx;
  }
  EVP_MAC_CTX *c = EVP_MAC_CTX_dup((EVP_MAC_CTX *)j->mac);
  if (!c) return 0;
  unsigned char md[EVP_MAX_MD_SIZE];
  size_t mdn = 0;
  int ok = 1;
  for (int i = 0; i < 4 && ok; i++)
    ok = EVP_MAC_update(c, (const unsigned char *)parts[i], lens[i] + (i < 3)); /* with its NUL */
  ok = ok && EVP_MAC_final(c, md, &mdn, sizeof md) && mdn >= 16;
  EVP_MAC_CTX_free(c);
  if (ok) memcpy(id, md, 16);
  return ok;
}

/* Reads the record at off into a table on the stack (checks it is this
 * operation's); returns 0 if it is not. */
static int read_own_record(lua_State *L, op_t *op, int64_t off) {
  char *line;
  ssize_t n = journal_read_line(op->j, off, &line);
  if (n < 0) return uqpay_raise(L, "config", "out of memory");
  int ok = journal_push_record(L, line, (size_t)n);
  free(line);
  if (!ok) return 0;
  char hex[33];
  id_hex(op->id, hex);
  lua_getfield(L, -1, "op");
  lua_getfield(L, -2, "occ");
  ok = lua_isstring(L, -2) && strcmp(lua_tostring(L, -2), hex) == 0 && lua_tointeger(L, -1) == (lua_Integer)op->occ;
  lua_pop(L, 2);
  return ok;
}

/* A NEW operation of journal j (at stack index 1), pushed: method and path
 * from arguments 2 and 3. */
static op_t *new_op(lua_State *L, journal_t *j) {
  op_t *op = (op_t *)lua_newuserdatauv(L, sizeof(op_t), 1);
  memset(op, 0, sizeof *op);
  luaL_setmetatable(L, OP_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the journal lives as long as its ops */
  op->j = j;
  op->state = OP_NEW;
  op->method = dup_arg(L, 2);
  op->path = dup_arg(L, 3);
  return op;
}

/* Gives op (its id and occurrence set) the state its journal records for
 * it: applied, in doubt or never sent with the key and time of its intent;
 * a rejected one is NEW (sent anew), unless the script tried the same again
 * later in that run (then its rejection is replayed). */
static void restore(lua_State *L, op_t *op) {
  op->h = journal_slot_hash(op->id, op->occ);
  journal_t *j = op->j;
  slot_t *s = journal_slot(j, op->h, 0);
  if (s) {
    int state = SLOT_STATE(s);
    SLOT_SET(s, SLOT_OFF(s), state, 1);
    /* rejected, and the script tried the same again later in that run:
     * its own retry is the later occurrence; this one stays rejected. Not
     * when a person marked it not applied (status 0, no server answer):
     * then it is sent anew, and a later identical write is its own. */
    if (state == OP_REJECTED && journal_slot(j, journal_slot_hash(op->id, op->occ + 1), 0)) {
      int top = lua_gettop(L);
      int marked = 0;
      if (read_own_record(L, op, SLOT_OFF(s))) {
        lua_getfield(L, -1, "status");
        marked = lua_tointeger(L, -1) == 0;
      }
      lua_settop(L, top);
      if (!marked) {
        op->state = OP_REPLAY_REJECTED;
        op->off = SLOT_OFF(s);
      }
    }
    if (state == OP_APPLIED || state == OP_IN_DOUBT || state == OP_INTENT) {
      int top = lua_gettop(L);
      op->off = SLOT_OFF(s);
      if (!read_own_record(L, op, op->off))
        uqpay_raise(L, "config", "run journal %s: the record of %s %s (occurrence %d) is not "
                             "where the index says; start over with --fresh", j->path, op->method, op->path,
                             (int)op->occ);
      lua_getfield(L, -1, "key");
      const char *k = lua_tostring(L, -1);
      if (k) snprintf(op->key, sizeof op->key, "%s", k);
      lua_getfield(L, -2, "ts");
      op->intent_ts = (int64_t)lua_tointeger(L, -1);
      lua_settop(L, top);
      op->state = state;
      if (state != OP_APPLIED) {
        op->open = 1; /* in doubt or never sent: unsettled until answered */
        j->open_ops++;
      }
    }
  }
}

/* j:op(method, path, account, identity_text, body_redacted [, key]) -> op.
 * identity_text is the canonical body as sent (secrets and all: only its
 * HMAC is kept); body_redacted is what the intent record shows. A memory
 * journal keeps nothing, so it neither hashes nor copies the body: its
 * operations only keep the lifecycle (body_redacted may be nil). */
static int l_journal_op(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  const char *const parts[4] = {luaL_checkstring(L, 2), luaL_checkstring(L, 3), luaL_checkstring(L, 4),
                                luaL_checkstring(L, 5)};
  const size_t lens[4] = {lua_rawlen(L, 2), lua_rawlen(L, 3), lua_rawlen(L, 4), lua_rawlen(L, 5)};
  int memory = j->fd < 0;
  if (!memory) luaL_checkstring(L, 6);
  const char *key = luaL_optstring(L, 7, NULL);
  /* it becomes a header line: 1-64 of [A-Za-z0-9_-], never CR, LF or NUL */
  size_t kn = key ? strlen(key) : 0;
  if (key && (kn < 1 || kn > 64 || strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != kn ||
              lua_rawlen(L, 7) != kn))
    return uqpay_raise_usage(L, "key", key, "must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'");
  op_t *op = new_op(L, j);
  if (memory) {
    op->occ = 1; /* nothing to line up with: a memory journal keeps nothing */
  } else {
    op->obo = dup_arg(L, 4);
    op->body = dup_arg(L, 6);
    if (!identity(j, parts, lens, op->id)) return uqpay_raise(L, "config", "HMAC failed: %s", lazy_crypto_error());
    op->occ = next_occurrence(j, op->id);
    if (!op->occ) return uqpay_raise(L, "config", "out of memory");
    restore(L, op);
  }
  if (op->state == OP_NEW) {
    if (key) {
      snprintf(op->key, sizeof op->key, "%s", key);
    } else if (uqpay_uuid4(op->key) != 0) {
      return uqpay_raise(L, "config", "cannot get random bytes for an idempotency key: %s", strerror(errno));
    }
  }
  return 1;
}

/* j:op_at(method, path, account, body_redacted, id, occ) -> op: the
 * operation the journal records under id (32 hex digits, as its records
 * show it) and occurrence occ, in the state it has there. For reconcile,
 * which knows an operation by its records: its body there is redacted, so
 * the identity cannot be made again from it, and one operation may have
 * several intent records (rejected, then sent anew on a resume). */
static int l_journal_op_at(lua_State *L) {
  journal_t *j = journal_check(L, 1);
  size_t hn;
  const char *hex = luaL_checklstring(L, 6, &hn);
  lua_Integer occ = luaL_checkinteger(L, 7);
  if (j->fd < 0) return uqpay_raise(L, "usage", "a memory journal keeps no operations");
  unsigned char id[16];
  if (hn != 32 || occ < 1 || occ > INT32_MAX) return uqpay_raise_usage(L, "op", hex, "is not an operation's id");
  for (int i = 0; i < 16; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char c = hex[2 * i + k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return uqpay_raise_usage(L, "op", hex, "is not an operation's id");
      v = v * 16 + (unsigned)d;
    }
    id[i] = (unsigned char)v;
  }
  op_t *op = new_op(L, j);
  op->obo = dup_arg(L, 4);
  op->body = dup_arg(L, 5);
  memcpy(op->id, id, sizeof id);
  op->occ = (uint32_t)occ;
  restore(L, op);
  return 1;
}

/* The state as Lua sees it: a rejection replayed from an earlier run is
 * "rejected_earlier". */
static const char *state_name(const op_t *op) {
  return op->state == OP_REPLAY_REJECTED ? "rejected_earlier" : op_state_names[op->state];
}

/* op:state() -> what op:info().state is, without a table */
static int l_op_state(lua_State *L) {
  op_t *op = check_op(L, 1);
  lua_pushstring(L, state_name(op));
  return 1;
}

/* op:persistent() -> whether its journal keeps records (false: memory) */
static int l_op_persistent(lua_State *L) {
  op_t *op = check_op(L, 1);
  lua_pushboolean(L, op->j->fd >= 0);
  return 1;
}

/* op:key() -> the idempotency key (what op:info().key is, without a table) */
static int l_op_key(lua_State *L) {
  op_t *op = check_op(L, 1);
  lua_pushstring(L, op->key);
  return 1;
}

/* op:info() -> {state=, key=, occ=, id=, ts=} */
static int l_op_info(lua_State *L) {
  op_t *op = check_op(L, 1);
  char hex[33];
  id_hex(op->id, hex);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, state_name(op));
  lua_setfield(L, -2, "state");
  lua_pushstring(L, op->key);
  lua_setfield(L, -2, "key");
  lua_pushinteger(L, op->occ);
  lua_setfield(L, -2, "occ");
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, op->intent_ts);
  lua_setfield(L, -2, "ts");
  return 1;
}

/* What every operation record starts with: {"t":t,"op":id,"occ":n */
static void record_head(struct buf *b, op_t *op, const char *t) {
  char hex[33];
  id_hex(op->id, hex);
  rb_lit(b, "{\"t\":\"");
  rb_add(b, t, strlen(t));
  rb_lit(b, "\",\"op\":\"");
  rb_add(b, hex, 32);
  rb_lit(b, "\",\"occ\":");
  rb_int(b, op->occ);
}

static void outcome_record(struct buf *b, op_t *op, const char *state, lua_Integer status) {
  record_head(b, op, "outcome");
  rb_lit(b, ",\"key\":");
  rb_str(b, op->key, strlen(op->key));
  rb_lit(b, ",\"state\":\"");
  rb_add(b, state, strlen(state));
  rb_lit(b, "\",\"status\":");
  rb_int(b, status);
  rb_lit(b, ",\"ts\":");
  rb_int(b, (long long)time(NULL));
}

/* An operation that had been open (in doubt or never sent) is settled:
 * the journal stops counting it against the run's completion. */
static void no_longer_open(op_t *op) {
  if (op->open) {
    op->open = 0;
    op->j->open_ops--;
  }
}

static int write_failed(lua_State *L, op_t *op) {
  return uqpay_raise(L, "config", "cannot write the run journal %s: %s", op->j->path, strerror(errno));
}

/* op:intent([group]): NEW -> INTENT. The intent record is appended and,
 * unless group is true (uqpay.parallel syncs once for every item that is
 * ready), made durable before this returns. A resumed operation's intent
 * is on disk already. */
static int l_op_intent(lua_State *L) {
  op_t *op = check_op(L, 1);
  int group = lua_toboolean(L, 2);
  if (op->state == OP_INTENT || op->state == OP_IN_DOUBT) return 0;
  if (op->state != OP_NEW)
    return uqpay_raise(L, "config", "internal: intent for an operation in state %s", op_state_names[op->state]);
  journal_t *j = op->j;
  op->intent_ts = (int64_t)time(NULL);
  int rc;
  if (j->fd < 0) {
    rc = journal_append(j, NULL, 0, 0); /* a memory journal: the lifecycle without a record */
  } else {
    struct buf *b = journal_record_begin(j);
    record_head(b, op, "intent");
    rb_lit(b, ",\"method\":");
    rb_str(b, op->method, strlen(op->method));
    rb_lit(b, ",\"path\":");
    rb_str(b, op->path, strlen(op->path));
    rb_lit(b, ",\"obo\":");
    rb_str(b, op->obo, strlen(op->obo));
    rb_lit(b, ",\"key\":");
    rb_str(b, op->key, strlen(op->key));
    rb_lit(b, ",\"ts\":");
    rb_int(b, op->intent_ts);
    rb_lit(b, ",\"body\":");
    rb_str(b, op->body, strlen(op->body));
    rb_lit(b, "}");
    rc = journal_append_record(j, b, !group);
  }
  if (rc != 0) return write_failed(L, op);
  op->intent_seq = j->appended;
  op->state = OP_INTENT;
  op->open = 1;
  j->open_ops++;
  return 0;
}

op_t *op_check_sendable(lua_State *L, int idx) {
  op_t *op = (op_t *)luaL_testudata(L, idx, OP_MT);
  if (!op || !op->j) {
    uqpay_raise(L, "config", "internal: a write must be sent through its operation");
    return NULL;
  }
  if (op->state != OP_INTENT && op->state != OP_IN_DOUBT) {
    uqpay_raise(L, "config", "internal: cannot send an operation in state %s", op_state_names[op->state]);
    return NULL;
  }
  if (op->j->synced < op->intent_seq) {
    uqpay_raise(L, "config", "internal: the intent of %s %s is not durable yet", op->method, op->path);
    return NULL;
  }
  return op;
}

void op_mark_in_flight(op_t *op) {
  op->doubt = op->doubt || op->state == OP_IN_DOUBT;
  op->state = OP_IN_FLIGHT;
}

/* op:observe(class, reached, status [, body]) -> state: the outcome of one
 * attempt. APPLIED and REJECTED are journaled at once (no sync of their
 * own: a lost outcome only means the operation is sent again with its
 * key, and the server answers as before). */
static int l_op_observe(lua_State *L) {
  op_t *op = check_op(L, 1);
  int cls = find_name(op_class_names, CL_NCLASSES, luaL_checkstring(L, 2));
  if (cls < 0) return uqpay_raise(L, "usage", "unknown outcome class");
  int reached = lua_toboolean(L, 3);
  lua_Integer status = luaL_optinteger(L, 4, 0);
  size_t bn = 0;
  const char *body = luaL_optlstring(L, 5, "", &bn);
  if (op->state != OP_IN_FLIGHT)
    return uqpay_raise(L, "config", "internal: an outcome for an operation in state %s", op_state_names[op->state]);
  int before = op->doubt ? OP_IN_DOUBT : OP_INTENT;
  int next = op_transition(before, cls, reached);
  if (next == OP_APPLIED || next == OP_REJECTED) {
    journal_t *j = op->j;
    if (j->fd >= 0) { /* a memory journal keeps no record */
      struct buf *b = journal_record_begin(j);
      outcome_record(b, op, op_state_names[next], status);
      rb_lit(b, ",\"body\":"); /* the answer (rejections too: replayed for a script's own retry) */
      rb_str(b, body, bn);
      rb_lit(b, "}");
      if (journal_append_record(j, b, 0) != 0) return write_failed(L, op);
    }
    no_longer_open(op);
  } else {
    op->doubt = next == OP_IN_DOUBT;
  }
  op->state = next;
  lua_pushstring(L, op_state_names[next]);
  return 1;
}

/* op:settle() -> state: the call is over. An operation left without a
 * definitive answer keeps its key; its state (in_doubt, or unsent when
 * no attempt reached the server) is journaled for --run and resume. */
static int l_op_settle(lua_State *L) {
  op_t *op = check_op(L, 1);
  if (op->state == OP_IN_FLIGHT) op->state = op->doubt ? OP_IN_DOUBT : OP_INTENT;
  if ((op->state == OP_INTENT || op->state == OP_IN_DOUBT) && op->j->fd >= 0) {
    struct buf *b = journal_record_begin(op->j);
    outcome_record(b, op, op->state == OP_IN_DOUBT ? "in_doubt" : "unsent", 0);
    rb_lit(b, "}");
    if (journal_append_record(op->j, b, 0) != 0) return write_failed(L, op);
  }
  lua_pushstring(L, op_state_names[op->state]);
  return 1;
}

/* op:mark(state) -> state: a person checked the resource and says what
 * became of an operation left INTENT or IN_DOUBT ("applied" or "rejected",
 * i.e. not applied): the one way to settle a write whose key is too old to
 * be sent again. The outcome is journaled and made durable at once, with a
 * body saying it was marked; a resume answers an applied one from it and
 * sends a rejected one anew with a new key, as for any other outcome. */
static int l_op_mark(lua_State *L) {
  op_t *op = check_op(L, 1);
  const char *want = luaL_checkstring(L, 2);
  int next = strcmp(want, "applied") == 0 ? OP_APPLIED : strcmp(want, "rejected") == 0 ? OP_REJECTED : -1;
  if (next < 0) return uqpay_raise(L, "usage", "an operation is marked applied or rejected, not %s", want);
  if (op->state != OP_INTENT && op->state != OP_IN_DOUBT)
    return uqpay_raise(L, "usage", "%s %s is %s: only a write not settled is marked", op->method, op->path,
                       op_state_names[op->state]);
  if (op->j->fd >= 0) {
    struct buf *b = journal_record_begin(op->j);
    outcome_record(b, op, op_state_names[next], 0);
    if (next == OP_APPLIED) rb_lit(b, ",\"body\":\"{\\\"marked\\\":\\\"applied\\\"}\"}");
    else rb_lit(b, ",\"body\":\"{\\\"marked\\\":\\\"not_applied\\\"}\"}");
    if (journal_append_record(op->j, b, 1) != 0) return write_failed(L, op);
  }
  no_longer_open(op);
  op->state = next;
  lua_pushstring(L, op_state_names[next]);
  return 1;
}

/* op:replay() -> body, status: the recorded answer of an APPLIED
 * operation, or the rejection of one its script tried again. */
static int l_op_replay(lua_State *L) {
  op_t *op = check_op(L, 1);
  if ((op->state != OP_APPLIED && op->state != OP_REPLAY_REJECTED) || op->j->fd < 0 || op->off <= 0)
    return uqpay_raise(L, "config", "internal: nothing to replay for %s %s", op->method, op->path);
  if (!read_own_record(L, op, op->off))
    return uqpay_raise(L, "config", "run journal %s: the outcome of %s %s is not where the index says; "
                         "start over with --fresh", op->j->path, op->method, op->path);
  lua_getfield(L, -1, "body");
  lua_getfield(L, -2, "status");
  return 2;
}

/* op:dispatch(): the operation is about to be answered without the
 * transport (a dry run's twin): the same check and IN_FLIGHT as m:add. */
static int l_op_dispatch(lua_State *L) {
  op_t *op = op_check_sendable(L, 1);
  op_mark_in_flight(op);
  return 0;
}

static const luaL_Reg op_methods[] = {
  {"info", l_op_info}, {"key", l_op_key}, {"state", l_op_state}, {"persistent", l_op_persistent},
  {"dispatch", l_op_dispatch}, {"intent", l_op_intent}, {"observe", l_op_observe},
  {"settle", l_op_settle}, {"mark", l_op_mark}, {"replay", l_op_replay}, {NULL, NULL}};

void uqpay_open_operation(lua_State *L) {
  uqpay_class(L, OP_MT, op_methods, l_op_gc);
  /* j:op() lives on the journal's method table */
  luaL_getmetatable(L, JOURNAL_MT);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, l_journal_op_at);
  lua_setfield(L, -2, "op_at");
  lua_pushcfunction(L, l_journal_op);
  lua_setfield(L, -2, "op");
  lua_pop(L, 2);
  lua_pushcfunction(L, l_op_transition);
  lua_setfield(L, -2, "op_transition");
}

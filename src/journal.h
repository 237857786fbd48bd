/* The run journal and the operation lifecycle (SPEC §5): shared by
 * journal.c (the file, its lock, its index) and operation.c (one write's
 * state machine). See docs/journal.md for the state diagram. */
#ifndef UQPAY_JOURNAL_H
#define UQPAY_JOURNAL_H
#include <stdint.h>
#include <sys/types.h>
#include "lua.h"
#include "buf.h"

#define JOURNAL_MT "uqpay.Journal"
#define OP_MT "uqpay.Op"

/* Operation states. IN_FLIGHT is in memory only: on disk an intent with no
 * later record reads back as IN_DOUBT (it may have been sent). */
enum op_state { OP_NEW, OP_INTENT, OP_IN_FLIGHT, OP_APPLIED, OP_REJECTED, OP_IN_DOUBT, OP_NSTATES };
/* Not a state: how j:op answers for a REJECTED operation that the script
 * itself tried again later in the same run (a later occurrence is in the
 * journal): its rejection is replayed, not sent anew. */
#define OP_REPLAY_REJECTED OP_NSTATES
/* The one classification of an HTTP outcome (uqpay.client classifies). */
enum op_class { CL_DONE, CL_RETRY, CL_REFRESH_TOKEN, CL_REJECTED, CL_UNKNOWN, CL_NCLASSES };

extern const char *const op_state_names[OP_NSTATES];
extern const char *const op_class_names[CL_NCLASSES];

/* What a resume remembers of one operation of the interrupted run: 16
 * bytes, enough to find its record again. Only the operations read back
 * from the file are indexed; this invocation's own live in their op. */
typedef struct {
  uint64_t h;      /* slot hash (identity, occurrence); 0 = empty */
  uint64_t packed; /* record offset (40 bits) | state << 40 | seen << 43 */
} slot_t;
#define SLOT_OFF(s) ((int64_t)((s)->packed & 0xFFFFFFFFFFULL))
#define SLOT_STATE(s) ((int)(((s)->packed >> 40) & 7))
#define SLOT_SEEN(s) ((int)(((s)->packed >> 43) & 1))
#define SLOT_SET(s, off, state, seen) \
  ((s)->packed = ((uint64_t)(off) & 0xFFFFFFFFFFULL) | ((uint64_t)(state) << 40) | ((uint64_t)(seen) << 43))

/* Occurrences of an identity so far in this invocation. The identity is
 * known by 64 bits of its keyed hash: a collision only makes two
 * identities share a count, the same way in every invocation of the run. */
typedef struct {
  uint64_t h;
  uint32_t n;
} occ_t;

typedef struct {
  int fd;                 /* -1: a memory journal (nothing is kept) */
  char *path;
  unsigned char salt[16]; /* keys the identity hashes of this run */
  slot_t *slots;
  size_t nslots, slotcap;
  occ_t *occs;
  size_t nocc, occcap;
  uint64_t appended, synced; /* sequence numbers of records */
  uint64_t nsyncs;           /* fdatasyncs made (group commit shows here) */
  uint64_t sync_ns;          /* time spent in them (make bench reports it) */
  void *mac;                 /* EVP_MAC_CTX keyed by salt, made on first use and
                                copied per operation (keying costs more than hashing) */
  int64_t open_ops;          /* this invocation's operations not yet settled:
                                INTENT, IN_FLIGHT or IN_DOUBT (a run with
                                any cannot complete) */
  int closed, broken;        /* closed: no more use; broken: a write failed */
  int readonly;              /* a dry run's view of a run: read, never written */
  int held_here;             /* a read-only look at a journal this process holds:
                                no descriptor of its own (closing one would drop
                                the lock); holder() is this process */
  int unscanned;             /* opened non-empty, not yet scanned or reset: where the
                                records end (before the zeros) is not known yet */
  int64_t size;              /* end of the good prefix: the next record's offset */
  int64_t next_n;            /* the next record's number ("n", from 1 at the header);
                                0: a journal from before numbering, whose records have none */
  int64_t alloc;             /* zero-filled bytes on disk (>= size): see journal_append */
  struct buf rec;            /* the record being built (journal_record_begin):
                                one buffer for the run, not one per record */
  dev_t dev;                 /* the file, to find it by path (journal_read) */
  ino_t ino;
  void *next_open;           /* the process's open journals (journal_read) */
} journal_t;

typedef struct {
  journal_t *j;
  uint64_t h;
  int64_t off;          /* a resumed operation's record (applied, rejected: its outcome) */
  int open;             /* counted in j->open_ops */
  unsigned char id[16]; /* identity hash (method, path, account, body) */
  uint32_t occ;
  int state;
  int doubt;            /* an attempt may have reached the server */
  uint64_t intent_seq;  /* durable once j->synced >= intent_seq */
  int64_t intent_ts;
  char key[72];
  char *method, *path, *obo, *body; /* for the intent record (body redacted) */
} op_t;

int op_transition(int state, int cls, int reached);
journal_t *journal_check(lua_State *L, int idx);
int journal_parse_id(const char *hex, unsigned char id[16]);
uint64_t journal_slot_hash(const unsigned char id[16], uint32_t occ);
/* Pushes the decoded record of a line, or nil when it is damaged. */
int journal_push_record(lua_State *L, const char *s, size_t n);
slot_t *journal_slot(journal_t *j, uint64_t h, int create);
int journal_append(journal_t *j, const char *s, size_t n, int sync);
int journal_sync(journal_t *j);
ssize_t journal_read_line(journal_t *j, int64_t off, char **out);
/* The salt changed (or the journal closes): the keyed MAC is made again. */
void journal_forget_mac(journal_t *j);
/* The op at idx, checked sendable: intent durable. Raises otherwise. */
op_t *op_check_sendable(lua_State *L, int idx);
void op_mark_in_flight(op_t *op);
void uqpay_open_operation(lua_State *L);

/* Record text in a struct buf (buf.h). */
#define rb_add buf_add
#define rb_lit(b, lit) rb_add((b), "" lit, sizeof(lit) - 1) /* a string literal */
void rb_str(struct buf *b, const char *s, size_t n); /* a JSON string */
void rb_int(struct buf *b, long long v);             /* a JSON integer */
/* The journal's record buffer, emptied, with room for the checksum: build
 * the record's JSON in it, then journal_append_record. */
struct buf *journal_record_begin(journal_t *j);
/* Fills in the checksum and appends the newline: "<sum> <json>\n". b is
 * the buffer journal_record_begin returned. */
int journal_append_record(journal_t *j, struct buf *b, int sync);
#endif

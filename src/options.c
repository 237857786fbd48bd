#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lua.h"
#include "options.h"
#include "uqpay.h"

static const char help_text[] =
  "usage: uqlua [options] [script [args...]]\n"
  "\n"
  "Runs Lua 5.4 scripts with the uqpay module for the UQPAY Card Issuing and\n"
  "Banking API. With no script: a REPL on a terminal, otherwise stdin.\n"
  "\n"
  "uqlua options (before any Lua option or the script):\n"
  "  --env sandbox|production|sim  UQPAY environment (default: sandbox)\n"
  "  --sim[=SEED]          run against the built-in simulator, in-process\n"
  "  --profile NAME        credentials profile from the config file\n"
  "  --on-behalf-of ID     default x-on-behalf-of sub-account\n"
  "  --trace               log every HTTP exchange to stderr, secrets redacted\n"
  "  --yes                 confirm production writes without a prompt\n"
  "  --serve-sim           run the simulator as a standalone server\n"
  "      --listen HOST:PORT  (default 127.0.0.1:8787; port 0 picks a free one)\n"
  "      --seed FILE         seed data (JSON)\n"
  "      --faults SPEC       fault injection, see docs/simulator.md\n"
  "      --webhook-url URL   deliver signed webhooks there\n"
  "      --token-ttl SECONDS access token lifetime (default 1800)\n"
  "      --rate-limit N      requests per minute before 429 (default: no limit), a token bucket\n"
  "      --rate-burst N      requests the bucket holds (default: a tenth of --rate-limit)\n"
  "      --detach            run in the background once the export lines are printed\n"
  "      --pidfile FILE      with --detach: write the server's pid there\n"
  "      --state FILE        keep the ledger in FILE across restarts (saved on stop)\n"
  "  --dry-run             send no write: run against a read-through twin of the\n"
  "                        account; print each would-be write and a plan\n"
  "  --fresh               start a new run even if this invocation was interrupted\n"
  "  --journal PATH        keep the run journal there (default: one per\n"
  "                        invocation under $XDG_STATE_HOME/uqlua/runs)\n"
  "  --no-journal          keep no journal (refused in production)\n"
  "  --runs                list recent runs;  --run ID  show one\n"
  "  --json                machine output: results, plans and errors as JSON\n"
  "                        lines on stdout; logs stay on stderr\n"
  "  --help, --version\n"
  "\n"
  "Lua options, as lua 5.4:\n"
  "  -e stat   execute string 'stat'\n"
  "  -i        enter interactive mode after running script\n"
  "  -l mod    require library 'mod' into global 'mod'\n"
  "  -l g=mod  require library 'mod' into global 'g'\n"
  "  -v        show version information\n"
  "  -E        ignore environment variables\n"
  "  -W        turn warnings on\n"
  "  --        stop handling options\n"
  "  -         stop handling options and execute stdin\n"
  "\n"
  "uqlua ops lists the bundled ops scripts; uqlua NAME args runs one.\n"
  "Environment: UQPAY_CLIENT_ID UQPAY_API_KEY UQPAY_ENV UQPAY_BASE_URL\n"
  "UQPAY_ON_BEHALF_OF UQLUA_PROFILE UQLUA_INIT UQLUA_PATH. See uqlua(1).\n";

struct valued { const char *name; size_t offset; };

#define OFF(f) offsetof(struct uqlua_options, f)
static const struct valued valued_options[] = {
  {"env", OFF(env)},           {"profile", OFF(profile)},
  {"on-behalf-of", OFF(on_behalf_of)}, {"listen", OFF(listen)},
  {"seed", OFF(seed_file)},    {"faults", OFF(faults)},
  {"webhook-url", OFF(webhook_url)}, {"token-ttl", OFF(token_ttl)},
  {"rate-limit", OFF(rate_limit)}, {"rate-burst", OFF(rate_burst)}, {"journal", OFF(journal)},
  {"run", OFF(run_id)}, {"pidfile", OFF(pidfile)}, {"state", OFF(state_file)}, {NULL, 0}};

static int usage_error(const char *fmt, const char *what) {
  fprintf(stderr, "uqlua: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\nTry 'uqlua --help' for more information.\n");
  return 2;
}

int uqlua_parse_options(int argc, char **argv, struct uqlua_options *o) {
  memset(o, 0, sizeof *o);
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] != '-' || a[2] == '\0') break; /* script, Lua option or "--" */
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
#define IS(s) (nlen == strlen(s) && strncmp(name, s, nlen) == 0)
    if (IS("help")) { fputs(help_text, stdout); return 0; }
    if (IS("version")) { printf("uqlua %s (%s)\n", UQLUA_VERSION, LUA_RELEASE); return 0; }
    if (IS("sim")) { o->sim = 1; o->sim_seed = eq ? eq + 1 : NULL; continue; }
    int *flag = IS("trace") ? &o->trace : IS("yes") ? &o->yes : IS("dry-run") ? &o->dry_run
              : IS("json") ? &o->json : IS("fresh") ? &o->fresh : IS("no-journal") ? &o->no_journal
              : IS("runs") ? &o->runs : IS("serve-sim") ? &o->serve_sim : IS("detach") ? &o->detach : NULL;
    if (flag) {
      /* --yes=no must not mean yes */
      if (eq) return usage_error("option '%s' takes no value", a);
      *flag = 1;
      continue;
    }
    if (IS("api-key")) return usage_error("%s: the API key is never taken from the command line; set UQPAY_API_KEY or use the config file", a);
    const struct valued *v;
    for (v = valued_options; v->name; v++) if (IS(v->name)) break;
    if (!v->name) return usage_error("unrecognized option '%s'", a);
    const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (val == NULL || *val == '\0') return usage_error("option '%s' needs a value", a);
    *(const char **)((char *)o + v->offset) = val;
#undef IS
  }
  o->first_lua_arg = i;
  if (o->env && strcmp(o->env, "sandbox") && strcmp(o->env, "production") && strcmp(o->env, "sim"))
    return usage_error("--env must be sandbox, production or sim, not '%s'", o->env);
  if (o->env && strcmp(o->env, "sim") == 0) o->sim = 1;
  if (o->sim && o->env && strcmp(o->env, "sim") != 0)
    return usage_error("--sim conflicts with --env %s", o->env);
  if (o->journal && o->no_journal) return usage_error("%s", "--journal and --no-journal conflict");
  if (o->dry_run && o->fresh) return usage_error("%s", "--dry-run sends no write: --fresh makes no sense with it");
  if (!o->serve_sim && (o->listen || o->seed_file))
    return usage_error("%s", "--listen and --seed go with --serve-sim (use --sim=SEED in-process)");
  if (!o->serve_sim && (o->detach || o->pidfile || o->state_file))
    return usage_error("%s", "--detach, --pidfile and --state go with --serve-sim");
  if (o->pidfile && !o->detach) return usage_error("%s", "--pidfile goes with --detach");
  return -1;
}

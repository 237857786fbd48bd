/* uqlua's own long options (SPEC §1), parsed before Lua's short options. */
#ifndef UQLUA_OPTIONS_H
#define UQLUA_OPTIONS_H

struct uqlua_options {
  const char *env;          /* --env sandbox|production|sim */
  int sim;                  /* --sim[=SEED] */
  const char *sim_seed;     /* seed file for --sim=SEED */
  const char *profile;      /* --profile NAME */
  const char *on_behalf_of; /* --on-behalf-of ACCOUNT_ID */
  int trace;                /* --trace */
  int yes;                  /* --yes: production writes without a prompt */
  int dry_run;              /* --dry-run */
  int json;                 /* --json: machine output on stdout */
  int fresh;                /* --fresh */
  const char *journal;      /* --journal PATH */
  int no_journal;           /* --no-journal */
  int runs;                 /* --runs */
  const char *run_id;       /* --run ID */
  /* set by pmain: the script being run (NULL for -e, stdin, REPL) */
  const char *script;
  char **script_args;
  int bundled;              /* script is a bundled ops script name */
  int serve_sim;            /* --serve-sim */
  const char *listen;       /* --listen HOST:PORT (with --serve-sim) */
  const char *seed_file;    /* --seed FILE (with --serve-sim) */
  const char *faults;       /* --faults SPEC */
  const char *webhook_url;  /* --webhook-url URL (simulator) */
  const char *token_ttl;    /* --token-ttl SECONDS (simulator) */
  const char *rate_limit;   /* --rate-limit N per minute (simulator) */
  const char *rate_burst;   /* --rate-burst N requests at once (simulator) */
  int detach;               /* --detach: daemonise after printing the exports */
  const char *pidfile;      /* --pidfile FILE (with --detach) */
  const char *state_file;   /* --state FILE: the ledger across restarts */
  int first_lua_arg;        /* index of the first argument left for Lua */
};

/* Returns -1 to go on, or an exit code (0 after --help/--version, 2 on a
 * usage error, already reported on stderr). */
int uqlua_parse_options(int argc, char **argv, struct uqlua_options *o);

#endif

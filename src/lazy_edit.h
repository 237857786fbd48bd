/* libedit, opened when the REPL starts on a terminal (see lazy_edit.c). */
#ifndef UQLUA_LAZY_EDIT_H
#define UQLUA_LAZY_EDIT_H

#include <stdio.h>

#include <editline/readline.h>

/* Every libedit name the REPL uses, by address: functions are called as
 * ed->readline(prompt), variables set as *ed->rl_catch_signals = 0. */
#define EDIT_NAMES(X)                                                                                     \
  X(readline) X(add_history) X(write_history) X(read_history) X(history_get) X(remove_history)            \
  X(free_history_entry) X(stifle_history) X(rl_completion_matches) X(history_base) X(history_length)      \
  X(rl_readline_name) X(rl_catch_signals) X(rl_getc_function) X(rl_attempted_completion_function)         \
  X(rl_attempted_completion_over) X(rl_completion_append_character) X(rl_completer_word_break_characters) \
  X(rl_basic_word_break_characters)

#define EDIT_MEMBER(n) __typeof__(n) *n;
struct lazy_edit {
  EDIT_NAMES(EDIT_MEMBER)
};
#undef EDIT_MEMBER

/* Opens libedit once; NULL if it cannot be opened (lazy_edit_error() says why). */
const struct lazy_edit *lazy_edit(void);

#endif

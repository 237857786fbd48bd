/* uqpay error objects: tables with kind/status/code/message/... and a
 * shared metatable "uqpay.Error" whose __tostring gives one readable line. */
#ifndef UQPAY_ERRORS_H
#define UQPAY_ERRORS_H
#include "lua.h"

#define ERROR_MT "uqpay.Error"

void uqpay_error_metatable(lua_State *L);
/* The text on top of the stack, replaced by what the redactor leaves of it;
 * 0 when it could not run and the text was withheld. */
int uqpay_redact_top(lua_State *L);
/* Raises {kind="usage", field=, value=, message="field value why"}. */
int uqpay_raise_usage(lua_State *L, const char *field, const char *shown, const char *why);
/* Raises {kind=, message=} formatted as lua_pushfstring does: the one way C
 * raises (never a bare string). */
_Noreturn int uqpay_raise(lua_State *L, const char *kind, const char *fmt, ...);
/* core.error(t): gives t the error metatable and returns it. */
int uqpay_l_error(lua_State *L);
#endif

/*
 * Shared declarations of the pyws._core binding: the module state (types
 * and exception classes, no mutable statics) and the helpers each py_*.c
 * file uses.
 */
#ifndef PYWS_PY_MODULE_H
#define PYWS_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyws_http.h"
#include "pyws_pmd.h"

/* Names of the methods the binding calls on Python objects (gevent's
 * watcher and hub, the greenlet: see py_gevent_read.c), interned once per
 * module in this order (see py_module.c).  None belongs to pyws's own Python
 * layer: the binding offers primitives and never calls back into it. */
enum pyws_name {
  PYWS_NAME_START,
  PYWS_NAME_STOP,
  PYWS_NAME_SWITCH,
  PYWS_NAME_COUNT
};

typedef struct pyws_state {
  PyTypeObject *protocol_type;
  /* From pyws.exceptions, so Python and C raise one exception tree. */
  PyObject *WebSocketError;
  PyObject *HandshakeError;
  PyObject *ConnectionClosed;
  PyObject *names[PYWS_NAME_COUNT];
  /* greenlet.getcurrent, for read_message's waits under gevent; NULL
   * when greenlet is not installed. */
  PyObject *getcurrent;
} pyws_state;

static inline pyws_state *pyws_get_state(PyObject *module) {
  return (pyws_state *)PyModule_GetState(module);
}

/* Set an exception for engine error `rv` (MemoryError, ValueError or
 * WebSocketError with pyws_strerror's text); returns NULL. */
PyObject *pyws_py_error(pyws_state *st, int rv);

/* Raise HandshakeError(message, status, headers); returns NULL.  `extra_name`
 * may be NULL. */
PyObject *pyws_py_handshake_error(pyws_state *st, const char *message, int status,
                                  const char *extra_name, const char *extra_value);

/* Convert a sequence of str to pyws_str views (valid while `seq_fast`, a
 * new reference returned through *keep, lives).  *out is PyMem_Malloc'ed.
 * `what` names the argument in error messages.  0 or -1 with an exception. */
int pyws_py_str_list(PyObject *seq, const char *what, PyObject **keep,
                     pyws_str **out, size_t *n);

/* Convert a sequence of (name, value) str pairs to header views, same
 * ownership rules as pyws_py_str_list. */
int pyws_py_header_list(PyObject *seq, PyObject **keep, pyws_http_header **out,
                        size_t *n);

/* Headers as a list of (name, value) str tuples, decoded as Latin-1. */
PyObject *pyws_py_headers_to_list(const pyws_http_header *h, size_t n);

/* permessage-deflate parameters from / to a Python tuple (see py_pmd.c).
 * 0 or -1 with an exception; the tuple: a new reference or NULL. */
int pyws_py_pmd_params(PyObject *obj, pyws_pmd_params *p);
PyObject *pyws_py_pmd_tuple(const pyws_pmd_params *p);

/* What Protocol.receive_from returns when it has no message for the caller. */
enum { PYWS_RECV_WAIT = 0, PYWS_RECV_EVENTS = 1, PYWS_RECV_EOF = 2 };

/* A file descriptor argument (an int, as fileno() returns it); a negative
 * or out-of-range one becomes -1, so the system call fails with EBADF.
 * 0 or -1 with an exception. */
int pyws_py_fd_arg(PyObject *arg, int *fd);

/* Protocol.receive_from's body (`proto` must be a Protocol): with `deferred`,
 * output waiting to be written does not hold back a complete message. */
PyObject *pyws_py_receive_step(PyObject *proto, int fd, int readable, int deferred);
/* Protocol.read_message (py_gevent_read.c). */
PyObject *pyws_py_read_message(PyObject *proto, PyObject *const *args, Py_ssize_t nargs);

/* The exception being raised, set aside while a clean-up call runs. */
#if PY_VERSION_HEX >= 0x030C0000
typedef struct { PyObject *exc; } pyws_saved_error;
static inline void pyws_save_error(pyws_saved_error *e) { e->exc = PyErr_GetRaisedException(); }
static inline void pyws_restore_error(pyws_saved_error *e) { PyErr_SetRaisedException(e->exc); }
static inline void pyws_drop_error(pyws_saved_error *e) { Py_XDECREF(e->exc); }
#else
typedef struct { PyObject *type, *value, *tb; } pyws_saved_error;
static inline void pyws_save_error(pyws_saved_error *e) {
  PyErr_Fetch(&e->type, &e->value, &e->tb);
}
static inline void pyws_restore_error(pyws_saved_error *e) {
  PyErr_Restore(e->type, e->value, e->tb);
}
static inline void pyws_drop_error(pyws_saved_error *e) {
  Py_XDECREF(e->type);
  Py_XDECREF(e->value);
  Py_XDECREF(e->tb);
}
#endif

/* Per-file module setup, called from the module's exec slot. */
int pyws_py_protocol_init(PyObject *module, pyws_state *st);
int pyws_py_handshake_init(PyObject *module);
int pyws_py_frame_init(PyObject *module);
int pyws_py_pmd_init(PyObject *module);
int pyws_py_fanout_init(PyObject *module);

#endif

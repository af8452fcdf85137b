/*
 * Protocol.read_message(fd, watcher, hub, deferred): the receive primitive of
 * the gevent transport (pyws/transport.py).  It reads the plain socket `fd`
 * into the engine until a message is complete, and while the socket is empty
 * parks the current greenlet on the socket's read `watcher`: start it with the
 * greenlet's switch, switch to the `hub`.  pyws/_gevent.py hands it those two
 * objects; this file knows nothing else of gevent and nothing of the session
 * (pyws/websocket.py), which decides when to call it and handles everything
 * that is not a message.
 *
 * Why in C: it is the per-message work of nearly every gevent application,
 * and a wait written here keeps an idle connection's saved greenlet stack
 * small (no Python or gevent wait layers on it).
 */
#include "py_module.h"

/* The frames of this file are on the C stack while a greenlet waits at the
 * hub.  greenlet saves a waiting greenlet's stack by copying it; under
 * AddressSanitizer that copy would read the redzones ASan puts between a
 * frame's locals and be reported as an overflow.  So no function here gets
 * redzones, and the calls that may wait go through call_method (not the
 * inline helpers of Python's headers, which would be compiled here with
 * them).  UBSan, and ASan in the rest of the engine, still apply. */
#if defined(__GNUC__) || defined(__clang__)
#define NO_REDZONES __attribute__((no_sanitize_address))
#else
#define NO_REDZONES
#endif

/* obj.name() or obj.name(arg) (arg NULL: none). */
NO_REDZONES
static PyObject *call_method(PyObject *obj, PyObject *name, PyObject *arg) {
  PyObject *args[2] = {obj, arg};
  return PyObject_VectorcallMethod(name, args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   NULL);
}

/* Start `watcher` with the current greenlet's switch and switch to `hub`;
 * the watcher is stopped however the wait ends.  A close from another
 * greenlet throws gevent's cancel_wait_ex (an OSError) into the wait.  0 or
 * -1 with an exception.  Its frame stays on the saved stack of every idle
 * connection's greenlet, so it is kept small. */
NO_REDZONES
static int wait_on_hub(pyws_state *st, PyObject *watcher, PyObject *hub) {
  PyObject *current, *wake, *r;
  pyws_saved_error saved;
  if (st->getcurrent == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "read_message needs greenlet");
    return -1;
  }
  if ((current = PyObject_CallNoArgs(st->getcurrent)) == NULL) {
    return -1;
  }
  wake = PyObject_GetAttr(current, st->names[PYWS_NAME_SWITCH]);
  Py_DECREF(current);
  if (wake == NULL) {
    return -1;
  }
  r = call_method(watcher, st->names[PYWS_NAME_START], wake);
  Py_DECREF(wake);
  if (r == NULL) {
    return -1;
  }
  Py_DECREF(r);
  r = call_method(hub, st->names[PYWS_NAME_SWITCH], NULL);
  if (r != NULL) {
    Py_DECREF(r);
    r = call_method(watcher, st->names[PYWS_NAME_STOP], NULL);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
  }
  pyws_save_error(&saved);
  if ((r = call_method(watcher, st->names[PYWS_NAME_STOP], NULL)) == NULL) {
    pyws_drop_error(&saved);
    return -1;
  }
  Py_DECREF(r);
  pyws_restore_error(&saved);
  return -1;
}

NO_REDZONES
PyObject *pyws_py_read_message(PyObject *proto, PyObject *const *args, Py_ssize_t nargs) {
  pyws_state *st = pyws_get_state(PyType_GetModule(Py_TYPE(proto)));
  int fd, deferred, readable = 0;
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "read_message(fd, watcher, hub, deferred)");
    return NULL;
  }
  if (pyws_py_fd_arg(args[0], &fd) != 0 || (deferred = PyObject_IsTrue(args[3])) < 0) {
    return NULL;
  }
  /* The descriptor cannot change during a wait: closing the socket ends the
     wait with an exception. */
  for (;;) {
    PyObject *got = pyws_py_receive_step(proto, fd, readable, deferred);
    if (got == NULL || !PyLong_CheckExact(got) || PyLong_AsLong(got) != PYWS_RECV_WAIT) {
      return got;
    }
    Py_DECREF(got);
    if (wait_on_hub(st, args[1], args[2]) != 0) {
      return NULL;
    }
    readable = 1;
  }
}

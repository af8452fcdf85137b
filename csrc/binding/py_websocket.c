/*
 * pyws._core.WebSocketBase: the base of pyws.WebSocket.  It holds the fields
 * that receive() and send() read on every message, and runs those two
 * methods' common case in C: a message already queued, and on a plain
 * gevent socket, one engine call that reads (and waits at the hub), or one
 * that writes.  Everything else goes to the Python methods of the subclass
 * (_receive_slow, _send_slow, _finish_direct, _refuse), so the behaviour is
 * defined in one place; at tens of thousands of messages a second, the
 * Python frames of the common case cost as much as the engine and the
 * system calls together.
 */
#include "py_module.h"

#include <structmember.h>
#include <time.h>

/* The frames of this file are on the C stack while a greenlet waits (at the
 * hub, or in the Python methods called from here).  greenlet saves a
 * waiting greenlet's stack by copying it; under AddressSanitizer that copy
 * would read the redzones ASan puts between a frame's locals and be
 * reported as an overflow.  So no function here gets redzones, and calls
 * that may wait go through call_method (not the inline helpers of
 * Python's headers, which would be compiled here with them).  UBSan, and
 * ASan in the rest of the engine, still apply. */
#if defined(__GNUC__) || defined(__clang__)
#define NO_REDZONES __attribute__((no_sanitize_address))
#else
#define NO_REDZONES
#endif

/* pyws.websocket's _direct values (_NO_DIRECT, _GEVENT, _POLL). */
enum { DIRECT_GEVENT = 1 };

/* obj.name() or obj.name(arg) (arg NULL: none). */
NO_REDZONES
static PyObject *call_method(PyObject *obj, PyObject *name, PyObject *arg) {
  PyObject *args[2] = {obj, arg};
  return PyObject_VectorcallMethod(name, args, (arg ? 2 : 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   NULL);
}

typedef struct {
  PyObject_HEAD
  PyObject *proto;     /* _proto: the engine, a Protocol */
  PyObject *sock;      /* _sock */
  PyObject *lock;      /* _lock: serialises writes */
  PyObject *read_lock; /* _read_lock: one reader at a time */
  PyObject *messages;  /* _messages: a deque of received messages, or None */
  PyObject *rawsock;   /* _rawsock: what fileno() is called on (gevent's inner socket) */
  PyObject *wakeup;    /* _wakeup: the keepalive task's event, or None */
  double last_rx;      /* _last_rx: time.monotonic() of the last receive */
  int direct;          /* _direct */
  char fast;           /* _fast: receive() may take the gevent fast path */
  char dead;           /* _dead: the socket was shut down */
  char used;           /* _used: the application sent or received */
  char deferred;       /* _deferred: send() left frames in the engine's output */
} WebSocketBase;

NO_REDZONES
static int base_traverse(WebSocketBase *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->proto);
  Py_VISIT(self->sock);
  Py_VISIT(self->lock);
  Py_VISIT(self->read_lock);
  Py_VISIT(self->messages);
  Py_VISIT(self->rawsock);
  Py_VISIT(self->wakeup);
  return 0;
}

NO_REDZONES
static int base_clear(WebSocketBase *self) {
  Py_CLEAR(self->proto);
  Py_CLEAR(self->sock);
  Py_CLEAR(self->lock);
  Py_CLEAR(self->read_lock);
  Py_CLEAR(self->messages);
  Py_CLEAR(self->rawsock);
  Py_CLEAR(self->wakeup);
  return 0;
}

NO_REDZONES
static void base_dealloc(WebSocketBase *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  base_clear(self);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

/* time.monotonic(): the same clock on Linux. */
NO_REDZONES
static double monotonic_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* gevent's socket defines __getattr__ (to reach the socket it wraps), which
 * makes every attribute lookup on it look for that hook in its type first.
 * Its own slots are found without: the plain lookup (a missing one raises
 * AttributeError, as it would anyway). */
NO_REDZONES
static PyObject *socket_attr(PyObject *sock, PyObject *name) {
  return PyObject_GenericGetAttr(sock, name);
}

/* 1 if obj.name is not None, 0 if it is, -1 on error. */
NO_REDZONES
static int attr_is_set(PyObject *obj, PyObject *name) {
  PyObject *v = PyObject_GenericGetAttr(obj, name);
  int set;
  if (v == NULL) {
    return -1;
  }
  set = v != Py_None;
  Py_DECREF(v);
  return set;
}

/* 1 if lock.locked(), 0 if not, -1 on error. */
NO_REDZONES
static int is_locked(pyws_state *st, PyObject *lock) {
  PyObject *r = call_method(lock, st->names[PYWS_NAME_LOCKED], NULL);
  int locked;
  if (r == NULL) {
    return -1;
  }
  locked = PyObject_IsTrue(r);
  Py_DECREF(r);
  return locked;
}

/* Whether the gevent fast path applies: a Protocol engine, the socket's read
 * watcher idle, no socket timeout (another reader shows when the read lock
 * is taken).  1 and *watcher (a new reference), 0, or -1 on error. */
NO_REDZONES
static int fast_path_open(WebSocketBase *self, pyws_state *st, PyObject **watcher) {
  PyObject **n = st->names;
  PyObject *event;
  int busy = 0;
  *watcher = NULL;
  if (self->sock == NULL || self->read_lock == NULL || self->rawsock == NULL ||
      self->proto == NULL || !Py_IS_TYPE(self->proto, st->protocol_type) ||
      st->getcurrent == NULL) {
    return 0;
  }
  if ((event = socket_attr(self->sock, n[PYWS_NAME_READ_EVENT])) == NULL) {
    return -1;
  }
  if (event == Py_None ||
      (busy = attr_is_set(self->sock, n[PYWS_NAME_TIMEOUT])) != 0 ||
      (busy = attr_is_set(event, n[PYWS_NAME_CALLBACK])) != 0) {
    Py_DECREF(event);
    return busy < 0 ? -1 : 0; /* an error, or not open */
  }
  *watcher = event;
  return 1;
}

/* The socket's descriptor: rawsock.fileno() (-1 once closed, so that a
 * system call fails rather than reach a reused number).  0 or -1. */
NO_REDZONES
static int socket_fd(pyws_state *st, PyObject *rawsock, int *fd) {
  PyObject *v = call_method(rawsock, st->names[PYWS_NAME_FILENO], NULL);
  int rc;
  if (v == NULL) {
    return -1;
  }
  rc = pyws_py_fd_arg(v, fd);
  Py_DECREF(v);
  return rc;
}

/* Wait on the hub until `watcher` fires: start it with the current
 * greenlet's switch and switch to the hub.  A close from another greenlet
 * throws gevent's cancel_wait_ex (an OSError) into the wait.  0 or -1; the
 * watcher is stopped either way.  Its frame is on the greenlet's saved stack
 * for as long as an idle connection waits, so it stays small. */
NO_REDZONES
static int wait_on_hub(pyws_state *st, PyObject *watcher, PyObject *hub) {
  PyObject *current, *wake, *r;
  pyws_saved_error saved;
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

/* Read until a message is complete, waiting on the hub while the socket is
 * empty: the message, or a PYWS_RECV_* int, or NULL with an exception.  The
 * descriptor cannot change during a wait: closing the socket ends the wait
 * with an exception. */
NO_REDZONES
static PyObject *read_message(WebSocketBase *self, pyws_state *st, PyObject *proto, int fd,
                              PyObject *watcher, PyObject *hub) {
  int readable = 0;
  for (;;) {
    PyObject *got = pyws_py_receive_step(proto, fd, readable, self->deferred);
    if (got == NULL) {
      return NULL;
    }
    if (!PyLong_CheckExact(got) || PyLong_AsLong(got) != PYWS_RECV_WAIT) {
      return got;
    }
    Py_DECREF(got);
    if (wait_on_hub(st, watcher, hub) != 0) {
      return NULL;
    }
    readable = 1;
  }
}

/* receive() on a plain gevent socket: the message, NULL with an exception,
 * or NULL without one when _receive_slow must take over (events, EOF, the
 * socket closed by another greenlet, a timeout, another reader). */
NO_REDZONES
static PyObject *receive_gevent(WebSocketBase *self, pyws_state *st) {
  PyObject **n = st->names;
  PyObject *watcher, *hub = NULL, *result = NULL, *r;
  PyObject *proto, *rawsock, *lock;
  pyws_saved_error saved;
  int fd, taken, open = fast_path_open(self, st, &watcher);
  if (open <= 0) {
    return NULL;
  }
  /* The wait runs other greenlets, which may reassign the fields. */
  proto = Py_NewRef(self->proto);
  rawsock = Py_NewRef(self->rawsock);
  lock = Py_NewRef(self->read_lock);
  /* acquire(False): another reader holds it, and _receive_slow queues. */
  if ((hub = socket_attr(self->sock, n[PYWS_NAME_HUB])) == NULL ||
      (r = call_method(lock, n[PYWS_NAME_ACQUIRE], Py_False)) == NULL) {
    goto done;
  }
  taken = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (taken <= 0) {
    goto done;
  }
  if (socket_fd(st, rawsock, &fd) == 0) {
    result = read_message(self, st, proto, fd, watcher, hub);
  }
  /* Release the lock whatever the read ended with, keeping its exception. */
  if (result == NULL) {
    pyws_save_error(&saved);
  }
  r = call_method(lock, n[PYWS_NAME_RELEASE], NULL);
  if (result == NULL) {
    if (r == NULL) {
      pyws_drop_error(&saved);
    } else {
      pyws_restore_error(&saved);
      /* A close from another greenlet: _receive_slow reports the end. */
      if (PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
      }
    }
  }
  if (r == NULL) {
    Py_CLEAR(result);
  } else {
    Py_DECREF(r);
  }
  if (result != NULL && PyLong_CheckExact(result)) {
    Py_CLEAR(result); /* events or EOF: _receive_slow handles them */
  }
  if (result != NULL && self->wakeup != NULL && self->wakeup != Py_None) {
    self->last_rx = monotonic_now();
  }
done:
  Py_DECREF(watcher);
  Py_XDECREF(hub);
  Py_DECREF(proto);
  Py_DECREF(rawsock);
  Py_DECREF(lock);
  return result;
}

NO_REDZONES
static PyObject *base_receive(WebSocketBase *self, PyTypeObject *cls, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames) {
  pyws_state *st = (pyws_state *)PyType_GetModuleState(cls);
  PyObject *messages = self->messages;
  (void)args;
  if (nargs != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
    PyErr_SetString(PyExc_TypeError, "receive() takes no arguments");
    return NULL;
  }
  /* A test, not popleft's IndexError: raising costs more than a read. */
  if (messages != NULL && messages != Py_None) {
    int queued = PyObject_IsTrue(messages);
    if (queued < 0) {
      return NULL;
    }
    if (queued) {
      return call_method(messages, st->names[PYWS_NAME_POPLEFT], NULL);
    }
  }
  /* The burst is over when no message waits: what send() deferred during
     it goes out now, before this receive() reads or waits. */
  if (self->deferred && (self->proto == NULL || !Py_IS_TYPE(self->proto, st->protocol_type) ||
                         !pyws_py_message_ready(self->proto))) {
    PyObject *r = call_method((PyObject *)self, st->names[PYWS_NAME_FLUSH_DEFERRED], Py_True);
    if (r == NULL) {
      return NULL;
    }
    Py_DECREF(r);
  }
  if (self->fast) {
    PyObject *message = receive_gevent(self, st);
    if (message != NULL || PyErr_Occurred()) {
      return message;
    }
  }
  return call_method((PyObject *)self, st->names[PYWS_NAME_RECEIVE_SLOW], NULL);
}

/* send()'s arguments: (message, binary=None), by position or keyword. */
NO_REDZONES
static int send_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     PyObject **message, PyObject **binary) {
  Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
  *message = nargs > 0 ? args[0] : NULL;
  *binary = nargs > 1 ? args[1] : Py_None;
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError, "send() takes at most 2 arguments (%zd given)", nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *name = PyTuple_GET_ITEM(kwnames, i);
    if (nargs < 1 && PyUnicode_CompareWithASCIIString(name, "message") == 0) {
      *message = args[nargs + i];
    } else if (nargs < 2 && PyUnicode_CompareWithASCIIString(name, "binary") == 0) {
      *binary = args[nargs + i];
    } else {
      PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument %R", name);
      return -1;
    }
  }
  if (*message == NULL) {
    PyErr_SetString(PyExc_TypeError, "send() missing required argument 'message'");
    return -1;
  }
  return 0;
}

/* Deferred output is written once it reaches this many bytes. */
#define DEFER_LIMIT (64u << 10)

/* send() while the next received message is already complete in the
 * engine: the application is working through a burst (pipelined requests)
 * and answers each, so the frames gather in the engine's output and go out
 * in one write when the burst ends (the receive() that finds no message
 * ready, or the hub's next turn), not in one system call and one TCP
 * segment each.  None, or NULL with an exception. */
NO_REDZONES
static PyObject *defer_send(WebSocketBase *self, pyws_state *st, PyObject *message,
                            PyObject *binary) {
  PyObject *queued = pyws_py_queue_message(self->proto, message, binary), *r;
  size_t n;
  if (queued == NULL) {
    return NULL;
  }
  n = PyLong_AsSize_t(queued);
  Py_DECREF(queued);
  if (n == (size_t)-1 && PyErr_Occurred()) {
    return NULL;
  }
  if (!self->deferred) {
    self->deferred = 1;
    if ((r = call_method((PyObject *)self, st->names[PYWS_NAME_SCHEDULE_FLUSH], NULL)) == NULL) {
      return NULL;
    }
    Py_DECREF(r);
  }
  if (n >= DEFER_LIMIT) {
    return call_method((PyObject *)self, st->names[PYWS_NAME_FLUSH_DEFERRED], Py_True);
  }
  Py_RETURN_NONE;
}

/* send() on a plain gevent socket with the send lock free: greenlets do not
 * preempt each other and the engine's call does not switch, so nothing can
 * come between the check and the write; the lock is taken (by
 * _finish_direct) only if the socket does not take the whole frame.  None,
 * NULL with an exception, or NULL without one for _send_slow. */
NO_REDZONES
static PyObject *send_gevent(WebSocketBase *self, pyws_state *st, PyObject *message,
                             PyObject *binary) {
  PyObject *fd, *left, *r;
  int locked;
  if (self->lock == NULL || self->rawsock == NULL || self->proto == NULL ||
      !Py_IS_TYPE(self->proto, st->protocol_type)) {
    return NULL;
  }
  if ((locked = is_locked(st, self->lock)) != 0) {
    return NULL; /* another sender, or an error (set) */
  }
  if (self->fast && pyws_py_message_ready(self->proto)) {
    return defer_send(self, st, message, binary);
  }
  /* fileno()'s int goes to send_to as it is (send_to reads it). */
  if ((fd = call_method(self->rawsock, st->names[PYWS_NAME_FILENO], NULL)) == NULL) {
    return NULL;
  }
  {
    PyObject *args[3] = {fd, message, binary};
    left = pyws_py_send_to(self->proto, args);
  }
  Py_DECREF(fd);
  if (left == NULL) {
    return NULL;
  }
  if (PyLong_CheckExact(left) && PyLong_AsLong(left) == 0) {
    Py_DECREF(left);
    Py_RETURN_NONE;
  }
  r = call_method((PyObject *)self, st->names[PYWS_NAME_FINISH_DIRECT], left);
  Py_DECREF(left);
  return r;
}

NO_REDZONES
static PyObject *base_send(WebSocketBase *self, PyTypeObject *cls, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames) {
  pyws_state *st = (pyws_state *)PyType_GetModuleState(cls);
  PyObject *message, *binary;
  if (send_args(args, nargs, kwnames, &message, &binary) != 0) {
    return NULL;
  }
  if (self->dead || message == Py_None) {
    return call_method((PyObject *)self, st->names[PYWS_NAME_REFUSE], message);
  }
  self->used = 1;
  if (self->direct == DIRECT_GEVENT) {
    PyObject *r = send_gevent(self, st, message, binary);
    if (r != NULL || PyErr_Occurred()) {
      return r;
    }
  }
  {
    PyObject *call[3] = {(PyObject *)self, message, binary};
    return PyObject_VectorcallMethod(st->names[PYWS_NAME_SEND_SLOW], call,
                                     3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
  }
}

#define OBJ_MEMBER(name, field) \
  {name, T_OBJECT_EX, offsetof(WebSocketBase, field), 0, NULL}

static PyMemberDef base_members[] = {
    OBJ_MEMBER("_proto", proto),
    OBJ_MEMBER("_sock", sock),
    OBJ_MEMBER("_lock", lock),
    OBJ_MEMBER("_read_lock", read_lock),
    OBJ_MEMBER("_messages", messages),
    OBJ_MEMBER("_rawsock", rawsock),
    OBJ_MEMBER("_wakeup", wakeup),
    {"_last_rx", T_DOUBLE, offsetof(WebSocketBase, last_rx), 0, NULL},
    {"_direct", T_INT, offsetof(WebSocketBase, direct), 0, NULL},
    {"_fast", T_BOOL, offsetof(WebSocketBase, fast), 0, NULL},
    {"_deferred", T_BOOL, offsetof(WebSocketBase, deferred), 0, NULL},
    {"_dead", T_BOOL, offsetof(WebSocketBase, dead), 0, NULL},
    {"_used", T_BOOL, offsetof(WebSocketBase, used), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef base_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))base_receive,
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
     "receive($self, /)\n--\n\n"
     "Return the next message: str (text) or bytes (binary).\n\n"
     "Returns None once the connection is closed, and on every call after.\n"
     "Pings are answered and the closing handshake completed on the way.\n"
     "Raises ProtocolError (FrameTooLargeException for an oversized message)\n"
     "once if the peer broke the protocol; the connection is then failed."},
    {"send", (PyCFunction)(void (*)(void))base_send,
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
     "send($self, /, message, binary=None)\n--\n\n"
     "Send one message.\n\n"
     "str goes as text and bytes-like as binary, unless binary says otherwise\n"
     "(text from bytes must be valid UTF-8: ValueError otherwise; binary from\n"
     "str is its UTF-8 encoding).  Raises ConnectionClosed when the connection\n"
     "is closed (so echoing receive()'s None ends a loop that way), TypeError\n"
     "for None on an open connection or a non-bytes-like message."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot base_slots[] = {
    {Py_tp_dealloc, base_dealloc},
    {Py_tp_traverse, base_traverse},
    {Py_tp_clear, base_clear},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_members, base_members},
    {Py_tp_methods, base_methods},
    {Py_tp_doc, "The fields and the per-message methods of pyws.WebSocket (its base)."},
    {0, NULL},
};

static PyType_Spec base_spec = {
    .name = "pyws._core.WebSocketBase",
    .basicsize = sizeof(WebSocketBase),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = base_slots,
};

NO_REDZONES
int pyws_py_websocket_init(PyObject *module) {
  PyObject *type = PyType_FromModuleAndSpec(module, &base_spec, NULL);
  if (type == NULL) {
    return -1;
  }
  if (PyModule_AddObject(module, "WebSocketBase", type) != 0) {
    Py_DECREF(type);
    return -1;
  }
  return 0;
}

/*
 * pyws._core.Protocol: a Python object around one pyws_conn.  It holds no
 * Python references, so it needs no GC support; as a heap type it keeps
 * its type alive and releases it in dealloc.
 */
#include "py_module.h"

#include "pyws_conn.h"
#include "pyws_error.h"
#include "pyws_sockio.h"
#include "pyws_utf8.h"

typedef struct {
  PyObject_HEAD
  pyws_conn *conn;
  /* The last read from the socket took all it held: wait before reading
   * again (receive_from). */
  int drained;
} ProtocolObject;

static pyws_state *state_of(PyObject *self) {
  return (pyws_state *)PyType_GetModuleState(Py_TYPE(self));
}

static PyObject *closed_error(ProtocolObject *self) {
  pyws_state *st = state_of((PyObject *)self);
  size_t rlen;
  const uint8_t *reason = pyws_conn_close_reason(self->conn, &rlen);
  uint16_t code = pyws_conn_close_code(self->conn);
  PyObject *exc = PyObject_CallFunction(st->ConnectionClosed, "is#",
                                        code ? code : 1006, (const char *)reason,
                                        (Py_ssize_t)rlen);
  if (exc != NULL) {
    PyErr_SetObject(st->ConnectionClosed, exc);
    Py_DECREF(exc);
  }
  return NULL;
}

/* Map an engine result to None or an exception. */
static PyObject *result(ProtocolObject *self, int rv) {
  if (rv == 0) {
    Py_RETURN_NONE;
  }
  if (rv == PYWS_ERR_CLOSED) {
    return closed_error(self);
  }
  return pyws_py_error(state_of((PyObject *)self), rv);
}

static PyObject *Protocol_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"server", "max_message_size", "deflate", "deflate_level",
                           "deflate_mem_level", NULL};
  int server = 1;
  long long max_size = PYWS_DEFAULT_MAX_MESSAGE_SIZE;
  PyObject *deflate = Py_None;
  pyws_pmd_params deflate_params;
  pyws_conn_options opts;
  ProtocolObject *self;
  int rv;
  memset(&opts, 0, sizeof(opts));
  opts.deflate_level = -1;
  opts.deflate_mem_level = 8;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pLOii:Protocol", kwlist, &server,
                                   &max_size, &deflate, &opts.deflate_level,
                                   &opts.deflate_mem_level)) {
    return NULL;
  }
  if (deflate != Py_None) {
    if (pyws_py_pmd_params(deflate, &deflate_params) != 0) {
      return NULL;
    }
    if (opts.deflate_level < -1 || opts.deflate_level > 9 || opts.deflate_mem_level < 1 ||
        opts.deflate_mem_level > 9) {
      PyErr_Format(PyExc_ValueError,
                   "deflate_level must be from -1 to 9 and deflate_mem_level from 1 to 9, "
                   "not %d and %d", opts.deflate_level, opts.deflate_mem_level);
      return NULL;
    }
    opts.deflate = &deflate_params;
  }
  if (max_size < 0) {
    PyErr_SetString(PyExc_ValueError, "max_message_size must be >= 0 (0 means no limit)");
    return NULL;
  }
  self = (ProtocolObject *)type->tp_alloc(type, 0);
  if (self == NULL) {
    return NULL;
  }
  opts.server = server;
  opts.max_message_size = (uint64_t)max_size;
  if ((rv = pyws_conn_new(&self->conn, &opts)) != 0) {
    pyws_state *st = state_of((PyObject *)self);
    Py_DECREF(self);
    return pyws_py_error(st, rv);
  }
  return (PyObject *)self;
}

static void Protocol_dealloc(ProtocolObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  pyws_conn_free(self->conn);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyObject *Protocol_receive_data(ProtocolObject *self, PyObject *data) {
  Py_buffer view;
  int rv;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) {
    return NULL;
  }
  rv = pyws_conn_recv(self->conn, view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  if (rv != 0) {
    return pyws_py_error(state_of((PyObject *)self), rv);
  }
  Py_RETURN_NONE;
}

static PyObject *Protocol_receive_eof(ProtocolObject *self, PyObject *Py_UNUSED(ignored)) {
  pyws_conn_recv_eof(self->conn);
  Py_RETURN_NONE;
}

/* A data message as str (text, already validated) or bytes. */
static PyObject *message_object(const pyws_event *ev) {
  if (ev->ascii) {
    /* Already known to be ASCII: a copy, no decoding. */
    PyObject *str = PyUnicode_New((Py_ssize_t)ev->len, 127);
    if (str != NULL && ev->len > 0) {
      memcpy(PyUnicode_1BYTE_DATA(str), ev->data, ev->len);
    }
    return str;
  }
  if (ev->type == PYWS_EVENT_TEXT) {
    return PyUnicode_DecodeUTF8((const char *)ev->data, (Py_ssize_t)ev->len, "strict");
  }
  return PyBytes_FromStringAndSize((const char *)ev->data, (Py_ssize_t)ev->len);
}

static PyObject *event_to_tuple(const pyws_event *ev) {
  PyObject *payload;
  switch (ev->type) {
  case PYWS_EVENT_TEXT:
    payload = message_object(ev);
    break;
  case PYWS_EVENT_CLOSE:
  case PYWS_EVENT_FAIL:
    payload = Py_BuildValue("(iN)", (int)ev->code,
                            PyUnicode_DecodeUTF8((const char *)ev->data,
                                                 (Py_ssize_t)ev->len, "replace"));
    break;
  default:
    payload = PyBytes_FromStringAndSize((const char *)ev->data, (Py_ssize_t)ev->len);
  }
  if (payload == NULL) {
    return NULL;
  }
  return Py_BuildValue("(iN)", (int)ev->type, payload);
}

static PyObject *Protocol_events_received(ProtocolObject *self, PyObject *Py_UNUSED(ignored)) {
  PyObject *list = PyList_New(0);
  pyws_event *ev = NULL;
  if (list == NULL) {
    return NULL;
  }
  int rv, messages = 0;
  for (;;) {
    const pyws_event *head = pyws_conn_peek_event(self->conn);
    PyObject *item;
    /* A close or failure after messages waits for the next call: the
       application answers the messages first (see pyws_conn_next_event). */
    if (head == NULL ||
        (messages && (head->type == PYWS_EVENT_CLOSE || head->type == PYWS_EVENT_FAIL))) {
      break;
    }
    if ((rv = pyws_conn_next_event(self->conn, &ev)) != 1) {
      Py_DECREF(list);
      return pyws_py_error(state_of((PyObject *)self), rv);
    }
    messages |= ev->type == PYWS_EVENT_TEXT || ev->type == PYWS_EVENT_BINARY;
    item = event_to_tuple(ev);
    pyws_event_free(ev);
    if (item == NULL || PyList_Append(list, item) != 0) {
      Py_XDECREF(item);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(item);
  }
  return list;
}

static PyObject *Protocol_data_to_send(ProtocolObject *self, PyObject *Py_UNUSED(ignored)) {
  size_t len;
  const uint8_t *out = pyws_conn_output(self->conn, &len);
  PyObject *bytes = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)len);
  if (bytes != NULL) {
    pyws_conn_consume_output(self->conn, len);
  }
  return bytes;
}

static PyObject *Protocol_send_text(ProtocolObject *self, PyObject *data) {
  Py_buffer view;
  int rv;
  if (PyUnicode_Check(data)) {
    Py_ssize_t len;
    const char *p = PyUnicode_AsUTF8AndSize(data, &len);
    if (p == NULL) {
      return NULL; /* lone surrogates cannot be encoded */
    }
    return result(self, pyws_conn_send_text(self->conn, (const uint8_t *)p, (size_t)len));
  }
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) {
    return NULL;
  }
  if (!pyws_utf8_valid(view.buf, (size_t)view.len)) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_ValueError, "a text message must be valid UTF-8");
    return NULL;
  }
  rv = pyws_conn_send_text(self->conn, view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  return result(self, rv);
}

typedef int (*send_fn)(pyws_conn *, const uint8_t *, size_t);

static PyObject *send_buffer(ProtocolObject *self, PyObject *data, send_fn fn,
                             int control) {
  Py_buffer view;
  int rv;
  if (data == NULL) {
    return result(self, fn(self->conn, NULL, 0));
  }
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) {
    return NULL;
  }
  if (control && view.len > 125) {
    PyBuffer_Release(&view);
    PyErr_Format(PyExc_ValueError,
                 "a control frame payload is at most 125 bytes, got %zd", view.len);
    return NULL;
  }
  rv = fn(self->conn, view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  return result(self, rv);
}

static PyObject *Protocol_send_binary(ProtocolObject *self, PyObject *data) {
  return send_buffer(self, data, pyws_conn_send_binary, 0);
}

static PyObject *Protocol_send_ping(ProtocolObject *self, PyObject *args) {
  PyObject *data = NULL;
  if (!PyArg_ParseTuple(args, "|O:send_ping", &data)) return NULL;
  return send_buffer(self, data, pyws_conn_send_ping, 1);
}

static PyObject *Protocol_send_pong(ProtocolObject *self, PyObject *args) {
  PyObject *data = NULL;
  if (!PyArg_ParseTuple(args, "|O:send_pong", &data)) return NULL;
  return send_buffer(self, data, pyws_conn_send_pong, 1);
}

static PyObject *Protocol_send_close(ProtocolObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"code", "reason", NULL};
  int code = 1000;
  PyObject *reason_obj = NULL;
  Py_buffer view = {0};
  const char *reason = "";
  Py_ssize_t rlen = 0;
  int rv;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|iO:send_close", kwlist, &code,
                                   &reason_obj)) {
    return NULL;
  }
  if (reason_obj != NULL && PyUnicode_Check(reason_obj)) {
    if ((reason = PyUnicode_AsUTF8AndSize(reason_obj, &rlen)) == NULL) return NULL;
  } else if (reason_obj != NULL && reason_obj != Py_None) {
    if (PyObject_GetBuffer(reason_obj, &view, PyBUF_SIMPLE) != 0) return NULL;
    reason = view.buf;
    rlen = view.len;
  }
  if (code == 1005 ? rlen != 0 : !pyws_close_code_is_valid((unsigned)code)) {
    PyBuffer_Release(&view);
    PyErr_Format(PyExc_ValueError,
                 code == 1005 ? "close code 1005 (no code) cannot carry a reason"
                              : "invalid close code %d: use 1000-1003, 1007-1014 or 3000-4999",
                 code);
    return NULL;
  }
  if (rlen > PYWS_MAX_CLOSE_REASON || !pyws_utf8_valid((const uint8_t *)reason, (size_t)rlen)) {
    PyBuffer_Release(&view);
    PyErr_Format(PyExc_ValueError,
                 "a close reason must be valid UTF-8 of at most 123 bytes, got %zd bytes",
                 rlen);
    return NULL;
  }
  rv = pyws_conn_send_close(self->conn, (uint16_t)code, (const uint8_t *)reason, (size_t)rlen);
  PyBuffer_Release(&view);
  return result(self, rv);
}

int pyws_py_fd_arg(PyObject *arg, int *fd) {
  long v = PyLong_AsLong(arg);
  if (v == -1 && PyErr_Occurred()) {
    return -1;
  }
  /* A closed socket's fileno() is -1: the system call fails with EBADF. */
  *fd = v < 0 || v > INT_MAX ? -1 : (int)v;
  return 0;
}

/*
 * receive_from(fd, readable): the next message, read straight from a plain
 * socket; one call per message in the common case.  Returns the message
 * (str or bytes) when one is complete and nothing waits to be written;
 * else PYWS_RECV_EVENTS (other events or output for the caller to handle under
 * its send lock: events_received, data_to_send), PYWS_RECV_WAIT (wait until the
 * socket is readable, then call again with readable=True) or PYWS_RECV_EOF (the
 * peer closed the stream or it broke).  After a read that emptied the
 * socket it returns PYWS_RECV_WAIT rather than trying a read that would fail.
 * (receive_step is its body, which read_message calls too.)
 */
static PyObject *receive_step(ProtocolObject *self, int fd, int readable, int deferred) {
  pyws_conn *c = self->conn;
  for (;;) {
    const pyws_event *head = pyws_conn_peek_event(c);
    size_t queued, nread;
    int rv;
    pyws_conn_output(c, &queued);
    if (head != NULL || queued > 0) {
      /* Output the caller deferred (WebSocketBase's burst) is written when
         the burst ends; it need not stop the next message of the burst. */
      if ((queued == 0 || (deferred && head != NULL)) &&
          (head->type == PYWS_EVENT_TEXT || head->type == PYWS_EVENT_BINARY)) {
        pyws_event *ev;
        PyObject *msg;
        pyws_conn_next_event(c, &ev);
        msg = message_object(ev);
        pyws_event_free(ev);
        return msg;
      }
      return PyLong_FromLong(PYWS_RECV_EVENTS);
    }
    if (pyws_conn_get_state(c) == PYWS_STATE_CLOSED) {
      return PyLong_FromLong(PYWS_RECV_EVENTS);
    }
    if (self->drained && !readable) {
      return PyLong_FromLong(PYWS_RECV_WAIT);
    }
    readable = 0;
    rv = pyws_sockio_recv(c, fd, &nread);
    if (rv == PYWS_ERR_WOULD_BLOCK) {
      self->drained = 1;
      return PyLong_FromLong(PYWS_RECV_WAIT);
    }
    if (rv == PYWS_ERR_IO || (rv == 0 && nread == 0)) {
      return PyLong_FromLong(PYWS_RECV_EOF);
    }
    if (rv != 0) {
      return pyws_py_error(state_of((PyObject *)self), rv);
    }
    self->drained = nread < PYWS_SOCKIO_READ_SIZE;
  }
}

static PyObject *Protocol_receive_from(ProtocolObject *self, PyObject *const *args,
                                       Py_ssize_t nargs) {
  int fd, readable, deferred = 0;
  if (nargs != 2 && nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "receive_from(fd, readable, deferred=False)");
    return NULL;
  }
  if (pyws_py_fd_arg(args[0], &fd) != 0 || (readable = PyObject_IsTrue(args[1])) < 0) {
    return NULL;
  }
  if (nargs == 3 && (deferred = PyObject_IsTrue(args[2])) < 0) {
    return NULL;
  }
  return receive_step(self, fd, readable, deferred);
}

/* Remaining output after a write through sockio: its size, or -errno. */
static PyObject *write_result(ProtocolObject *self, int rv) {
  size_t left;
  if (rv == PYWS_ERR_IO) {
    return PyLong_FromLong(-(long)errno);
  }
  if (rv != 0) {
    return result(self, rv);
  }
  pyws_conn_output(self->conn, &left);
  return PyLong_FromSize_t(left);
}

/* send_message's result when a Python exception is set. */
#define SEND_PYTHON_ERROR 1
/* send_message's `fd` to queue the frame without writing it. */
#define QUEUE_ONLY INT_MIN

/* One message to the socket `fd` (pyws_sockio_send) or, with fd QUEUE_ONLY,
 * only into the engine's output, for a later flush_to.  `binary` None: str
 * goes as text, bytes-like as binary; True/False force the kind (text from
 * bytes must be valid UTF-8).  The engine's result, or SEND_PYTHON_ERROR. */
static int send_message(ProtocolObject *self, int fd, PyObject *message, PyObject *binary_arg) {
  Py_buffer view;
  const uint8_t *data;
  size_t len;
  int binary, rv;
  if (PyUnicode_Check(message)) {
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(message, &n);
    if (p == NULL) {
      return SEND_PYTHON_ERROR;
    }
    binary = binary_arg != Py_None && PyObject_IsTrue(binary_arg);
    if (PyErr_Occurred()) {
      return SEND_PYTHON_ERROR;
    }
    view.obj = NULL;
    data = (const uint8_t *)p;
    len = (size_t)n;
  } else {
    binary = binary_arg == Py_None ? 1 : PyObject_IsTrue(binary_arg);
    if (binary < 0 || PyObject_GetBuffer(message, &view, PyBUF_SIMPLE) != 0) {
      return SEND_PYTHON_ERROR;
    }
    data = view.buf;
    len = (size_t)view.len;
    if (!binary && !pyws_utf8_valid(data, len)) {
      PyBuffer_Release(&view);
      PyErr_SetString(PyExc_ValueError, "a text message must be valid UTF-8");
      return SEND_PYTHON_ERROR;
    }
  }
  if (fd != QUEUE_ONLY) {
    rv = pyws_sockio_send(self->conn, fd, binary ? 2 : 1, data, len);
  } else {
    rv = binary ? pyws_conn_send_binary(self->conn, data, len)
                : pyws_conn_send_text(self->conn, data, len);
  }
  if (view.obj != NULL) {
    int saved = errno; /* PyBuffer_Release must not hide the I/O error */
    PyBuffer_Release(&view);
    errno = saved;
  }
  return rv;
}

/*
 * send_to(fd, message, binary): send one message on a plain socket, like
 * send_text/send_binary followed by a write of the output, but from the
 * message's own buffer.  Returns the bytes still to write (call flush_to
 * when the socket is writable) or -errno if the socket failed; raises
 * ConnectionClosed once a close frame was sent.
 */
static PyObject *Protocol_send_to(ProtocolObject *self, PyObject *const *args,
                                  Py_ssize_t nargs) {
  int fd, rv;
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "send_to(fd, message, binary)");
    return NULL;
  }
  if (pyws_py_fd_arg(args[0], &fd) != 0) {
    return NULL;
  }
  rv = send_message(self, fd, args[1], args[2]);
  return rv == SEND_PYTHON_ERROR ? NULL : write_result(self, rv);
}

PyObject *pyws_py_receive_step(PyObject *proto, int fd, int readable, int deferred) {
  return receive_step((ProtocolObject *)proto, fd, readable, deferred);
}

/* queue_message(message, binary): send_to's message into the engine's output
 * only, not written (the session defers replies to a burst this way); the
 * bytes now queued there. */
static PyObject *Protocol_queue_message(ProtocolObject *self, PyObject *const *args,
                                        Py_ssize_t nargs) {
  int rv;
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "queue_message(message, binary)");
    return NULL;
  }
  rv = send_message(self, QUEUE_ONLY, args[0], args[1]);
  return rv == SEND_PYTHON_ERROR ? NULL : write_result(self, rv);
}

/* has_events: is an event queued (one events_received left for later)? */
static PyObject *Protocol_get_has_events(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(pyws_conn_peek_event(self->conn) != NULL);
}

/* message_ready: is the engine's next event a complete message, which
 * receive_from would return without reading? */
static PyObject *Protocol_get_message_ready(ProtocolObject *self, void *closure) {
  const pyws_event *head = pyws_conn_peek_event(self->conn);
  (void)closure;
  return PyBool_FromLong(head != NULL &&
                         (head->type == PYWS_EVENT_TEXT || head->type == PYWS_EVENT_BINARY));
}

/* flush_to(fd): write queued output; the bytes left, or -errno. */
static PyObject *Protocol_flush_to(ProtocolObject *self, PyObject *arg) {
  int fd;
  if (pyws_py_fd_arg(arg, &fd) != 0) {
    return NULL;
  }
  return write_result(self, pyws_sockio_flush(self->conn, fd));
}

static PyObject *Protocol_get_state(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyLong_FromLong(pyws_conn_get_state(self->conn));
}

static PyObject *Protocol_get_is_server(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(pyws_conn_is_server(self->conn));
}

static PyObject *Protocol_get_deflate(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(pyws_conn_deflate(self->conn));
}

static PyObject *Protocol_get_max_message_size(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLongLong(pyws_conn_max_message_size(self->conn));
}

static PyObject *Protocol_get_close_sent(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(pyws_conn_close_sent(self->conn));
}

static PyObject *Protocol_get_close_received(ProtocolObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(pyws_conn_close_received(self->conn));
}

static PyObject *Protocol_get_close_code(ProtocolObject *self, void *closure) {
  uint16_t code = pyws_conn_close_code(self->conn);
  (void)closure;
  if (code == 0) {
    Py_RETURN_NONE;
  }
  return PyLong_FromLong(code);
}

static PyObject *Protocol_get_close_reason(ProtocolObject *self, void *closure) {
  size_t len;
  const uint8_t *reason = pyws_conn_close_reason(self->conn, &len);
  (void)closure;
  return PyUnicode_DecodeUTF8((const char *)reason, (Py_ssize_t)len, "replace");
}

static PyObject *Protocol_get_output_size(ProtocolObject *self, void *closure) {
  size_t len;
  (void)closure;
  pyws_conn_output(self->conn, &len);
  return PyLong_FromSize_t(len);
}

static PyMethodDef Protocol_methods[] = {
    {"receive_data", (PyCFunction)Protocol_receive_data, METH_O,
     "Feed bytes read from the transport."},
    {"receive_eof", (PyCFunction)Protocol_receive_eof, METH_NOARGS,
     "The transport reached EOF."},
    {"events_received", (PyCFunction)Protocol_events_received, METH_NOARGS,
     "Return and clear the pending events, as (kind, payload) tuples; a CLOSE or "
     "FAIL that follows messages is left for the next call."},
    {"data_to_send", (PyCFunction)Protocol_data_to_send, METH_NOARGS,
     "Return and clear the bytes to write to the transport."},
    {"receive_from", (PyCFunction)(void (*)(void))Protocol_receive_from, METH_FASTCALL,
     "receive_from(fd, readable, deferred=False): the next message read from a "
     "plain socket, or 0 (wait until readable), 1 (events or output to handle), "
     "2 (EOF); with deferred, queued output does not hold back a message."},
    {"send_to", (PyCFunction)(void (*)(void))Protocol_send_to, METH_FASTCALL,
     "send_to(fd, message, binary): send a message on a plain socket; the "
     "bytes left to flush, or -errno."},
    {"flush_to", (PyCFunction)Protocol_flush_to, METH_O,
     "flush_to(fd): write queued output; the bytes left, or -errno."},
    {"queue_message", (PyCFunction)(void (*)(void))Protocol_queue_message, METH_FASTCALL,
     "queue_message(message, binary): a message into the output, not written; "
     "the bytes now queued."},
    {"read_message", (PyCFunction)(void (*)(void))pyws_py_read_message, METH_FASTCALL,
     "read_message(fd, watcher, hub, deferred): receive_from on a plain gevent socket, "
     "waiting on its read watcher at the hub instead of returning 0 (see "
     "csrc/binding/py_gevent_read.c)."},
    {"send_text", (PyCFunction)Protocol_send_text, METH_O, "Queue a text message."},
    {"send_binary", (PyCFunction)Protocol_send_binary, METH_O, "Queue a binary message."},
    {"send_ping", (PyCFunction)Protocol_send_ping, METH_VARARGS, "Queue a ping."},
    {"send_pong", (PyCFunction)Protocol_send_pong, METH_VARARGS, "Queue a pong."},
    {"send_close", (PyCFunction)(void (*)(void))Protocol_send_close,
     METH_VARARGS | METH_KEYWORDS, "Queue a close frame."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Protocol_getset[] = {
    {"state", (getter)Protocol_get_state, NULL, "OPEN, CLOSING or CLOSED.", NULL},
    {"is_server", (getter)Protocol_get_is_server, NULL, "True in the server role.", NULL},
    {"deflate", (getter)Protocol_get_deflate, NULL,
     "True when permessage-deflate is in use.", NULL},
    {"max_message_size", (getter)Protocol_get_max_message_size, NULL,
     "Largest message accepted (0: no limit).", NULL},
    {"close_sent", (getter)Protocol_get_close_sent, NULL, "A close frame was sent.", NULL},
    {"close_received", (getter)Protocol_get_close_received, NULL,
     "The peer's close frame was received.", NULL},
    {"close_code", (getter)Protocol_get_close_code, NULL,
     "The close code, or None while open.", NULL},
    {"close_reason", (getter)Protocol_get_close_reason, NULL, "The close reason.", NULL},
    {"has_events", (getter)Protocol_get_has_events, NULL,
     "An event is queued.", NULL},
    {"message_ready", (getter)Protocol_get_message_ready, NULL,
     "The next event is a complete message.", NULL},
    {"output_size", (getter)Protocol_get_output_size, NULL,
     "Bytes waiting to be written.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Protocol_slots[] = {
    {Py_tp_new, Protocol_new},
    {Py_tp_dealloc, Protocol_dealloc},
    {Py_tp_methods, Protocol_methods},
    {Py_tp_getset, Protocol_getset},
    {Py_tp_doc, "Protocol(server=True, max_message_size=1048576)\n\n"
                "The RFC 6455 state of one connection after the opening handshake."},
    {0, NULL},
};

static PyType_Spec Protocol_spec = {
    .name = "pyws._core.Protocol",
    .basicsize = sizeof(ProtocolObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Protocol_slots,
};

int pyws_py_protocol_init(PyObject *module, pyws_state *st) {
  st->protocol_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &Protocol_spec, NULL);
  if (st->protocol_type == NULL) {
    return -1;
  }
  Py_INCREF(st->protocol_type);
  if (PyModule_AddObject(module, "Protocol", (PyObject *)st->protocol_type) != 0) {
    Py_DECREF(st->protocol_type);
    return -1;
  }
  return 0;
}

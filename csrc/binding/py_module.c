/*
 * The pyws._core extension module: multi-phase initialisation (PEP 489),
 * state in the module object, exception classes imported from
 * pyws.exceptions so that there is one exception tree for C and Python.
 */
#include "py_module.h"

#include "pyws_conn.h"
#include "pyws_error.h"

PyObject *pyws_py_error(pyws_state *st, int rv) {
  switch (rv) {
  case PYWS_ERR_NOMEM:
    return PyErr_NoMemory();
  case PYWS_ERR_INVALID_ARGUMENT:
  case PYWS_ERR_TOO_LARGE:
    PyErr_SetString(PyExc_ValueError, pyws_strerror(rv));
    return NULL;
  default:
    PyErr_SetString(st->WebSocketError, pyws_strerror(rv));
    return NULL;
  }
}

PyObject *pyws_py_handshake_error(pyws_state *st, const char *message, int status,
                                  const char *extra_name, const char *extra_value) {
  PyObject *headers = NULL, *exc = NULL;
  if (extra_name) {
    headers = Py_BuildValue("[(ss)]", extra_name, extra_value);
  } else {
    headers = PyList_New(0);
  }
  if (headers == NULL) {
    return NULL;
  }
  exc = PyObject_CallFunction(st->HandshakeError, "siO", message, status, headers);
  Py_DECREF(headers);
  if (exc != NULL) {
    PyErr_SetObject(st->HandshakeError, exc);
    Py_DECREF(exc);
  }
  return NULL;
}

static int as_utf8(PyObject *o, const char *what, pyws_str *out) {
  Py_ssize_t len;
  const char *p;
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  if ((p = PyUnicode_AsUTF8AndSize(o, &len)) == NULL) {
    return -1;
  }
  out->ptr = p;
  out->len = (size_t)len;
  return 0;
}

int pyws_py_str_list(PyObject *seq, const char *what, PyObject **keep,
                     pyws_str **out, size_t *n) {
  PyObject *fast;
  Py_ssize_t i, count;
  *keep = NULL;
  *out = NULL;
  *n = 0;
  if (seq == NULL || seq == Py_None) {
    return 0;
  }
  if (PyUnicode_Check(seq)) {
    PyErr_Format(PyExc_TypeError, "%s must be a sequence of str, not a str", what);
    return -1;
  }
  if ((fast = PySequence_Fast(seq, "expected a sequence of str")) == NULL) {
    return -1;
  }
  count = PySequence_Fast_GET_SIZE(fast);
  *out = PyMem_Malloc(sizeof(pyws_str) * (size_t)(count ? count : 1));
  if (*out == NULL) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (i = 0; i < count; i++) {
    if (as_utf8(PySequence_Fast_GET_ITEM(fast, i), what, &(*out)[i]) != 0) {
      PyMem_Free(*out);
      *out = NULL;
      Py_DECREF(fast);
      return -1;
    }
  }
  *keep = fast;
  *n = (size_t)count;
  return 0;
}

int pyws_py_header_list(PyObject *seq, PyObject **keep, pyws_http_header **out,
                        size_t *n) {
  PyObject *fast, *pairs = NULL;
  Py_ssize_t i, count;
  *keep = NULL;
  *out = NULL;
  *n = 0;
  if (seq == NULL || seq == Py_None) {
    return 0;
  }
  if ((fast = PySequence_Fast(seq, "headers must be a sequence of (name, value) pairs")) == NULL) {
    return -1;
  }
  count = PySequence_Fast_GET_SIZE(fast);
  /* Keep every pair alive too: their str objects own the UTF-8 views. */
  if ((pairs = PyList_New(0)) == NULL) goto error;
  if (PyList_Append(pairs, fast) != 0) goto error;
  *out = PyMem_Malloc(sizeof(pyws_http_header) * (size_t)(count ? count : 1));
  if (*out == NULL) {
    PyErr_NoMemory();
    goto error;
  }
  for (i = 0; i < count; i++) {
    PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
    if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
      PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
      goto error;
    }
    if (PySequence_Size(pair) != 2) {
      PyErr_SetString(PyExc_ValueError, "each header must be a (name, value) pair");
      goto error;
    }
    if (as_utf8(PySequence_Fast_GET_ITEM(pair, 0), "header name", &(*out)[i].name) != 0 ||
        as_utf8(PySequence_Fast_GET_ITEM(pair, 1), "header value", &(*out)[i].value) != 0) {
      goto error;
    }
  }
  Py_DECREF(fast);
  *keep = pairs;
  *n = (size_t)count;
  return 0;
error:
  PyMem_Free(*out);
  *out = NULL;
  Py_XDECREF(pairs);
  Py_DECREF(fast);
  return -1;
}

PyObject *pyws_py_headers_to_list(const pyws_http_header *h, size_t n) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  size_t i;
  if (list == NULL) return NULL;
  for (i = 0; i < n; i++) {
    PyObject *name = PyUnicode_DecodeLatin1(h[i].name.ptr, (Py_ssize_t)h[i].name.len, NULL);
    PyObject *value = PyUnicode_DecodeLatin1(h[i].value.ptr, (Py_ssize_t)h[i].value.len, NULL);
    PyObject *pair = (name && value) ? PyTuple_Pack(2, name, value) : NULL;
    Py_XDECREF(name);
    Py_XDECREF(value);
    if (pair == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
  }
  return list;
}

static int import_exceptions(pyws_state *st) {
  PyObject *mod = PyImport_ImportModule("pyws.exceptions");
  if (mod == NULL) return -1;
  st->WebSocketError = PyObject_GetAttrString(mod, "WebSocketError");
  st->HandshakeError = PyObject_GetAttrString(mod, "HandshakeError");
  st->ConnectionClosed = PyObject_GetAttrString(mod, "ConnectionClosed");
  Py_DECREF(mod);
  if (!st->WebSocketError || !st->HandshakeError || !st->ConnectionClosed) return -1;
  return 0;
}

/* Also published as _core.CALLED_NAMES, so that a test checks that every
 * object the binding calls still has each of them (tests/unit/test_gevent_adapter.py). */
static int intern_names(PyObject *module, pyws_state *st) {
  static const char *const names[PYWS_NAME_COUNT] = {"start", "stop", "switch"};
  PyObject *all = PyTuple_New(PYWS_NAME_COUNT);
  if (all == NULL) return -1;
  for (int i = 0; i < PYWS_NAME_COUNT; i++) {
    if ((st->names[i] = PyUnicode_InternFromString(names[i])) == NULL) {
      Py_DECREF(all);
      return -1;
    }
    Py_INCREF(st->names[i]);
    PyTuple_SET_ITEM(all, i, st->names[i]);
  }
  if (PyModule_AddObject(module, "CALLED_NAMES", all) != 0) {
    Py_DECREF(all);
    return -1;
  }
  return 0;
}

/* greenlet.getcurrent if greenlet is installed (gevent needs it). */
static int import_getcurrent(pyws_state *st) {
  PyObject *mod = PyImport_ImportModule("greenlet");
  if (mod == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_ImportError)) return -1;
    PyErr_Clear();
    return 0;
  }
  st->getcurrent = PyObject_GetAttrString(mod, "getcurrent");
  Py_DECREF(mod);
  return st->getcurrent != NULL ? 0 : -1;
}

static int core_exec(PyObject *module) {
  pyws_state *st = pyws_get_state(module);
  if (import_exceptions(st) != 0 || intern_names(module, st) != 0 || import_getcurrent(st) != 0) {
    return -1;
  }
  if (pyws_py_protocol_init(module, st) != 0) return -1;
  if (pyws_py_handshake_init(module) != 0) return -1;
  if (pyws_py_frame_init(module) != 0) return -1;
  if (pyws_py_pmd_init(module) != 0) return -1;
  if (pyws_py_fanout_init(module) != 0) return -1;
  if (PyModule_AddIntConstant(module, "TEXT", PYWS_EVENT_TEXT) != 0 ||
      PyModule_AddIntConstant(module, "BINARY", PYWS_EVENT_BINARY) != 0 ||
      PyModule_AddIntConstant(module, "PING", PYWS_EVENT_PING) != 0 ||
      PyModule_AddIntConstant(module, "PONG", PYWS_EVENT_PONG) != 0 ||
      PyModule_AddIntConstant(module, "CLOSE", PYWS_EVENT_CLOSE) != 0 ||
      PyModule_AddIntConstant(module, "FAIL", PYWS_EVENT_FAIL) != 0 ||
      PyModule_AddIntConstant(module, "OPEN", PYWS_STATE_OPEN) != 0 ||
      PyModule_AddIntConstant(module, "CLOSING", PYWS_STATE_CLOSING) != 0 ||
      PyModule_AddIntConstant(module, "CLOSED", PYWS_STATE_CLOSED) != 0 ||
      PyModule_AddIntConstant(module, "DEFAULT_MAX_MESSAGE_SIZE",
                              PYWS_DEFAULT_MAX_MESSAGE_SIZE) != 0) {
    return -1;
  }
  return 0;
}

static int core_traverse(PyObject *module, visitproc visit, void *arg) {
  pyws_state *st = pyws_get_state(module);
  Py_VISIT(st->protocol_type);
  Py_VISIT(st->WebSocketError);
  Py_VISIT(st->HandshakeError);
  Py_VISIT(st->ConnectionClosed);
  for (int i = 0; i < PYWS_NAME_COUNT; i++) Py_VISIT(st->names[i]);
  Py_VISIT(st->getcurrent);
  return 0;
}

static int core_clear(PyObject *module) {
  pyws_state *st = pyws_get_state(module);
  Py_CLEAR(st->protocol_type);
  Py_CLEAR(st->WebSocketError);
  Py_CLEAR(st->HandshakeError);
  Py_CLEAR(st->ConnectionClosed);
  for (int i = 0; i < PYWS_NAME_COUNT; i++) Py_CLEAR(st->names[i]);
  Py_CLEAR(st->getcurrent);
  return 0;
}

static void core_free(void *module) { core_clear((PyObject *)module); }

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyws._core",
    .m_doc = "The pyws protocol engine: RFC 6455 handshake and framing in C on wslay.",
    .m_size = sizeof(pyws_state),
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

/* PyMODINIT_FUNC marks the one exported symbol (the rest is -fvisibility=hidden). */
PyMODINIT_FUNC PyInit__core(void) {
  return PyModuleDef_Init(&core_module);
}

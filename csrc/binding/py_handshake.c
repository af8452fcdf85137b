/*
 * Module functions for the opening handshake: thin conversions between
 * Python objects and pyws_handshake / pyws_http.  Verdicts become
 * HandshakeError(message, status, headers).
 */
#include "py_module.h"

#include "pyws_base64.h"
#include "pyws_buf.h"
#include "pyws_error.h"
#include "pyws_handshake.h"
#include "pyws_http.h"
#include "pyws_pmd.h"
#include "pyws_sha1.h"

static PyObject *check_request(PyObject *module, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"method", "http_version", "headers", "subprotocols", NULL};
  pyws_state *st = pyws_get_state(module);
  const char *method, *version;
  Py_ssize_t method_len, version_len;
  PyObject *headers_obj, *subs_obj = Py_None;
  PyObject *keep_headers = NULL, *keep_subs = NULL, *ret = NULL;
  pyws_http_header *headers = NULL;
  pyws_str *subs = NULL;
  size_t nheaders = 0, nsubs = 0;
  pyws_handshake_verdict v;
  pyws_str m;
  int major, minor;

  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#s#O|O:check_request", kwlist, &method,
                                   &method_len, &version, &version_len, &headers_obj,
                                   &subs_obj)) {
    return NULL;
  }
  if (pyws_http_parse_version(version, (size_t)version_len, &major, &minor) != 0) {
    return pyws_py_handshake_error(st, "malformed HTTP version", 400, NULL, NULL);
  }
  if (pyws_py_header_list(headers_obj, &keep_headers, &headers, &nheaders) != 0 ||
      pyws_py_str_list(subs_obj, "subprotocols", &keep_subs, &subs, &nsubs) != 0) {
    goto done;
  }
  m.ptr = method;
  m.len = (size_t)method_len;
  pyws_handshake_check_request(m, major, minor, headers, nheaders, subs, nsubs, &v);
  if (v.status != 0) {
    pyws_py_handshake_error(st, v.reason, v.status, v.extra_name, v.extra_value);
    goto done;
  }
  if (v.subprotocol >= 0) {
    ret = Py_BuildValue("(ss#)", v.accept, subs[v.subprotocol].ptr,
                        (Py_ssize_t)subs[v.subprotocol].len);
  } else {
    ret = Py_BuildValue("(sO)", v.accept, Py_None);
  }
done:
  PyMem_Free(headers);
  PyMem_Free(subs);
  Py_XDECREF(keep_headers);
  Py_XDECREF(keep_subs);
  return ret;
}

static PyObject *accept_key(PyObject *module, PyObject *key) {
  char accept[PYWS_ACCEPT_LEN + 1];
  Py_buffer view;
  (void)module;
  if (PyUnicode_Check(key)) {
    Py_ssize_t len;
    const char *p = PyUnicode_AsUTF8AndSize(key, &len);
    if (p == NULL) return NULL;
    pyws_handshake_accept(p, (size_t)len, accept);
  } else {
    if (PyObject_GetBuffer(key, &view, PyBUF_SIMPLE) != 0) return NULL;
    pyws_handshake_accept(view.buf, (size_t)view.len, accept);
    PyBuffer_Release(&view);
  }
  return PyUnicode_FromString(accept);
}

static PyObject *response_headers(PyObject *module, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"accept", "subprotocol", NULL};
  const char *accept;
  PyObject *sub = Py_None;
  (void)module;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|O:response_headers", kwlist, &accept,
                                   &sub)) {
    return NULL;
  }
  if (sub == Py_None) {
    return Py_BuildValue("[(ss)(ss)(ss)]", "Upgrade", "websocket", "Connection", "Upgrade",
                         "Sec-WebSocket-Accept", accept);
  }
  if (!PyUnicode_Check(sub)) {
    PyErr_SetString(PyExc_TypeError, "subprotocol must be str or None");
    return NULL;
  }
  return Py_BuildValue("[(ss)(ss)(ss)(sO)]", "Upgrade", "websocket", "Connection", "Upgrade",
                       "Sec-WebSocket-Accept", accept, "Sec-WebSocket-Protocol", sub);
}

static PyObject *client_request(PyObject *module, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"host", "resource", "subprotocols", "headers", NULL};
  pyws_state *st = pyws_get_state(module);
  const char *host, *resource;
  Py_ssize_t host_len, resource_len;
  PyObject *subs_obj = Py_None, *headers_obj = Py_None;
  PyObject *keep_subs = NULL, *keep_headers = NULL, *ret = NULL;
  pyws_str *subs = NULL;
  pyws_http_header *headers = NULL;
  size_t nsubs = 0, nheaders = 0;
  char key[PYWS_KEY_LEN + 1];
  pyws_buf out;
  pyws_str h, r;
  int rv;

  pyws_buf_init(&out);
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#s#|OO:client_request", kwlist, &host,
                                   &host_len, &resource, &resource_len, &subs_obj,
                                   &headers_obj)) {
    return NULL;
  }
  if (pyws_py_str_list(subs_obj, "subprotocols", &keep_subs, &subs, &nsubs) != 0 ||
      pyws_py_header_list(headers_obj, &keep_headers, &headers, &nheaders) != 0) {
    goto done;
  }
  if ((rv = pyws_handshake_make_key(key)) != 0) {
    pyws_py_error(st, rv);
    goto done;
  }
  h.ptr = host;
  h.len = (size_t)host_len;
  r.ptr = resource;
  r.len = (size_t)resource_len;
  rv = pyws_handshake_client_request(&out, h, r, key, subs, nsubs, headers, nheaders);
  if (rv == PYWS_ERR_INVALID_ARGUMENT) {
    PyErr_SetString(PyExc_ValueError,
                    "host, resource and header values must not contain CR, LF or NUL; "
                    "header names and subprotocols must be HTTP tokens");
    goto done;
  } else if (rv != 0) {
    pyws_py_error(st, rv);
    goto done;
  }
  ret = Py_BuildValue("(y#s)", (const char *)pyws_buf_bytes(&out),
                      (Py_ssize_t)pyws_buf_size(&out), key);
done:
  pyws_buf_free(&out);
  PyMem_Free(subs);
  PyMem_Free(headers);
  Py_XDECREF(keep_subs);
  Py_XDECREF(keep_headers);
  return ret;
}

/* A pyws_http_head is large (it holds the header array): heap, not stack. */
static pyws_http_head *new_head(void) {
  pyws_http_head *h = PyMem_Malloc(sizeof(*h));
  if (h == NULL) PyErr_NoMemory();
  return h;
}

static PyObject *check_response(PyObject *module, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"data", "key", "subprotocols", "deflate", NULL};
  pyws_state *st = pyws_get_state(module);
  Py_buffer data;
  const char *key;
  PyObject *subs_obj = Py_None, *deflate_obj = Py_None, *keep_subs = NULL, *ret = NULL;
  PyObject *headers, *agreed_obj;
  pyws_str *subs = NULL;
  size_t nsubs = 0;
  pyws_http_head *head = NULL;
  pyws_handshake_verdict v;
  pyws_pmd_params settings, agreed;
  const char *why = "malformed response";
  int rv;

  if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*s|OO:check_response", kwlist, &data, &key,
                                   &subs_obj, &deflate_obj)) {
    return NULL;
  }
  if ((deflate_obj != Py_None && pyws_py_pmd_params(deflate_obj, &settings) != 0) ||
      pyws_py_str_list(subs_obj, "subprotocols", &keep_subs, &subs, &nsubs) != 0 ||
      (head = new_head()) == NULL) {
    goto done;
  }
  rv = pyws_http_parse_response(data.buf, (size_t)data.len, (size_t)-1, head, &why);
  if (rv == PYWS_ERR_INCOMPLETE) {
    Py_INCREF(Py_None);
    ret = Py_None;
    goto done;
  }
  if (rv != 0) {
    PyObject *msg = PyUnicode_FromFormat("invalid HTTP response from the server: %s", why);
    if (msg) {
      pyws_py_handshake_error(st, PyUnicode_AsUTF8(msg), 0, NULL, NULL);
      Py_DECREF(msg);
    }
    goto done;
  }
  pyws_handshake_check_response(head, key, subs, nsubs, deflate_obj != Py_None, &v);
  rv = 0;
  if (v.status == 0 && deflate_obj != Py_None) {
    rv = pyws_pmd_check_response(head->headers, head->nheaders, &settings, &agreed, &why);
    if (rv < 0) {
      v.status = 101;
      v.reason = why;
    }
  }
  if (v.status != 0) {
    PyObject *msg = PyUnicode_FromFormat("%s (HTTP %d)", v.reason, head->status);
    if (msg) {
      pyws_py_handshake_error(st, PyUnicode_AsUTF8(msg), v.status, NULL, NULL);
      Py_DECREF(msg);
    }
    goto done;
  }
  if (rv == 1) {
    agreed_obj = pyws_py_pmd_tuple(&agreed);
  } else {
    Py_INCREF(Py_None);
    agreed_obj = Py_None;
  }
  if (agreed_obj == NULL) {
    goto done;
  }
  if ((headers = pyws_py_headers_to_list(head->headers, head->nheaders)) == NULL) {
    Py_DECREF(agreed_obj);
    goto done;
  }
  if (v.subprotocol >= 0) {
    ret = Py_BuildValue("(ns#NN)", (Py_ssize_t)head->head_len, subs[v.subprotocol].ptr,
                        (Py_ssize_t)subs[v.subprotocol].len, headers, agreed_obj);
  } else {
    ret = Py_BuildValue("(nONN)", (Py_ssize_t)head->head_len, Py_None, headers, agreed_obj);
  }
done:
  PyBuffer_Release(&data);
  PyMem_Free(head);
  PyMem_Free(subs);
  Py_XDECREF(keep_subs);
  return ret;
}

static PyObject *parse_request(PyObject *module, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"data", "max_size", NULL};
  pyws_state *st = pyws_get_state(module);
  Py_buffer data;
  Py_ssize_t max_size = 65536;
  pyws_http_head *head = NULL;
  PyObject *ret = NULL, *headers;
  const char *why = "malformed request";
  char version[9];
  int rv;

  if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|n:parse_request", kwlist, &data,
                                   &max_size)) {
    return NULL;
  }
  if (max_size <= 0) {
    PyErr_SetString(PyExc_ValueError, "max_size must be positive");
    goto done;
  }
  if ((head = new_head()) == NULL) goto done;
  rv = pyws_http_parse_request(data.buf, (size_t)data.len, (size_t)max_size, head, &why);
  if (rv == PYWS_ERR_INCOMPLETE) {
    Py_INCREF(Py_None);
    ret = Py_None;
    goto done;
  }
  if (rv != 0) {
    pyws_py_handshake_error(st, why, rv == PYWS_ERR_HTTP_TOO_LARGE ? 431 : 400, NULL, NULL);
    goto done;
  }
  if ((headers = pyws_py_headers_to_list(head->headers, head->nheaders)) == NULL) goto done;
  snprintf(version, sizeof(version), "HTTP/%d.%d", head->version_major, head->version_minor);
  ret = Py_BuildValue("(nN" "N" "sN)", (Py_ssize_t)head->head_len,
                      PyUnicode_DecodeLatin1(head->method.ptr, (Py_ssize_t)head->method.len, NULL),
                      PyUnicode_DecodeLatin1(head->target.ptr, (Py_ssize_t)head->target.len, NULL),
                      version, headers);
done:
  PyBuffer_Release(&data);
  PyMem_Free(head);
  return ret;
}

static PyObject *sha1(PyObject *module, PyObject *data) {
  Py_buffer view;
  uint8_t digest[PYWS_SHA1_DIGEST_SIZE];
  (void)module;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return NULL;
  pyws_sha1_digest(view.buf, (size_t)view.len, digest);
  PyBuffer_Release(&view);
  return PyBytes_FromStringAndSize((const char *)digest, sizeof(digest));
}

static PyObject *b64encode(PyObject *module, PyObject *data) {
  Py_buffer view;
  PyObject *out;
  (void)module;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return NULL;
  if ((size_t)view.len > ((size_t)PY_SSIZE_T_MAX / 4) * 3 - 3) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_OverflowError, "input too large");
    return NULL;
  }
  out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)PYWS_BASE64_ENCODED_LEN((size_t)view.len) + 1);
  if (out != NULL) {
    size_t n = pyws_base64_encode(view.buf, (size_t)view.len, PyBytes_AS_STRING(out));
    _PyBytes_Resize(&out, (Py_ssize_t)n);
  }
  PyBuffer_Release(&view);
  return out;
}

static PyMethodDef handshake_functions[] = {
    {"check_request", (PyCFunction)(void (*)(void))check_request, METH_VARARGS | METH_KEYWORDS,
     "Validate an upgrade request; return (accept, subprotocol) or raise HandshakeError."},
    {"accept_key", (PyCFunction)accept_key, METH_O,
     "Sec-WebSocket-Accept for a Sec-WebSocket-Key."},
    {"response_headers", (PyCFunction)(void (*)(void))response_headers,
     METH_VARARGS | METH_KEYWORDS, "The headers of a 101 response."},
    {"client_request", (PyCFunction)(void (*)(void))client_request, METH_VARARGS | METH_KEYWORDS,
     "Build an upgrade request with a fresh key; return (request, key)."},
    {"check_response", (PyCFunction)(void (*)(void))check_response, METH_VARARGS | METH_KEYWORDS,
     "Parse and validate the server's response head; return None (incomplete) or "
     "(head length, subprotocol, headers, agreed deflate parameters or None)."},
    {"parse_request", (PyCFunction)(void (*)(void))parse_request, METH_VARARGS | METH_KEYWORDS,
     "Parse an HTTP request head."},
    {"sha1", (PyCFunction)sha1, METH_O, "SHA-1 digest (FIPS 180-4)."},
    {"b64encode", (PyCFunction)b64encode, METH_O, "Base64 encoding (RFC 4648)."},
    {NULL, NULL, 0, NULL},
};

int pyws_py_handshake_init(PyObject *module) {
  return PyModule_AddFunctions(module, handshake_functions);
}

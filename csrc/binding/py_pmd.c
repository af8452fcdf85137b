/*
 * Module functions for permessage-deflate negotiation (pyws_pmd), and the
 * conversion of its parameters, which Python holds as a tuple
 * (server_no_context_takeover, client_no_context_takeover,
 *  server_max_window_bits, client_max_window_bits).
 */
#include "py_module.h"

#include "pyws_buf.h"
#include "pyws_error.h"
#include "pyws_pmd.h"

int pyws_py_pmd_params(PyObject *obj, pyws_pmd_params *p) {
  int snct, cnct, sbits, cbits;
  if (!PyTuple_Check(obj) ||
      !PyArg_ParseTuple(obj, "ppii;deflate parameters are (server_no_context_takeover, "
                             "client_no_context_takeover, server_max_window_bits, "
                             "client_max_window_bits)",
                        &snct, &cnct, &sbits, &cbits)) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_TypeError,
                      "deflate parameters are a tuple (server_no_context_takeover, "
                      "client_no_context_takeover, server_max_window_bits, "
                      "client_max_window_bits)");
    }
    return -1;
  }
  if (sbits < PYWS_PMD_MIN_WINDOW_BITS || sbits > PYWS_PMD_MAX_WINDOW_BITS ||
      cbits < PYWS_PMD_MIN_WINDOW_BITS || cbits > PYWS_PMD_MAX_WINDOW_BITS) {
    PyErr_Format(PyExc_ValueError, "window bits must be from 8 to 15, not %d and %d", sbits,
                 cbits);
    return -1;
  }
  p->server_no_context_takeover = (uint8_t)snct;
  p->client_no_context_takeover = (uint8_t)cnct;
  p->server_max_window_bits = (uint8_t)sbits;
  p->client_max_window_bits = (uint8_t)cbits;
  return 0;
}

PyObject *pyws_py_pmd_tuple(const pyws_pmd_params *p) {
  return Py_BuildValue("(OOii)", p->server_no_context_takeover ? Py_True : Py_False,
                       p->client_no_context_takeover ? Py_True : Py_False,
                       (int)p->server_max_window_bits, (int)p->client_max_window_bits);
}

static PyObject *negotiate_deflate(PyObject *module, PyObject *args) {
  pyws_state *st = pyws_get_state(module);
  PyObject *headers_obj, *settings_obj, *keep = NULL, *ret = NULL;
  pyws_http_header *headers = NULL;
  size_t nheaders = 0;
  pyws_pmd_params settings, agreed;
  pyws_buf response = {0};
  const char *why = "malformed Sec-WebSocket-Extensions header";
  int rv;
  if (!PyArg_ParseTuple(args, "OO:negotiate_deflate", &headers_obj, &settings_obj) ||
      pyws_py_pmd_params(settings_obj, &settings) != 0 ||
      pyws_py_header_list(headers_obj, &keep, &headers, &nheaders) != 0) {
    goto done;
  }
  rv = pyws_pmd_negotiate(headers, nheaders, &settings, &agreed, &response, &why);
  if (rv == PYWS_ERR_HTTP_PARSE) {
    pyws_py_handshake_error(st, why, 400, NULL, NULL);
  } else if (rv < 0) {
    pyws_py_error(st, rv);
  } else if (rv == 0) {
    Py_INCREF(Py_None);
    ret = Py_None;
  } else {
    PyObject *params = pyws_py_pmd_tuple(&agreed);
    if (params != NULL) {
      ret = Py_BuildValue("(s#N)", (const char *)pyws_buf_bytes(&response),
                          (Py_ssize_t)pyws_buf_size(&response), params);
    }
  }
done:
  pyws_buf_free(&response);
  PyMem_Free(headers);
  Py_XDECREF(keep);
  return ret;
}

static PyObject *deflate_offer(PyObject *module, PyObject *settings_obj) {
  pyws_pmd_params settings;
  pyws_buf out = {0};
  PyObject *ret = NULL;
  int rv;
  if (pyws_py_pmd_params(settings_obj, &settings) != 0) {
    return NULL;
  }
  if ((rv = pyws_pmd_offer(&settings, &out)) != 0) {
    pyws_py_error(pyws_get_state(module), rv);
  } else {
    ret = PyUnicode_DecodeASCII((const char *)pyws_buf_bytes(&out),
                                (Py_ssize_t)pyws_buf_size(&out), NULL);
  }
  pyws_buf_free(&out);
  return ret;
}

static PyMethodDef pmd_functions[] = {
    {"negotiate_deflate", (PyCFunction)negotiate_deflate, METH_VARARGS,
     "negotiate_deflate(headers, settings): the server's choice among the client's "
     "permessage-deflate offers: None, or (response header value, agreed parameters); "
     "HandshakeError (400) for a malformed Sec-WebSocket-Extensions header."},
    {"deflate_offer", (PyCFunction)deflate_offer, METH_O,
     "deflate_offer(settings): the client's Sec-WebSocket-Extensions value."},
    {NULL, NULL, 0, NULL},
};

int pyws_py_pmd_init(PyObject *module) {
  return PyModule_AddFunctions(module, pmd_functions);
}

/*
 * Module functions on frames and text: encode_frame (a frame encoded once,
 * for broadcast) and utf8_valid.
 */
#include "py_module.h"

#include "pyws_buf.h"
#include "pyws_error.h"
#include "pyws_frame.h"
#include "pyws_utf8.h"

static PyObject *encode_frame(PyObject *module, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"opcode", "data", "mask", NULL};
  int opcode, mask = 0, rv;
  PyObject *data, *ret = NULL;
  Py_buffer view = {0};
  const char *p;
  Py_ssize_t len;
  pyws_buf out;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "iO|p:encode_frame", kwlist, &opcode, &data,
                                   &mask)) {
    return NULL;
  }
  if (!(opcode == 1 || opcode == 2 || opcode == 8 || opcode == 9 || opcode == 10)) {
    PyErr_Format(PyExc_ValueError, "opcode must be 1, 2, 8, 9 or 10, not %d", opcode);
    return NULL;
  }
  if (PyUnicode_Check(data)) {
    if ((p = PyUnicode_AsUTF8AndSize(data, &len)) == NULL) return NULL;
  } else {
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return NULL;
    p = view.buf;
    len = view.len;
    if (opcode == 1 && !pyws_utf8_valid((const uint8_t *)p, (size_t)len)) {
      PyBuffer_Release(&view);
      PyErr_SetString(PyExc_ValueError, "a text message must be valid UTF-8");
      return NULL;
    }
  }
  pyws_buf_init(&out);
  rv = pyws_frame_encode(&out, (uint8_t)opcode, (const uint8_t *)p, (size_t)len, mask);
  if (rv == 0) {
    ret = PyBytes_FromStringAndSize((const char *)pyws_buf_bytes(&out),
                                    (Py_ssize_t)pyws_buf_size(&out));
  } else if (rv == PYWS_ERR_INVALID_ARGUMENT) {
    PyErr_SetString(PyExc_ValueError, "a control frame payload is at most 125 bytes");
  } else {
    pyws_py_error(pyws_get_state(module), rv);
  }
  pyws_buf_free(&out);
  PyBuffer_Release(&view);
  return ret;
}

static PyObject *utf8_valid(PyObject *module, PyObject *data) {
  Py_buffer view;
  int ok;
  (void)module;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return NULL;
  ok = pyws_utf8_valid(view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  return PyBool_FromLong(ok);
}

static PyMethodDef frame_functions[] = {
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_VARARGS | METH_KEYWORDS,
     "encode_frame(opcode, data, mask=False) -> bytes: one complete final frame."},
    {"utf8_valid", (PyCFunction)utf8_valid, METH_O, "Is the buffer valid UTF-8?"},
    {NULL, NULL, 0, NULL},
};

int pyws_py_frame_init(PyObject *module) {
  return PyModule_AddFunctions(module, frame_functions);
}

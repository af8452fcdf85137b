/*
 * Module function fanout: the binding of pyws_fanout for pyws.Hub.
 */
#include "py_module.h"

#include <limits.h>

#include "pyws_fanout.h"

/* The descriptors of `seq` (ints) into *out, PyMem_Malloc'ed.  0 or -1. */
static int fd_array(PyObject *seq, int **out, Py_ssize_t *n) {
  PyObject *fast = PySequence_Fast(seq, "fds must be a sequence of ints");
  PyObject **items;
  int *fds;
  if (fast == NULL) return -1;
  *n = PySequence_Fast_GET_SIZE(fast);
  items = PySequence_Fast_ITEMS(fast);
  fds = PyMem_Malloc((size_t)(*n ? *n : 1) * sizeof(int));
  if (fds == NULL) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < *n; i++) {
    long fd = PyLong_AsLong(items[i]);
    if (fd == -1 && PyErr_Occurred()) goto fail;
    if (fd < 0 || fd > INT_MAX) {
      PyErr_Format(PyExc_ValueError, "not a file descriptor: %ld", fd);
      goto fail;
    }
    fds[i] = (int)fd;
  }
  Py_DECREF(fast);
  *out = fds;
  return 0;
fail:
  Py_DECREF(fast);
  PyMem_Free(fds);
  return -1;
}

/* [(index, written or -errno)] for the descriptors that fell short. */
static PyObject *short_list(const ssize_t *written, Py_ssize_t n, Py_ssize_t len,
                            size_t short_count) {
  PyObject *list = PyList_New((Py_ssize_t)short_count);
  Py_ssize_t k = 0;
  if (list == NULL) return NULL;
  for (Py_ssize_t i = 0; i < n && k < (Py_ssize_t)short_count; i++) {
    PyObject *pair;
    if (written[i] == len) continue;
    pair = Py_BuildValue("(nn)", i, (Py_ssize_t)written[i]);
    if (pair == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, k++, pair);
  }
  return list;
}

static PyObject *fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  Py_buffer frame;
  int *fds = NULL;
  ssize_t *written = NULL;
  Py_ssize_t n = 0;
  size_t short_count;
  PyObject *ret = NULL;
  (void)module;
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "fanout() takes 2 arguments (%zd given)", nargs);
    return NULL;
  }
  if (PyObject_GetBuffer(args[0], &frame, PyBUF_SIMPLE) != 0) return NULL;
  if (fd_array(args[1], &fds, &n) != 0) goto done;
  written = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(ssize_t));
  if (written == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  /* The frame is pinned by the buffer view and the descriptors are copied:
   * other threads may run meanwhile. */
  Py_BEGIN_ALLOW_THREADS
  short_count = pyws_fanout(frame.buf, (size_t)frame.len, fds, (size_t)n, written);
  Py_END_ALLOW_THREADS
  ret = short_list(written, n, frame.len, short_count);
done:
  PyMem_Free(written);
  PyMem_Free(fds);
  PyBuffer_Release(&frame);
  return ret;
}

static PyMethodDef fanout_functions[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(frame, fds) -> [(index, written)]: write the frame to every "
     "descriptor without blocking; for those that did not take it all, the "
     "bytes they took (0 if none) or -errno if the send failed."},
    {NULL, NULL, 0, NULL},
};

int pyws_py_fanout_init(PyObject *module) {
  return PyModule_AddFunctions(module, fanout_functions);
}

/* The authentication history's record (issue 21), built as the request is answered: the
 * hot path's share of the history, in C. Optional: when this does not build,
 * daemons.radius.authlog.line does the same in Python (the pure path, kept and tested:
 * tests/radius/test_auth_log_line.py compares the two).
 *
 * line(attributes, now, user, tail) -> bytes | None
 *   attributes: the request's (type, value) pairs in wire order (Packet.attributes);
 *   now: the time (float, seconds since the epoch), stored as PostgreSQL's timestamptz:
 *   microseconds since 2000-01-01 UTC, rounded half to even as Python's round() does;
 *   user: the User-Name as str;
 *   tail: the record's last six fields, already in binary COPY form.
 * Returns one tuple of a binary COPY into radius_auth_log in COPY_COLUMNS order: at,
 * username, nas_port (NAS-Port-Id, else NAS-Port as a decimal number, else empty),
 * calling_station (Calling-Station-Id, else empty), then the tail. The last occurrence of
 * an attribute wins, as in the pure path. Returns None when a value needs the pure path's
 * text conversion (NAS-Port-Id or Calling-Station-Id not plain ASCII, or holding a NUL; a
 * NAS-Port longer than 8 octets). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define NAS_PORT 5
#define CALLING_STATION_ID 31
#define NAS_PORT_ID 87
#define PG_EPOCH 946684800.0

static int plain(const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == 0 || c > 0x7f) return 0;
    }
    return 1;
}

static char *put32(char *out, int32_t v) {
    uint32_t u = (uint32_t)v;
    out[0] = (char)(u >> 24);
    out[1] = (char)(u >> 16);
    out[2] = (char)(u >> 8);
    out[3] = (char)u;
    return out + 4;
}

static PyObject *line(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "line(attributes, now, user, tail)");
        return NULL;
    }
    PyObject *attrs = args[0], *user_obj = args[2], *tail_obj = args[3];
    if (!PyTuple_Check(attrs) || !PyUnicode_Check(user_obj) || !PyBytes_Check(tail_obj)) {
        PyErr_SetString(PyExc_TypeError, "line(tuple, float, str, bytes)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    double scaled = nearbyint((now - PG_EPOCH) * 1e6); /* the default mode: half to even */
    if (!(scaled > -9.2e18 && scaled < 9.2e18)) {
        PyErr_SetString(PyExc_OverflowError, "time out of range");
        return NULL;
    }
    long long usec = (long long)scaled;
    Py_ssize_t user_len;
    const char *user = PyUnicode_AsUTF8AndSize(user_obj, &user_len);
    if (user == NULL) return NULL;

    const char *port_id = NULL, *port = NULL, *calling = NULL;
    Py_ssize_t port_id_len = 0, port_len = 0, calling_len = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(attrs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(attrs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "attributes must be (int, bytes) pairs");
            return NULL;
        }
        long t = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
        if (t == -1 && PyErr_Occurred()) return NULL;
        if (t != NAS_PORT_ID && t != NAS_PORT && t != CALLING_STATION_ID) continue;
        PyObject *v = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_Check(v)) {
            PyErr_SetString(PyExc_TypeError, "attribute values must be bytes");
            return NULL;
        }
        if (t == NAS_PORT_ID) {
            port_id = PyBytes_AS_STRING(v);
            port_id_len = PyBytes_GET_SIZE(v);
        } else if (t == NAS_PORT) {
            port = PyBytes_AS_STRING(v);
            port_len = PyBytes_GET_SIZE(v);
        } else {
            calling = PyBytes_AS_STRING(v);
            calling_len = PyBytes_GET_SIZE(v);
        }
    }

    char number[24];
    const char *where = "";
    Py_ssize_t where_len = 0;
    if (port_id_len > 0) {
        if (!plain(port_id, port_id_len)) Py_RETURN_NONE;
        where = port_id;
        where_len = port_id_len;
    } else if (port_len > 0) {
        if (port_len > 8) Py_RETURN_NONE;
        uint64_t value = 0;
        for (Py_ssize_t i = 0; i < port_len; i++) value = (value << 8) | (unsigned char)port[i];
        where_len = snprintf(number, sizeof number, "%llu", (unsigned long long)value);
        where = number;
    }
    if (calling_len > 0 && !plain(calling, calling_len)) Py_RETURN_NONE;
    if (user_len > INT32_MAX || where_len > INT32_MAX || calling_len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "field too long");
        return NULL;
    }

    Py_ssize_t tail_len = PyBytes_GET_SIZE(tail_obj);
    Py_ssize_t size = 2 + 4 + 8 + 4 + user_len + 4 + where_len + 4 + calling_len + tail_len;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) return NULL;
    char *p = PyBytes_AS_STRING(out);
    /* field count (int16) 10; then the time: length 8, int64 */
    *p++ = 0;
    *p++ = 10;
    p = put32(p, 8);
    uint64_t u = (uint64_t)usec;
    for (int shift = 56; shift >= 0; shift -= 8) *p++ = (char)(u >> shift);
    p = put32(p, (int32_t)user_len);
    memcpy(p, user, (size_t)user_len);
    p += user_len;
    p = put32(p, (int32_t)where_len);
    memcpy(p, where, (size_t)where_len);
    p += where_len;
    p = put32(p, (int32_t)calling_len);
    if (calling_len) memcpy(p, calling, (size_t)calling_len);
    p += calling_len;
    memcpy(p, PyBytes_AS_STRING(tail_obj), (size_t)tail_len);
    return out;
}

static PyMethodDef methods[] = {
    {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,
     "line(attributes, now, user, tail) -> bytes | None: one binary COPY tuple of the "
     "authentication history, or None when the pure path must convert a value."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_authlog", "The authentication history's record, in C (issue 21).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__authlog(void) { return PyModule_Create(&module); }

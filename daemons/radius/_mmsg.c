/* sendmmsg(2) for the RADIUS UDP transport (issue 30): a loop iteration's replies in one
 * system call. Optional: when this does not build, daemons.radius.mmsg sends one datagram
 * at a time through the event loop's transport (the pure path).
 *
 * send(fd, items) -> int: items is a list of (bytes, address) with address (host, port)
 * or (host, port, flowinfo, scope_id), host a numeric IPv4 or IPv6 address. Returns how
 * many datagrams the kernel took (from the front); raises OSError when it took none. */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 256

typedef union {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} any_addr;

static int fill_addr(PyObject *addr, any_addr *out, socklen_t *len) {
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) {
        PyErr_SetString(PyExc_TypeError, "address must be a (host, port, ...) tuple");
        return -1;
    }
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(addr, 0));
    if (host == NULL) return -1;
    long port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred()) return -1;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "port out of range");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (strchr(host, ':') != NULL) {
        out->v6.sin6_family = AF_INET6;
        out->v6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &out->v6.sin6_addr) != 1) goto bad;
        if (PyTuple_GET_SIZE(addr) >= 4) {
            unsigned long flow = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
            unsigned long scope = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
            if (PyErr_Occurred()) return -1;
            out->v6.sin6_flowinfo = htonl((uint32_t)flow);
            out->v6.sin6_scope_id = (uint32_t)scope;
        }
        *len = sizeof(struct sockaddr_in6);
        return 0;
    }
    out->v4.sin_family = AF_INET;
    out->v4.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &out->v4.sin_addr) != 1) goto bad;
    *len = sizeof(struct sockaddr_in);
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
    return -1;
}

static PyObject *mmsg_send(PyObject *self, PyObject *args) {
    int fd;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iO!", &fd, &PyList_Type, &items)) return NULL;
    Py_ssize_t total = PyList_GET_SIZE(items), done = 0;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    any_addr addrs[BATCH];
    while (done < total) {
        Py_ssize_t n = total - done < BATCH ? total - done : BATCH;
        memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)n);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PyList_GET_ITEM(items, done + i);
            char *buf;
            Py_ssize_t size;
            socklen_t alen;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "items must be (bytes, address) tuples");
                return NULL;
            }
            if (PyBytes_AsStringAndSize(PyTuple_GET_ITEM(item, 0), &buf, &size) < 0) return NULL;
            if (fill_addr(PyTuple_GET_ITEM(item, 1), &addrs[i], &alen) < 0) return NULL;
            iov[i].iov_base = buf;
            iov[i].iov_len = (size_t)size;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = alen;
        }
        int sent;
        do {
            sent = sendmmsg(fd, msgs, (unsigned int)n, 0);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            if (done > 0) break;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        done += sent;
        if (sent < n) break;
    }
    return PyLong_FromSsize_t(done);
}

static PyMethodDef methods[] = {
    {"send", mmsg_send, METH_VARARGS, "send(fd, [(bytes, address), ...]) -> datagrams sent"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mmsg", NULL, -1, methods};

PyMODINIT_FUNC PyInit__mmsg(void) { return PyModule_Create(&module); }

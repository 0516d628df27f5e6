/* tdsl.codegen._callpath: the call path of the `c` target, in C.
 *
 * A `FastCall` stands for one compiled function. Called with arguments that need
 * no conversion (exact-dtype, aligned, C-contiguous ndarrays of the right rank and
 * sizes; Python or NumPy scalars of the parameter's kind, in range), it fills one
 * array of `tdsl_slot`s, calls the function's packed entry (PREFIX_FN_packed in the
 * generated module) and returns the results. Any other call (a keyword such as
 * out=, a value to convert, a size that does not match) goes, untouched, to the
 * `fallback` callable: the Python call path, which converts or raises the error
 * naming the argument. The accepted calls are exactly those of codegen/fastcall.py,
 * which is what runs where this extension was not built.
 *
 * Built by setuptools as an optional extension (pyproject.toml): without it,
 * tdsl works the same, about a microsecond slower per call. It needs no NumPy
 * headers: it reads an ndarray through the first members of NumPy's
 * PyArrayObject_fields (stable since NumPy 1.7), and codegen/fastcall.py checks
 * with `probe` that they read right before it uses the extension; it makes arrays
 * by calling `numpy.empty`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The same union as templates/c/module.c.j2 declares. */
typedef union { int64_t i64; int32_t i32; double f64; float f32; bool b; void *p; } tdsl_slot;
typedef int (*packed_fn)(const tdsl_slot *);

/* The first members of NumPy's PyArrayObject_fields. */
typedef struct {
    PyObject_HEAD
    char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    PyObject *descr;
    int flags;
} ndarray_fields;

#define C_CONTIGUOUS 0x0001     /* NPY_ARRAY_C_CONTIGUOUS */
#define ALIGNED 0x0100          /* NPY_ARRAY_ALIGNED */
#define FIELDS(obj) ((ndarray_fields *)(obj))

static PyTypeObject *ndarray_type;   /* numpy.ndarray */
static PyObject *numpy_empty;        /* numpy.empty */

#define MAX_SLOTS 64            /* more arguments: the Python call path is used */
#define MAX_RANK 32             /* NPY_MAXDIMS of NumPy 1.x */
#define SPARES 4                /* dropped results kept per output (codegen/host.py, Spare) */
#define SPARE_EXTRA_MAX ((Py_ssize_t)64 << 20)   /* bytes: larger results keep one spare */
#define GIL_FREE_MIN 16384      /* elements of results from which the call lets other threads run */

enum { SCALAR_BOOL, SCALAR_I32, SCALAR_I64, SCALAR_F32, SCALAR_F64 };

typedef struct {
    int array;                  /* 1: an ndarray; 0: a scalar */
    int kind;                   /* scalars: SCALAR_* */
    PyObject *descr;            /* arrays: the exact dtype object (a reference) */
    PyTypeObject *types[2];     /* scalars: the accepted exact types */
    long long low, high;        /* integer scalars: the accepted range */
    int ndim;
    int naxes;
    struct { int axis; long long literal; int var; int first; } axes[MAX_RANK];
} Param;

typedef struct {
    PyObject *descr;            /* the dtype (a reference) */
    PyObject *scalar_type;      /* a scalar result's NumPy type (a reference) */
    int kind;                   /* a scalar result's SCALAR_* */
    int itemsize;
    int ndim;                   /* 0: a scalar result */
    long long dims[MAX_RANK];   /* >= 0: a literal size; < 0: size variable -1 - d */
    PyObject *spares[SPARES];   /* earlier results, kept to be reused once dropped (host.py) */
    int next;                   /* the slot a result replaces next when none is free */
} Output;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    packed_fn entry;
    PyObject *library;          /* keeps the shared library loaded */
    PyObject *fallback;
    PyObject *raise_error;      /* raise_error(code, sizes): raises the function's error */
    int nsizes, nparams, noutputs, tuple_result;
    Py_ssize_t reuse;           /* bytes from which a dropped result is reused; 0: never */
    Param *params;
    Output *outputs;
} FastCall;

/* A FastCall takes part in reference cycles (its fallback's globals refer back to the
   Function that holds it), so it supports the cycle collector. */
static int
fastcall_traverse(FastCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->library);
    Py_VISIT(self->fallback);
    Py_VISIT(self->raise_error);
    for (int k = 0; self->outputs && k < self->noutputs; k++) {
        for (int i = 0; i < SPARES; i++)
            Py_VISIT(self->outputs[k].spares[i]);
        Py_VISIT(self->outputs[k].descr);
        Py_VISIT(self->outputs[k].scalar_type);
    }
    for (int i = 0; self->params && i < self->nparams; i++)
        Py_VISIT(self->params[i].descr);
    return 0;
}

/* Drop every reference (the collector breaking a cycle, or dealloc). */
static int
fastcall_clear(FastCall *self)
{
    for (int k = 0; self->outputs && k < self->noutputs; k++) {
        for (int i = 0; i < SPARES; i++)
            Py_CLEAR(self->outputs[k].spares[i]);
        Py_CLEAR(self->outputs[k].descr);
        Py_CLEAR(self->outputs[k].scalar_type);
    }
    for (int i = 0; self->params && i < self->nparams; i++)
        Py_CLEAR(self->params[i].descr);
    Py_CLEAR(self->library);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->raise_error);
    return 0;
}

static void
fastcall_dealloc(FastCall *self)
{
    PyObject_GC_UnTrack(self);
    fastcall_clear(self);
    PyMem_Free(self->params);
    PyMem_Free(self->outputs);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Call the Python call path with the call's own arguments. */
static PyObject *
decline(FastCall *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyErr_Occurred())
        PyErr_Clear();          /* a failed conversion: the Python path reports it properly */
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

/* Fill `slot` from scalar `value`; 0 when the value needs the Python path. */
static int
scalar_slot(const Param *p, PyObject *value, tdsl_slot *slot)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type != p->types[0] && type != p->types[1])
        return 0;
    switch (p->kind) {
    case SCALAR_BOOL: {
        int truth = PyObject_IsTrue(value);
        if (truth < 0)
            return 0;
        slot->b = truth;
        return 1;
    }
    case SCALAR_I32:
    case SCALAR_I64: {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred()) || v < p->low || v > p->high)
            return 0;
        if (p->kind == SCALAR_I32)
            slot->i32 = (int32_t)v;
        else
            slot->i64 = (int64_t)v;
        return 1;
    }
    default: {
        double v = PyFloat_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred())
            return 0;
        if (p->kind == SCALAR_F32)
            slot->f32 = (float)v;
        else
            slot->f64 = v;
        return 1;
    }
    }
}

/* Fill `slot` from array `value` and learn or check its sizes; 0 when it needs the Python path. */
static int
array_slot(const Param *p, PyObject *value, int64_t *sizes, tdsl_slot *slot)
{
    if (Py_TYPE(value) != ndarray_type)
        return 0;
    const ndarray_fields *arr = FIELDS(value);
    if (arr->descr != p->descr || arr->nd != p->ndim || (arr->flags & (C_CONTIGUOUS | ALIGNED)) != (C_CONTIGUOUS | ALIGNED))
        return 0;
    const Py_ssize_t *shape = arr->dimensions;
    for (int j = 0; j < p->naxes; j++) {
        long long extent = shape[p->axes[j].axis];
        if (p->axes[j].var < 0) {
            if (extent != p->axes[j].literal)
                return 0;
        } else if (p->axes[j].first) {
            sizes[p->axes[j].var] = extent;
        } else if (extent != sizes[p->axes[j].var]) {
            return 0;
        }
    }
    slot->p = arr->data;
    return 1;
}

/* Keep `result` (of `bytes`) as a spare when a slot is free: the first slot for any size, the
   others for results up to SPARE_EXTRA_MAX (calls whose results live at once, such as the
   chunks of a Dask computation, each reuse one; a large result keeps at most one spare). */
static void
keep_spare(Output *o, PyObject *result, Py_ssize_t bytes)
{
    for (int i = 0; i < SPARES; i++)
        if (o->spares[i] == result)
            return;             /* already kept (a reused spare comes back as the result) */
    int last = bytes <= SPARE_EXTRA_MAX ? SPARES : 1;
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < last; j++) {
            /* first an empty slot, else one whose array the caller still holds (letting go of
               it costs nothing), taken in turn so the latest results are the ones kept */
            int i = pass == 0 ? j : (o->next + j) % last;
            PyObject *old = o->spares[i];
            if (pass == 0 ? old == NULL : Py_REFCNT(old) > 1) {
                Py_INCREF(result);
                o->spares[i] = result;
                Py_XDECREF(old);
                if (pass == 1)
                    o->next = (i + 1) % SPARES;
                return;
            }
        }
    }
}

/* Result k's array: a spare one the caller dropped that fits, else a new one. A dropped spare
   of another shape is let go (its memory goes back); one still in use stays in its slot. */
static PyObject *
output_array(Output *o, const int64_t *sizes, Py_ssize_t *count)
{
    Py_ssize_t dims[MAX_RANK];
    Py_ssize_t n = 1;
    for (int j = 0; j < o->ndim; j++) {
        dims[j] = o->dims[j] >= 0 ? (Py_ssize_t)o->dims[j] : (Py_ssize_t)sizes[-1 - o->dims[j]];
        /* no signed overflow: a count too large for NumPy makes numpy.empty fail below */
        n = (dims[j] != 0 && n > PY_SSIZE_T_MAX / dims[j]) ? PY_SSIZE_T_MAX : n * dims[j];
    }
    *count = n;
    for (int i = 0; i < SPARES; i++) {
        PyObject *spare = o->spares[i];
        if (spare == NULL || Py_REFCNT(spare) != 1)
            continue;           /* empty, or the caller still holds it */
        o->spares[i] = NULL;
        if (memcmp(FIELDS(spare)->dimensions, dims, sizeof(Py_ssize_t) * (size_t)o->ndim) == 0)
            return spare;       /* only this slot referred to it */
        Py_DECREF(spare);
    }
    PyObject *shape = PyTuple_New(o->ndim);
    if (shape == NULL)
        return NULL;
    for (int j = 0; j < o->ndim; j++) {
        PyObject *d = PyLong_FromSsize_t(dims[j]);
        if (d == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, j, d);
    }
    PyObject *args[2] = {shape, o->descr};
    PyObject *arr = PyObject_Vectorcall(numpy_empty, args, 2, NULL);
    Py_DECREF(shape);
    return arr;
}

/* A scalar result as its NumPy scalar type. */
static PyObject *
scalar_result(const Output *o, const tdsl_slot *value)
{
    PyObject *plain;
    switch (o->kind) {
    case SCALAR_BOOL: plain = PyBool_FromLong(value->b); break;
    case SCALAR_I32: plain = PyLong_FromLong(value->i32); break;
    case SCALAR_I64: plain = PyLong_FromLongLong(value->i64); break;
    case SCALAR_F32: plain = PyFloat_FromDouble(value->f32); break;
    default: plain = PyFloat_FromDouble(value->f64); break;
    }
    if (plain == NULL)
        return NULL;
    PyObject *result = PyObject_CallOneArg(o->scalar_type, plain);
    Py_DECREF(plain);
    return result;
}

static PyObject *
fastcall_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FastCall *self = (FastCall *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (self->fallback == NULL || self->raise_error == NULL) {   /* cleared by the cycle collector */
        PyErr_SetString(PyExc_RuntimeError, "this compiled function was cleared");
        return NULL;
    }
    if (kwnames != NULL || nargs != self->nparams)
        return decline(self, args, nargsf, kwnames);

    tdsl_slot slots[MAX_SLOTS];
    int64_t sizes[MAX_SLOTS];
    tdsl_slot *param_slots = slots + self->nsizes;
    for (int i = 0; i < self->nparams; i++) {
        const Param *p = &self->params[i];
        int ok = p->array ? array_slot(p, args[i], sizes, &param_slots[i]) : scalar_slot(p, args[i], &param_slots[i]);
        if (!ok)
            return decline(self, args, nargsf, kwnames);
    }
    for (int v = 0; v < self->nsizes; v++)
        slots[v].i64 = sizes[v];

    PyObject *results[MAX_SLOTS];
    tdsl_slot values[MAX_SLOTS];    /* scalar results */
    tdsl_slot *out_slots = param_slots + self->nparams;
    Py_ssize_t count = 0, counts[MAX_SLOTS];
    for (int k = 0; k < self->noutputs; k++) {
        Output *o = &self->outputs[k];
        if (o->ndim == 0) {
            results[k] = NULL;
            out_slots[k].p = &values[k];
            continue;
        }
        results[k] = output_array(o, sizes, &counts[k]);
        count = counts[k] > PY_SSIZE_T_MAX - count ? PY_SSIZE_T_MAX : count + counts[k];
        if (results[k] == NULL) {
            for (int j = 0; j < k; j++)
                Py_XDECREF(results[j]);
            /* too large or out of memory: the Python path raises the error naming the value */
            if (PyErr_ExceptionMatches(PyExc_MemoryError) || PyErr_ExceptionMatches(PyExc_ValueError))
                return decline(self, args, nargsf, kwnames);
            return NULL;
        }
        out_slots[k].p = FIELDS(results[k])->data;
    }

    int code;
    if (count >= GIL_FREE_MIN) {
        Py_BEGIN_ALLOW_THREADS
        code = self->entry(slots);
        Py_END_ALLOW_THREADS
    } else {
        code = self->entry(slots);
    }

    if (code != 0) {
        for (int k = 0; k < self->noutputs; k++)
            Py_XDECREF(results[k]);
        PyObject *size_tuple = PyTuple_New(self->nsizes);
        if (size_tuple == NULL)
            return NULL;
        for (int v = 0; v < self->nsizes; v++)
            PyTuple_SET_ITEM(size_tuple, v, PyLong_FromLongLong(sizes[v]));
        PyObject *raised = PyObject_CallFunction(self->raise_error, "iO", code, size_tuple);
        Py_DECREF(size_tuple);
        Py_XDECREF(raised);     /* raise_error raises: NULL with the error set */
        if (raised != NULL)
            PyErr_Format(PyExc_RuntimeError, "the compiled function failed with error code %d", code);
        return NULL;
    }

    for (int k = 0; k < self->noutputs; k++) {
        Output *o = &self->outputs[k];
        if (o->ndim == 0) {
            results[k] = scalar_result(o, &values[k]);
            if (results[k] == NULL) {
                for (int j = 0; j < self->noutputs; j++)
                    if (j != k)
                        Py_XDECREF(results[j]);
                return NULL;
            }
        } else if (self->reuse > 0 && counts[k] * o->itemsize >= self->reuse) {
            keep_spare(o, results[k], counts[k] * o->itemsize);
        }
    }
    if (!self->tuple_result)
        return results[0];
    PyObject *tuple = PyTuple_New(self->noutputs);
    if (tuple == NULL) {
        for (int k = 0; k < self->noutputs; k++)
            Py_DECREF(results[k]);
        return NULL;
    }
    for (int k = 0; k < self->noutputs; k++)
        PyTuple_SET_ITEM(tuple, k, results[k]);
    return tuple;
}

static int
long_item(PyObject *seq, Py_ssize_t i, long long *out)
{
    PyObject *item = PySequence_GetItem(seq, i);
    if (item == NULL)
        return -1;
    *out = PyLong_AsLongLong(item);
    Py_DECREF(item);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Param from ("scalar", kind, (type, type), low, high) or ("array", dtype, ndim, ((axis, literal, var, first), ...), None). */
static int
parse_param(PyObject *spec, Param *p)
{
    const char *tag;
    PyObject *a, *b, *c, *d;
    if (!PyArg_ParseTuple(spec, "sOOOO", &tag, &a, &b, &c, &d))
        return -1;
    memset(p, 0, sizeof(*p));
    p->array = strcmp(tag, "array") == 0;
    if (p->array) {
        Py_INCREF(a);
        p->descr = a;
    } else {
        p->kind = (int)PyLong_AsLong(a);
        if (p->kind == -1 && PyErr_Occurred())
            return -1;
    }
    if (!p->array) {
        if (!PyTuple_Check(b) || PyTuple_GET_SIZE(b) != 2 || !PyType_Check(PyTuple_GET_ITEM(b, 0))
            || !PyType_Check(PyTuple_GET_ITEM(b, 1))) {
            PyErr_SetString(PyExc_TypeError, "a scalar parameter takes a pair of types");
            return -1;
        }
        p->types[0] = (PyTypeObject *)PyTuple_GET_ITEM(b, 0);   /* kept alive by the spec's owner (builtins, NumPy) */
        p->types[1] = (PyTypeObject *)PyTuple_GET_ITEM(b, 1);
        p->low = c == Py_None ? LLONG_MIN : PyLong_AsLongLong(c);
        p->high = d == Py_None ? LLONG_MAX : PyLong_AsLongLong(d);
        return PyErr_Occurred() ? -1 : 0;
    }
    p->ndim = (int)PyLong_AsLong(b);
    Py_ssize_t naxes = PySequence_Size(c);
    if (p->ndim < 0 || p->ndim > MAX_RANK || naxes < 0 || naxes > MAX_RANK) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "rank out of range");
        return -1;
    }
    p->naxes = (int)naxes;
    for (Py_ssize_t j = 0; j < naxes; j++) {
        PyObject *axis = PySequence_GetItem(c, j);
        long long v[4];
        int bad = axis == NULL;
        for (int f = 0; !bad && f < 4; f++)
            bad = long_item(axis, f, &v[f]) < 0;
        Py_XDECREF(axis);
        if (bad)
            return -1;
        p->axes[j].axis = (int)v[0];
        p->axes[j].literal = v[1];
        p->axes[j].var = (int)v[2];
        p->axes[j].first = (int)v[3];
    }
    return 0;
}

/* Output from (dtype, itemsize, dims, scalar type, kind): dims literal sizes (>= 0) or size variables (-1 - index). */
static int
parse_output(PyObject *spec, Output *o)
{
    PyObject *dtype, *dims, *scalar_type;
    if (!PyArg_ParseTuple(spec, "OiOOi", &dtype, &o->itemsize, &dims, &scalar_type, &o->kind))
        return -1;
    Py_INCREF(dtype);
    o->descr = dtype;
    Py_INCREF(scalar_type);
    o->scalar_type = scalar_type;
    Py_ssize_t ndim = PySequence_Size(dims);
    if (ndim < 0 || ndim > MAX_RANK) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "rank out of range");
        return -1;
    }
    o->ndim = (int)ndim;
    for (Py_ssize_t j = 0; j < ndim; j++)
        if (long_item(dims, j, &o->dims[j]) < 0)
            return -1;
    return 0;
}

/* FastCall(entry, library, nsizes, params, outputs, tuple_result, reuse, fallback, raise_error):
   `reuse` is the size in bytes from which a dropped result is reused (codegen/host.py), 0 never. */
static PyObject *
fastcall_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    unsigned long long entry;
    PyObject *library, *params, *outputs, *fallback, *raise_error;
    int nsizes, tuple_result;
    Py_ssize_t reuse;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        PyErr_SetString(PyExc_TypeError, "FastCall takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "KOiO!O!pnOO", &entry, &library, &nsizes, &PyTuple_Type, &params, &PyTuple_Type,
                          &outputs, &tuple_result, &reuse, &fallback, &raise_error))
        return NULL;
    Py_ssize_t nparams = PyTuple_GET_SIZE(params), noutputs = PyTuple_GET_SIZE(outputs);
    if (entry == 0 || nsizes < 0 || noutputs < 1 || nsizes + nparams + noutputs > MAX_SLOTS) {
        PyErr_SetString(PyExc_ValueError, "FastCall: no entry, or too many arguments");
        return NULL;
    }
    FastCall *self = (FastCall *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->vectorcall = fastcall_vectorcall;
    self->entry = (packed_fn)(uintptr_t)entry;
    self->nsizes = nsizes;
    self->nparams = (int)nparams;
    self->noutputs = (int)noutputs;
    self->tuple_result = tuple_result;
    self->reuse = reuse;
    self->params = PyMem_Calloc((size_t)nparams + 1, sizeof(Param));
    self->outputs = PyMem_Calloc((size_t)noutputs, sizeof(Output));
    Py_INCREF(library);
    Py_INCREF(fallback);
    Py_INCREF(raise_error);
    self->library = library;
    self->fallback = fallback;
    self->raise_error = raise_error;
    if (self->params == NULL || self->outputs == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < nparams; i++)
        if (parse_param(PyTuple_GET_ITEM(params, i), &self->params[i]) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    for (Py_ssize_t k = 0; k < noutputs; k++)
        if (parse_output(PyTuple_GET_ITEM(outputs, k), &self->outputs[k]) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    return (PyObject *)self;
}

static PyObject *
fastcall_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    return PyVectorcall_Call(self, args, kwargs);
}

static PyTypeObject FastCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tdsl.codegen._callpath.FastCall",
    .tp_doc = "One compiled function's call path: conversion-free calls in C, the rest to `fallback`.",
    .tp_basicsize = sizeof(FastCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_new = fastcall_new,
    .tp_dealloc = (destructor)fastcall_dealloc,
    .tp_traverse = (traverseproc)fastcall_traverse,
    .tp_clear = (inquiry)fastcall_clear,
    .tp_call = fastcall_call,
    .tp_vectorcall_offset = offsetof(FastCall, vectorcall),
};

/* probe(arr) -> (data address, ndim, shape, flags, dtype) as read through ndarray_fields. */
static PyObject *
probe(PyObject *module, PyObject *arr)
{
    (void)module;
    if (Py_TYPE(arr) != ndarray_type) {
        PyErr_SetString(PyExc_TypeError, "probe() takes a numpy.ndarray");
        return NULL;
    }
    const ndarray_fields *f = FIELDS(arr);
    PyObject *shape = PyTuple_New(f->nd);
    if (shape == NULL)
        return NULL;
    for (int j = 0; j < f->nd; j++)
        PyTuple_SET_ITEM(shape, j, PyLong_FromSsize_t(f->dimensions[j]));
    return Py_BuildValue("KiNiO", (unsigned long long)(uintptr_t)f->data, f->nd, shape, f->flags, f->descr);
}

static PyMethodDef callpath_methods[] = {
    {"probe", probe, METH_O, "What the call path reads of an ndarray: (data, ndim, shape, flags, dtype)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef callpath_module = {
    PyModuleDef_HEAD_INIT, "_callpath", "The `c` target's call path, in C (see codegen/fastcall.py).", -1,
    callpath_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__callpath(void)
{
    PyObject *numpy = PyImport_ImportModule("numpy");
    if (numpy == NULL)
        return NULL;
    ndarray_type = (PyTypeObject *)PyObject_GetAttrString(numpy, "ndarray");
    numpy_empty = PyObject_GetAttrString(numpy, "empty");
    Py_DECREF(numpy);
    if (ndarray_type == NULL || numpy_empty == NULL || !PyType_Check(ndarray_type))
        return NULL;
    if (PyType_Ready(&FastCallType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&callpath_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&FastCallType);
    if (PyModule_AddObject(module, "FastCall", (PyObject *)&FastCallType) < 0) {
        Py_DECREF(&FastCallType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

/* Lowering, part 3: indexing, slicing and attributes (x[...], x.T, x.shape).
 *
 * x[a, b:c, None, idx] becomes at most one SLICE (all ranges at once), one
 * RESHAPE (dropping integer-indexed axes, inserting None axes) and one GATHER
 * (a tensor index). Bounds may be symbolic: wpe[0:T] slices T rows.
 */
#include "lower_internal.h"

#include <string.h>

static bool dim_of(LVal v, Dim *out) {
  if (v.kind != LV_INT)
    return false;
  *out = v.dim;
  return true;
}

/* Normalizes a possibly negative index against extent n. */
static Dim normalize(Dim i, Dim n) {
  int64_t c;
  Dim r;
  if (dim_is_const(i, &c) && c < 0 && dim_add(n, i, &r))
    return r;
  return i;
}

static LVal index_list(Lowerer *L, LVal base, LVal *items, int nitems,
                       const AstNode *n) {
  int64_t i;
  if (nitems != 1 || items[0].kind != LV_INT ||
      !dim_is_const(items[0].dim, &i)) {
    diag_error(L->d, n->loc, "a list is indexed by one constant integer");
    return lv_error();
  }
  if (i < 0)
    i += base.nitems;
  if (i < 0 || i >= base.nitems) {
    diag_error(L->d, n->loc, "index %lld out of range for %d items",
               (long long)i, base.nitems);
    return lv_error();
  }
  return base.items[i];
}

LVal lower_index(Lowerer *L, LVal base, LVal *items, const AstNode **nodes,
                 int nitems, const AstNode *n) {
  if (base.kind == LV_LIST || base.kind == LV_TUPLE)
    return index_list(L, base, items, nitems, n);
  if (base.kind != LV_TENSOR) {
    diag_error(L->d, n->loc, "cannot index %s", lv_kind_name(base.kind));
    return lv_error();
  }
  Value *x = base.v;
  int rank = x->type.shape.rank;
  Loc loc = lower_loc(L, n);
  /* count axes consumed by the items */
  int consumed = 0, ellipses = 0;
  for (int k = 0; k < nitems; k++) {
    if (items[k].kind == LV_ELLIPSIS)
      ellipses++;
    else if (items[k].kind != LV_NONE)
      consumed++;
  }
  if (ellipses > 1 || consumed > rank) {
    diag_error(L->d, n->loc,
               ellipses > 1 ? "only one '...' is allowed in an index"
                            : "too many indices (%d) for a tensor of rank %d",
               consumed, rank);
    return lv_error();
  }
  Attrs sl;
  memset(&sl, 0, sizeof sl);
  Type sliced = x->type;
  bool any_slice = false;
  int axis = 0;
  /* output axes after the reshape: for each, the source axis or -1 (None) */
  int out_src[MAX_RANK * 2], nout = 0;
  int gather_axis = -1;
  Value *gather_idx = NULL;
  const AstNode *gather_node = NULL;
  for (int a = 0; a < rank; a++) {
    sl.slice.start[a] = dim_const(0);
    sl.slice.step[a] = 1;
  }
  for (int k = 0; k < nitems; k++) {
    LVal it = items[k];
    if (it.kind == LV_ELLIPSIS) {
      int fill = rank - consumed;
      for (int f = 0; f < fill; f++)
        out_src[nout++] = axis++;
      continue;
    }
    if (it.kind == LV_NONE) {
      out_src[nout++] = -1;
      continue;
    }
    Dim extent = x->type.shape.dims[axis];
    if (it.kind == LV_INT) {
      Dim at = normalize(it.dim, extent);
      int64_t c, e;
      if (dim_is_const(at, &c) && dim_is_const(extent, &e) &&
          (c < 0 || c >= e)) {
        diag_error(L->d, nodes[k]->loc,
                   "index %lld out of range for axis %d of size %lld",
                   (long long)c, axis, (long long)e);
        return lv_error();
      }
      sl.slice.start[axis] = at;
      sliced.shape.dims[axis] = dim_const(1);
      any_slice = true;
      axis++; /* dropped: not in out_src */
      continue;
    }
    if (it.kind == LV_SLICE) {
      int64_t step = 1;
      if (it.items[2].kind != LV_NONE) {
        Dim sd;
        if (!dim_of(it.items[2], &sd) || !dim_is_const(sd, &step) ||
            step == 0) {
          diag_error(L->d, nodes[k]->loc,
                     "a slice step must be a non-zero constant integer");
          return lv_error();
        }
      }
      Dim lo, hi;
      if (it.items[0].kind == LV_NONE) {
        if (step > 0)
          lo = dim_const(0);
        else
          dim_sub(extent, dim_const(1), &lo);
      } else if (!dim_of(it.items[0], &lo)) {
        diag_error(L->d, nodes[k]->loc, "slice bounds must be integers");
        return lv_error();
      } else {
        lo = normalize(lo, extent);
      }
      if (it.items[1].kind == LV_NONE) {
        hi = step > 0 ? extent : dim_const(-1);
      } else if (!dim_of(it.items[1], &hi)) {
        diag_error(L->d, nodes[k]->loc, "slice bounds must be integers");
        return lv_error();
      } else {
        hi = normalize(hi, extent);
      }
      Dim size;
      int64_t clo, chi, ce;
      if (dim_is_const(lo, &clo) && dim_is_const(hi, &chi)) {
        if (dim_is_const(extent, &ce)) {
          /* clamp like Python */
          if (step > 0) {
            clo = clo < 0 ? 0 : clo > ce ? ce : clo;
            chi = chi < 0 ? 0 : chi > ce ? ce : chi;
          } else {
            clo = clo >= ce ? ce - 1 : clo;
            chi = chi < -1 ? -1 : chi;
          }
        }
        int64_t cnt = step > 0 ? (chi - clo + step - 1) / step
                               : (clo - chi + (-step) - 1) / (-step);
        if (cnt < 0)
          cnt = 0;
        size = dim_const(cnt);
        lo = dim_const(clo);
      } else if (step == 1 && dim_sub(hi, lo, &size)) {
        /* symbolic bounds: wpe[0:T] */
      } else {
        diag_error(L->d, nodes[k]->loc,
                   "a slice with symbolic bounds must have step 1");
        return lv_error();
      }
      sl.slice.start[axis] = lo;
      sl.slice.step[axis] = step;
      sliced.shape.dims[axis] = size;
      if (!dim_eq(size, extent) || step != 1)
        any_slice = true;
      out_src[nout++] = axis++;
      continue;
    }
    if (it.kind == LV_TENSOR) {
      if (gather_idx) {
        diag_error(L->d, nodes[k]->loc,
                   "only one tensor index is supported per indexing");
        return lv_error();
      }
      if (!dtype_is_int(it.v->type.dtype)) {
        diag_error(L->d, nodes[k]->loc,
                   "a tensor index must hold integers, not %s",
                   dtype_name(it.v->type.dtype));
        return lv_error();
      }
      gather_idx = it.v;
      gather_node = nodes[k];
      gather_axis = axis;
      out_src[nout++] = axis++;
      continue;
    }
    diag_error(L->d, nodes[k]->loc, "cannot index with %s",
               lv_kind_name(it.kind));
    return lv_error();
  }
  while (axis < rank)
    out_src[nout++] = axis++;
  if (nout > MAX_RANK) {
    diag_error(L->d, n->loc, "the result would exceed rank %d", MAX_RANK);
    return lv_error();
  }
  Value *v = x;
  if (any_slice) {
    v = lower_op(L, OP_SLICE, &v, 1, &sl, &sliced, loc);
    if (!v)
      return lv_error();
  }
  Type rt = v->type;
  rt.shape.rank = nout;
  bool reshape = nout != rank;
  int gather_out = -1;
  for (int o = 0; o < nout; o++) {
    if (out_src[o] < 0) {
      rt.shape.dims[o] = dim_const(1);
      reshape = true;
    } else {
      rt.shape.dims[o] = v->type.shape.dims[out_src[o]];
      if (out_src[o] == gather_axis)
        gather_out = o;
    }
  }
  if (reshape) {
    v = lower_op(L, OP_RESHAPE, &v, 1, NULL, &rt, loc);
    if (!v)
      return lv_error();
  }
  if (gather_idx) {
    Attrs ga;
    memset(&ga, 0, sizeof ga);
    ga.axis.axis = gather_out;
    Value *ops[2] = {v, gather_idx};
    v = lower_op(L, OP_GATHER, ops, 2, &ga, NULL, lower_loc(L, gather_node));
  }
  return lv_tensor(v);
}

LVal lower_attr(Lowerer *L, LVal base, const char *name, const AstNode *n) {
  if (base.kind != LV_TENSOR) {
    diag_error(L->d, n->loc, "%s has no attribute '%s'",
               lv_kind_name(base.kind), name);
    return lv_error();
  }
  Value *x = base.v;
  int rank = x->type.shape.rank;
  if (strcmp(name, "shape") == 0) {
    LVal v = lv_void();
    v.kind = LV_LIST;
    v.nitems = rank;
    v.items = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(rank + 1));
    for (int i = 0; i < rank; i++)
      v.items[i] = lv_dim(x->type.shape.dims[i]);
    return v;
  }
  if (strcmp(name, "T") == 0) {
    if (rank < 2) {
      diag_error(L->d, n->loc, ".T needs a tensor of rank 2 or more, not %d",
                 rank);
      return lv_error();
    }
    Attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < rank; i++)
      a.perm.perm[i] = i;
    a.perm.perm[rank - 2] = rank - 1;
    a.perm.perm[rank - 1] = rank - 2;
    return lv_tensor(lower_op(L, OP_PERMUTE, &x, 1, &a, NULL, lower_loc(L, n)));
  }
  diag_error(L->d, n->loc, "a tensor has no attribute '%s' (known: T, shape)",
             name);
  return lv_error();
}

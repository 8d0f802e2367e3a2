"""Safetensors checkpoints: a validating reader, an atomic writer, the compressed-file schema.

Why a reader of our own rather than ``safetensors.numpy``: the format is an 8-byte little-endian
header length, a JSON header and a flat byte buffer, and reading it here (a) works without torch
and without the ``safetensors`` package, (b) reads ``BF16`` tensors without torch (NumPy has no
bfloat16: the bits are widened to float32 exactly, and written back with round-to-nearest-even),
and (c) checks everything a damaged file can get wrong *before* it allocates or reads anything:
the header length against the file size, the JSON, each dtype, shape and byte range, and that the
ranges tile the buffer exactly as the safetensors specification requires. Any malformed file
raises :class:`CheckpointError` (a ``ValueError``) with a message saying what is wrong; the files
written here are read back by the ``safetensors`` package, and the tests check both directions.

A compressed file is an ordinary safetensors file: tensors that were not compressed keep their
names and bytes, and each compressed weight is replaced by its factors. The ``__metadata__`` entry
``"sparselin"`` holds a JSON document (the schema below) that says, per weight, the method, rank,
shape, dtype, measured error and which tensors rebuild it.

Schema (version 2; a file without ``kronecker`` layers is written as version 1, which is
version 2 without that method, so that older readers still open it)::

    {"format": "sparselin-compressed", "version": 1, "sparselin_version": "...",
     "settings": {...how the file was made...},
     "layers": {WEIGHT_NAME: {"method": "svd" | "lowrank_sparse" | "shared" | "kronecker"
                                        | "dense",
                              "shape": [m, n], "dtype": "F32" | "F16" | "BF16" | "F64",
                              "rank": k, "params_before": m*n, "params_after": int,
                              "error": relative Frobenius error of the stored weight,
                              "tensors": {ROLE: TENSOR_NAME}, "group": GROUP (shared only)}},
     "groups": {GROUP: {"basis": TENSOR_NAME, "rank": k, "members": [WEIGHT_NAME, ...]}},
     "rebuild": {METHOD: "formula"}}

Rebuilding ``W`` (m x n, PyTorch's out x in layout): ``svd``: ``W = U @ V`` with ``U`` m x k and
``V`` k x n; ``lowrank_sparse``: the same plus a sparse residual stored as
:class:`sparselin.torch.LowRankSparseLinear` holds it, CSR entries (``indptr`` (m + 1,),
``indices`` (nnz,) column indices, ``values`` (nnz,)) and, optionally, whole input channels
(``columns`` (c,), ``column_values`` (m, c)) added to their columns; ``shared``:
``W = coef @ basis`` with ``coef`` m x k and the group's ``basis`` k x n shared by every member;
``kronecker``: ``W = sum_i kron(A[i], B[i])`` with ``A`` k x m1 x n1 and ``B`` k x m2 x n2,
``m1 m2 = m`` and ``n1 n2 = n`` (:class:`sparselin.torch.KroneckerLinear`; the factor shapes are
the rebuild recipe, nothing else is needed); ``dense``: ``W = weight`` (a matrix whose factors
would not save parameters stays dense).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "CheckpointError",
    "CompressedCheckpoint",
    "LayerRecord",
    "RawTensor",
    "SafetensorsReader",
    "atomic_write_safetensors",
    "bf16_bits_to_float32",
    "float32_to_bf16_bits",
    "read_compressed",
    "same_file",
]

FORMAT_NAME = "sparselin-compressed"
FORMAT_VERSION = 2
METADATA_KEY = "sparselin"
METHODS = ("svd", "lowrank_sparse", "shared", "kronecker", "dense")
#: The first format version that has each method (older versions reject it as unknown).
_SINCE = {"kronecker": 2}
REBUILD = {
    "svd": "W = U @ V",
    "lowrank_sparse": (
        "W = U @ V; W[i, indices[indptr[i]:indptr[i+1]]] += values[indptr[i]:indptr[i+1]]; "
        "W[:, columns] += column_values"
    ),
    "shared": "W = coef @ groups[group].basis",
    "kronecker": "W = sum_i kron(A[i], B[i])",
    "dense": "W = weight",
}
_OPTIONAL_ROLES = {"lowrank_sparse": ("columns", "column_values")}
_INDEX_ROLES = ("indptr", "indices", "columns")
_ROLES = {
    "svd": ("U", "V"),
    "lowrank_sparse": ("U", "V", "indptr", "indices", "values"),
    "shared": ("coef",),
    "kronecker": ("A", "B"),
    "dense": ("weight",),
}

# The safetensors reference implementation refuses headers above 100 MB; so do we, before
# reading a byte of it (a corrupted length must not make us allocate gigabytes).
MAX_HEADER_BYTES = 100_000_000

# safetensors dtype name -> (numpy storage dtype, itemsize). BF16 is stored as its raw uint16 bits
# and the float8 kinds as raw bytes: they can be copied through unchanged, never computed on.
_STORAGE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F8_E4M3": np.dtype("u1"),
    "F8_E5M2": np.dtype("u1"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
_FROM_NUMPY = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint64): "U64",
    np.dtype(np.uint32): "U32",
    np.dtype(np.uint16): "U16",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, malformed, or not the kind of file expected.

    The message names the file and what is wrong with it.
    """


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bits (uint16) to float32, exactly."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest, ties to even, as torch does) and return the bits."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    # Rounding a NaN's payload could carry into the exponent; keep it a (quiet) NaN.
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


@dataclass(frozen=True)
class RawTensor:
    """A tensor as stored: safetensors dtype name, shape and the storage array (BF16 as uint16)."""

    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray

    @classmethod
    def from_array(cls, array: np.ndarray, dtype: str | None = None) -> RawTensor:
        """Store ``array`` as ``dtype`` (default: its own); floats are cast, BF16 rounded."""
        array = np.asarray(array)
        if dtype is None:
            try:
                dtype = _FROM_NUMPY[array.dtype]
            except KeyError:
                raise TypeError(f"no safetensors dtype for numpy {array.dtype}") from None
        if dtype == "BF16":
            data = float32_to_bf16_bits(array.astype(np.float32, copy=False))
        else:
            data = np.ascontiguousarray(array, dtype=_STORAGE[dtype])
        return cls(dtype, tuple(int(d) for d in array.shape), data.reshape(array.shape))

    def to_float(self, dtype: Any = np.float32) -> np.ndarray:
        """The values as a float array of ``dtype`` (BF16 widened exactly)."""
        if self.dtype == "BF16":
            return bf16_bits_to_float32(self.data).astype(dtype, copy=False)
        if self.dtype not in FLOAT_DTYPES:
            raise TypeError(f"tensor of dtype {self.dtype} is not floating point")
        return self.data.astype(dtype, copy=False)


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file (offsets relative to the data buffer)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _err(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a valid safetensors file: {what}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class SafetensorsReader:
    """Open and validate a safetensors file; read tensors on demand.

    Every check that can fail on a damaged file happens in the constructor, which reads only the
    8-byte length and the header; :meth:`read` then reads one tensor's bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable or malformed (the message says which).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.tensors, self.metadata, self.data_start = self._parse_header(f, size)
        except CheckpointError:
            raise
        except IsADirectoryError:
            raise CheckpointError(f"{self.path}: is a directory, not a file") from None
        except FileNotFoundError:
            raise CheckpointError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        self.file_size = size

    def _parse_header(
        self, f: BinaryIO, size: int
    ) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
        path = self.path
        if size < 8:
            raise _err(path, f"{size} bytes, shorter than the 8-byte header length")
        n = int.from_bytes(f.read(8), "little")
        if n > size - 8:
            raise _err(path, f"header length {n} is larger than the {size - 8} bytes that follow")
        if n > MAX_HEADER_BYTES:
            raise _err(path, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
        raw = f.read(n)
        if len(raw) != n:
            raise _err(path, "file shrank while it was read")
        try:
            header = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _err(path, "header is not UTF-8 text") from None
        except (ValueError, RecursionError) as exc:
            raise _err(path, f"header is not valid JSON ({str(exc)[:80]})") from None
        if not isinstance(header, dict):
            raise _err(path, f"header is a JSON {type(header).__name__}, expected an object")
        body = size - 8 - n
        metadata: dict[str, str] = {}
        tensors: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                if not isinstance(entry, dict) or not all(
                    isinstance(v, str) for v in entry.values()
                ):
                    raise _err(path, "__metadata__ must map strings to strings")
                metadata = dict(entry)
                continue
            tensors[name] = self._parse_entry(name, entry, body)
        # The specification: byte ranges tile the buffer, no gap, no overlap, nothing after.
        pos = 0
        for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
            if info.begin != pos:
                what = "overlaps another tensor" if info.begin < pos else "leaves a gap before it"
                raise _err(path, f"tensor {info.name!r}: data_offsets {what}")
            pos = info.end
        if pos != body:
            raise _err(path, f"data buffer is {body} bytes but the tensors cover {pos}")
        return tensors, metadata, 8 + n

    def _parse_entry(self, name: str, entry: Any, body: int) -> TensorInfo:
        path = self.path
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise _err(path, f"tensor {name!r}: expected dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _STORAGE:
            raise _err(path, f"tensor {name!r}: unknown dtype {str(dtype)[:20]!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise _err(path, f"tensor {name!r}: shape must be a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= body
        ):
            raise _err(
                path, f"tensor {name!r}: data_offsets must be [begin, end] within {body} bytes"
            )
        # NumPy refuses shapes whose extent (zero dimensions counted as one) overflows 63 bits,
        # even for an empty tensor: such a shape is damage, not a tensor.
        if math.prod(max(d, 1) for d in shape) * _STORAGE[dtype].itemsize > 2**62:
            raise _err(path, f"tensor {name!r}: shape {str(shape)[:60]} is impossibly large")
        nbytes = math.prod(shape) * _STORAGE[dtype].itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise _err(
                path,
                f"tensor {name!r}: {dtype} {tuple(shape)} needs {nbytes} bytes, "
                f"data_offsets hold {offsets[1] - offsets[0]}",
            )
        return TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def read(self, name: str) -> RawTensor:
        """Read one tensor as stored (see :class:`RawTensor`)."""
        try:
            info = self.tensors[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor named {name!r}") from None
        try:
            with open(self.path, "rb") as f:
                f.seek(self.data_start + info.begin)
                raw = f.read(info.end - info.begin)
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if len(raw) != info.end - info.begin:
            raise CheckpointError(f"{self.path}: file shrank while tensor {name!r} was read")
        data = np.frombuffer(raw, dtype=_STORAGE[info.dtype]).reshape(info.shape)
        return RawTensor(info.dtype, info.shape, data)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file (symlinks and hard links included)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _header_bytes(tensors: Mapping[str, RawTensor], metadata: Mapping[str, str] | None) -> bytes:
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    pos = 0
    # Largest items first keeps every tensor aligned to its itemsize, as safetensors does.
    for name in _order(tensors):
        t = tensors[name]
        nbytes = t.data.nbytes
        header[name] = {
            "dtype": t.dtype,
            "shape": list(t.shape),
            "data_offsets": [pos, pos + nbytes],
        }
        pos += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return text + b" " * (-len(text) % 8)


def _order(tensors: Mapping[str, RawTensor]) -> list[str]:
    return sorted(tensors, key=lambda k: (-_STORAGE[tensors[k].dtype].itemsize, k))


def _write_tensor_bytes(f: BinaryIO, data: np.ndarray) -> None:
    """Write one tensor's bytes (a seam: the interruption tests raise from here)."""
    f.write(np.ascontiguousarray(data).tobytes())


def atomic_write_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, RawTensor],
    metadata: Mapping[str, str] | None = None,
    *,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Write a safetensors file so that ``path`` is either untouched or complete.

    The bytes go to a hidden temporary file in the same directory, are flushed and fsync'ed,
    then ``os.replace`` moves it onto ``path`` in one step; on any exception, including
    ``KeyboardInterrupt``, the temporary file is removed and ``path`` is left as it was.
    A SIGKILL can leave the hidden ``.NAME.*.tmp`` file behind, never a partial ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    tensors : mapping of str to RawTensor
        The tensors to store.
    metadata : mapping of str to str, optional
        The ``__metadata__`` entry.
    protect : iterable of paths
        Files that must never be overwritten (the input checkpoint): naming one of them as
        ``path``, directly or through a link, raises ``ValueError``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sparselin._checkpoint import RawTensor, SafetensorsReader, atomic_write_safetensors
    >>> path = os.path.join(tempfile.mkdtemp(), "t.safetensors")
    >>> atomic_write_safetensors(path, {"w": RawTensor.from_array(np.eye(2, dtype=np.float32))})
    >>> SafetensorsReader(path).read("w").data
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    path = os.fspath(path)
    for p in protect:
        if same_file(path, p):
            raise ValueError(f"refusing to overwrite the input file {os.fspath(p)}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, RawTensor):
            raise TypeError(f"tensor {name!r}: expected a str name and a RawTensor")
    head = _header_bytes(tensors, metadata)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(head).to_bytes(8, "little"))
            f.write(head)
            for name in _order(tensors):
                _write_tensor_bytes(f, tensors[name].data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # Make the rename itself durable (POSIX; a directory cannot be opened on Windows).
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _create_temporary(directory: str, base: str) -> tuple[int, str]:
    """A new hidden file ``.BASE.XXXX.tmp`` in ``directory``, open for writing.

    Created with mode 0o666 less the umask, as ``open(path, "wb")`` would: ``tempfile.mkstemp``
    makes it 0o600, and after the rename the checkpoint was unreadable to group and others.
    """
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {base} in {directory}")


# --------------------------------------------------------------------------- compressed files


@dataclass
class LayerRecord:
    """One compressed weight as the metadata describes it."""

    name: str
    method: str
    shape: tuple[int, int]
    dtype: str
    rank: int
    params_before: int
    params_after: int
    error: float | None
    tensors: dict[str, str]
    group: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "rank": self.rank,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "error": self.error,
            "tensors": dict(self.tensors),
        }
        if self.group is not None:
            out["group"] = self.group
        return out


@dataclass
class GroupRecord:
    """A basis shared by several weights (method ``shared``)."""

    name: str
    basis: str
    rank: int
    members: list[str] = field(default_factory=list)


def build_metadata(
    layers: Iterable[LayerRecord],
    groups: Iterable[GroupRecord] = (),
    *,
    settings: Mapping[str, Any] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ``__metadata__`` of a compressed file (``extra``: the input's own entries, kept)."""
    from ._version import __version__

    layers = list(layers)
    doc = {
        "format": FORMAT_NAME,
        # The oldest version that describes every layer: files readers of version 1 can open
        # stay version 1.
        "version": max([1, *(_SINCE.get(r.method, 1) for r in layers)]),
        "sparselin_version": __version__,
        "settings": dict(settings or {}),
        "layers": {r.name: r.to_json() for r in layers},
        "groups": {
            g.name: {"basis": g.basis, "rank": g.rank, "members": list(g.members)} for g in groups
        },
        "rebuild": REBUILD,
    }
    meta = {k: v for k, v in (extra or {}).items() if k != METADATA_KEY}
    meta[METADATA_KEY] = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    return meta


def _bad(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a valid sparselin compressed file: {what}")


class CompressedCheckpoint:
    """A validated compressed file: its layer records, groups, and the dense weights on demand.

    Obtain one with :func:`read_compressed`.
    """

    def __init__(self, reader: SafetensorsReader) -> None:
        self.reader = reader
        path = reader.path
        text = reader.metadata.get(METADATA_KEY)
        if text is None:
            raise _bad(
                path, f"no {METADATA_KEY!r} entry in __metadata__ (not written by sparselin)"
            )
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            raise _bad(path, "metadata is not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise _bad(path, f"metadata format is not {FORMAT_NAME!r}")
        version = doc.get("version")
        if not _is_int(version) or version < 1:
            raise _bad(path, f"format version {version!r} is not a positive integer")
        if version > FORMAT_VERSION:
            raise _bad(path, f"format version {version} is newer than this sparselin reads")
        self.version = version
        self.settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
        self.sparselin_version = str(doc.get("sparselin_version", "?"))
        self.groups = self._parse_groups(doc.get("groups", {}))
        self.layers = self._parse_layers(doc.get("layers"))
        used = {t for r in self.layers.values() for t in r.tensors.values()}
        used |= {g.basis for g in self.groups.values()}
        #: Tensors stored as they were in the input (biases, norms, uncompressed weights).
        self.passthrough = [n for n in reader.tensors if n not in used]

    def _tensor(self, key: Any, what: str, ndim: int) -> Any:
        path = self.reader.path
        if not isinstance(key, str) or key not in self.reader.tensors:
            raise _bad(path, f"{what} names a missing tensor {str(key)[:80]!r}")
        info = self.reader.tensors[key]
        if len(info.shape) != ndim:
            raise _bad(path, f"{what}: tensor {key!r} is {len(info.shape)}-D, expected {ndim}-D")
        return info

    def _parse_groups(self, groups: Any) -> dict[str, GroupRecord]:
        path = self.reader.path
        if not isinstance(groups, dict):
            raise _bad(path, "groups must be an object")
        out = {}
        for gname, g in groups.items():
            if not isinstance(g, dict) or not _is_int(g.get("rank")) or g["rank"] < 1:
                raise _bad(path, f"group {gname!r}: expected basis, rank and members")
            info = self._tensor(g.get("basis"), f"group {gname!r}", 2)
            if info.shape[0] != g["rank"] or info.dtype not in FLOAT_DTYPES:
                raise _bad(path, f"group {gname!r}: basis is {info.dtype} {info.shape}")
            members = g.get("members", [])
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise _bad(path, f"group {gname!r}: members must be a list of names")
            out[gname] = GroupRecord(gname, g["basis"], g["rank"], list(members))
        return out

    def _parse_layers(self, layers: Any) -> dict[str, LayerRecord]:
        path = self.reader.path
        if not isinstance(layers, dict):
            raise _bad(path, "layers must be an object")
        out = {}
        for name, r in layers.items():
            where = f"layer {name!r}"
            if not isinstance(r, dict) or r.get("method") not in METHODS:
                raise _bad(path, f"{where}: method must be one of {', '.join(METHODS)}")
            method = r["method"]
            if self.version < _SINCE.get(method, 1):
                raise _bad(
                    path, f"{where}: method {method!r} needs format version {_SINCE[method]}"
                )
            shape, rank = r.get("shape"), r.get("rank")
            if (
                not isinstance(shape, list)
                or len(shape) != 2
                or not all(_is_int(d) and d >= 0 for d in shape)
            ):
                raise _bad(path, f"{where}: shape must be [rows, cols]")
            # Rank 0 would let a header declare a huge weight backed by empty factors.
            if not _is_int(rank) or rank < 1:
                raise _bad(path, f"{where}: rank must be a positive integer")
            if r.get("dtype") not in FLOAT_DTYPES:
                raise _bad(path, f"{where}: dtype must be one of {', '.join(FLOAT_DTYPES)}")
            nums = [r.get(k) for k in ("params_before", "params_after")]
            if not all(_is_int(x) and x >= 0 for x in nums):
                raise _bad(path, f"{where}: params_before/params_after must be integers")
            error = r.get("error")
            # None: unknown (a layer saved from a model without its original weight).
            if error is not None and (
                not isinstance(error, (int, float)) or isinstance(error, bool) or error < 0
            ):
                raise _bad(path, f"{where}: error must be a non-negative number or null")
            tensors = r.get("tensors")
            roles = _ROLES[method]
            optional = _OPTIONAL_ROLES.get(method, ())
            if (
                not isinstance(tensors, dict)
                or not set(roles) <= set(tensors)
                or not set(tensors) <= set(roles) | set(optional)
                or len(set(tensors) & set(optional)) not in (0, len(optional))
            ):
                raise _bad(path, f"{where}: tensors must name {', '.join(roles)}")
            m, n = shape
            expect: dict[str, tuple[int, ...]] = {}
            if method in ("svd", "lowrank_sparse"):
                expect = {"U": (m, rank), "V": (rank, n)}
            elif method == "dense":
                expect = {"weight": (m, n)}
            group = None
            if method == "shared":
                group = r.get("group")
                if not isinstance(group, str) or group not in self.groups:
                    raise _bad(path, f"{where}: group {str(group)[:80]!r} is not defined")
                basis = self.reader.tensors[self.groups[group].basis]
                if basis.shape != (rank, n):
                    raise _bad(path, f"{where}: group basis is {basis.shape}, expected {rank, n}")
                expect = {"coef": (m, rank)}
            for role, want in expect.items():
                info = self._tensor(tensors[role], f"{where} {role}", 2)
                if info.shape != want or info.dtype not in FLOAT_DTYPES:
                    raise _bad(
                        path, f"{where}: {role} is {info.dtype} {info.shape}, expected {want}"
                    )
            if method == "lowrank_sparse":
                self._check_sparse(name, tensors, m, n)
            if method == "kronecker":
                self._check_kronecker(name, tensors, m, n, rank)
            stored = sum(self.reader.tensors[k].numel for k in tensors.values())
            if stored != nums[1]:
                raise _bad(path, f"{where}: params_after is {nums[1]}, its tensors hold {stored}")
            out[name] = LayerRecord(
                name,
                method,
                (m, n),
                r["dtype"],
                rank,
                nums[0],
                nums[1],
                None if error is None else float(error),
                dict(tensors),
                group,
            )
        return out

    def _check_sparse(self, name: str, tensors: dict[str, str], m: int, n: int) -> None:
        path, where = self.reader.path, f"layer {name!r}"
        info = {
            role: self._tensor(key, f"{where} {role}", 2 if role == "column_values" else 1)
            for role, key in tensors.items()
            if role not in ("U", "V")
        }
        for role, t in info.items():
            want = ("I32", "I64") if role in _INDEX_ROLES else FLOAT_DTYPES
            if t.dtype not in want:
                raise _bad(path, f"{where}: {role} must be {'/'.join(want)}, not {t.dtype}")
        nnz = info["indices"].shape
        if info["indptr"].shape != (m + 1,) or info["values"].shape != nnz:
            raise _bad(path, f"{where}: indptr must be ({m + 1},) and values match indices {nnz}")
        if "columns" in info and info["column_values"].shape != (m, info["columns"].shape[0]):
            raise _bad(path, f"{where}: column_values must be ({m}, {info['columns'].shape[0]})")

    def _check_kronecker(self, name: str, tensors: dict[str, str], m: int, n: int, rank: int):
        path, where = self.reader.path, f"layer {name!r}"
        A = self._tensor(tensors["A"], f"{where} A", 3)
        B = self._tensor(tensors["B"], f"{where} B", 3)
        for role, t in (("A", A), ("B", B)):
            if t.dtype not in FLOAT_DTYPES:
                raise _bad(path, f"{where}: {role} must be floating point, not {t.dtype}")
        _, m1, n1 = A.shape
        _, m2, n2 = B.shape
        if A.shape[0] != rank or B.shape[0] != rank or m1 * m2 != m or n1 * n2 != n:
            raise _bad(
                path,
                f"{where}: A {A.shape} and B {B.shape} do not make a rank-{rank} sum of "
                f"Kronecker products of shape ({m}, {n})",
            )

    def factors(self, name: str) -> dict[str, np.ndarray]:
        """The stored factors of one layer as float32 arrays (BF16 widened); roles as keys.

        ``shared`` layers also get ``"basis"``; the sparse index arrays come back as int64,
        checked to lie in range (a damaged index raises :class:`CheckpointError`).
        """
        r = self.layers[name]
        out = {}
        for role, key in r.tensors.items():
            t = self.reader.read(key)
            out[role] = t.data.astype(np.int64) if role in _INDEX_ROLES else t.to_float(np.float32)
        if r.method == "shared":
            out["basis"] = self.reader.read(self.groups[r.group].basis).to_float(np.float32)
        if r.method == "lowrank_sparse":
            m, n = r.shape
            p, idx = out["indptr"], out["indices"]
            cols = out.get("columns", np.zeros(0, np.int64))
            if p[0] != 0 or p[-1] != idx.size or np.any(np.diff(p) < 0):
                raise _bad(self.reader.path, f"layer {name!r}: indptr is not a valid row pointer")
            for a in (idx, cols):
                if a.size and (a.min() < 0 or a.max() >= n):
                    raise _bad(self.reader.path, f"layer {name!r}: column index out of range")
        return out

    def dense(self, name: str, dtype: Any = np.float64) -> np.ndarray:
        """Rebuild one weight as a dense ``dtype`` array (m x n)."""
        r = self.layers[name]
        f = {
            k: (v if k in _INDEX_ROLES else v.astype(dtype)) for k, v in self.factors(name).items()
        }
        if r.method == "dense":
            return f["weight"]
        if r.method == "shared":
            return f["coef"] @ f["basis"]
        if r.method == "kronecker":
            A, B = f["A"], f["B"]
            return np.einsum("rac,rqd->aqcd", A, B).reshape(r.shape)
        W = f["U"] @ f["V"]
        if r.method == "lowrank_sparse":
            rows = np.repeat(np.arange(r.shape[0]), np.diff(f["indptr"]))
            np.add.at(W, (rows, f["indices"]), f["values"])
            if "columns" in f:
                np.add.at(W, (slice(None), f["columns"]), f["column_values"])
        return W

    def totals(self) -> tuple[int, int]:
        """Parameters of the compressed weights before and after (shared bases counted once)."""
        before = sum(r.params_before for r in self.layers.values())
        after = sum(r.params_after for r in self.layers.values())
        after += sum(self.reader.tensors[g.basis].numel for g in self.groups.values())
        return before, after


def read_compressed(path: str | os.PathLike[str]) -> CompressedCheckpoint:
    """Open and validate a compressed checkpoint written by ``sparselin compress``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.safetensors`` file.

    Returns
    -------
    CompressedCheckpoint
        Its layer records (``.layers``), shared bases (``.groups``), the tensors kept as they
        were (``.passthrough``) and :meth:`CompressedCheckpoint.dense` to rebuild a weight.

    Raises
    ------
    CheckpointError
        If the file is missing, malformed, or not a sparselin compressed file.
    """
    return CompressedCheckpoint(SafetensorsReader(path))

"""A LightGBM booster driven through LightGBM's C API, without importing the lightgbm package.

`import lightgbm` pulls in scipy, and pandas and scikit-learn where they are installed, which
costs every worker start-up time and memory for a model that needs neither; its
`Booster.predict` also validates its input in Python on every call, where the C API's
single-row fast path does not (docs/benchmarks.md has both costs measured). The numbers are the
same: it is the same library evaluating the same trees.
"""

import ctypes
import importlib.util
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

# Constants of LightGBM's include/LightGBM/c_api.h.
C_API_DTYPE_FLOAT64 = 1
C_API_PREDICT_NORMAL = 0
ALL_ITERATIONS = -1
# One OpenMP thread: requests are already concurrent, and a single row gains nothing from more.
PARAMETERS = b"num_threads=1"


class NativeBoosterError(RuntimeError):
    """LightGBM's C API reported an error."""


def library_path() -> Path:
    """Locate lib_lightgbm.so inside the installed lightgbm package without importing it."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise NativeBoosterError("the lightgbm package is not installed")
    for folder in spec.submodule_search_locations:
        for name in ("lib_lightgbm.so", "lib_lightgbm.dylib", "lib_lightgbm.dll"):
            candidate = Path(folder) / "lib" / name
            if candidate.is_file():
                return candidate
    raise NativeBoosterError("lib_lightgbm not found in the lightgbm package")


class NativeBooster:
    """Load a LightGBM text model file and predict with it, one row or many."""

    def __init__(self, model_file: Path, lib_path: Path | None = None) -> None:
        self._lib = ctypes.CDLL(str(lib_path or library_path()))
        self._lib.LGBM_GetLastError.restype = ctypes.c_char_p
        self._handle = ctypes.c_void_p()
        iterations = ctypes.c_int()
        self._check(
            self._lib.LGBM_BoosterCreateFromModelfile(
                str(model_file).encode(), ctypes.byref(iterations), ctypes.byref(self._handle)
            )
        )
        n_features = ctypes.c_int()
        self._check(self._lib.LGBM_BoosterGetNumFeature(self._handle, ctypes.byref(n_features)))
        self.num_features = n_features.value
        self._fast = ctypes.c_void_p()
        self._check(
            self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._handle,
                ctypes.c_int(C_API_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(ALL_ITERATIONS),
                ctypes.c_int(C_API_DTYPE_FLOAT64),
                ctypes.c_int32(self.num_features),
                ctypes.c_char_p(PARAMETERS),
                ctypes.byref(self._fast),
            )
        )
        # The fast path reuses one prediction buffer per config: calls must not overlap.
        self._lock = threading.Lock()

    def predict(self, features: npt.ArrayLike, num_threads: int = 1) -> npt.NDArray[np.float64]:
        """Return one prediction per row of `features` (rows x num_features)."""
        del num_threads  # always one: see PARAMETERS; kept for lightgbm.Booster's signature
        rows = np.ascontiguousarray(features, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            raise ValueError(f"expected rows of {self.num_features} features, got {rows.shape}")
        out = np.empty(rows.shape[0], dtype=np.float64)
        out_len = ctypes.c_int64()
        data = rows.ctypes.data_as(ctypes.c_void_p)
        result = out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        with self._lock:
            if rows.shape[0] == 1:
                status = self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._fast, data, ctypes.byref(out_len), result
                )
            else:
                status = self._lib.LGBM_BoosterPredictForMat(
                    self._handle,
                    data,
                    ctypes.c_int(C_API_DTYPE_FLOAT64),
                    ctypes.c_int32(rows.shape[0]),
                    ctypes.c_int32(self.num_features),
                    ctypes.c_int(1),  # row-major
                    ctypes.c_int(C_API_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(ALL_ITERATIONS),
                    ctypes.c_char_p(PARAMETERS),
                    ctypes.byref(out_len),
                    result,
                )
        self._check(status)
        return out

    def _check(self, status: int) -> None:
        if status != 0:
            raise NativeBoosterError(self._lib.LGBM_GetLastError().decode(errors="replace"))

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        if getattr(self, "_fast", None):
            lib.LGBM_FastConfigFree(self._fast)
        if getattr(self, "_handle", None):
            lib.LGBM_BoosterFree(self._handle)

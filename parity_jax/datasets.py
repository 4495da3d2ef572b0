"""Tabular classification data: the Grinsztajn benchmark's datasets, loading, splits.

A dataset is named by a *spec* string (``load``):

- ``NAME``: one of the 16 benchmark datasets (``GRINSZTAJN``, read from ``grinsztajn.csv``),
  fetched from OpenML by its id into a local cache, then read offline from that cache;
- ``openml:ID``: any OpenML dataset (its default target);
- ``sklearn:breast_cancer``, ``sklearn:wine`` (class 0 against the rest), ``sklearn:digits``
  (digit < 5 against the rest): datasets scikit-learn ships, for offline runs;
- ``parity``: synthetic, a planted sparse parity of the signs of k real-valued features among
  noise features (``planted_parity``; ``parity:rows=4000,features=20,k=2``);
- ``PATH.csv`` (header row; the target is the last column unless ``target`` is given) or
  ``PATH.npz`` (arrays ``X`` and ``y``): your own data.

Labels become 0/1; a dataset with more than two classes keeps its two most frequent ones.

Preprocessing (``split``), as the benchmark describes it: rows shuffled once with the split
seed, 70% train / 9% validation / 21% test; the training set truncated to ``max_train`` rows
(10,000 in the benchmark's medium-sized setting) and validation and test sets to ``max_eval``
(50,000); features Gaussianised with scikit-learn's ``QuantileTransformer`` (normal output) fit on
the training split. Downsampled training sets (``permutation``, ``train_rows``) are prefixes of
a per-seed permutation of the training split, so the 1% set of a seed is inside its 10% set.

Deliberate: the quantile transform is fit once on the whole training split's *features* (no
labels), and the validation split is not downsampled, so every model of a dataset sees the same
arrays (one compiled program trains them all); a forest is unaffected by a per-feature monotone
transform, an MLP at a small fraction gets feature marginals estimated from more rows than it
trains on.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from parity_jax import files, settings
from parity_jax.config import INT32_MAX
from parity_jax.errors import ConfigError

SKLEARN = ("breast_cancer", "wine", "digits")
TRAIN_FRACTION, VAL_FRACTION = 0.70, 0.09
# A training fraction must leave at least min(MIN_TRAIN_ROWS, mlp.batch) rows (check_study).
MIN_TRAIN_ROWS = 10
PARITY_MAX_VALUES = 10**8  # rows x features of a planted parity (400 MB of float32)


MAX_FILE_BYTES = 1 << 32  # a dataset file read whole (files.read_bytes): 4 GiB


class DataError(ValueError):
    """A dataset that cannot be loaded or used; the message names it and says why."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One benchmark dataset: its curated OpenML copy and where that was curated from."""

    name: str
    openml_id: int
    target: str | None  # None: OpenML's default target attribute
    rows: int
    features: int
    original: str


def _registry() -> tuple[Source, ...]:
    path = Path(__file__).with_name("grinsztajn.csv")
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return tuple(
        Source(r["name"], int(r["openml_id"]), r["target"] or None, int(r["rows"]),
               int(r["features"]), r["original"])
        for r in csv.DictReader(lines))


GRINSZTAJN: tuple[Source, ...] = _registry()
BY_NAME = {s.name: s for s in GRINSZTAJN}


@dataclasses.dataclass(frozen=True)
class Table:
    """A binary classification dataset: X (N, d) float32, y (N,) int8 in {0, 1}."""

    name: str
    X: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    classes: tuple[str, str]  # the original labels of y = 0 and y = 1
    dropped: int = 0  # rows dropped for a missing or non-finite value


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays of one dataset (features already transformed)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def d(self) -> int:
        return self.x_train.shape[1]


def cache_dir() -> Path:
    """Where fetched OpenML datasets are kept: ``$PARITY_JAX_DATA`` or ~/.cache/parity_jax."""
    return settings.data_dir()


def load(spec: str, *, target: str | None = None, cache: str | Path | None = None,
         fetch=None) -> Table:
    """The dataset named by ``spec`` (see the module docstring) as a binary ``Table``.

    ``fetch`` replaces ``sklearn.datasets.fetch_openml`` (tests use it to play "no network").
    The libraries' warnings are silenced: a problem is one DataError, nothing printed before.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _load(str(spec), target, cache, fetch)


def _load(spec: str, target: str | None, cache, fetch) -> Table:
    if spec in BY_NAME:
        src = BY_NAME[spec]
        return _openml(src.openml_id, src.name, target or src.target, cache, fetch)
    if spec.startswith("openml:"):
        ident = spec.split(":", 1)[1]
        if not ident.isdigit():
            raise DataError(f"dataset {spec!r}: an OpenML id is a positive integer")
        return _openml(int(ident), spec, target, cache, fetch)
    if spec.startswith("sklearn:"):
        return _sklearn(spec.split(":", 1)[1])
    if spec == "parity" or spec.startswith("parity:"):
        return planted_parity(**_options(spec))
    path = Path(spec)
    if path.suffix in (".csv", ".npz"):
        if not path.is_file():
            raise DataError(f"dataset {spec!r}: no such file")
        return _from_csv(path, target) if path.suffix == ".csv" else _from_npz(path)
    raise DataError(
        f"dataset {spec!r}: not one of the benchmark's datasets ({', '.join(BY_NAME)}), "
        f"nor openml:ID, sklearn:{{{','.join(SKLEARN)}}}, parity[:...], or a .csv/.npz file")


def from_arrays(name: str, X, y) -> Table:
    """A ``Table`` from your own arrays: X (N, d) numeric, y (N,) labels of any type."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise DataError(f"dataset {name!r}: X must be (N, d) and y (N,), got {X.shape} and "
                        f"{y.shape}")
    if X.shape[1] == 0:
        raise DataError(f"dataset {name!r}: has no feature column besides the target (X is "
                        f"{X.shape}); needs at least one")
    try:
        X = X.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"dataset {name!r}: features must be numeric ({e})") from None
    y, missing = _labels(y)
    # the benchmark drops rows with missing values (features or label)
    keep = np.all(np.isfinite(X), axis=1) & ~missing
    dropped = int(len(keep) - np.count_nonzero(keep))
    X, y = X[keep], y[keep]
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) < 2:
        raise DataError(f"dataset {name!r}: needs two classes, found {len(labels)}"
                        f"{_after_dropping(dropped, len(keep))}")
    top = labels[np.argsort(-counts, kind="stable")[:2]]
    top = np.sort(top)
    keep = np.isin(y, top)
    return Table(name, X[keep], (y[keep] == top[1]).astype(np.int8),
                 tuple(f"x{i}" for i in range(X.shape[1])),
                 (_label_text(top[0]), _label_text(top[1])), dropped)


def _after_dropping(dropped: int, rows: int) -> str:
    """What a message about the rows left adds when rows were dropped."""
    if not dropped:
        return ""
    return (f" in the {rows - dropped} rows left after dropping {dropped} of {rows} that hold a "
            "missing or non-finite value (NaN, inf)")


def _labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as values to compare, and where they are missing (None, empty, NaN, inf, or
    text that reads as NaN or inf). Text labels that all read as numbers are numbers, so
    ``0``, ``-0`` and ``0.0`` are one class."""
    if y.dtype.kind == "f":
        return y, ~np.isfinite(y)
    if y.dtype.kind in "iub":
        return y, np.zeros(len(y), bool)
    items = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in y.tolist()]
    values, missing = [], []
    for v in items:
        if v is None or (isinstance(v, str) and not v.strip()):
            values.append(None)
            missing.append(True)
            continue
        number = _number(v)
        values.append(v if number is None else number)
        missing.append(number is not None and not np.isfinite(number))
    missing = np.array(missing, bool)
    present = [v for v, m in zip(values, missing, strict=True) if not m]
    if all(isinstance(v, float) for v in present):
        return np.array([np.nan if m else v for v, m in zip(values, missing, strict=True)],
                        np.float64), missing
    text = ["" if m else _label_text(v) for v, m in zip(values, missing, strict=True)]
    return np.array(text), missing


def _number(v) -> float | None:
    """``v`` as a float when it is a number or reads as one, else None."""
    if isinstance(v, bool):
        return float(v)
    try:
        return float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        return None


def _label_text(v) -> str:
    """A class's name: a whole number without ``.0`` (labels 1 and 1.0 are one class)."""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _named(table: Table, features) -> Table:
    return dataclasses.replace(table, features=tuple(str(f) for f in features))


def _openml(data_id: int, name: str, target: str | None, cache, fetch) -> Table:
    """OpenML dataset ``data_id`` from the cache, fetched (and cached) when missing."""
    root = Path(cache) if cache is not None else cache_dir()
    path = root / f"openml-{data_id}-{_safe(target or 'default')}.npz"
    if path.is_file():
        return _from_npz(path, name)
    if fetch is None:
        from sklearn.datasets import fetch_openml as fetch
    try:
        import pandas  # noqa: F401
        parser = "pandas"
    except ImportError:
        parser = "liac-arff"
    try:
        bunch = fetch(data_id=data_id, data_home=str(root / "sklearn"), as_frame=False,
                      target_column=target or "default-target", parser=parser)
    except Exception as e:  # network errors, unknown ids, bad columns: all say why in one line
        why = " ".join(str(e).split()) or type(e).__name__
        raise DataError(
            f"dataset {name!r} (OpenML id {data_id}): not in the cache {path} and fetching it "
            f"failed ({why}); fetch it once where OpenML is reachable, or pass a .csv/.npz "
            "file") from None
    X = bunch.data.toarray() if hasattr(bunch.data, "toarray") else bunch.data
    table = _named(from_arrays(name, X, bunch.target), bunch.feature_names)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    try:
        np.savez(tmp, X=table.X, y=table.y, features=np.array(table.features),
                 classes=np.array(table.classes))
        os.replace(tmp, path)  # a crash never leaves a half-written cache entry
    except OSError as e:
        raise DataError(f"dataset {name!r}: cannot write the cache {path} ({e.strerror})") \
            from None
    return table


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _from_npz(path: Path, name: str | None = None) -> Table:
    name = name or str(path)
    data = files.read_bytes(path, MAX_FILE_BYTES, f"dataset {name!r}", error=DataError)
    try:
        f = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"dataset {name!r}: {path} is not a readable .npz file ({e})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):  # a .npy under an .npz name
        raise DataError(f"dataset {name!r}: {path} is not an .npz archive (np.savez)")
    try:
        with f:
            if "X" not in f or "y" not in f:
                raise DataError(f"dataset {name!r}: {path} must hold arrays X and y, has "
                                f"{sorted(f.files)}")
            X, y = f["X"], f["y"]
            features = f["features"] if "features" in f else None
            classes = tuple(f["classes"]) if "classes" in f else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"dataset {name!r}: {path} is not a readable .npz file ({e})") from None
    table = from_arrays(name, X, y)
    if classes is not None and set(np.unique(y)) <= {0, 1}:
        table = dataclasses.replace(table, classes=tuple(str(c) for c in classes))
    return _named(table, features) if features is not None else table


def _from_csv(path: Path, target: str | None) -> Table:
    name = str(path)
    data = files.read_bytes(path, MAX_FILE_BYTES, f"dataset {name!r}", error=DataError)
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        try:
            rows = list(reader)
        except csv.Error as e:  # a field past the csv module's limit, a NUL byte
            raise DataError(f"dataset {name!r}: not a readable CSV file (line "
                            f"{reader.line_num}: {e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"dataset {name!r}: cannot read it ({e})") from None
    if len(rows) < 2:
        raise DataError(f"dataset {name!r}: needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    col = len(header) - 1 if target is None else (
        header.index(target) if target in header else None)
    if col is None:
        raise DataError(f"dataset {name!r}: target column {target!r} not in the header "
                        f"({', '.join(header)})")
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise DataError(f"dataset {name!r}: row {bad[0]} has a different number of fields "
                        f"than the header ({len(header)})")
    feats = [i for i in range(len(header)) if i != col]
    try:
        X = np.array([[float(r[i]) if r[i].strip() else np.nan for i in feats] for r in body],
                     np.float32)
    except ValueError as e:
        raise DataError(f"dataset {name!r}: features must be numeric ({e})") from None
    y = np.array([r[col] for r in body])
    return _named(from_arrays(name, X, y), [header[i] for i in feats])


def _sklearn(which: str) -> Table:
    import sklearn.datasets as sk

    if which not in SKLEARN:
        raise DataError(f"dataset 'sklearn:{which}': scikit-learn datasets are "
                        f"{', '.join(SKLEARN)}")
    bunch = getattr(sk, f"load_{which}")()
    y = bunch.target
    if which == "wine":
        y = (y != 0).astype(int)  # class 0 against classes 1 and 2
    elif which == "digits":
        y = (y >= 5).astype(int)  # digits 0-4 against 5-9
    name = f"sklearn:{which}"
    return _named(from_arrays(name, bunch.data, y), bunch.feature_names)


def _options(spec: str) -> dict:
    """``parity:rows=4000,k=2`` -> {"rows": 4000, "k": 2}."""
    allowed = ("rows", "features", "k", "noise", "seed")
    out = {}
    for item in filter(None, spec.partition(":")[2].split(",")):
        key, _, value = item.partition("=")
        if key not in allowed:
            raise DataError(f"dataset {spec!r}: unknown option {key!r} (allowed: "
                            f"{', '.join(allowed)})")
        try:
            out[key] = float(value) if key == "noise" else int(value)
        except ValueError:
            raise DataError(f"dataset {spec!r}: {key} must be a number, got {value!r}") from None
    return out


def planted_parity(rows: int = 4000, features: int = 20, k: int = 2, noise: float = 0.0,
                   seed: int = 0) -> Table:
    """Synthetic: x ~ N(0, 1)^features, y = 1 when the product of the signs of k planted
    coordinates is positive (labels flipped with probability ``noise``).

    Only k of the features matter and only through their signs: an axis-aligned sparse
    feature that a sparsely initialised network can find with few samples.
    """
    if not (1 <= k <= features <= 10_000 and 10 <= rows <= 10**7
            and rows * features <= PARITY_MAX_VALUES and 0 <= noise <= 0.5
            and 0 <= seed <= 2**32 - 1):
        raise DataError(f"dataset 'parity': needs 1 <= k <= features <= 10000, "
                        f"10 <= rows <= 10000000, rows x features <= {PARITY_MAX_VALUES}, "
                        f"0 <= noise <= 0.5 and 0 <= seed < 2^32, got k={k}, "
                        f"features={features}, rows={rows}, noise={noise}, seed={seed}")
    rng = np.random.default_rng([seed, 0x5EC7])
    planted = np.sort(rng.choice(features, k, replace=False))
    X = rng.standard_normal((rows, features)).astype(np.float32)
    y = np.prod(np.sign(X[:, planted]), axis=1) > 0
    y ^= rng.random(rows) < noise
    name = f"parity(k={k} of {features})"
    return _named(from_arrays(name, X, y.astype(np.int8)),
                  [f"x{i}{'*' if i in planted else ''}" for i in range(features)])


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def split(table: Table, seed: int = 0, *, max_train: int = 10_000, max_eval: int = 50_000,
          quantile: bool = True) -> Splits:
    """70 / 9 / 21 % train / validation / test (rows shuffled by ``seed`` and the dataset's
    name), truncated to ``max_train`` / ``max_eval`` rows, features Gaussianised by a quantile
    transform fit on the training split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _split(table, seed, max_train, max_eval, quantile)


def _split(table: Table, seed: int, max_train: int, max_eval: int, quantile: bool) -> Splits:
    N = len(table.y)
    n_train, n_val = int(TRAIN_FRACTION * N), int(VAL_FRACTION * N)
    if min(n_train, n_val, N - n_train - n_val) < 1:
        left = (f" (left after dropping {table.dropped} of {N + table.dropped} that hold a "
                "missing or non-finite value: NaN, inf)" if table.dropped else "")
        raise DataError(f"dataset {table.name!r}: {N} rows{left} are too few to split 70/9/21")
    order = np.random.default_rng([seed, _seed(table.name)]).permutation(N)
    tr = order[:n_train][:max_train]
    va = order[n_train:n_train + n_val][:max_eval]
    te = order[n_train + n_val:][:max_eval]
    X = table.X
    if quantile:
        from sklearn.preprocessing import QuantileTransformer

        qt = QuantileTransformer(n_quantiles=min(1000, len(tr)), output_distribution="normal",
                                 random_state=seed)
        qt.fit(X[tr])

        def transform(rows):
            return qt.transform(X[rows]).astype(np.float32)
    else:
        def transform(rows):
            return X[rows]
    return Splits(table.name, transform(tr), table.y[tr], transform(va), table.y[va],
                  transform(te), table.y[te])


def check_study(study, spec: str, splits: Splits) -> None:
    """The rules of a tabular study that depend on a dataset's splits (ConfigError): every
    fraction leaves at least min(MIN_TRAIN_ROWS, mlp.batch) training rows, and one trial's
    first layer (width x features) stays within int32 indexing."""
    n_train, batch = len(splits.y_train), study.mlp.batch
    need = min(MIN_TRAIN_ROWS, batch)
    for f in study.axis("fractions"):
        m = train_rows(n_train, f)
        if m < need:
            which = f"mlp.batch = {batch}" if batch < MIN_TRAIN_ROWS else f"{MIN_TRAIN_ROWS}"
            raise ConfigError(
                f"fractions = {f}: leaves {m} training row{'s' * (m != 1)} of dataset {spec!r} "
                f"({n_train} in its training split); a fraction must leave at least {which} "
                "rows")
    width = max(study.axis("mlp.width"))
    if width * splits.d > INT32_MAX:
        raise ConfigError(f"mlp.width = {width}: must be at most {INT32_MAX // splits.d} for "
                          f"dataset {spec!r} ({splits.d} features; width x features <= "
                          f"{INT32_MAX}: one trial's first layer)")


def train_rows(n_train: int, fraction: float) -> int:
    """Rows of a training set downsampled to ``fraction`` (at least 1)."""
    return max(1, min(n_train, round(fraction * n_train)))


def permutation(n_train: int, seed: int) -> np.ndarray:
    """Seed ``seed``'s order of the training rows: its downsampled sets are prefixes."""
    return np.random.default_rng([seed, 0xF2AC]).permutation(n_train).astype(np.int32)


def fingerprint(splits: Splits) -> str:
    """A short digest of the arrays (results on other data must not be mixed in)."""
    h = hashlib.sha256()
    for a in (splits.x_train, splits.y_train, splits.x_val, splits.y_val, splits.x_test,
              splits.y_test):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]

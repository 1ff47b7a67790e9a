"""One record per model: the single source for its builder, weights and docs row.

`build_model` validates arguments against the record, builds the network through the
record's builder and configuration, and loads weights through `zoo.weights`.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional, Sequence

from zoo import weights as weights_io


@dataclass(frozen=True)
class WeightsFile:
    """A weights file: an URL (`https://`, `file://`) or a file in `zoo/weights/`."""

    location: str
    sha256: str


@dataclass(frozen=True)
class Weights:
    """Pretrained weights with everything needed to use and trust them."""

    dataset: str
    top: WeightsFile
    no_top: Optional[WeightsFile] = None
    num_classes: int = 1000
    input_shape: Sequence[int] = (224, 224, 3)
    preprocessing: str = "imagenet"  # a key of zoo.preprocessing.PREPROCESSING
    metrics: Mapping[str, float] = field(default_factory=dict)
    source: str = ""  # who trained them, with which command or recipe
    raw_input: bool = False  # the model then applies `preprocessing` itself
    # The same network trained without quantizers (train.py --float-twin): the
    # full-precision reference of these weights, {"top1", "top5"} in percent.
    float_twin_metrics: Mapping[str, float] = field(default_factory=dict)


def packaged_weights(record_file: str) -> Weights:
    """Weights shipped in `zoo/weights/`, described by the JSON their training run wrote.

    The JSON (made by `training/package.py` from a run's metrics.json) is the single
    source of the file name, SHA-256, accuracy and command: nothing is typed by hand.
    """
    data = json.loads((weights_io.PACKAGE_WEIGHTS_DIR / record_file).read_text())
    return Weights(
        dataset=data["dataset"],
        top=WeightsFile(data["file"], data["sha256"]),
        num_classes=data["num_classes"],
        input_shape=tuple(data["input_shape"]),
        preprocessing=data["preprocessing"],
        metrics={"top1": 100 * data["top1"], "top5": 100 * data["top5"]},
        source=data["command"],
        raw_input=True,
        float_twin_metrics={k: 100 * data["float_twin"][k] for k in ("top1", "top5")}
        if "float_twin" in data else {},
    )


def load_weights_file(model, path, model_name: str, build_kwargs: dict) -> None:
    """How a record loads a weights file unless its family needs more (its `load_weights`)."""
    weights_io.load_into(model, path, model_name)


@dataclass(frozen=True)
class ModelRecord:
    name: str
    family: str
    builder: Callable  # builder(*, input_shape, num_classes, include_top, name, **config)
    config: Mapping
    paper: str
    default_input_shape: Sequence[int]
    min_input_size: int
    aliases: Sequence[str] = ()
    weights: Mapping[str, Weights] = field(default_factory=dict)
    default_num_classes: int = 1000
    # Replaced by a family whose models can be built in a form other than its files hold.
    load_weights: Callable = load_weights_file


_REGISTRY: dict[str, ModelRecord] = {}
_LOOKUP: dict[str, str] = {}
_TEMPLATES: dict[str, "ModelRecord"] = {}  # family -> its searched models' template


def _key(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "")


def shipped_weights(model_name: str) -> dict:
    """Every `zoo/weights/{model_name}-{dataset}.json`, as named weights by data set."""
    found = {}
    for path in sorted(weights_io.PACKAGE_WEIGHTS_DIR.glob(f"{model_name}-*.json")):
        weights = packaged_weights(path.name)
        if path.stem == f"{model_name}-{weights.dataset}":
            found[weights.dataset] = weights
    return found


SEARCHED_FILE = weights_io.PACKAGE_WEIGHTS_DIR.parent / "models" / "searched.json"


def searched_entries(family: str) -> list:
    """Configurations our searches found, as data: `zoo/models/searched.json`."""
    if not SEARCHED_FILE.exists():
        return []
    return [e for e in json.loads(SEARCHED_FILE.read_text()) if e["family"] == family]


def add_searched(name: str, family: str, base: str, config: dict,
                 found_by: Optional[str]) -> None:
    """Record a searched configuration in `zoo/models/searched.json` (data, not code).
    found_by=None keeps the provenance an entry of that name already has."""
    entries = json.loads(SEARCHED_FILE.read_text()) if SEARCHED_FILE.exists() else []
    if found_by is None:
        found_by = next((e["found_by"] for e in entries if e["name"] == name), "")
    entries = [e for e in entries if e["name"] != name]
    entries.append({"name": name, "family": family, "base": base, "config": config,
                    "found_by": found_by})
    SEARCHED_FILE.write_text(json.dumps(entries, indent=2) + "\n")


def register_searched(family: str, template: Optional["ModelRecord"] = None) -> None:
    """Register each searched configuration of a family as a variant of its base model
    (a registered model, or `template` for a family whose models are all searched; a
    family's template is remembered, so a later call, e.g. to add a new search result,
    needs none)."""
    if template is not None:
        _TEMPLATES[family] = template
    template = _TEMPLATES.get(family)
    for entry in searched_entries(family):
        base = template if template and entry["base"] == template.name else get_record(entry["base"])
        register(replace(base, name=entry["name"], aliases=(), weights={},
                         config={**base.config, **entry["config"]},
                         paper=f"{base.paper}; found by {entry['found_by']}"))


def register(record: ModelRecord) -> ModelRecord:
    """Add a record (with any weights shipped for it in `zoo/weights/`)."""
    record = replace(record, weights={**record.weights, **shipped_weights(record.name)})
    for spelling in (record.name, *record.aliases):
        key = _key(spelling)
        if key in _LOOKUP and _LOOKUP[key] != record.name:
            raise ValueError(f"Model name {spelling!r} is already registered.")
        _LOOKUP[key] = record.name
    _REGISTRY[record.name] = record
    return record


def available_weights(record: ModelRecord) -> str:
    """The record's named weights sets, for error messages: "'imagenet'" or "none yet"."""
    return ", ".join(repr(k) for k in record.weights) or "none yet"


def list_models(pattern: Optional[str] = None, *, family: Optional[str] = None,
                pretrained=None) -> list[ModelRecord]:
    """The registered records, in registration order, filtered as timm's `list_models`.

    `pattern` is a shell-style name pattern, case-insensitive ("BinaryDenseNet3*",
    "*dilated*"); `family` a family name; `pretrained` True for models with any weights,
    or a weights key ("imagenet", "fashion_mnist") for models with that set.
    """
    families = sorted({r.family for r in _REGISTRY.values()})
    if family is not None and family not in families:
        raise ValueError(f"Unknown family {family!r}; families: {', '.join(families)}.")

    def wanted(record):
        return ((pattern is None or fnmatch.fnmatch(record.name.lower(), pattern.lower()))
                and (family is None or record.family == family)
                and (not pretrained or (bool(record.weights) if pretrained is True
                                        else pretrained in record.weights)))

    return [r for r in _REGISTRY.values() if wanted(r)]


def get_record(name: str) -> ModelRecord:
    if not isinstance(name, str):
        raise TypeError(f"A model name must be a string, got {name!r}.")
    try:
        return _REGISTRY[_LOOKUP[_key(name)]]
    except KeyError:
        close = difflib.get_close_matches(_key(name), list(_LOOKUP), n=3, cutoff=0.5)
        suggestions = list(dict.fromkeys(_LOOKUP[c] for c in close))  # closest first
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} `zoo.list_models()` lists all "
            f"{len(_REGISTRY)} models."
        ) from None


def _check_input_shape(record: ModelRecord, input_shape) -> tuple:
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{record.name} takes input_shape=(height, width, channels), got {shape} "
            f"(rank {len(shape)})."
        )
    height, width, channels = shape
    if not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"{record.name}: channels must be a positive int, got {shape}.")
    for size in (height, width):
        if size is None:
            continue
        if not isinstance(size, int) or size <= 0:
            raise ValueError(
                f"{record.name}: height and width must be positive ints or None, "
                f"got {shape}."
            )
        if size < record.min_input_size:
            raise ValueError(
                f"{record.name}: input {height}x{width} is too small; the minimum "
                f"height and width is {record.min_input_size}."
            )
    return shape


class UnknownOptionError(TypeError):
    """A configuration key the model does not have (a TypeError, as for any keyword)."""


def check_config(record: ModelRecord, overrides: Mapping) -> None:
    """Refuse configuration keys the model does not have (before any work is done)."""
    unknown = set(overrides) - set(record.config)
    if unknown:
        raise UnknownOptionError(
            f"{record.name} has no option {sorted(unknown)}; its configuration keys "
            f"are {sorted(record.config)}."
        )


def _resolve_weights(record: ModelRecord, weights, include_top, num_classes, input_shape):
    """Return (named Weights or None, num_classes, input_shape) after consistency checks."""
    if weights is None or (isinstance(weights, str) and os.path.exists(weights)):
        shape = input_shape or record.default_input_shape
        return None, num_classes or record.default_num_classes, shape
    if not isinstance(weights, (str, os.PathLike)) or weights not in record.weights:
        raise ValueError(
            f"{record.name}: weights={weights!r} is neither a named set of weights "
            f"(available: {available_weights(record)}), None, nor an existing file path."
        )
    named = record.weights[weights]
    if include_top and num_classes is not None and num_classes != named.num_classes:
        raise ValueError(
            f"{record.name}: weights={weights!r} classify {named.num_classes} classes, "
            f"but num_classes={num_classes}. Pass include_top=False to use other "
            f"classes, or leave num_classes unset."
        )
    if include_top and input_shape is not None:
        if tuple(input_shape)[-1] != named.input_shape[-1]:
            raise ValueError(
                f"{record.name}: weights={weights!r} expect {named.input_shape[-1]} "
                f"input channels, got input_shape={tuple(input_shape)}."
            )
    return named, named.num_classes, input_shape or named.input_shape


def weights_file(name, weights: str, *, include_top: bool = True):
    """The local, checksum-verified file of a named set of weights (downloaded once).

    It holds the bare network's weights: a `raw_input` set's preprocessing is not in it,
    so load it with `build_model(name, weights=path)` when the pipeline normalises inputs.
    """
    record = name if isinstance(name, ModelRecord) else get_record(name)
    if weights not in record.weights:
        raise ValueError(f"{record.name} has no weights {weights!r} "
                         f"(available: {available_weights(record)}).")
    named = record.weights[weights]
    file = named.top if include_top else named.no_top
    if file is None:
        raise ValueError(f"{record.name}: weights={weights!r} have no no-top file.")
    return weights_io.fetch(file.location, file.sha256)


def build_model(
    name: str,
    *,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    num_classes: Optional[int] = None,
    weights: Optional[str] = None,
    include_top: bool = True,
    **config_overrides,
):
    """Build a registered model by name (case-insensitive; larq-zoo spellings accepted),
    or from an unregistered `ModelRecord` (e.g. `zoo.UBNAS` with any genotype).

    `weights` is None (random init), the name of a pretrained set (e.g. "imagenet",
    "fashion_mnist"), or the path of a weights file. Extra keyword arguments override
    the record's configuration (e.g. `groups=` for BinaryMobileNet).
    """
    record = name if isinstance(name, ModelRecord) else get_record(name)
    named, num_classes, input_shape = _resolve_weights(
        record, weights, include_top, num_classes, input_shape
    )
    if not isinstance(num_classes, int) or num_classes <= 0:
        raise ValueError(f"{record.name}: num_classes must be a positive int.")
    input_shape = _check_input_shape(record, input_shape)
    check_config(record, config_overrides)
    build_kwargs = dict(input_shape=input_shape, num_classes=num_classes,
                        include_top=include_top, name=record.name,
                        **{**record.config, **config_overrides})
    model = record.builder(**build_kwargs)
    if weights is not None:
        path = weights if named is None else weights_file(record, weights, include_top=include_top)
        record.load_weights(model, path, record.name, build_kwargs)
    if named is not None and named.raw_input:
        from zoo.preprocessing import with_preprocessing

        model = with_preprocessing(model, named.preprocessing)
    return model


def entry_point(model_name: str):
    """A Keras-applications-style function for one registered model."""

    def build(
        *,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        num_classes: Optional[int] = None,
        weights: Optional[str] = None,
        include_top: bool = True,
        **config_overrides,
    ):
        return build_model(
            model_name,
            input_shape=input_shape,
            num_classes=num_classes,
            weights=weights,
            include_top=include_top,
            **config_overrides,
        )

    record = get_record(model_name)
    build.__name__ = build.__qualname__ = model_name.replace("-", "_")
    build.__doc__ = (
        f"Build {record.name} ({record.family}; {record.paper}).\n\n"
        f"Same keyword-only arguments as `zoo.build_model`. Pretrained weights: "
        f"{', '.join(record.weights) or 'none'}."
    )
    return build


def build_float_twin(name: str, **kwargs):
    """The same network as `build_model(name, **kwargs)` with every quantizer removed."""
    from zoo.quantizers import float_twin

    with float_twin():
        return build_model(name, **kwargs)

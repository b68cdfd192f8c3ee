"""The ``shape`` role (config ``shape_model``): the ``3d`` modality's image-to-3D model, a
diffusers Shap-E pipeline named by a Hub id or a folder (provider ``shap-e``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgen.config import Config
from pgen.factory.specs import _SPECS, ComponentSpec, _table


def shape_spec(value: str | Mapping[str, Any]) -> ComponentSpec:
    if isinstance(value, Mapping):
        return _table("shape_model", value)
    return ComponentSpec("shap-e", {"path": value})


def check_shape_model(value: str | Mapping[str, Any]) -> None:
    """The configured Shap-E pipeline can load (said before any model loads)."""
    from pgen.factory import check_diffusers_weights

    spec = shape_spec(value)
    if spec.provider == "shap-e":
        check_diffusers_weights(
            "shape_model",
            str(spec.settings["path"]),
            "no 3D model is installed",
            "a Shap-E image-to-3D pipeline folder (ShapEImg2ImgPipeline.save_pretrained) "
            "with shape_model in pgen.toml or PGEN_SHAPE_MODEL",
        )


def _shap_e(config: Config, /, path: str, **options: Any) -> Any:
    from pgen.models.shape import ShapEModel

    check_shape_model(path)
    options.setdefault("device", config.device)
    return ShapEModel(path, **options)


def register() -> None:
    from pgen.factory import register_provider, register_role

    register_role("shape", "shape_model")
    _SPECS.setdefault("shape", shape_spec)
    register_provider("shape", "shap-e", _shap_e)

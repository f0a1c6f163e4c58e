"""Where a run's model stages execute: this process (:class:`pairsynth.run.LocalBackend`) or Ray Data.

Every backend implements :class:`pairsynth.run.Backend`; acceptance, writing and commits stay in the
driver whichever runs the models, so outputs and resume rules do not depend on the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pairsynth.errors import PairsynthError

if TYPE_CHECKING:
    from pairsynth.recipe import RayConfig
    from pairsynth.run import Backend

BackendName = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")


def make_backend(name: str, ray: RayConfig | None = None) -> Backend:
    """The backend called ``name``, built before any output is locked so a missing install fails first.

    Args:
        name: ``local`` or ``ray``.
        ray: the Ray backend's actor layout (default: sized from the cluster).
    """
    if name == "local":
        from pairsynth.run import LocalBackend

        return LocalBackend()
    if name == "ray":
        from pairsynth.backends.ray_data import RayDataBackend
        from pairsynth.recipe import RayConfig

        return RayDataBackend(ray or RayConfig())
    raise PairsynthError(f"--backend {name!r}: use one of {', '.join(BACKENDS)}")


def ray_settings(base: RayConfig | None = None, **flags: object) -> RayConfig:
    """The recipe's ``backend.ray`` (or the defaults) with the CLI's flags applied; ``None`` flags are unset.

    Raises:
        RecipeError: a flag's value is not accepted, named as ``--flag-name``.
    """
    from pydantic import ValidationError

    from pairsynth.errors import RecipeError
    from pairsynth.recipe import RayConfig

    given = {name: value for name, value in flags.items() if value is not None}
    if isinstance(given.get("generator_actors"), str) and given["generator_actors"].isdigit():
        given["generator_actors"] = int(given["generator_actors"])  # the flag's text; the recipe's YAML is typed
    try:
        return RayConfig.model_validate({**(base or RayConfig()).model_dump(), **given})
    except ValidationError as err:
        problems = [f"--{'-'.join(str(p) for p in error['loc'][:1]).replace('_', '-')}: {error['msg']}"
                    for error in err.errors()]
        raise RecipeError("; ".join(problems)) from None


def choose_backend(name: str | None, recipe_ray: RayConfig | None = None, **flags: object) -> Backend:
    """The backend a command runs on: ``name`` (``--backend``), else ``ray`` when the recipe configures it.

    Args:
        name: ``local``, ``ray`` or ``None`` (the recipe decides).
        recipe_ray: the recipe's ``backend.ray`` section.
        flags: Ray settings from the command line (``generator_actors=2`` …); ``None`` means not given.
    """
    name = name or ("ray" if recipe_ray is not None else "local")
    given = sorted(flag for flag, value in flags.items() if value is not None)
    if name != "ray" and given:
        raise PairsynthError(f"--{given[0].replace('_', '-')} applies to --backend ray only")
    return make_backend(name, ray_settings(recipe_ray, **flags) if name == "ray" else None)

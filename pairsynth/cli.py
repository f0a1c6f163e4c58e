"""The ``pairsynth`` command line: thin commands that build the Python API's objects and call it."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pairsynth.alignment import qa as qa_defaults
from pairsynth.errors import PairsynthError, printable
from pairsynth.judges import JudgeSettings

HELP = """Synthesize aligned training pairs with diffusion models: image–caption, audio–caption, and
image + audio + caption triplets, each kept only when a CLIP (images) or CLAP (audio) judge agrees
with its caption. Writes WebDataset shards, imagefolder/audiofolder datasets or Parquet, with a QA report.

Start with `pairsynth init image`, look with `pairsynth plan recipe.yaml`, then
`pairsynth generate recipe.yaml --out out/`."""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
console = Console(stderr=True)


def _setup(verbose: bool) -> None:
    # The hub is unreachable on most machines this runs on; without these, transformers waits minutes
    # on network time-outs before falling back to local files. A user with a hub sets them to 0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    handler = RichHandler(console=console, show_path=False)
    handler.addFilter(_escape_control_characters)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[handler])
    logging.getLogger("pairsynth").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("diffusers", "transformers", "httpx", "root", "ray"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    # Importing them (re)sets their loggers' level from their own defaults, undoing the lines above.
    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity(logging.INFO if verbose else logging.ERROR)


def _escape_control_characters(record: logging.LogRecord) -> bool:
    """Log lines quote file names, keys and captions from data: escape their control characters."""
    record.msg, record.args = printable(record.getMessage()), ()
    return True


def _shown(text: object) -> str:
    """Text from data or the user, safe inside a console markup string: no markup, no control characters."""
    return escape(printable(text))


@contextmanager
def _progress_bar(target: int | None) -> Iterator[Callable]:
    """A rich progress bar over accepted pairs; yields the callback the library calls per commit."""
    columns = (TextColumn("[bold]accepted"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    # not drawn into a file or pipe (CI logs, tests): there it would only add lines around the real output
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task("accepted", total=target, stats="loading models…")

        def show(update) -> None:
            rate = update.accepted / update.candidates if update.candidates else 0.0
            bar.update(task, total=update.target, completed=update.accepted,
                       stats=f"{update.candidates} candidates, {rate:.0%} accepted")

        try:
            yield show
        except BaseException:
            bar.live.transient = True  # the error line says it all; a bar stuck at "loading models…" does not
            raise


SHORT_SHOWN = 10
"""Units short of k listed by name after a run; balance can leave hundreds of one-item units short."""


def _print_summary(summary, out: Path) -> None:
    console.print(f"[green]{summary.accepted}[/] pairs from {summary.candidates} candidates in "
                  f"{summary.elapsed_s:.1f} s → {_shown(out)}")
    if summary.times.seconds:
        console.print(f"[dim]time: {summary.times}[/]", soft_wrap=True)
    short = summary.shortfall
    for state in short[:SHORT_SHOWN]:
        console.print(f"[yellow]short:[/] {_shown(repr(state.shown))}: {state.accepted}/{summary.k} after "
                      f"{state.attempts} attempts")
    if len(short) > SHORT_SHOWN:
        console.print(f"[yellow]short:[/] … and {len(short) - SHORT_SHOWN} more units")
    if short:  # why they fell short, so the user need not dig through the manifest to find out
        from pairsynth.readers import rejection_reasons

        counts, details = rejection_reasons(out)
        for reason, count in counts.most_common(3):
            console.print(f"[yellow]rejected:[/] {count} × {_shown(reason)}, e.g. {_shown(details[reason])}",
                          soft_wrap=True)
    _print_outputs(out)


BackendOption = Annotated[Optional[str], typer.Option(
    help="where the models run: local, or ray (a local Ray, or the cluster RAY_ADDRESS names); default: the recipe's")]
GeneratorActors = Annotated[Optional[str], typer.Option(help="ray: generator actors, auto or N (auto: one per GPU, else per core)")]
GpusPerActor = Annotated[Optional[float], typer.Option(help="ray: GPUs each generator actor reserves (auto: 1 on GPU clusters)")]
ScorerActors = Annotated[Optional[int], typer.Option(help="ray: 0 judges inside the generator actors; N: a judge pool of N")]
CpusPerActor = Annotated[Optional[int], typer.Option(help="ray: torch threads per actor (auto: the cores split among the actors)")]


def _ray_flags(generator_actors: str | None, gpus_per_actor: float | None, scorer_actors: int | None,
               cpus_per_actor: int | None) -> dict[str, object]:
    # the text of --generator-actors (auto or N) is parsed with the recipe's rules by backends.ray_settings
    return {"generator_actors": generator_actors, "gpus_per_actor": gpus_per_actor, "scorer_actors": scorer_actors,
            "cpus_per_actor": cpus_per_actor}


def _run_generate(recipe_path: Path, out: Path, overwrite: bool, overrides: list[str] | None = None,
                  backend: str | None = None, ray_flags: dict[str, object] | None = None) -> None:
    from pairsynth.backends import choose_backend
    from pairsynth.generate import generate_dataset
    from pairsynth.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides or ())  # a bad recipe fails here, before any backend starts
    runner = choose_backend(backend, recipe.backend.ray, **(ray_flags or {}))
    with _progress_bar(recipe.k * len(recipe.caption_list)) as show:
        summary = generate_dataset(recipe, out, overwrite=overwrite, backend=runner, on_progress=show)
    _print_summary(summary, out)


def _print_outputs(out: Path) -> None:
    for name, what in (("shards", "WebDataset shards"), ("imagefolder", "imagefolder dataset"), ("audiofolder", "audiofolder dataset"),
                       ("tripletfolder", "tripletfolder dataset"), ("parquet", "Parquet shards (the Hub's layout)"),
                       ("manifest.jsonl", "every candidate, with scores and reasons"),
                       ("report/index.html", "the report: open it in a browser")):
        if (out / name).exists():
            console.print(f"  {_shown(out / name)}  [dim]{what}[/]")


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe", exists=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="override a recipe value, e.g. --set generator.steps=4 (repeatable)")] = None,
    backend: BackendOption = None,
    generator_actors: GeneratorActors = None,
    gpus_per_actor: GpusPerActor = None,
    scorer_actors: ScorerActors = None,
    cpus_per_actor: CpusPerActor = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Generate pairs from a recipe until each caption has k accepted pairs."""
    flags = _ray_flags(generator_actors, gpus_per_actor, scorer_actors, cpus_per_actor)
    _fail_cleanly(lambda: _run_generate(recipe, out, overwrite, overrides, backend, flags), verbose)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path("out/demo"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the shipped example recipes on the toy zoo: image–caption and audio–caption pairs, offline."""
    from pairsynth.demo import DEMO_RECIPES, recipe_path

    def run() -> None:
        for name in DEMO_RECIPES:
            console.rule(f"{name}: {_shown(recipe_path(name))}")
            _run_generate(recipe_path(name), out / name, overwrite=True)
        reports = [_shown(out / name / "report" / "index.html") for name in DEMO_RECIPES[:2]]
        console.print(f"\nOpen {reports[0]} and {reports[1]} in a browser; load the datasets with the snippets in "
                      "the README.")

    _fail_cleanly(run, verbose)


@app.command()
def vary(
    source: Annotated[Path, typer.Argument(help="a dataset: imagefolder, WebDataset, media + .txt captions, or a pairsynth output")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    per_pair: Annotated[int, typer.Option(help="accepted variations per source pair")] = 4,
    strength: Annotated[float, typer.Option(help="SDEdit strength in (0, 1]: how far from the source")] = 0.35,
    model: Annotated[Optional[str], typer.Option(help="variation model; default: the toy zoo's")] = None,
    clip: Annotated[str, typer.Option(help="the CLIP judge (image pairs)")] = JudgeSettings().clip,
    clap: Annotated[str, typer.Option(help="the CLAP judge (audio pairs)")] = JudgeSettings().clap,
    pretrained: Annotated[Optional[str], typer.Option(help="open_clip tag or checkpoint, for a bare CLIP ARCH")] = None,
    precision: Annotated[str, typer.Option(help="judge precision: fp32, bf16/fp16 autocast, or auto (bf16 where measurably faster here)")] = "fp32",
    judge_batch_size: Annotated[int, typer.Option(help="samples per judge forward pass")] = 64,
    caption_template: Annotated[str, typer.Option(help="prompt and new caption, e.g. '{caption}, at night'")] = "{caption}",
    steps: Annotated[int, typer.Option()] = 20,
    guidance_scale: Annotated[float, typer.Option()] = 5.0,
    min_score: Annotated[Optional[float], typer.Option(help="CLIPScore threshold")] = None,
    band: Annotated[tuple[float, float], typer.Option(help="keep source↔variation cosine in [LOW, HIGH)")] = (0.80, 0.995),
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option()] = 8,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    concepts: Annotated[Optional[list[Path]], typer.Option("--concepts", help="a concept folder to load (repeatable)")] = None,
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    allow_outside_root: Annotated[bool, typer.Option(
        help="read files the dataset names outside its folder (../x.png, absolute paths, symlinks out)")] = False,
    backend: BackendOption = None,
    generator_actors: GeneratorActors = None,
    gpus_per_actor: GpusPerActor = None,
    scorer_actors: ScorerActors = None,
    cpus_per_actor: CpusPerActor = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Make variations of existing pairs; keep those that still match their caption and their source."""

    def run() -> None:
        from pairsynth.backends import choose_backend
        from pairsynth.vary import vary_config, vary_dataset

        config = vary_config(per_pair=per_pair, strength=strength, model=model, clip=clip, clap=clap,
                             pretrained=pretrained, precision=precision, judge_batch_size=judge_batch_size,
                             steps=steps,
                             caption_template=caption_template, guidance_scale=guidance_scale, min_score=min_score,
                             similarity_band=band, seed=seed, batch_size=batch_size, device=device,
                             allow_outside_root=allow_outside_root, concepts=concepts or [])
        runner = choose_backend(backend, **_ray_flags(generator_actors, gpus_per_actor, scorer_actors, cpus_per_actor))
        with _progress_bar(None) as show:
            summary = vary_dataset(source, out, config, overwrite=overwrite, backend=runner, on_progress=show)
        _print_summary(summary, out)

    _fail_cleanly(run, verbose)


@app.command()
def score(
    dataset: Annotated[Path, typer.Argument(
        help="imagefolder/audiofolder, WebDataset shards, media + .txt captions, or a pairsynth output")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="report folder: index.html, summary.json, scores.jsonl, media/")] = Path("report"),
    threshold: Annotated[float, typer.Option(
        help="score every judge must give a pair, 100·max(cosine, 0)")] = qa_defaults.DEFAULT_THRESHOLD,
    fail_under: Annotated[Optional[float], typer.Option(
        help="gate: exit 1 when fewer than this share of pairs reach --threshold (0.9 = 90%)")] = None,
    clip: Annotated[str, typer.Option(help="CLIP judge for images")] = JudgeSettings().clip,
    clap: Annotated[str, typer.Option(help="CLAP judge for audio")] = JudgeSettings().clap,
    pretrained: Annotated[Optional[str], typer.Option(help="open_clip tag or checkpoint, for a bare CLIP ARCH")] = None,
    precision: Annotated[str, typer.Option(help="judge precision: fp32, bf16/fp16 autocast, or auto (bf16 where measurably faster here)")] = "fp32",
    distractors: Annotated[int, typer.Option(
        help="distractor captions each caption is ranked among (sampled, seeded)")] = qa_defaults.DEFAULT_DISTRACTORS,
    duplicate_cosine: Annotated[float, typer.Option(
        help="embedding cosine at which two samples are near-duplicates")] = qa_defaults.DEFAULT_DUPLICATE_COSINE,
    layout: Annotated[str, typer.Option(help="auto, folder, webdataset, sidecar or pairsynth")] = "auto",
    seed: Annotated[int, typer.Option(help="seeds the distractor sample")] = 0,
    device: Annotated[str, typer.Option()] = "auto",
    batch_size: Annotated[int, typer.Option()] = 64,
    allow_outside_root: Annotated[bool, typer.Option(
        help="read files the dataset names outside its folder (../x.png, absolute paths, symlinks out)")] = False,
    reference: Annotated[Optional[Path], typer.Option(
        help="real dataset to compare with: precision/recall/density/coverage, Fréchet distance, diversity")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score every pair of a dataset with CLIP/CLAP and write an alignment QA report.

    A pair passes when its media are usable (readable; not blank, silent or clipped) and every judge's
    score reaches --threshold. With --fail-under the command is a gate: `--threshold 25 --fail-under 0.9`
    exits 1 when fewer than 90% of all pairs (unreadable ones included) pass. Exit 2: the dataset or a
    judge model cannot be read at all, or not one of its pairs can.
    """

    def run() -> None:
        from pairsynth.score import ScoreSettings, score_dataset

        settings = ScoreSettings(clip=clip, clap=clap, pretrained=pretrained, precision=precision, device=device,
                                 batch_size=batch_size, threshold=threshold,
                                 distractors=distractors, seed=seed, duplicate_cosine=duplicate_cosine,
                                 fail_under=fail_under, layout=layout, allow_outside_root=allow_outside_root,
                                 reference=reference)
        with Progress(TextColumn("[bold]scored"), TextColumn("{task.completed} items"), TimeElapsedColumn(),
                      console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("scored", total=None)
            outcome = score_dataset(dataset, out, settings, on_progress=lambda n: bar.update(task, completed=n))
        summary = outcome.summary
        rate = summary["pass_rate"] or 0.0
        console.print(f"{summary['candidates']} pairs: [bold]{summary['accepted']}[/] ({rate:.1%}) reach score "
                      f"{threshold:g}; {len(summary['unreadable'])} unreadable → {_shown(out / 'index.html')}")
        if outcome.gate_passed is False:
            console.print(f"[red]gate failed:[/] {rate:.1%} of pairs reach {threshold:g}, "
                          f"fewer than --fail-under {fail_under:g}")
            raise typer.Exit(1)

    _fail_cleanly(run, verbose)


@app.command()
def models() -> None:
    """List the toy zoo's models and the hub models they stand in for."""
    from pairsynth.zoo import list_models

    for model in list_models():
        state = "ready" if model.available else "not trained"
        console.print(f"[bold]{model.name}[/] ({model.role}, {state}): {model.description}; "
                      f"real default: {model.real_default}")


_INPUT_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                           errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP})
"""OS errors a user causes and can fix (a path, a permission, a full disk), whatever raised them."""


def _fail_cleanly(action: Callable[[], None], verbose: bool) -> None:
    """Run a command; turn any exception into one ``error: …`` line (``--verbose``: and its traceback).

    Exit 2: bad input (pairsynth's own errors, and OS errors about a path or the disk); exit 1: an
    internal failure, which is a bug; exit 130: interrupted.
    """
    try:
        _setup(verbose)
        action()
    except (typer.Exit, typer.Abort):
        raise
    except PairsynthError as err:
        _error(str(err))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _error("interrupted; run the same command again to resume from the last commit")
        raise typer.Exit(130) from None
    except OSError as err:
        if err.errno not in _INPUT_ERRNOS:
            _internal(err, verbose)
        if verbose:
            console.print_exception()
        where = f"{err.filename}: " if err.filename else ""
        _error(f"{where}{err.strerror or err}")
        raise typer.Exit(2) from None
    except Exception as err:  # noqa: BLE001 - the last resort: one line, never a stack trace unasked
        _internal(err, verbose)


def _internal(err: BaseException, verbose: bool) -> None:
    if verbose:
        console.print_exception()
    hint = "" if verbose else " (re-run with --verbose for the traceback)"
    message = " ".join(str(err).split()) or "no message"
    _error(f"internal error, a bug in pairsynth: {type(err).__name__}: {message[:500]}{hint}")
    raise typer.Exit(1) from None


def _error(message: str) -> None:
    """One ``error:`` line per line of the message, never wrapped, with data made safe to print."""
    for line in message.splitlines() or [""]:
        console.print(f"[red]error:[/] {_shown(line)}", highlight=False, soft_wrap=True)


@app.command()
def plan(
    recipe: Annotated[Path, typer.Argument(help="YAML recipe")],
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", help="override a recipe value, e.g. --set generator.steps=4 (repeatable)")] = None,
    calibrate: Annotated[bool, typer.Option(
        help="load the models and time one batch for an estimate (--no-calibrate: the plan only)")] = True,
    show: Annotated[int, typer.Option(help="captions to list")] = 5,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Show what a recipe will do (captions, candidates, models, formats) and estimate its time; writes nothing."""

    def run() -> None:
        from pairsynth.planning import plan_recipe
        from pairsynth.recipe import load_recipe

        loaded = load_recipe(recipe, overrides or ())
        if calibrate:
            console.print("[dim]calibrating: loading the models and running one batch…[/]")
        _print_plan(plan_recipe(loaded, calibrate=calibrate), show)

    _fail_cleanly(run, verbose)


def _print_plan(result, show: int) -> None:
    out = Console()  # the plan is the command's output: stdout, so it can be piped
    out.print(f"[bold]{len(result.captions)} captions[/] × k={result.k} → {result.target} pairs wanted")
    for caption in result.captions[:show]:
        out.print(f"  {caption}", highlight=False)
    if len(result.captions) > show:
        out.print(f"  … and {len(result.captions) - show} more")
    out.print(f"[bold]candidates:[/] {result.first_round} in the first round, at most {result.max_candidates}")
    for role, model in result.models.items():
        out.print(f"[bold]{role}:[/] {model}", highlight=False)
    out.print(f"[bold]formats:[/] {', '.join(result.formats)} (+ manifest.jsonl)")
    for note in result.notes:
        out.print(f"[dim]{note}[/]")
    c = result.calibration
    if c is None:
        return
    out.print(f"[bold]calibration:[/] {c.candidates} candidates in {c.seconds:.1f} s "
              f"({c.seconds_per_candidate:.2f} s each), {c.accepted} accepted ({c.acceptance_rate:.0%}); "
              f"models loaded in {c.load_s:.1f} s")
    out.print(f"[bold]estimate:[/] about {result.expected_candidates} candidates, "
              f"{_duration(result.expected_seconds)} on this machine (one batch's rate: a rough guide)")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command()
def init(
    kind: Annotated[str, typer.Argument(help="image, audio or triplet")] = "image",
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the recipe")] = Path("recipe.yaml"),
    force: Annotated[bool, typer.Option(help="replace an existing file")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write a commented starter recipe (toy zoo models: runs offline as written)."""
    from pairsynth.starters import write_starter

    def run() -> None:
        path = write_starter(kind, out, force=force)
        console.print(f"wrote {path}: look with [bold]pairsynth plan {path}[/], "
                      f"run with [bold]pairsynth generate {path} --out out/{kind}[/]")

    _fail_cleanly(run, verbose)


@app.command()
def probe(
    real: Annotated[Path, typer.Option(help="labeled real data: imagefolder/audiofolder, class subfolders, or pairs")],
    synthetic: Annotated[list[Path], typer.Option(help="synthetic data (a pairsynth output); repeat to compare several")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report folder: index.html, summary.json")] = Path("probe"),
    shots: Annotated[str, typer.Option(help="real examples per class (per caption for retrieval), comma-separated")] = "5,10,20",
    draws: Annotated[int, typer.Option(help="training draws per shot count: each gain is paired over them")] = 10,
    classifier: Annotated[str, typer.Option(help="cnn (from scratch) or linear (on frozen CLIP/CLAP embeddings)")] = "cnn",
    p: Annotated[float, typer.Option("--p", help="probability a real example is replaced by a synthetic one of its class")] = 0.5,
    task: Annotated[str, typer.Option(help="classify, or retrieval (caption↔sample R@1/R@5, pair datasets)")] = "classify",
    test: Annotated[Optional[Path], typer.Option(help="a labeled real test set; default: hold out --test-fraction")] = None,
    test_fraction: Annotated[float, typer.Option(help="share of the real data held out, stratified")] = 0.5,
    labels: Annotated[Optional[Path], typer.Option(help="caption → label map (JSON object or caption,label CSV)")] = None,
    steps: Annotated[int, typer.Option(help="training steps per run (the same for every condition)")] = 300,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW, cosine decay)")] = 3e-3,
    image_size: Annotated[int, typer.Option(help="the CNN's input side in pixels")] = 32,
    judge: Annotated[Optional[str], typer.Option(help="CLIP/CLAP for --classifier linear; default: the toy zoo's")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Does the synthetic data help? Train on a few real examples with and without it; report paired gains."""

    def run() -> None:
        from pairsynth.probe.classifiers import TrainSettings
        from pairsynth.probe.errors import ProbeError
        from pairsynth.probe.protocol import ProbeConfig, probe_to_folder

        try:
            counts = tuple(int(n) for n in shots.split(",") if n.strip())
        except ValueError:
            raise ProbeError(f"--shots {shots!r}: expected comma-separated counts such as 5,10,20") from None
        config = ProbeConfig(shots=counts, draws=draws, classifier=classifier, p=p, test_fraction=test_fraction,
                             seed=seed, image_size=image_size, judge=judge,
                             train=TrainSettings(steps=steps, batch_size=batch_size, lr=lr))
        with Progress(TextColumn("[bold]training runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            job = bar.add_task("runs", total=None)
            summary = probe_to_folder(real, synthetic, out, config, task=task, test=test, labels=labels,
                                      on_progress=lambda done, total: bar.update(job, completed=done, total=total))
        metric = summary["metrics"][0]
        for result in summary["results"]:
            for condition, gain in result["gains"][metric].items():
                interval = (f"95% interval {100 * gain['low']:+.1f} … {100 * gain['high']:+.1f}"
                            if gain["low"] is not None else "no interval (one draw)")
                console.print(f"{result['shots']:>3} shots · {condition} vs {gain['over']}: {metric} "
                              f"{100 * gain['mean']:+.1f} points, {interval}, {gain['draws']} draws")
        console.print(f"→ {out / 'index.html'}")

    _fail_cleanly(run, verbose)


@app.command("learn-concept")
def learn_concept_command(
    items: Annotated[Path, typer.Argument(help="5–50 images or clips of the concept (NAME.txt captions optional)")],
    token: Annotated[str, typer.Option(help="the new word, e.g. '<sphynx>'")],
    init: Annotated[str, typer.Option(help="an existing word to start from, e.g. 'cat'")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the concept folder; re-run to resume")],
    method: Annotated[str, typer.Option(help="textual-inversion or lora")] = "textual-inversion",
    model: Annotated[Optional[str], typer.Option(help="pipeline to adapt; default: the toy zoo's for the medium")] = None,
    steps: Annotated[int, typer.Option(help="optimiser steps at most (early stopping may end sooner)")] = 400,
    lora_lr: Annotated[Optional[float], typer.Option(help="lora: the adapter's learning rate [default: 1e-4]")] = None,
    lora_rank: Annotated[Optional[int], typer.Option(help="lora: the adapter's rank [default: 4]")] = None,
    lora_layers: Annotated[Optional[str], typer.Option(help="lora: attention (DreamBooth's layers), all (convolutions "
                                                       "and feed-forwards too) or no-attention (those alone) "
                                                       "[default: attention]")] = None,
    keep_layers: Annotated[Optional[str], typer.Option(help="lora: of the trained layers, those the folder gets "
                                                       "(e.g. no-attention after --lora-layers all) [default: all "
                                                       "trained]")] = None,
    prior_items: Annotated[int, typer.Option(help="prior preservation: samples of the init word's captions "
                                             "trained alongside (0: off)")] = 0,
    empty_prompt_prob: Annotated[float, typer.Option(help="share of training captions replaced by '' (keeps "
                                                     "guidance working; 0.3 for LoRA on toy-shapes)")] = 0.0,
    token_lr: Annotated[Optional[float], typer.Option(help="the token embedding's learning rate [default: 5e-3]")] = None,
    mirror: Annotated[bool, typer.Option(help="images: also train on each item mirrored, 'left' and 'right' "
                                         "swapped in its caption")] = False,
    words: Annotated[Optional[str], typer.Option(help="what the token means, for the judges; default: the token without <>, its - and _ as spaces")] = None,
    ema: Annotated[float, typer.Option(help="decay of a moving average of the trained weights, evaluated and written "
                                     "instead of the last step's (0: off; 0.995 on toy-shapes)")] = 0.0,
    select: Annotated[str, typer.Option(help="what picks the written checkpoint and stops early: loss (the evaluation "
                                        "loss) or samples (validation samples judged against the items)")] = "loss",
    validation_samples: Annotated[int, typer.Option(help="--select samples: samples made at every evaluation")] = 16,
    judge: Annotated[Optional[str], typer.Option(help="--select samples: the CLIP (images) or CLAP (audio) judge "
                                                 "[default: the medium's default judge]")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="start over instead of resuming")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Teach a text→image or text→audio pipeline a new word (textual inversion or LoRA) from a few items."""

    def run() -> None:
        from pairsynth.concepts import LearnConfig, check_learn_inputs, learn_concept
        from pairsynth.errors import ConceptError

        if method not in ("textual-inversion", "lora"):
            raise ConceptError(f"--method {method!r}: use textual-inversion or lora")
        lora_only = [flag for flag, value in (("--lora-lr", lora_lr), ("--lora-rank", lora_rank),
                                              ("--lora-layers", lora_layers), ("--keep-layers", keep_layers))
                     if value is not None]
        if method != "lora" and lora_only:
            raise ConceptError(f"{', '.join(lora_only)}: LoRA settings; add --method lora or leave them out")
        given = {name: value for name, value in (("lora_lr", lora_lr), ("lora_rank", lora_rank), ("lr", token_lr),
                                                 ("lora_layers", lora_layers)) if value is not None}
        config = LearnConfig(method=method, steps=steps, prior_items=prior_items,  # type: ignore[arg-type]
                             empty_prompt_prob=empty_prompt_prob, mirror=mirror, device=device, **given,
                             select=select, validation_samples=validation_samples, judge=judge, ema=ema,  # type: ignore[arg-type]
                             keep_layers=keep_layers)  # type: ignore[arg-type]
        check_learn_inputs(items, out, token=token, init=init, model=model, config=config, overwrite=overwrite,
                           name=lambda field: "--token-lr" if field == "lr" else "--" + field.replace("_", "-"))
        columns = (TextColumn("[bold]learning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("learning", total=steps, stats="loading the pipeline…")

            def show(update) -> None:
                best = f", best eval {update.best_eval_loss:.4f}" if update.best_eval_loss is not None else ""
                judged = f", best validation {update.best_validation:.3f}" if update.best_validation is not None else ""
                bar.update(task, completed=update.step, stats=f"loss {update.loss:.4f}{best}{judged}")

            card = learn_concept(items, out, token=token, init=init, words=words, model=model, config=config,
                                 overwrite=overwrite, on_progress=show)
        stop = " (early stop)" if card.stopped_early else ""
        console.print(f"[green]{card.token}[/] learned in {card.steps_done} steps{stop}, {card.seconds:.0f} s → {_shown(out)}")

    _fail_cleanly(run, verbose)


@app.command()
def balance(
    source: Annotated[Path, typer.Argument(help="an imagefolder/audiofolder (or media + .txt captions)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory; re-run to resume")],
    target_per_class: Annotated[Optional[int], typer.Option(help="items wanted per class")] = None,
    target_ratio: Annotated[Optional[float], typer.Option(help="or: this fraction of the largest class")] = None,
    class_from: Annotated[str, typer.Option(help="auto, label, folder or caption")] = "auto",
    only: Annotated[Optional[list[str]], typer.Option("--class", help="fill only this class (repeatable; default: "
                                                                       "every class under the target)")] = None,
    template: Annotated[Optional[list[str]], typer.Option(help="prompt template with {label} (repeatable)")] = None,
    concepts: Annotated[Optional[list[Path]], typer.Option("--concepts", help="a concept folder named after its class (repeatable)")] = None,
    method: Annotated[str, typer.Option(help="text (text→X from class prompts), vary (variations of the class's "
                                             "own items) or both (alternating)")] = "text",
    strength: Annotated[float, typer.Option(help="SDEdit strength of variations: 0 keeps the item, 1 ignores it")] = 0.35,
    model: Annotated[Optional[str], typer.Option(help="text→X model (the variation model too); default: the toy zoo's")] = None,
    steps: Annotated[int, typer.Option()] = 20,
    guidance_scale: Annotated[float, typer.Option()] = 5.0,
    clip: Annotated[str, typer.Option(help="the CLIP judge (images)")] = JudgeSettings().clip,
    clap: Annotated[str, typer.Option(help="the CLAP judge (audio)")] = JudgeSettings().clap,
    max_attempts: Annotated[int, typer.Option(help="candidates per missing item at most")] = 4,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    batch_size: Annotated[int, typer.Option(help="generator batch (the judge judges the same batches)")] = 8,
    overwrite: Annotated[bool, typer.Option(help="discard what --out holds instead of resuming")] = False,
    backend: BackendOption = None,
    generator_actors: GeneratorActors = None,
    gpus_per_actor: GpusPerActor = None,
    scorer_actors: ScorerActors = None,
    cpus_per_actor: CpusPerActor = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Generate only what a dataset's rare classes miss, judged like generate; report counts before and after."""

    def run() -> None:
        from pydantic import ValidationError

        from pairsynth.backends import choose_backend
        from pairsynth.balance import BalanceConfig, BalanceError, balance_dataset

        try:
            config = BalanceConfig(target_per_class=target_per_class, target_ratio=target_ratio, class_from=class_from,
                                   classes=only, templates=template, concepts=concepts or [], seed=seed, device=device,
                                   method=method, strength=strength,
                                   max_attempts=max_attempts, judges={"clip": clip, "clap": clap},
                                   generator={"model": model, "steps": steps, "guidance_scale": guidance_scale,
                                              "batch_size": batch_size})
        except ValidationError as err:
            raise BalanceError("; ".join(f"--{'-'.join(map(str, e['loc'][-1:])).replace('_', '-')}: {e['msg']}"
                                         if e["loc"] else e["msg"].removeprefix("Value error, ")
                                         for e in err.errors())) from None
        runner = choose_backend(backend, **_ray_flags(generator_actors, gpus_per_actor, scorer_actors, cpus_per_actor))
        with _progress_bar(None) as show:
            result = balance_dataset(source, out, config, overwrite=overwrite, backend=runner, on_progress=show)
        for name, before, added, after in result.table():
            console.print(f"  {name}: {before} → [bold]{after}[/] (+{added})")
        _print_summary(result.run, out)

    _fail_cleanly(run, verbose)

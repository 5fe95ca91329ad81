"""Enhancing a photo archive with Apache Beam: the CLI's enhancement on any Beam runner.

``python -m daqe_tf.beam --input 'photos/**.jpg' --output out/ [--format png|jpg|webp|tiff]
[--exit ...] [--quality ...] [--strength ...] [--model ...] [--overwrite]``, followed by any of
Beam's own pipeline options (``--runner DataflowRunner --project ...``, ``--direct_num_workers 4``, ...).
Needs the ``beam`` extra (``pip install daqe-tf[beam]``).

The pipeline matches the glob through Beam's filesystems (local paths, ``gs://``, ``s3://``, ...:
whatever the Beam install provides) and plans one output per input: its path relative to the
glob's fixed prefix (the folders before the first wildcard) under ``--output``, with the format's
suffix; two inputs that would share an output name get ``<stem>_2`` ... as in the CLI, and an output
that would replace an input is refused. Outputs that already exist as complete images are skipped
(``--overwrite`` redoes them), so a rerun of a crashed job resumes where it stopped. The photos then
go through ``RunInference`` with :class:`EnhanceModelHandler`: the models load once per worker
(``load_model``: the shipped colour and gray defaults, or the ``--model`` file) and every photo runs
through :func:`daqe_tf.enhance` and is encoded with its EXIF (orientation reset, the pixels upright)
and ICC profile exactly as ``daqe enhance`` writes it, so the outputs are the CLI's, byte for byte.
Local outputs are written atomically (a temporary sibling, then a rename); object stores publish an
object only once it is complete. A file that cannot be enhanced never fails the pipeline: it becomes
a ``path<TAB>reason`` line of the failures file (``--failures``, default ``<output>/failures.txt``,
rewritten by every run: it lists the failures of the last run).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import posixpath
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from typing import NamedTuple

# Beam's optional cloud clients log a warning on import when they are not installed: not ours to show.
logging.disable(logging.WARNING)
try:
    import apache_beam as beam
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.metrics import Metrics
    from apache_beam.ml.inference.base import ModelHandler, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
finally:
    logging.disable(logging.NOTSET)

from daqe_tf.cli import (  # noqa: E402
    OUTPUT_FORMATS,
    _peek_grayscale,
    _same_input,
    describe_result,
    is_complete_image,
    parse_exit,
    parse_quality,
    parse_strength,
    remove_stale_temporaries,
)

__all__ = ["EnhanceModelHandler", "Job", "Outcome", "Settings", "build_pipeline", "fixed_prefix", "main", "output_path"]

FAILURES = "failures"
NAMESPACE = "daqe"
MAX_BATCH_SIZE = 4  # photos per RunInference batch: each is enhanced whole, its patches batched as the CLI does
_UNCOMPRESSED = CompressionTypes.UNCOMPRESSED
_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every worker needs to know: the CLI's enhancement options and the output format."""

    suffix: str = ".png"
    model: str | None = None
    exit_index: int | None = None
    quality: int | None = None
    strength: float = 1.0
    tile: int = 512
    overwrite: bool = False

    @property
    def pillow_format(self) -> str:
        from PIL import Image

        return Image.registered_extensions()[self.suffix]


class Job(NamedTuple):
    """One photo to enhance: its path, its output's path and the file's bytes."""

    source: str
    output: str
    data: bytes


class Outcome(NamedTuple):
    """What became of a photo: the encoded output (None when it failed) and a one-line note
    (the CLI's description of the result, or the reason it failed)."""

    source: str
    output: str
    encoded: bytes | None
    note: str


# ---------------------------------------------------------------- paths


def _is_local(path: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*://", path) is None


def fixed_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard (Beam's ``*``, ``**``, ``?``, ``[``), with
    its trailing separator: outputs keep their paths relative to it. A plain file: its folder."""
    head = re.match(r"^[^[*?]*", pattern).group(0)
    cut = max(head.rfind("/"), head.rfind(os.sep) if _is_local(head) else -1)
    return head[: cut + 1]


def output_path(source: str, prefix: str, output_root: str, suffix: str) -> str:
    """``output_root/<source relative to prefix, suffix replaced>``."""
    relative = source[len(prefix):] if source.startswith(prefix) else posixpath.basename(source)
    stem, _ = posixpath.splitext(relative)
    return FileSystems.join(output_root, stem + suffix) if relative else output_root


def _path_key(path: str) -> str:
    """A path as compared for clashes: absolute and normalised for local files, as is elsewhere."""
    return os.path.normcase(os.path.abspath(path)) if _is_local(path) else path


def _numbered(path: str, n: int) -> str:
    """``dir/stem<suffix>`` -> ``dir/stem_<n><suffix>``, the CLI's name for the n-th input sharing an output name."""
    stem, suffix = posixpath.splitext(path)
    return f"{stem}_{n}{suffix}"


def one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def failure_reason(error: BaseException, source: str) -> str:
    """The one-line reason of a failed photo, without the path the failures line starts with."""
    message = one_line(error)
    for label in (source, "<bytes>"):
        if message.startswith(label + ": "):
            return message[len(label) + 2:]
    return message if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: {message}"


# ---------------------------------------------------------------- pipeline steps


def _plan(path: str, prefix: str, settings: Settings, output_root: str):
    """(key, entry) pairs: the input under its own path, its planned output under the output's path."""
    yield _path_key(path), ("input", path, None)
    dst = output_path(path, prefix, output_root, settings.suffix)
    yield _path_key(dst), ("output", path, dst)


class ResolveOutputs(beam.DoFn):
    """Per output path: the inputs that would write it (the first by path keeps the name, the others
    get ``_2``, ``_3`` ... as in the CLI), refused when the path is an input itself."""

    def process(self, element):
        _, entries = element
        entries = sorted(entries, key=lambda e: (e[0], e[1]))
        inputs = [src for kind, src, _ in entries if kind == "input"]
        outputs = [(src, dst) for kind, src, dst in entries if kind == "output"]
        for n, (src, dst) in enumerate(outputs, start=1):
            if inputs:
                yield beam.pvalue.TaggedOutput(FAILURES, (src, f"{dst}: output would replace the input {inputs[0]}"))
                continue
            yield src, dst if n == 1 else _numbered(dst, n)


class SkipComplete(beam.DoFn):
    """Drop the photos whose outputs exist as complete images (unless overwriting); an output that
    exists but is not a whole image is a failure, as in the CLI."""

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite
        self.skipped = Metrics.counter(NAMESPACE, "skipped")

    def process(self, element):
        src, dst = element
        try:
            if _is_local(dst) and _same_input_path(dst, src):
                raise ValueError(f"{dst}: output would replace the input")
            if not self.overwrite and FileSystems.exists(dst):
                if not _complete_image(dst):
                    raise FileExistsError(f"{dst}: exists but is not a complete image (use --overwrite to replace it)")
                self.skipped.inc()
                return
        except Exception as error:  # one bad path never fails the pipeline
            yield beam.pvalue.TaggedOutput(FAILURES, (src, failure_reason(error, src)))
            return
        yield src, dst


def _same_input_path(dst: str, src: str) -> bool:
    from pathlib import Path

    return Path(dst).exists() and _same_input(Path(dst), Path(src))


def _complete_image(path: str) -> bool:
    with FileSystems.open(path, compression_type=_UNCOMPRESSED) as f:
        return is_complete_image(f)  # Pillow reads a file object as well as a path


class ReadPhoto(beam.DoFn):
    """The input file's bytes, through Beam's filesystems."""

    def process(self, element):
        src, dst = element
        try:
            with FileSystems.open(src, compression_type=_UNCOMPRESSED) as f:
                data = f.read()
        except Exception as error:
            yield beam.pvalue.TaggedOutput(FAILURES, (src, f"cannot read file ({failure_reason(error, src)})"))
            return
        yield Job(src, dst, data)


class WriteOutput(beam.DoFn):
    """Write an enhanced photo: atomically for local paths (the CLI's writer), as one object elsewhere."""

    def __init__(self):
        self.enhanced = Metrics.counter(NAMESPACE, "enhanced")

    def process(self, outcome: Outcome):
        if outcome.encoded is None:
            yield beam.pvalue.TaggedOutput(FAILURES, (outcome.source, outcome.note))
            return
        try:
            write_output(outcome.output, outcome.encoded)
        except Exception as error:
            yield beam.pvalue.TaggedOutput(FAILURES, (outcome.source, f"cannot write {outcome.output}: {one_line(error)}"))
            return
        self.enhanced.inc()
        _log.info("%s -> %s [%s]", outcome.source, outcome.output, outcome.note)


def write_output(path: str, data: bytes) -> None:
    if _is_local(path):
        from daqe_tf.io import write_file_atomically

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_file_atomically(path, data)
        return
    with FileSystems.create(path, mime_type="application/octet-stream", compression_type=_UNCOMPRESSED) as f:
        f.write(data)


# ---------------------------------------------------------------- the model handler


class EnhancerModels:
    """The models a worker runs: the shipped colour and gray defaults (picked per photo as the CLI
    picks them), or the one model the user named for every photo."""

    def __init__(self, color, gray=None):
        self.color, self.gray = color, gray

    def for_photo(self, data: bytes):
        import io

        if self.gray is None:
            return self.color
        return self.gray if _peek_grayscale(io.BytesIO(data)) else self.color


def load_enhancer_models(model: str | None) -> EnhancerModels:
    from daqe_tf.inference.models import load_model

    if model is None:
        return EnhancerModels(load_model(None, grayscale=False), load_model(None, grayscale=True))
    return EnhancerModels(load_model(_local_model_file(model)))


def _local_model_file(model: str) -> str:
    """A model on another filesystem (``gs://...``) is copied to a local folder first, with the
    LiteRT export's ``<file>.json`` beside it; local paths stay as they are."""
    if _is_local(model):
        return model
    from daqe_tf.litert_contract import metadata_path

    folder = tempfile.mkdtemp(prefix="daqe-model-")
    local = os.path.join(folder, posixpath.basename(model))
    for remote, target in ((model, local), (f"{model}.json", str(metadata_path(local)))):
        if remote != model and not FileSystems.exists(remote):
            continue
        with FileSystems.open(remote, compression_type=_UNCOMPRESSED) as src, open(target, "wb") as dst:
            dst.write(src.read())
    return local


def enhance_job(job: Job, models: EnhancerModels, settings: Settings) -> Outcome:
    """One photo through the CLI's code path: ``daqe_tf.enhance``, then the output encoded as
    ``daqe enhance`` saves it. A photo that cannot be enhanced becomes a failed outcome."""
    from daqe_tf.inference.models import ModelFileError
    from daqe_tf.inference.pipeline import enhance
    from daqe_tf.io import encode_image, output_metadata

    try:
        model = models.for_photo(job.data)
        result = enhance(job.data, model, exit_index=settings.exit_index, quality=settings.quality,
                         strength=settings.strength, tile=settings.tile)
        encoded = encode_image(result.pixels, settings.pillow_format, **output_metadata(result.source))
    except ModelFileError:
        raise  # a broken model is the job's configuration, not a bad photo
    except Exception as error:  # any bad photo becomes a failure record
        return Outcome(job.source, job.output, None, failure_reason(error, job.source))
    return Outcome(job.source, job.output, encoded, describe_result(result, settings.strength))


class EnhanceModelHandler(ModelHandler[Job, Outcome, EnhancerModels]):
    """RunInference's handler: ``load_model`` loads the enhancer's models once per worker process,
    ``run_inference`` enhances each photo of a batch whole (its patches or tiles batched inside, as in the CLI)."""

    def __init__(self, settings: Settings, max_batch_size: int = MAX_BATCH_SIZE):
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size)
        self.settings = settings

    def load_model(self) -> EnhancerModels:
        return load_enhancer_models(self.settings.model)

    def run_inference(self, batch: Sequence[Job], model: EnhancerModels, inference_args=None) -> Iterable[Outcome]:
        return [enhance_job(job, model, self.settings) for job in batch]

    def get_num_bytes(self, batch: Sequence[Job]) -> int:
        return sum(len(job.data) for job in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


# ---------------------------------------------------------------- assembly


def build_pipeline(pipeline: beam.Pipeline, pattern: str, output_root: str, settings: Settings, failures_path: str):
    """Add the archive enhancement to ``pipeline``; returns the PCollection of written outcomes."""
    from apache_beam.io import fileio

    prefix = fixed_prefix(pattern)
    paths = (pipeline
             | "Match" >> fileio.MatchFiles(pattern, empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW)
             | "Paths" >> beam.Map(lambda metadata: metadata.path))
    # Grouping by path also spreads the photos over the workers (the match runs on one).
    resolved = (paths
                | "Plan" >> beam.FlatMap(_plan, prefix, settings, output_root)
                | "ByPath" >> beam.GroupByKey()
                | "Resolve" >> beam.ParDo(ResolveOutputs()).with_outputs(FAILURES, main="todo"))
    pending = resolved.todo | "Skip" >> beam.ParDo(SkipComplete(settings.overwrite)).with_outputs(FAILURES, main="todo")
    read = pending.todo | "Read" >> beam.ParDo(ReadPhoto()).with_outputs(FAILURES, main="jobs")
    outcomes = read.jobs | "Enhance" >> RunInference(EnhanceModelHandler(settings))
    written = outcomes | "Write" >> beam.ParDo(WriteOutput()).with_outputs(FAILURES, main="done")
    failed = Metrics.counter(NAMESPACE, "failed")

    def failure_line(record):
        failed.inc()
        src, reason = record
        return f"{one_line(src)}\t{one_line(reason)}"

    _ = ((resolved[FAILURES], pending[FAILURES], read[FAILURES], written[FAILURES])
         | "Failures" >> beam.Flatten()
         | "FailureLines" >> beam.Map(failure_line)
         | "WriteFailures" >> beam.io.WriteToText(failures_path, shard_name_template="", num_shards=1))
    return written.done


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m daqe_tf.beam",
        description="Enhance a photo archive on Apache Beam (the CLI's output); other options go to Beam's PipelineOptions.")
    parser.add_argument("--input", required=True,
                        help="a glob on any Beam filesystem: 'photos/*.jpg', 'photos/**.jpg' (all folders), 'gs://bucket/photos/**.jpg'")
    parser.add_argument("--output", required=True, help="output folder (local or a Beam filesystem); outputs keep the inputs' relative paths")
    parser.add_argument("--format", choices=sorted(OUTPUT_FORMATS), default="png", help="output format (default png)")
    parser.add_argument("--exit", type=parse_exit, default=None, help="as in daqe enhance: auto (default), fast, balanced, best or a number")
    parser.add_argument("--model", help="a .tflite or .keras model (default: the shipped models, by image kind)")
    parser.add_argument("--quality", metavar="QF", type=parse_quality, default=None, help="assume this JPEG quality (1-100)")
    parser.add_argument("--strength", metavar="S", type=parse_strength, default=1.0, help="0: the input, 1 (default): the model's output, up to 2")
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels, a multiple of 16 (default 512)")
    parser.add_argument("--failures", help="the failures file, 'path<TAB>reason' lines (default <output>/failures.txt)")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that exist (default: skip them, resuming a crashed run)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args, beam_args = build_parser().parse_known_args(argv)
    if args.tile % 16 or args.tile < 64:
        print("daqe_tf.beam: error: --tile must be a multiple of 16 and at least 64", file=sys.stderr)
        return 2
    settings = Settings(suffix=OUTPUT_FORMATS[args.format], model=args.model, exit_index=args.exit,
                        quality=args.quality, strength=args.strength, tile=args.tile, overwrite=args.overwrite)
    failures_path = args.failures or FileSystems.join(args.output, "failures.txt")
    if _is_local(args.output):
        os.makedirs(args.output, exist_ok=True)
        removed = remove_stale_temporaries_under(args.output)
        if removed:
            print(f"daqe_tf.beam: removed {len(removed)} temporary file(s) left by an interrupted run", file=sys.stderr)
    options = PipelineOptions(beam_args, save_main_session=False)
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, args.input, args.output, settings, failures_path)
    result = pipeline.result if hasattr(pipeline, "result") else None
    _report(result, failures_path)
    return 0


def remove_stale_temporaries_under(folder: str) -> list:
    """The CLI's clean-up of the atomic writer's temporaries left by killed runs, over an output tree."""
    from pathlib import Path

    outputs = []
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                rest = name[1:-4].rpartition(".")[0]
                stem, _, pid = rest.rpartition(".")
                outputs.append(Path(root) / (stem if pid.isdigit() else rest))
    return remove_stale_temporaries(outputs)


def _report(result, failures_path: str) -> None:
    counts = {}
    if result is not None:
        try:
            for counter in result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))["counters"]:
                counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + counter.committed
        except Exception:  # some runners report no metrics
            return
    if counts:
        print(f"daqe_tf.beam: enhanced {counts.get('enhanced', 0)}, skipped {counts.get('skipped', 0)} "
              f"(outputs exist), failed {counts.get('failed', 0)} (see {failures_path})", file=sys.stderr)


if __name__ == "__main__":
    # Run the importable module's main, so that workers in other processes unpickle daqe_tf.beam's
    # classes rather than looking for them in their own __main__.
    from daqe_tf.beam import main as _main

    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(_main())

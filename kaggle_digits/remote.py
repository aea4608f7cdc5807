"""`--remote kaggle`: the training of one submission run in a private Kaggle kernel, on Kaggle's GPU.

The kernel runs the toolkit's own `submit --no-upload` on the competition files Kaggle mounts in
`/kaggle/input/<competition>/` (the same code paths, models, seeds, metrics and sidecar as a local
run; mixed precision on the GPU). Kaggle's images have TensorFlow, scikit-learn, pandas and
matplotlib but not this toolkit, and the kernel has no internet: the package travels inside the
script, zipped and base64-encoded, and is imported from that zip (a private data set would need a
second upload and a version to keep in step; a script is one request and always the code that runs
here). When the session is done, its output (submission, sidecar, metrics, plots, model) comes back
and is checked exactly like a local file; then `submit` uploads it through the same guards.

What kaggle.com does that this lives with (sources in local_kaggle/kernels.py):
- The accelerator is asked for by name (`machineShape`, default T4 x2): `enableGpu` alone gets a P100.
- At most 2 GPU batch sessions per account run at once; a push past that is refused, not queued: the
  push waits (with a line saying so) and is tried again, backing off, within `--remote-timeout`.
- SaveKernel is not idempotent and its answer can be lost: the kernel's version is read before the
  push and again after an unanswered one, so a version Kaggle made is followed, never pushed twice.
- No public answer carries the session id that CancelKernelSession needs, and a new push does not
  stop an old one (Kaggle/kaggle-cli#388). DeleteKernel does stop it: `kaggle-digits remote stop`
  deletes the toolkit's own running kernels (named kaggle-digits-*), and nothing else. Ctrl-C here
  stops following and prints that command.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__, config, data, models, pipeline, splits, submission, training
from .errors import DataError, KaggleError, KaggleUnavailable, UsageError
from .helpers import artifact_dir, versions, write_atomically, write_folder_atomically
from .kaggle_api import Kaggle, Kernels
from .kaggle_api.kernels import PushedKernel, PushUnanswered, SessionCapReached, kernel_url
from .models.keras_models import EnsembleModel, on_this_device
from .tasks import get_task

log = logging.getLogger("kaggle_digits")

KERNEL_PREFIX = "kaggle-digits-"  # every kernel the toolkit pushes is named so; `remote stop` deletes only these
PUSH_ATTEMPTS = 3  # unanswered pushes of one training (each checked first: never two versions)
HOME_IN_KERNEL = "kaggle-digits"  # KAGGLE_DIGITS_HOME inside /kaggle/working: everything kept is under it
# What comes back; the parsed-data cache stays on Kaggle (it is rebuilt here from the local copy).
KEEP = tuple(f"{HOME_IN_KERNEL}/{part}/" for part in ("submissions", "data/models", "data/reports"))
PACKAGE = Path(__file__).resolve().parent

# Nothing from the command line is written into the source: the call's arguments travel as base64 JSON
# (SPEC), so no value (a competition name, a -p value with a newline) can ever become code.
_SCRIPT = """\
# kaggle-digits {version}: {what} on Kaggle's GPU (pushed by `--remote kaggle`).
# The toolkit is not on Kaggle's images and the kernel has no internet: it travels below, zipped.
import base64, json, os, sys, tempfile

SPEC = json.loads(base64.b64decode("{spec}"))
BUNDLE = "{bundle}"
bundle = os.path.join(tempfile.mkdtemp(), "kaggle_digits.zip")  # outside the working folder: not output
with open(bundle, "wb") as out:
    out.write(base64.b64decode(BUNDLE))
sys.path.insert(0, bundle)
os.environ["KAGGLE_DIGITS_HOME"] = os.path.abspath("{home}")
{call}
"""


@dataclass
class RemoteOptions:
    timeout: float = config.REMOTE_TIMEOUT_SECONDS  # seconds to follow the session; Kaggle stops it then too
    poll: float = field(default_factory=lambda: config.KERNEL_POLL_SECONDS)  # read at the call, not at import
    accelerator: str | None = config.DEFAULT_ACCELERATOR  # Kaggle's machineShape; None: the CPU
    sessions: int = config.REMOTE_SESSIONS  # kernels in flight at once (the ensemble's members)

    @property
    def gpu(self) -> bool:
        return self.accelerator is not None

    @property
    def machine(self) -> str:
        """What the sidecar and the ledger say it trained on: Kaggle's name for the accelerator, or CPU."""
        return self.accelerator or "CPU"

    def train(self, settings: pipeline.Settings, kaggle: Kaggle, dataset: data.Dataset) -> Path:
        """submit.RemoteTraining: `submit --remote kaggle` trains through here."""
        return train_on_kaggle(settings, kaggle, kaggle.name, dataset, self)

    def validate(self, settings: pipeline.Settings, overrides: list[dict[str, str]], dataset: data.Dataset) -> list:
        """tuning.RemoteTrials: `tune --remote kaggle` validates a batch of trials' parameters through here."""
        return validate_on_kaggle(settings, overrides, dataset, self)


def bundle() -> bytes:
    """The package's Python source as a zip (the same bytes for the same code: fixed timestamps, sorted).

    Only `.py` files: nothing else in the folder (a stray kaggle.json, say) can ride along to Kaggle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix == ".py":
                name = (Path("kaggle_digits") / path.relative_to(PACKAGE)).as_posix()
                archive.writestr(
                    zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), path.read_bytes(), zipfile.ZIP_DEFLATED
                )
    return buffer.getvalue()


def kernel_argv(settings, competition: str) -> list[str]:
    argv = [
        "submit",
        "--no-upload",
        "--task",
        settings.task.name,
        "--model",
        settings.model,
        "--seed",
        str(settings.seed),
        "--data-dir",
        f"../input/{competition}",
    ]
    for key, value in settings.overrides.items():
        argv += ["-p", f"{key}={value}"]
    return argv


def kernel_script(what: str, spec: dict, call: str) -> str:
    """`what` and `call` are the toolkit's own fixed text; everything from outside is in `spec`."""
    return _SCRIPT.format(
        version=__version__,
        what=what,
        spec=base64.b64encode(json.dumps(spec).encode()).decode(),
        bundle=base64.b64encode(bundle()).decode(),
        home=HOME_IN_KERNEL,
        call=call,
    )


def cli_script(what: str, argv: list[str], settings, competition: str) -> str:
    """A kernel that runs `kaggle-digits` with `argv` on the competition's data as Kaggle mounts it (and the user's
    model file beside it, where the model is theirs)."""
    spec = {
        "argv": argv,
        "competition": competition,
        "train_file": settings.task.train_file,
        "user_model": user_model_spec(settings.model),
    }
    call = (
        "from kaggle_digits import cli, remote\n\nargv = SPEC['argv']\n"
        "argv[argv.index('--data-dir') + 1] = remote.find_input(SPEC['competition'], SPEC['train_file'])\n"
        "remote.place_user_model(SPEC['user_model'], argv)\n"
        "sys.exit(cli.main(argv))"
    )
    return kernel_script(what, spec, call)


def submit_script(settings, competition: str) -> str:
    return cli_script("`kaggle-digits submit --no-upload`", kernel_argv(settings, competition), settings, competition)


def validate_script(settings, competition: str) -> str:
    """A tuning trial's kernel: `kaggle-digits validate` with the trial's -p values, on the study's split and seed."""
    argv = kernel_argv(settings, competition)
    argv[0:2] = ["validate", "--quiet"]
    argv += ["--folds", str(settings.folds)] if settings.folds > 1 else ["--holdout", str(settings.holdout)]
    return cli_script("a tuning trial (`kaggle-digits validate`)", argv, settings, competition)


def validate_on_kaggle(settings, overrides: list[dict[str, str]], dataset, options: RemoteOptions) -> list[float]:
    """Each set of -p values validated in a kernel of its own (a slot: kaggle-digits-<task>-<model>-trial-<n>, a new
    version per trial), at most `options.sessions` at once; their accuracies, each checked to be of these data."""
    kaggle = Kaggle(settings.task)
    owner = _owner(kaggle)
    kernels = Kernels(kaggle)
    if options.gpu:
        _check_quota(kernels.gpu_quota())
    slug = kernel_slug(settings)
    trials = [replace(settings, overrides=dict(values)) for values in overrides]
    for trial in trials:
        trial.params()  # a bad value fails here, not in a kernel
    jobs = [
        (short_slug(f"{slug}-trial-{slot + 1}"), validate_script(trial, kaggle.name))
        for slot, trial in enumerate(trials)
    ]
    accuracies = []
    with tempfile.TemporaryDirectory(prefix=".kernel-output-", dir=_scratch_parent()) as scratch:
        finished = _run(kernels, owner, jobs, kaggle.name, options)
        for number, (pushed, trial) in enumerate(zip(finished, trials, strict=True)):
            kernels.output(pushed, Path(scratch) / str(number), (f"{HOME_IN_KERNEL}/data/reports/",))
            reports = Path(scratch) / str(number) / HOME_IN_KERNEL / "data" / "reports"
            found = sorted(reports.glob("*/metrics.json"))
            try:
                metrics = json.loads(found[0].read_text()) if found else None
            except (OSError, ValueError):
                metrics = None
            if not isinstance(metrics, dict) or not isinstance(metrics.get("accuracy"), (int, float)):
                raise KaggleError(
                    f"the kernel {pushed.ref} {pushed.label} finished without a readable metrics.json. "
                    f"Fix: read its log at {pushed.url}"
                )
            if metrics.get("data_checksum") != dataset.checksum or metrics.get("seed") != trial.seed:
                raise KaggleError(
                    f"the kernel {pushed.ref} {pushed.label} validated other data or another seed than this study's "
                    f"(Kaggle's copy of {settings.task.train_file} differs from this one). Fix: 'make data FORCE=1'"
                )
            accuracies.append(float(metrics["accuracy"]))
    return accuracies


def user_model_spec(model: str) -> dict | None:
    """A user's model travels as data in the script's SPEC (base64, like the arguments): its file and the files
    beside it that it imports, under their names relative to its folder. It never becomes code in the script's own
    source; in the kernel it is written to a folder of its own and loaded through the same door as here."""
    if not models.is_reference(model):
        return None
    source = models.resolve_user_model(model)
    if not source.files:
        raise UsageError(
            f"model '{source.display}' was handed over as an object in Python: it has no file to travel to a kernel. "
            f"Fix: put it in a file and pass 'file.py:{source.attribute}'"
        )
    return {
        "files": {name: base64.b64encode(text).decode() for name, text in source.texts().items()},
        "first": source.files[0],
        "attribute": source.attribute,
        "is_file": source.is_file,
    }


def place_user_model(spec: dict | None, argv: list[str]) -> None:
    """In a kernel: write the user's files to a folder outside the working folder (so they are not output) and point
    --model at them. The same names and bytes: the same display name and source hash, so the same configuration."""
    if not spec:
        return
    root = Path(tempfile.mkdtemp(prefix="user-model-"))
    for name, text in spec["files"].items():
        path = (root / name).resolve()
        if root.resolve() not in path.parents:
            raise UsageError(f"the user model's file name {name!r} points outside its folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(text))
    if spec["is_file"]:
        argv[argv.index("--model") + 1] = f"{root / spec['first']}:{spec['attribute']}"
    else:
        sys.path.insert(0, str(root))  # package.module:NAME imports from there


def member_script(settings, competition: str, index: int) -> str:
    spec = {
        "task": settings.task.name,
        "seed": settings.seed,
        "overrides": dict(settings.overrides),
        "competition": competition,
        "member": index,
    }
    return kernel_script(
        "an ensemble member", spec, "from kaggle_digits import remote\n\nsys.exit(remote.member_main(SPEC))"
    )


def find_input(competition: str, train_file: str) -> str:
    """In a kernel: the folder Kaggle mounted the competition in. `../input/<competition>/` (relative to
    /kaggle/working) is where Kaggle has long put it; newer images may nest it deeper, so look there too."""
    candidates = [
        Path("../input") / competition,
        Path("../input/competitions") / competition,
        *sorted(path.parent for path in Path("../input").rglob(train_file)),
    ]
    return str(next((folder for folder in candidates if (folder / train_file).is_file()), candidates[0]))


def member_main(spec: dict) -> int:
    """In a kernel: train the ensemble member that holds out fold `member`; save it and its held-out predictions."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    task = get_task(spec["task"])
    dataset = data.load(Path(find_input(spec["competition"], task.train_file)), task)
    ensemble = models.create("ensemble", models.params_for("ensemble", spec["overrides"]), spec["seed"])
    assert isinstance(ensemble, EnsembleModel)
    index = spec["member"]
    train, held_out = splits.kfold_splits(dataset.train_labels, ensemble.params.members, spec["seed"])[index]
    member = ensemble.member(index)
    start = time.perf_counter()
    member.fit(dataset.train_images[train], dataset.train_labels[train], None, verbose=True)
    seconds = time.perf_counter() - start
    folder = Path(HOME_IN_KERNEL) / "member"
    folder.mkdir(parents=True)
    member.save(folder)
    predicted = member.predict(dataset.train_images[held_out])
    (folder / "held_out.json").write_text(
        json.dumps(
            {
                "member": index,
                "rows": held_out.tolist(),
                "predicted": predicted.tolist(),
                "data_checksum": dataset.checksum,
                "train_seconds": round(seconds, 2),
            }
        )
    )
    log.info(
        "member %d: %.4f on its %d held-out rows, %.0f s (%s)",
        index + 1,
        float((predicted == dataset.train_labels[held_out]).mean()),
        len(held_out),
        seconds,
        ", ".join(
            f"{name} {version}" for name, version in versions().items()
        ),  # the image's, as a local run's sidecar has them
    )
    return 0


def kernel_slug(settings) -> str:
    """One kernel per task and model (each run is a new version of it): kaggle-digits-digit-recognizer-cnn."""
    return short_slug(f"{KERNEL_PREFIX}{settings.task.name}-{settings.model_file_name}")


def short_slug(name: str, limit: int = config.KERNEL_TITLE_MAX) -> str:
    """Kaggle's slug shape (lowercase, dashes), at most `limit` characters: a longer one keeps its start and
    ends in a hash of the whole, so the same name always gives the same kernel (the title is the slug)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if len(slug) <= limit:
        return slug
    digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"{slug[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def train_on_kaggle(settings, kaggle, competition: str, dataset, options: RemoteOptions | None = None) -> Path:
    """Push, follow, bring back: the checked submission file (with its sidecar, model and report installed).

    The ensemble goes out as one kernel per member (at most `options.sessions` at once); its members
    come back, are checked against this data, and predict test.csv here.
    """
    options = options or RemoteOptions()
    params = settings.params()  # a bad -p fails here, not in a kernel an hour later
    if settings.model == "ensemble" and params.members < 2:
        raise UsageError(
            f"ensemble: members={params.members}: needs at least 2 (one kernel per fold). Fix: -p members=5"
        )
    owner = _owner(kaggle)
    kernels = Kernels(kaggle)
    if options.gpu:
        _check_quota(kernels.gpu_quota())
    log.info("remote: training on %s (%s)", options.machine, config.ACCELERATORS.get(options.machine, "no accelerator"))
    slug = kernel_slug(settings)
    ensemble = settings.model == "ensemble"
    if ensemble:
        # On a GPU the preset grows to gpu_members kernels; decided here (no GPU in sight) for the kernels' accelerator,
        # and sent to each, so that every member splits the rows into the same folds.
        params = on_this_device(params, gpu=options.gpu)
        sent = replace(settings, overrides={**settings.overrides, "members": str(params.members), "gpu_members": "0"})
        jobs = [
            (short_slug(f"{slug}-member-{index + 1}"), member_script(sent, competition, index))
            for index in range(params.members)
        ]
    else:
        jobs = [(slug, submit_script(settings, competition))]
    with tempfile.TemporaryDirectory(prefix=".kernel-output-", dir=_scratch_parent()) as scratch:
        finished = _run(kernels, owner, jobs, competition, options)
        homes = []
        for number, pushed in enumerate(finished):
            output = kernels.output(
                pushed, Path(scratch) / str(number), (f"{HOME_IN_KERNEL}/member/",) if ensemble else KEEP
            )
            homes.append((pushed, Path(scratch) / str(number) / HOME_IN_KERNEL, output))
        if ensemble:
            return _install_ensemble(homes, settings, params, dataset, options.machine)
        return _install(homes[0][1], settings, homes[0][0], dataset.test_ids, options.machine)


def _check_quota(quota) -> None:
    """Used plus reserved (the time held by sessions running now) against the week's allowance; an
    unknown allowance is said and the run goes on (Kaggle refuses a push past it anyway)."""
    if not quota.known:
        log.warning("remote: Kaggle did not report this account's GPU quota; going on (Kaggle refuses a push past it)")
        return
    held = f" + {quota.reserved_seconds / 3600:.1f} h held by sessions running now" if quota.reserved_seconds else ""
    if quota.left_seconds <= 0:
        refresh = f"; it refreshes {quota.refresh:%Y-%m-%d %H:%M} UTC" if quota.refresh else ""
        raise KaggleError(
            f"the weekly GPU quota is used up ({quota.used_seconds / 3600:.1f} h used{held} of "
            f"{quota.allowed_seconds / 3600:.0f} h){refresh}. Fix: wait for it, or train here (without --remote)"
        )
    log.info(
        "remote: GPU quota %.1f h left of %.0f h this week%s",
        quota.left_seconds / 3600,
        quota.allowed_seconds / 3600,
        f" ({held[3:]})" if held else "",
    )


def _scratch_parent() -> Path:
    config.DATA_DIR.mkdir(parents=True, exist_ok=True)
    return config.DATA_DIR  # same file system as the folders swapped in below


@dataclass
class _Job:
    """One training to push: a slug and its script, and when it may be tried again after a refusal."""

    slug: str
    script: str
    refusals: int = 0
    not_before: float = field(default=0.0)


def _run(kernels, owner: str, jobs: list[tuple[str, str]], competition: str, options: RemoteOptions) -> list:
    """Push each (slug, script), at most `options.sessions` in flight, filling a slot as one frees up; follow
    every pushed version (progress on every change and every minute) until all are COMPLETE. A push refused
    for the GPU-session cap waits and is tried again (backing off); a failure stops it with the log.

    Every way out other than success (a failed kernel, a refused push, a poll Kaggle refuses, the timeout,
    Ctrl-C) names each pushed kernel that is still running on the account's GPU quota, and how to stop it."""
    start = time.monotonic()
    waiting = [_Job(slug, script) for slug, script in jobs]
    running: dict = {}
    pushed_at: dict[str, float] = {}
    finished: dict = {}
    seen: dict[str, str] = {}
    last_line = start
    many = len(jobs) > 1
    try:
        while waiting or running:
            while waiting and len(running) < max(1, options.sessions) and waiting[0].not_before <= time.monotonic():
                job = waiting[0]
                try:
                    pushed = _push(kernels, owner, job.slug, job.script, competition, options)
                except SessionCapReached as refusal:
                    job.refusals += 1
                    wait = min(4 * options.poll * 2 ** (job.refusals - 1), config.KERNEL_CAP_BACKOFF_MAX)
                    job.not_before = time.monotonic() + wait
                    log.info(
                        "remote: Kaggle refused %s/%s for now (%s): the account's other GPU sessions hold every slot; "
                        "pushing again in %s (%s elapsed)",
                        owner,
                        job.slug,
                        str(refusal).rstrip("."),
                        _clock(wait),
                        _clock(time.monotonic() - start),
                    )
                    break
                waiting.pop(0)
                log.info(
                    "remote: pushed %s version %d (%s, internet off): %s",
                    pushed.ref,
                    pushed.version,
                    options.machine,
                    pushed.url,
                )
                running[job.slug], pushed_at[job.slug] = pushed, time.monotonic()
            elapsed = time.monotonic() - start
            for slug, pushed in list(running.items()):
                try:
                    state = kernels.status(pushed)
                except KaggleUnavailable as error:  # a two-hour training is not abandoned over a flaky poll
                    log.warning("remote: %s; still following", error)
                    continue
                if state.done:
                    finished[slug] = running.pop(slug)
                    log.info("remote: %s%s after %s", state.status, f" ({pushed.ref})" if many else "", _clock(elapsed))
                    if state.status != "COMPLETE":
                        _fail(kernels, pushed, state)
                elif state.status != seen.get(slug) or time.monotonic() - last_line >= 60:
                    log.info(
                        "remote: %s%s, %s elapsed", state.status, f" ({pushed.ref})" if many else "", _clock(elapsed)
                    )
                    seen[slug], last_line = state.status, time.monotonic()
            if not running and not waiting:
                break
            # Each kernel is allowed the whole limit from its own push (Kaggle's session limit counts from there
            # too), so a later wave of the ensemble is not cut short; a training never pushed is given up on once
            # the limit has passed since the run began.
            now = time.monotonic()
            late = [pushed for slug, pushed in running.items() if now - pushed_at[slug] > options.timeout]
            if late or (waiting and now - start > options.timeout):
                pending = [f"{pushed.ref} {pushed.label}" for pushed in late] + [
                    f"{owner}/{job.slug} (never pushed: the account's GPU sessions stayed busy)" for job in waiting
                ]
                raise KaggleError(
                    f"{', '.join(pending)} not done within {options.timeout:.0f} s of its push (--remote-timeout; "
                    f"Kaggle stops a session at the same limit). Fix: run again with a longer --remote-timeout"
                )
            time.sleep(options.poll)
    except BaseException:
        for pushed in running.values():
            log.error(
                "remote: stopped following %s %s. It keeps running on Kaggle, on this account's GPU quota: stop it "
                "with 'kaggle-digits remote stop' (deletes the toolkit's running kernels), or at %s, or let it finish",
                pushed.ref,
                pushed.label,
                pushed.url,
            )
        raise
    return [finished[slug] for slug, _ in jobs]


def _push(kernels, owner: str, slug: str, script: str, competition: str, options: RemoteOptions) -> PushedKernel:
    """One training's push, never two sessions of it: SaveKernel is not idempotent and its answer can be
    lost after Kaggle made the version. So the kernel's version is read first; after an unanswered push
    it is read again: a new version is followed, none means the push did not land and goes again."""
    before = kernels.current_version(owner, slug)
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            # The title is the slug itself: kaggle.com names a new kernel after its title, and the official
            # client warns when the two differ ("may result in surprising behavior").
            return kernels.push(owner, slug, slug, script, competition, options.accelerator, int(options.timeout))
        except PushUnanswered as lost:
            now = kernels.current_version(owner, slug)
            if now > before:
                log.warning(
                    "remote: the push of %s/%s got no answer, but Kaggle made version %d: following it",
                    owner,
                    slug,
                    now,
                )
                return PushedKernel(owner, slug, now, kernel_url(owner, slug))
            if attempt == PUSH_ATTEMPTS:
                raise KaggleUnavailable(
                    f"{lost} (Kaggle made no new version of {owner}/{slug}: nothing runs)"
                ) from None
            log.warning(
                "remote: the push of %s/%s got no answer and Kaggle made no version; pushing again", owner, slug
            )
    raise AssertionError("unreachable")  # the loop returns or raises


def stop_own_kernels(kaggle) -> list[str]:
    """`kaggle-digits remote stop`: delete the account's running kernels named kaggle-digits-* (DeleteKernel
    stops the session and its billing; nothing else stops it through the API). Returns their refs."""
    owner = _owner(kaggle)
    kernels = Kernels(kaggle)
    stopped = []
    for kernel in kernels.own_kernels(owner, KERNEL_PREFIX):
        if not kernel.slug.startswith(KERNEL_PREFIX) or kernel.version < 1:
            continue
        state = kernels.status(
            PushedKernel(kernel.owner, kernel.slug, kernel.version, kernel_url(kernel.owner, kernel.slug))
        )
        if state.done:
            continue
        kernels.delete(kernel.owner, kernel.slug)
        log.info(
            "remote: deleted %s/%s (version %d was %s): its session stops",
            kernel.owner,
            kernel.slug,
            kernel.version,
            state.status,
        )
        stopped.append(f"{kernel.owner}/{kernel.slug}")
    return stopped


def _owner(kaggle) -> str:
    owner = kaggle.username  # a legacy key's name is checked by the push itself (403: no such kernel for this account)
    if not owner:
        raise UsageError(
            "--remote kaggle needs the account's user name (an access token, or a legacy key with its user name). "
            "Fix: sign in with 'kaggle auth login' or set KAGGLE_API_TOKEN"
        )
    return owner


def _fail(kernels, pushed, state) -> None:
    with tempfile.TemporaryDirectory(prefix=".kernel-log-", dir=_scratch_parent()) as scratch:
        tail = kernels.output(pushed, Path(scratch), files=False).tail()
    if tail:
        log.error("remote: the last lines of the kernel's log:\n%s", "\n".join(f"  | {line}" for line in tail))
    raise KaggleError(
        f"the kernel {pushed.ref} {pushed.label} failed: {state.failure or state.status}. Fix: read its log "
        f"above "
        f"(or at {pushed.url}), then run again; nothing was kept"
    )


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _install(home: Path, settings, pushed, expected_ids, machine: str) -> Path:
    """Check the kernel's submission like a local one; then model, report and file go in place, each whole."""
    files = sorted((home / "submissions").glob("*.csv"))
    if not files:
        raise KaggleError(
            f"the kernel {pushed.ref} {pushed.label} finished without a submission file. Fix: read its log at "
            f"{pushed.url}"
        )
    source = files[-1]
    try:
        submission.check_submission(source, settings.task, expected_ids)
        sidecar = submission.read_sidecar(source)
    except DataError as error:
        raise KaggleError(f"the kernel's submission is not valid ({error}); nothing was kept") from None
    if sidecar.get("checksum") != submission.file_checksum(source):
        raise KaggleError("the kernel's submission does not match its sidecar's checksum; nothing was kept")
    for kind, local in (("data/models", config.MODELS_DIR), ("data/reports", config.REPORTS_DIR)):
        for folder in sorted((home / kind).iterdir()) if (home / kind).is_dir() else []:
            if not folder.is_dir() or folder.name.startswith("."):
                continue  # a model or report is a folder; nothing hidden comes along
            write_folder_atomically(local / folder.name, functools.partial(shutil.copytree, folder, dirs_exist_ok=True))
    target = config.SUBMISSIONS_DIR / source.name
    sidecar["trained_on"] = f"kaggle kernel {pushed.ref} {pushed.label}"
    sidecar["accelerator"] = machine
    content = source.read_bytes()
    write_atomically(target, lambda handle: handle.write(content))
    write_atomically(target.with_suffix(".json"), lambda handle: handle.write(json.dumps(sidecar, indent=2).encode()))
    log.info(
        "remote: %s checked and kept (trained on %s); model and report in %s, %s",
        target.name,
        sidecar["trained_on"],
        config.MODELS_DIR,
        config.REPORTS_DIR,
    )
    return target


def _install_ensemble(homes, settings, params, dataset, machine: str) -> Path:
    """The members that came back become the ensemble here: checked against this data, their held-out
    predictions give the out-of-fold estimate, and test.csv is predicted here (as `make predict` does)."""
    ensemble = models.create("ensemble", params, settings.seed)
    assert isinstance(ensemble, EnsembleModel)
    out_of_fold = np.full(len(dataset.train_labels), -1, dtype=np.int64)
    members, seconds = [], 0.0
    for index, (pushed, home, _) in enumerate(homes):
        folder = home / "member"
        try:
            held = json.loads((folder / "held_out.json").read_text())
        except (OSError, ValueError):
            raise KaggleError(
                f"the kernel {pushed.ref} {pushed.label} finished without its member. Fix: read its log at {pushed.url}"
            ) from None
        if held.get("data_checksum") != dataset.checksum or held.get("member") != index:
            raise KaggleError(
                f"the kernel {pushed.ref} {pushed.label} trained on other data than {settings.resolved_data_dir} "
                f"(checksums differ); nothing was kept. Fix: run again"
            )
        out_of_fold[np.asarray(held["rows"], dtype=np.int64)] = np.asarray(held["predicted"], dtype=np.int64)
        members.append(
            type(ensemble.member(index)).load(folder, ensemble.member(index).params, ensemble.member_seed(index))
        )
        seconds += float(held.get("train_seconds") or 0.0)
    if (out_of_fold < 0).any():
        raise KaggleError("the members' held-out folds do not cover every row; nothing was kept. Fix: run again")
    ensemble.members = members
    accuracy = float(np.mean(out_of_fold == dataset.train_labels))
    log.info(
        "remote: %d members back; their out-of-fold accuracy %.4f over %d rows",
        len(members),
        accuracy,
        len(out_of_fold),
    )
    meta = pipeline.model_meta(
        settings,
        params,
        dataset,
        accuracy,
        f"{params.members}-fold out-of-fold (members)",
        len(dataset.train_labels),
        seconds,
        gpu=machine != "CPU",
    )
    first, last = homes[0][0], homes[-1][0]
    meta["trained_on"] = f"kaggle kernels {first.ref} {first.label} .. {last.ref} {last.label}"
    meta["accelerator"] = machine
    training.save_model(ensemble, artifact_dir(config.MODELS_DIR, settings.model_file_name, settings.task.name), meta)
    return pipeline.predict(settings, dataset)

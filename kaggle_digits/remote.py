"""`--remote kaggle`: the training of one submission run in a private Kaggle kernel, on Kaggle's GPU.

The kernel runs the toolkit's own `submit --no-upload` on the competition files Kaggle mounts in
`/kaggle/input/<competition>/` (the same code paths, models, seeds, metrics and sidecar as a local
run; mixed precision on the GPU). Kaggle's images have TensorFlow, scikit-learn, pandas and
matplotlib but not this toolkit, and the kernel has no internet: the package travels inside the
script, zipped and base64-encoded, and is imported from that zip (a private data set would need a
second upload and a version to keep in step; a script is one request and always the code that runs
here). When the session is done, its output (submission, sidecar, metrics, plots, model) comes back
and is checked exactly like a local file; then `submit` uploads it through the same guards.

What the Kernels API cannot do: stop a session from outside. CancelKernelSession takes a session id
that no public response carries, and a new push does not stop the old one (Kaggle/kaggle-cli#388).
So Ctrl-C here stops following it and says where to stop it; `sessionTimeoutSeconds` bounds it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import config, data, submission
from .errors import DataError, KaggleError, KaggleUnavailable, UsageError

log = logging.getLogger("kaggle_digits")

HOME_IN_KERNEL = "kaggle-digits"  # KAGGLE_DIGITS_HOME inside /kaggle/working: everything kept is under it
# What comes back; the parsed-data cache stays on Kaggle (it is rebuilt here from the local copy).
KEEP = tuple(f"{HOME_IN_KERNEL}/{part}/" for part in ("submissions", "data/models", "data/reports"))
PACKAGE = Path(__file__).resolve().parent

_SCRIPT = '''\
# kaggle-digits {version}: `kaggle-digits {command}` on Kaggle's GPU (pushed by `--remote kaggle`).
# The toolkit is not on Kaggle's images and the kernel has no internet: it travels below, zipped.
import base64, os, sys, tempfile

BUNDLE = "{bundle}"
bundle = os.path.join(tempfile.mkdtemp(), "kaggle_digits.zip")  # outside the working folder: not output
with open(bundle, "wb") as out:
    out.write(base64.b64decode(BUNDLE))
sys.path.insert(0, bundle)
os.environ["KAGGLE_DIGITS_HOME"] = os.path.abspath("{home}")
from kaggle_digits import cli

sys.exit(cli.main({argv!r}))
'''


@dataclass
class RemoteOptions:
    timeout: float = 4 * 3600.0  # seconds to follow the session; Kaggle stops it then too
    poll: float = config.KERNEL_POLL_SECONDS
    gpu: bool = True


def bundle() -> bytes:
    """The package's source files as a zip (the same bytes for the same code: fixed timestamps, sorted)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".toml", ".json"):
                name = (Path("kaggle_digits") / path.relative_to(PACKAGE)).as_posix()
                archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def kernel_argv(settings, competition: str) -> list[str]:
    argv = ["submit", "--no-upload", "--task", settings.task.name, "--model", settings.model, "--seed", str(settings.seed),
            "--data-dir", f"../input/{competition}"]
    for key, value in settings.overrides.items():
        argv += ["-p", f"{key}={value}"]
    return argv


def kernel_script(settings, competition: str) -> str:
    from . import __version__

    argv = kernel_argv(settings, competition)
    return _SCRIPT.format(version=__version__, command=" ".join(argv), bundle=base64.b64encode(bundle()).decode(),
                          home=HOME_IN_KERNEL, argv=argv)


def kernel_slug(settings) -> str:
    """One kernel per task and model (each run is a new version of it): kaggle-digits-digit-recognizer-cnn."""
    return re.sub(r"[^a-z0-9]+", "-", f"kaggle-digits-{settings.task.name}-{settings.model}".lower()).strip("-")


def train_on_kaggle(settings, kaggle, competition: str, expected_ids, options: RemoteOptions | None = None) -> Path:
    """Push, follow, bring back: the checked submission file (with its sidecar, model and report installed)."""
    from .kaggle_api import Kernels

    options = options or RemoteOptions()
    settings.params()  # a bad -p fails here, not in a kernel an hour later
    owner = kaggle.check_credentials()
    if not owner:
        raise UsageError("--remote kaggle needs the account's user name (an access token, or a legacy key with its user name). "
                         "Fix: sign in with 'kaggle auth login' or set KAGGLE_API_TOKEN")
    kernels = Kernels(kaggle)
    if options.gpu:
        quota = kernels.gpu_quota()
        if quota.left_seconds <= 0:
            refresh = f"; it refreshes {quota.refresh:%Y-%m-%d %H:%M} UTC" if quota.refresh else ""
            raise KaggleError(f"the weekly GPU quota is used up ({quota.used_seconds / 3600:.1f} h of "
                              f"{quota.allowed_seconds / 3600:.0f} h){refresh}. Fix: wait for it, or train here (without --remote)")
        log.info("remote: GPU quota %.1f h left of %.0f h this week", quota.left_seconds / 3600, quota.allowed_seconds / 3600)
    slug = kernel_slug(settings)
    pushed = kernels.push(owner, slug, f"{slug} run", kernel_script(settings, competition), competition, options.gpu,
                          int(options.timeout))
    log.info("remote: pushed %s version %d (%s, internet off): %s", pushed.ref, pushed.version,
             "GPU" if options.gpu else "CPU", pushed.url)
    state = _follow(kernels, pushed, options)
    with tempfile.TemporaryDirectory(prefix=".kernel-output-", dir=_scratch_parent()) as scratch:
        output = kernels.output(pushed, Path(scratch), () if state.status != "COMPLETE" else KEEP)
        if state.status != "COMPLETE":
            tail = "\n".join(f"  | {line}" for line in output.tail())
            if tail:
                log.error("remote: the last lines of the kernel's log:\n%s", tail)
            reason = state.failure or state.status
            raise KaggleError(f"the kernel {pushed.ref} {pushed.label} failed: {reason}. Fix: read its log above (or at "
                              f"{pushed.url}), then run again; nothing was kept")
        return _install(Path(scratch) / HOME_IN_KERNEL, settings, pushed, expected_ids)


def _scratch_parent() -> Path:
    config.DATA_DIR.mkdir(parents=True, exist_ok=True)
    return config.DATA_DIR  # same file system as the folders swapped in below


def _follow(kernels, pushed, options: RemoteOptions):
    """Poll the pushed version until it is done; progress on every change and every minute."""
    start = time.monotonic()
    last_status, last_line = "", start
    while True:
        try:
            state = kernels.status(pushed)
        except KaggleUnavailable as error:  # a two-hour training is not abandoned over a flaky poll
            log.warning("remote: %s; still following", error)
            state = None
        except KeyboardInterrupt:
            raise
        elapsed = time.monotonic() - start
        if state is not None:
            if state.done:
                log.info("remote: %s after %s", state.status, _clock(elapsed))
                return state
            if state.status != last_status or time.monotonic() - last_line >= 60:
                log.info("remote: %s, %s elapsed", state.status, _clock(elapsed))
                last_status, last_line = state.status, time.monotonic()
        if elapsed > options.timeout:
            raise KaggleError(f"the kernel {pushed.ref} {pushed.label} is not done after {_clock(elapsed)} ({options.timeout:.0f} s "
                              f"allowed); Kaggle stops it at the same limit. Fix: see {pushed.url}; run again with a longer "
                              f"--remote-timeout")
        try:
            time.sleep(options.poll)
        except KeyboardInterrupt:
            log.error("remote: stopped following %s %s. It keeps running on Kaggle (the Kernels API cannot stop a session): "
                      "stop it at %s (Active Events, Stop Session), or let it finish", pushed.ref, pushed.label, pushed.url)
            raise


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _install(home: Path, settings, pushed, expected_ids) -> Path:
    """Check the kernel's submission like a local one; then model, report and file go in place, each whole."""
    files = sorted((home / "submissions").glob("*.csv"))
    if not files:
        raise KaggleError(f"the kernel {pushed.ref} {pushed.label} finished without a submission file. Fix: read its log at {pushed.url}")
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
            data.write_folder_atomically(local / folder.name, lambda staging, folder=folder: shutil.copytree(folder, staging, dirs_exist_ok=True))
    target = config.SUBMISSIONS_DIR / source.name
    sidecar["trained_on"] = f"kaggle kernel {pushed.ref} {pushed.label}"
    content = source.read_bytes()
    data.write_atomically(target, lambda handle: handle.write(content))
    data.write_atomically(target.with_suffix(".json"), lambda handle: handle.write(json.dumps(sidecar, indent=2).encode()))
    log.info("remote: %s checked and kept (trained on %s); model and report in %s, %s", target.name, sidecar["trained_on"],
             config.MODELS_DIR, config.REPORTS_DIR)
    return target

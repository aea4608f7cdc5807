"""kaggle-digits: the commands. Each subcommand is a small function; its docstring is its help."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import config
from .errors import EXIT_CODES, ToolkitError, UsageError

log = logging.getLogger("kaggle_digits")


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. -p epochs=10)")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _common(parser: argparse.ArgumentParser, model: bool = True, data: bool = True) -> None:
    parser.add_argument("--task", default=config.DEFAULT_TASK, help="which Kaggle task (see 'kaggle-digits tasks'); default %(default)s")
    if data:
        parser.add_argument("--data-dir", type=Path, help="folder or zip with the task's CSVs (default data/raw/<task>/)")
    if model:
        parser.add_argument("--model", default=config.DEFAULT_MODEL, help="model name (see 'kaggle-digits models'); default %(default)s")
        parser.add_argument("-p", "--param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                            help="override a model hyperparameter, e.g. -p epochs=10 (repeatable)")
        parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="one seed for splits and training; default %(default)s")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output (for cron); results and errors only")


def _settings(args):
    from .tasks import get_task
    from .workflow import Settings

    return Settings(
        task=get_task(args.task),
        data_dir=getattr(args, "data_dir", None),
        model=getattr(args, "model", config.DEFAULT_MODEL),
        overrides=dict(getattr(args, "param", [])),
        seed=getattr(args, "seed", config.DEFAULT_SEED),
        holdout=getattr(args, "holdout", config.DEFAULT_HOLDOUT),
        folds=getattr(args, "folds", 0),
        verbose=not args.quiet,
    )


def cmd_validate(args) -> int:
    """Estimate accuracy on a stratified holdout (or k-fold); write metrics.json and plots."""
    from . import workflow

    settings = _settings(args)
    settings.params()  # bad -p values fail here, before any data is read
    result, files = workflow.validate(settings)
    spread = f" ± {result.accuracy_std:.4f}" if result.accuracy_std is not None else ""
    print(f"{settings.model}: {result.scheme} accuracy {result.accuracy:.4f}{spread}"
          + (f", best epoch {result.best_epoch}" if result.best_epoch else "") + f" ({result.fit_seconds:.0f} s training)")
    if not args.quiet:
        names = settings.task.class_names
        print("per-class accuracy: " + "  ".join(f"{names[i]}:{value:.3f}" for i, value in enumerate(result.per_class_accuracy)))
        print("confusion matrix (rows true, columns predicted):")
        for i, row in enumerate(result.confusion_matrix):
            print(f"  {names[i][:11]:>11} " + " ".join(f"{count:5d}" for count in row))
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def cmd_train(args) -> int:
    """Fit the final model on the full train.csv (epochs chosen by the last validate) and save it."""
    from . import workflow

    settings = _settings(args)
    settings.params()
    folder, meta = workflow.train(settings)
    print(f"model: {folder} ({meta['train_seconds']:.0f} s on {meta['train_rows']} rows)")
    return 0


def cmd_predict(args) -> int:
    """Predict test.csv with the trained model; write and check submissions/<UTC time>-<model>.csv."""
    from . import workflow

    settings = _settings(args)
    if not settings.task.submits:
        raise UsageError(f"task '{settings.task.name}' has no submission (its test file is labeled). Fix: use 'kaggle-digits evaluate --task {settings.task.name}'")
    path = workflow.predict(settings)
    print(f"submission: {path}")
    return 0


def cmd_models(args) -> int:
    """List the models and their default hyperparameters."""
    from . import models

    for name, model_class in models.REGISTRY.items():
        params = models.params_dict(model_class.Params())
        print(f"{name:14} " + " ".join(f"{key}={value}" for key, value in params.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaggle-digits",
        description="Kaggle Digit Recognizer toolkit: fetch, validate, train, predict, submit, score.",
        epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, function, **kwargs):
        sub = commands.add_parser(name, help=function.__doc__.splitlines()[0], description=function.__doc__, **kwargs)
        sub.set_defaults(run=function)
        return sub

    validate = add("validate", cmd_validate)
    _common(validate)
    validate.add_argument("--holdout", type=float, default=config.DEFAULT_HOLDOUT, help="fraction held out; default %(default)s")
    validate.add_argument("--folds", type=int, default=0, help="k-fold cross-validation instead of a holdout (e.g. 5)")
    _common(add("train", cmd_train))
    _common(add("predict", cmd_predict))
    add("models", cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.run(args) or 0
    except ToolkitError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
